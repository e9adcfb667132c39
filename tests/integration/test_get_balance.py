"""GET /api/balance and GET /api/packs through the get_balance handler, against moto's DynamoDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pynamodb.transactions import TransactWrite
from ulid import ULID

from functions.get_balance.app import lambda_handler
from tests.dynamodb_faults import INTERNAL_ERROR, failing
from tests.fresh_process import modules_imported
from tests.lambda_events import api_event, invoke
from wallet import ledger, models

pytestmark = pytest.mark.usefixtures("tables")
ROOT = Path(__file__).resolve().parents[2]


def deposit(user_id: str, amount: int) -> str:
    payment_id = str(ULID())
    ledger.add_credits(user_id, amount, source="stripe_payment", payment_id=payment_id, currency="usd")
    return payment_id


def hold(user_id: str, amount: int, description: str) -> str:
    """A reservation as the hold routes write it: a row of 0, and `amount` moved from balance to held."""
    hold_id = str(ULID())
    row = models.CreditTransaction(
        user_id,
        str(ULID()),
        type="hold",
        amount=0,
        source="service",
        description=description,
        hold_id=hold_id,
        reserved=amount,
        created_at="2026-12-04T10:00:00.000Z",
    )
    balance = models.CreditBalance(user_id)
    with TransactWrite(connection=models.connection()) as transaction:
        transaction.save(row, condition=models.CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            balance,
            actions=[models.CreditBalance.balance.add(-amount), models.CreditBalance.held.add(amount)],
            condition=models.CreditBalance.balance >= amount,
        )
    return hold_id


def capture(user_id: str, hold_id: str, held: int, amount: int, description: str) -> None:
    """A capture of `amount` of a hold of `held`: its spend row, and the rest of the hold back to balance."""
    row = models.CreditTransaction(
        user_id,
        str(ULID()),
        type="spend",
        amount=-amount,
        source="service",
        description=description,
        hold_id=hold_id,
        reserved=held,
        created_at="2026-12-04T10:01:00.000Z",
    )
    balance = models.CreditBalance(user_id)
    with TransactWrite(connection=models.connection()) as transaction:
        transaction.save(row, condition=models.CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            balance,
            actions=[models.CreditBalance.balance.add(held - amount), models.CreditBalance.held.add(-held)],
        )


def get_balance(user: str | None = "alice", **query: str) -> tuple[int, dict[str, Any]]:
    response = invoke(lambda_handler, api_event("GET", "/api/balance", user=user, query=query))
    return response.status, response.body


def test_a_new_user_has_a_zero_balance_and_no_history() -> None:
    status, body = get_balance("newcomer")

    assert status == 200
    assert body == {
        "userId": "newcomer",
        "currency": "usd",
        "balance": 0,
        "held": 0,
        "available": 0,
        "transactions": [],
        "nextCursor": None,
    }


def test_the_balance_and_newest_first_history_of_the_signed_in_user_only() -> None:
    first, second = deposit("alice", 1000), deposit("alice", 5000)
    deposit("bob", 10000)

    status, body = get_balance("alice")

    assert status == 200
    assert body["balance"] == 6000
    assert body["userId"] == "alice"
    transactions = body["transactions"]
    assert isinstance(transactions, list)
    assert [(t["id"], t["amount"], t["paymentId"]) for t in transactions] == [
        (second, 5000, second),
        (first, 1000, first),
    ]
    assert set(transactions[0]) == {"id", "type", "amount", "source", "paymentId", "description", "createdAt"}
    assert transactions[0]["type"] == "deposit"
    assert transactions[0]["source"] == "stripe_payment"


def test_a_balance_from_before_holds_is_all_available() -> None:
    # Given a balance item written before holds existed: no `held` attribute at all
    deposit("alice", 2500)
    assert "held" not in models.CreditBalance.get("alice").attribute_values

    status, body = get_balance("alice")

    assert status == 200
    assert (body["balance"], body["held"], body["available"]) == (2500, 0, 2500)


def test_an_active_hold_is_owned_but_not_available() -> None:
    # Given $50 topped up and $5 of it reserved by a hold
    deposit("alice", 5000)
    hold_id = hold("alice", 500, "Render job 7")

    status, body = get_balance("alice")

    # Then the balance is still what alice owns, of which $5 is held and $45 available
    assert status == 200
    assert (body["balance"], body["held"], body["available"]) == (5000, 500, 4500)
    reservation = body["transactions"][0]
    assert reservation["type"] == "hold"
    assert (reservation["amount"], reservation["holdId"], reservation["reserved"]) == (0, hold_id, 500)
    assert reservation["description"] == "Render job 7"
    # and a row that is no hold's has neither field
    assert not {"holdId", "reserved"} & set(body["transactions"][1])


def test_a_capture_is_a_spend_of_the_hold_and_gives_the_rest_back() -> None:
    # Given $50, a $5 hold, and a capture of $3 of it
    deposit("alice", 5000)
    hold_id = hold("alice", 500, "Render job 7")
    capture("alice", hold_id, 500, 300, "Render job 7")

    status, body = get_balance("alice")

    # Then $3 is spent, nothing is held any more, and the spend names its hold and what it reserved
    assert status == 200
    assert (body["balance"], body["held"], body["available"]) == (4700, 0, 4700)
    spend = body["transactions"][0]
    assert (spend["type"], spend["amount"]) == ("spend", -300)
    assert (spend["holdId"], spend["reserved"]) == (hold_id, 500)


def test_the_balance_and_its_holds_are_one_read_of_the_balance() -> None:
    deposit("alice", 5000)
    hold("alice", 500, "Render job 7")
    client = models.connection().client
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb", count)
    try:
        status, body = get_balance("alice")
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)

    assert (status, body["held"]) == (200, 500)
    assert sorted(calls) == ["GetItem", "Query"]


def test_history_pages_follow_the_cursor() -> None:
    ids = [deposit("alice", 100) for _ in range(5)]

    _, first = get_balance("alice", limit="2")
    _, second = get_balance("alice", limit="2", cursor=str(first["nextCursor"]))
    _, last = get_balance("alice", limit="2", cursor=str(second["nextCursor"]))

    pages = [first, second, last]
    seen = [t["id"] for page in pages for t in page["transactions"]]
    assert seen == ids[::-1]
    assert last["nextCursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5", ""])
def test_a_bad_limit_is_a_400(limit: str) -> None:
    status, body = get_balance("alice", limit=limit)

    assert status == 400
    assert body["error"]["code"] == "invalid_page"
    assert "1 to 100" in body["error"]["message"]


@pytest.mark.parametrize("cursor", ["garbage", "eyJhZnRlciI6IDF9", "W10"])
def test_a_bad_cursor_is_a_400(cursor: str) -> None:
    status, body = get_balance("alice", cursor=cursor)

    assert status == 400
    assert body["error"]["code"] == "invalid_page"


def test_no_verified_user_is_a_401() -> None:
    deposit("alice", 1000)

    status, body = get_balance(user=None)

    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "Sign in to continue."}}


@pytest.mark.parametrize(
    "sub",
    [
        "alice#s1",  # a hot account's sub-balance of alice
        "#sweep",  # the sweep's own records
        "a" * 256,  # one past the longest user id
        "bob smith",
        "eve/../alice",
        "caf\u00e9",
    ],
)
def test_a_token_whose_sub_is_not_a_user_id_is_a_400_and_reads_nothing(sub: str) -> None:
    deposit("alice", 1000)

    status, body = get_balance(sub)

    assert status == 400
    assert body["error"]["code"] == "invalid_user"
    assert "sub claim" in body["error"]["message"]
    assert "balance" not in body


@pytest.mark.parametrize("sub", ["a", "a" * 255, "google-oauth2|1234", "auth0|5f1c", "user@example.com"])
def test_a_sub_of_1_to_255_printable_characters_is_a_user(sub: str) -> None:
    status, body = get_balance(sub)

    assert status == 200
    assert body["userId"] == sub


def test_a_user_id_in_the_query_is_ignored() -> None:
    deposit("alice", 1000)

    status, body = get_balance("mallory", userId="alice")

    assert status == 200
    assert (body["userId"], body["balance"]) == ("mallory", 0)


def test_a_dynamodb_failure_is_a_500_without_internals() -> None:
    client = models.connection().client
    with failing(client, "GetItem", INTERNAL_ERROR):
        status, body = get_balance("alice")

    assert status == 500
    assert body["error"]["code"] == "ledger_unavailable"
    assert "InternalServerError" not in str(body)


def test_packs_are_public_and_come_from_the_price_list() -> None:
    response = invoke(lambda_handler, api_event("GET", "/api/packs", user=None))

    assert response.status == 200
    assert response.body == {
        "currency": "usd",
        "packs": [
            {"amount": 1000, "credits": 1000, "label": "$10"},
            {"amount": 5000, "credits": 5000, "label": "$50"},
            {"amount": 10000, "credits": 10000, "label": "$100"},
        ],
    }


def test_serving_the_balance_never_imports_stripe() -> None:
    # A fresh interpreter: this test process has imported stripe for other tests.
    script = (
        "from functions.get_balance.app import lambda_handler\n"
        "from tests.lambda_events import api_event, invoke\n"
        "assert invoke(lambda_handler, api_event('GET', '/api/balance', user='alice')).status == 200\n"
        "assert invoke(lambda_handler, api_event('GET', '/api/packs', user=None)).status == 200\n"
    )

    assert modules_imported(script, "stripe") == []

"""GET /api/balance and GET /api/packs through the get_balance handler, against moto's DynamoDB."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def get_balance(user: str | None = "alice", **query: str) -> tuple[int, dict[str, object]]:
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


def test_history_pages_follow_the_cursor() -> None:
    ids = [deposit("alice", 100) for _ in range(5)]

    _, first = get_balance("alice", limit="2")
    _, second = get_balance("alice", limit="2", cursor=str(first["nextCursor"]))
    _, last = get_balance("alice", limit="2", cursor=str(second["nextCursor"]))

    pages = [first, second, last]
    seen = [t["id"] for page in pages for t in page["transactions"]]  # type: ignore[attr-defined]
    assert seen == ids[::-1]
    assert last["nextCursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5", ""])
def test_a_bad_limit_is_a_400(limit: str) -> None:
    status, body = get_balance("alice", limit=limit)

    assert status == 400
    assert body["error"]["code"] == "invalid_page"  # type: ignore[index]
    assert "1 to 100" in body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("cursor", ["garbage", "eyJhZnRlciI6IDF9", "W10"])
def test_a_bad_cursor_is_a_400(cursor: str) -> None:
    status, body = get_balance("alice", cursor=cursor)

    assert status == 400
    assert body["error"]["code"] == "invalid_page"  # type: ignore[index]


def test_no_verified_user_is_a_401() -> None:
    deposit("alice", 1000)

    status, body = get_balance(user=None)

    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "Sign in to continue."}}


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
    assert body["error"]["code"] == "ledger_unavailable"  # type: ignore[index]
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

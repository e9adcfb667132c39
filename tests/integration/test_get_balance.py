"""GET /api/balance and GET /api/packs through the get_balance handler, against moto's DynamoDB."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pynamodb.transactions import TransactWrite
from ulid import ULID

from functions.get_balance.app import lambda_handler
from tests.dynamodb_faults import INTERNAL_ERROR, failing
from tests.fresh_process import modules_imported
from tests.lambda_events import api_event, invoke
from wallet import history, holds, hot_accounts, ledger, models

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
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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
        "expiring": [],
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
        # Any amount from $5 to $1,000 too: the defaults of CUSTOM_AMOUNT_MIN and CUSTOM_AMOUNT_MAX.
        "custom": {"min": 500, "max": 100000},
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


# --- the folded history: a hold is one row, and a kind filters -------------------------------------------

SERVICE = "arn:aws:iam::123456789012:role/service"


def real_hold(user_id: str, amount: int, *, expires_in: int = 3600, now: float | None = None) -> str:
    """A hold made by the hold routes' own domain function: its guard, its row and the balance."""
    clock = (lambda: now) if now is not None else time.time
    made = holds.create_hold(
        user_id,
        amount,
        expires_in=expires_in,
        idempotency_key=str(ULID()),
        description="Render job",
        actor=SERVICE,
        currency="usd",
        now=clock,
    )
    return made.hold.hold_id


def settle(user_id: str, hold_id: str, captured: int) -> None:
    """A capture of `captured` credits, or a release when 0."""
    if captured:
        holds.capture_hold(
            user_id, hold_id, captured, idempotency_key=str(ULID()), actor=SERVICE, currency="usd"
        )
    else:
        holds.release_hold(user_id, hold_id, idempotency_key=str(ULID()), actor=SERVICE, currency="usd")


def every_page(user: str, limit: int, **query: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        _, body = get_balance(user, limit=str(limit), **query, **({"cursor": cursor} if cursor else {}))
        pages.append(body["transactions"])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages


def test_a_captured_hold_is_one_row_saying_what_was_reserved_and_used() -> None:
    # Given $50, and a $5 hold of which $3 was used
    deposit("alice", 5000)
    hold_id = real_hold("alice", 500)
    settle("alice", hold_id, 300)

    _, body = get_balance("alice")

    # Then the history has two rows: the top-up, and the usage that names the hold and what it reserved
    assert [(t["type"], t["amount"]) for t in body["transactions"]] == [("spend", -300), ("deposit", 5000)]
    assert (body["transactions"][0]["holdId"], body["transactions"][0]["reserved"]) == (hold_id, 500)


def test_a_hold_that_used_nothing_shows_only_under_the_holds_kind() -> None:
    # Given $50, a released hold and a used one
    deposit("alice", 5000)
    released = real_hold("alice", 200)
    settle("alice", released, 0)
    used = real_hold("alice", 500)
    settle("alice", used, 100)

    _, every = get_balance("alice")
    _, of_holds = get_balance("alice", kind="holds")

    assert [t["type"] for t in every["transactions"]] == ["spend", "deposit"]
    assert [(t["type"], t["holdId"], t["reserved"]) for t in of_holds["transactions"]] == [
        ("spend", used, 500),
        ("hold_released", released, 200),
    ]


def test_an_active_hold_shows_its_own_row_on_any_page() -> None:
    # Given an active hold, then 3 top-ups after it
    deposit("alice", 5000)
    active = real_hold("alice", 500)
    for _ in range(3):
        deposit("alice", 100)

    # When read 2 rows a page, so that the hold is on the second page
    pages = every_page("alice", 2)

    # Then it shows there, as reserving credits
    rows = [t for page in pages for t in page]
    assert [t["type"] for t in rows] == ["deposit", "deposit", "deposit", "hold", "deposit"]
    assert rows[3]["holdId"] == active


def test_a_hold_settled_on_an_earlier_page_is_not_shown_again_on_a_later_one() -> None:
    # Given a hold, 3 top-ups, then its capture: the capture on page 1, the hold's own row further on
    deposit("alice", 5000)
    hold_id = real_hold("alice", 500)
    for _ in range(3):
        deposit("alice", 100)
    settle("alice", hold_id, 400)

    rows = [t for page in every_page("alice", 2) for t in page]

    assert [t["type"] for t in rows] == ["spend", "deposit", "deposit", "deposit", "deposit"]


def test_a_hold_past_the_longest_a_hold_lasts_is_not_shown_as_active() -> None:
    # Given a hold made more than a day ago that no sweep has expired yet
    deposit("alice", 5000)
    long_ago = time.time() - holds.MAX_EXPIRES_IN_SECONDS - 120
    real_hold("alice", 500, expires_in=60, now=long_ago)

    _, body = get_balance("alice")

    assert [t["type"] for t in body["transactions"]] == ["deposit"]


def test_a_page_is_full_of_rows_to_read_however_many_unused_holds_lie_between() -> None:
    # Given 25 top-ups, each followed by two holds released unused (75 rows in the ledger)
    made = []
    for _ in range(25):
        made.append(deposit("alice", 1000))
        for _ in range(2):
            settle("alice", real_hold("alice", 100), 0)

    pages = every_page("alice", 20)

    # Then the first page holds 20 top-ups and the second the other 5, newest first
    assert [len(page) for page in pages] == [20, 5]
    assert [t["id"] for page in pages for t in page] == made[::-1]


def test_a_page_past_the_rows_one_request_reads_is_short_but_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a bound of 6 rows read per request, and 2 top-ups with 4 unused holds (8 rows) between them
    monkeypatch.setattr(history, "MAX_ROWS_READ", 6)
    first = deposit("alice", 1000)
    for _ in range(2):
        settle("alice", real_hold("alice", 100), 0)
    last = deposit("alice", 1000)
    for _ in range(2):
        settle("alice", real_hold("alice", 100), 0)

    # When read with room for both
    _, body = get_balance("alice", limit="5")
    # Then the 6 rows read hold one top-up: a short page, and a cursor that finds the other
    assert [t["id"] for t in body["transactions"]] == [last]
    assert body["nextCursor"] is not None
    _, rest = get_balance("alice", limit="5", cursor=body["nextCursor"])
    assert ([t["id"] for t in rest["transactions"]], rest["nextCursor"]) == ([first], None)


@pytest.mark.parametrize(
    ("kind", "types"),
    [
        ("topups", ["deposit"]),
        ("usage", ["hold", "spend", "spend"]),
        ("refunds", ["refund"]),
        ("adjustments", ["adjustment"]),
        ("holds", ["hold", "hold_released", "spend"]),
    ],
)
def test_each_kind_shows_its_own_rows(kind: str, types: list[str]) -> None:
    # Given one row of each kind: a top-up, a plain spend, an adjustment, a refund, and three holds
    payment_id = deposit("alice", 5000)
    ledger.spend("alice", 100, idempotency_key="k1", actor=SERVICE, currency="usd", description="API call")
    used = real_hold("alice", 500)
    settle("alice", used, 200)
    settle("alice", real_hold("alice", 300), 0)
    ledger.adjust("alice", -100, reason="Goodwill back", idempotency_key="k2", actor=SERVICE, currency="usd")
    real_hold("alice", 400)
    refund_row(payment_id)

    _, body = get_balance("alice", kind=kind)

    assert [t["type"] for t in body["transactions"]] == types


def refund_row(payment_id: str) -> None:
    """A refund's row, as the webhook writes one: a signed row naming its payment, and the balance."""
    row = models.CreditTransaction(
        "alice",
        str(ULID()),
        type="refund",
        amount=-1000,
        source="stripe_payment",
        payment_id=payment_id,
        created_at="2026-12-04T10:02:00.000Z",
    )
    with TransactWrite(connection=models.connection()) as transaction:
        transaction.save(row, condition=models.CreditTransaction.transaction_id.does_not_exist())
        transaction.update(models.CreditBalance("alice"), actions=[models.CreditBalance.balance.add(-1000)])


@pytest.mark.parametrize("kind", ["", "all", "deposit", "TOPUPS", "topups "])
def test_an_unknown_kind_is_a_400_naming_the_kinds(kind: str) -> None:
    status, body = get_balance("alice", kind=kind)

    assert status == 400
    assert body["error"]["code"] == "invalid_page"
    assert "topups, usage, refunds, adjustments, grants, expired, holds" in body["error"]["message"]


def test_a_hot_accounts_folded_history_merges_every_partition_and_pages_through_all() -> None:
    # Given a hot account: spends on its sub-balances, a hold released unused and a captured one
    deposit("alice", 5000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    for n in range(5):
        ledger.spend(
            "alice", 5, idempotency_key=f"order-{n}", description=None, actor=SERVICE, currency="usd"
        )
    settle("alice", real_hold("alice", 100), 0)
    used = real_hold("alice", 100)
    settle("alice", used, 40)
    for n in range(5, 9):
        ledger.spend(
            "alice", 5, idempotency_key=f"order-{n}", description=None, actor=SERVICE, currency="usd"
        )
    # Every row of every partition, newest first, less the two a person does not read: the holds' own
    # rows (both settled) and the release that used nothing
    expected = [
        row.transaction_id
        for row in sorted(
            (
                row
                for key in hot_accounts.account_partitions("alice")
                for row in models.CreditTransaction.query(key)
            ),
            key=lambda row: row.transaction_id,
            reverse=True,
        )
        if row.type not in {"hold", "hold_released"}
    ]

    rows = [t["id"] for page in every_page("alice", 3) for t in page]

    assert len(expected) == 11
    assert rows == expected

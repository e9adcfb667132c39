"""GET /api/users/{userId}/transactions: a backend's read of a user's history, paged as the page's is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ulid import ULID

from functions.get_balance.app import lambda_handler as page_handler
from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import ledger, settings
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
ROUTE = "/api/users/{userId}/transactions"
BACKEND_ROLE = "arn:aws:iam::123456789012:role/services/checkout-backend"
OPERATOR_ROLE = "arn:aws:iam::123456789012:role/support-operator"
STRANGER_ROLE = "arn:aws:iam::123456789012:role/someone-else"


def deposit(user: str, amount: int) -> None:
    ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")


def read(user: str, query: dict[str, str] | None = None, arn: str | None = None) -> HttpResponse:
    event = api_event("GET", ROUTE, path_parameters={"userId": user}, query=query)
    if arn is not None:
        event["requestContext"]["identity"]["userArn"] = arn
    return invoke(spend_handler, event)


def stored_ids(user: str) -> list[str]:
    """The user's rows as DynamoDB holds them, newest first: ids are ULIDs, ordered by time."""
    return sorted((row.transaction_id for row in CreditTransaction.query(user)), reverse=True)


def walk(user: str, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        answer = read(user, query)
        assert answer.status == 200, answer.body
        pages.append([t["id"] for t in answer.body["transactions"]])
        cursor = answer.body["nextCursor"]
        if cursor is None:
            return pages


def test_pages_walk_the_whole_history_newest_first_once_each() -> None:
    for amount in range(1, 26):
        deposit("alice", amount)

    pages = walk("alice", 10)

    assert [len(page) for page in pages] == [10, 10, 5]
    assert [one for page in pages for one in page] == stored_ids("alice")


def test_it_answers_what_the_credits_page_answers_for_the_same_query() -> None:
    for amount in (100, 250, 400):
        deposit("alice", amount)
    first = read("alice", {"limit": "2"})
    page = invoke(page_handler, api_event("GET", "/api/balance", user="alice", query={"limit": "2"}))

    assert (first.status, page.status) == (200, 200)
    assert first.body == page.body
    assert (first.body["balance"], [t["amount"] for t in first.body["transactions"]]) == (750, [400, 250])


def test_with_no_limit_a_page_holds_the_default_of_20() -> None:
    for amount in range(1, 22):
        deposit("alice", amount)

    assert len(read("alice").body["transactions"]) == 20


@pytest.mark.parametrize("limit", ["1", "100"])
def test_a_limit_at_either_bound_is_taken(limit: str) -> None:
    for amount in range(1, 102):
        deposit("alice", amount)

    answer = read("alice", {"limit": limit})

    assert (answer.status, len(answer.body["transactions"])) == (200, int(limit))
    assert answer.body["nextCursor"] is not None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1.5", "ten", "", "²", "0001"])
def test_a_limit_outside_1_to_100_or_not_a_whole_number_is_400(limit: str) -> None:
    deposit("alice", 100)

    answer = read("alice", {"limit": limit})

    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_page")


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJhZnRlciI6ICJ4In0", "x" * 500, "%%%"])
def test_a_malformed_cursor_is_400(cursor: str) -> None:
    deposit("alice", 100)

    answer = read("alice", {"cursor": cursor})

    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_page")


def test_another_users_history_holds_only_their_rows_even_with_a_cursor_from_someone_else() -> None:
    for amount in range(1, 6):
        deposit("alice", amount)
        deposit("bob", 100 + amount)
    alices_cursor = read("alice", {"limit": "1"}).body["nextCursor"]

    bobs = read("bob", {"cursor": alices_cursor})

    assert bobs.status == 200
    assert {t["id"] for t in bobs.body["transactions"]} <= set(stored_ids("bob"))
    assert bobs.body["userId"] == "bob"
    assert [t["id"] for t in read("bob").body["transactions"]] == stored_ids("bob")


def test_a_user_with_no_history_is_an_empty_page() -> None:
    answer = read("nobody")

    assert (answer.status, answer.body["transactions"], answer.body["nextCursor"]) == (200, [], None)


@pytest.mark.parametrize("user", ["x" * 256, "a b", "caf\u00e9"])
def test_a_malformed_user_id_is_400(user: str) -> None:
    answer = read(user)

    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_user")


def test_a_request_without_an_iam_identity_is_403() -> None:
    deposit("alice", 100)
    event = api_event("GET", ROUTE, user=None, path_parameters={"userId": "alice"})

    answer = invoke(spend_handler, event)

    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    assert "transactions" not in answer.body


@pytest.fixture
def callers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SERVICE_CALLER_ARNS", BACKEND_ROLE)
    monkeypatch.setenv("OPERATOR_ARNS", OPERATOR_ROLE)
    settings.service_callers.cache_clear()
    settings.operators.cache_clear()
    yield
    settings.service_callers.cache_clear()
    settings.operators.cache_clear()


@pytest.mark.usefixtures("callers")
@pytest.mark.parametrize(
    ("signer", "status"),
    [
        ("arn:aws:sts::123456789012:assumed-role/checkout-backend/task-7f3a", 200),
        ("arn:aws:sts::123456789012:assumed-role/support-operator/jo", 200),
        (STRANGER_ROLE, 403),
    ],
)
def test_a_backend_or_an_operator_may_read_and_no_one_else(signer: str, status: int) -> None:
    deposit("alice", 100)

    answer = read("alice", arn=signer)

    assert answer.status == status, answer.body
    if status == 403:
        assert "ServiceCallerArns or OperatorArns" in answer.body["error"]["message"]

"""POST /api/users/{userId}/grants: an operator's free credits, with a reason and maybe an expiry, once per
Idempotency-Key; every bound refused with a 400 that writes nothing, one test per bound."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from tests.lambda_pool import Containers
from wallet.models import CreditBalance, CreditGuard, CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


def grant(user: str, body: Any, key: str | None = "grant-1") -> HttpResponse:
    return invoke(spend_handler, grant_event(user, body, key))


def grant_event(user: str, body: Any, key: str | None = "grant-1") -> dict[str, Any]:
    event = api_event(
        "POST",
        "/api/users/{userId}/grants",
        path_parameters={"userId": user},
        body=body if isinstance(body, str) else json.dumps(body),
    )
    event["headers"].pop("idempotency-key", None)
    if key is not None:
        event["headers"]["idempotency-key"] = key
    return event


def rows(user: str) -> list[dict[str, Any]]:
    return [row.serialize() for row in CreditTransaction.query(user, consistent_read=True)]


def written(user: str) -> tuple[int, int, int]:
    """Rows, guards and balance items the user has: all zero when nothing was written."""
    guards = list(CreditGuard.query(user, consistent_read=True))
    balances = list(CreditBalance.query(user, consistent_read=True))
    return len(rows(user)), len(guards), len(balances)


def in_days(days: float) -> str:
    return (
        (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )


def test_a_grant_with_an_expiry_is_one_grant_row_with_its_reason_and_expiry() -> None:
    expiry = in_days(30)

    response = grant("alice", {"credits": 500, "reason": "Launch promotion", "expiresAt": expiry})

    assert response.status == 201, response.body
    assert (response.body["amount"], response.body["balance"]) == (500, 500)
    [row] = rows("alice")
    assert row["type"] == {"S": "grant"}
    assert row["source"] == {"S": "promotion"}
    assert row["description"] == {"S": "Launch promotion"}
    assert int(row["grantExpiresAt"]["N"]) == int(datetime.fromisoformat(expiry).timestamp())


def test_a_grant_without_an_expiry_never_expires_and_its_key_replays() -> None:
    first = grant("alice", {"credits": 70, "reason": "goodwill"})
    again = grant("alice", {"credits": 70, "reason": "goodwill"})

    assert (first.status, again.status) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    [row] = rows("alice")
    assert "grantExpiresAt" not in row
    assert grant("alice", {"credits": 71, "reason": "goodwill"}).status == 409


def test_32_concurrent_grants_with_one_key_across_containers_make_one_row(containers: Containers) -> None:
    # As an operator's client retrying a grant whose answer was lost, 32 times at once
    body = {"credits": 500, "reason": "Launch promotion", "expiresAt": in_days(30)}
    requests = [("spend", grant_event("alice", body, key="one-key")) for _ in range(32)]

    answers = containers.invoke_all(requests)

    assert {status for status, _ in answers} == {201}
    assert len({answer["transactionId"] for _, answer in answers}) == 1
    assert [row["type"] for row in rows("alice")] == [{"S": "grant"}]
    assert int(CreditBalance.get("alice", consistent_read=True).balance) == 500


def test_a_grant_may_give_the_most_credits_and_expire_at_the_furthest_day() -> None:
    response = grant("alice", {"credits": 1_000_000, "reason": "max", "expiresAt": in_days(1_094.9)})

    assert response.status == 201, response.body


# One case per bound: each is a 400 that writes nothing at all (no row, no guard, no balance item).
BAD = [
    ("no reason", {"credits": 5}, "invalid_body"),
    ("an empty reason", {"credits": 5, "reason": "  "}, "invalid_body"),
    ("a reason past 500 characters", {"credits": 5, "reason": "x" * 501}, "invalid_body"),
    ("no credits", {"reason": "r"}, "invalid_body"),
    ("zero credits", {"credits": 0, "reason": "r"}, "invalid_amount"),
    ("negative credits", {"credits": -5, "reason": "r"}, "invalid_amount"),
    ("credits past the bound", {"credits": 1_000_001, "reason": "r"}, "invalid_amount"),
    ("credits with a fraction", {"credits": 2.5, "reason": "r"}, "invalid_amount"),
    ("credits written with a fraction", {"credits": 5.0, "reason": "r"}, "invalid_amount"),
    ("credits as text", {"credits": "5", "reason": "r"}, "invalid_amount"),
    ("credits true", {"credits": True, "reason": "r"}, "invalid_amount"),
    ("an expiry in the past", {"credits": 5, "reason": "r", "expiresAt": in_days(-1)}, "invalid_expiry"),
    (
        "an expiry past the bound",
        {"credits": 5, "reason": "r", "expiresAt": in_days(1_095.1)},
        "invalid_expiry",
    ),
    (
        "an expiry without its zone",
        {"credits": 5, "reason": "r", "expiresAt": "2030-01-12T00:00:00"},
        "invalid_expiry",
    ),
    ("an expiry that is no time", {"credits": 5, "reason": "r", "expiresAt": "next week"}, "invalid_expiry"),
    ("an expiry as a number", {"credits": 5, "reason": "r", "expiresAt": 1_900_000_000}, "invalid_expiry"),
    (
        "an expiry text past 40 characters",
        {"credits": 5, "reason": "r", "expiresAt": "2" * 41},
        "invalid_expiry",
    ),
    ("an unknown field", {"credits": 5, "reason": "r", "bonus": 1}, "invalid_body"),
]


@pytest.mark.parametrize(("case", "body", "code"), BAD, ids=[case for case, _, _ in BAD])
def test_a_bad_grant_is_400_and_writes_nothing(case: str, body: Any, code: str) -> None:
    response = grant("alice", body)

    assert (response.status, response.body["error"]["code"]) == (400, code), case
    assert written("alice") == (0, 0, 0)


def test_a_grant_without_an_idempotency_key_is_400_and_writes_nothing() -> None:
    response = grant("alice", {"credits": 5, "reason": "r"}, key=None)

    assert (response.status, response.body["error"]["code"]) == (400, "missing_idempotency_key")
    assert written("alice") == (0, 0, 0)

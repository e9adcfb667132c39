"""Holds through the real service handler and the ledger: reserve, then capture or release, once; every
bound refused with nothing changed; a hold past its time expired exactly once, by the minute's sweep or
by the capture or release that meets it; and always `balance + held` = the sum of the rows."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ulid import ULID

from functions.reconcile.app import lambda_handler as reconcile
from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, LambdaContext, api_event, invoke
from tests.waiting import wait_until
from wallet import audit, holds, ledger, models
from wallet.amounts import MAX_AMOUNT
from wallet.errors import HoldNotActiveError
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.sweep_records import SWEEP_KEY, SweepRecord

pytestmark = pytest.mark.usefixtures("tables")
SERVICE = "arn:aws:iam::123456789012:user/api-service"


def deposit(user: str, amount: int) -> None:
    ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")


def post(
    route: str, user: str, body: Any, key: str | None = "key-1", hold_id: str | None = None
) -> HttpResponse:
    parameters = {"userId": user} | ({"holdId": hold_id} if hold_id is not None else {})
    event = api_event(
        "POST",
        route,
        path_parameters=parameters,
        body=body if isinstance(body, str) else json.dumps(body),
    )
    event["headers"].pop("idempotency-key", None)
    if key is not None:
        event["headers"]["idempotency-key"] = key
    return invoke(spend_handler, event)


def hold(user: str, body: Any, key: str | None = "hold-1") -> HttpResponse:
    return post("/api/users/{userId}/holds", user, body, key)


def capture(user: str, hold_id: str, body: Any, key: str | None = "capture-1") -> HttpResponse:
    return post("/api/users/{userId}/holds/{holdId}/capture", user, body, key, hold_id)


def release(user: str, hold_id: str, body: Any = None, key: str | None = "release-1") -> HttpResponse:
    return post(
        "/api/users/{userId}/holds/{holdId}/release", user, {} if body is None else body, key, hold_id
    )


def history(user: str) -> list[tuple[str, int]]:
    return sorted((row.type, int(row.amount)) for row in CreditTransaction.query(user, consistent_read=True))


def stored(user: str) -> tuple[int, int]:
    """The balance item as stored: (available, held)."""
    item = CreditBalance.get(user, consistent_read=True)
    return int(item.balance), int(item.held or 0)


def active_holds(user: str) -> list[CreditGuard]:
    return [
        guard
        for guard in CreditGuard.query(user, CreditGuard.guard_id.startswith("hold#"), consistent_read=True)
        if guard.state == holds.ACTIVE
    ]


def assert_adds_up(user: str) -> None:
    """The ledger's invariants for one user: balance + held is the sum of the rows, and held is the sum
    of the active holds."""
    available, held = stored(user)
    assert available + held == sum(amount for _, amount in history(user))
    assert held == sum(int(guard.amount) for guard in active_holds(user))


def a_hold(user: str = "alice", amount: int = 500, seconds: int = 600, key: str = "hold-1") -> str:
    made = hold(user, {"amount": amount, "expiresInSeconds": seconds, "description": "job 77"}, key)
    assert made.status == 201, made.body
    return str(made.body["holdId"])


# --- Create, capture, release ----------------------------------------------------------------------------


def test_a_hold_moves_credits_from_available_to_held_with_a_row_of_nothing() -> None:
    deposit("alice", 1000)
    before = time.time()

    made = hold("alice", {"amount": 300, "expiresInSeconds": 900, "description": "job 77"})

    assert made.status == 201
    assert set(made.body) == {"holdId", "amount", "balance", "available", "expiresAt"}
    assert (made.body["amount"], made.body["balance"], made.body["available"]) == (300, 1000, 700)
    expires = time.mktime(time.strptime(made.body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 900 <= expires <= before + 902
    assert stored("alice") == (700, 300)
    [row] = [row for row in CreditTransaction.query("alice") if row.type == "hold"]
    assert (row.transaction_id, row.amount, row.reserved, row.hold_id, row.actor) == (
        made.body["holdId"],
        0,
        300,
        made.body["holdId"],
        SERVICE,
    )
    [guard] = active_holds("alice")
    assert guard.expiry_bucket == holds.expiry_bucket(made.body["holdId"], int(guard.hold_expires_at))
    assert_adds_up("alice")


def test_a_capture_spends_what_was_used_and_releases_the_rest() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    captured = capture("alice", hold_id, {"amount": 320})

    assert captured.status == 201
    assert captured.body == {
        "transactionId": captured.body["transactionId"],
        "holdId": hold_id,
        "userId": "alice",
        "amount": 320,
        "released": 180,
        "balance": 680,
        "available": 680,
        "currency": "usd",
    }
    [spend] = [row for row in CreditTransaction.query("alice") if row.type == "spend"]
    assert (spend.transaction_id, spend.amount, spend.hold_id, spend.reserved, spend.description) == (
        captured.body["transactionId"],
        -320,
        hold_id,
        500,
        "job 77",
    )
    assert stored("alice") == (680, 0)
    guard = CreditGuard.get("alice", f"hold#{hold_id}")
    assert (guard.state, guard.captured, guard.expiry_bucket) == ("captured", 320, None)
    assert_adds_up("alice")


def test_a_capture_of_all_it_holds_releases_nothing() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    captured = capture("alice", hold_id, {"amount": 500})

    assert (captured.status, captured.body["released"], captured.body["balance"]) == (201, 0, 500)
    assert_adds_up("alice")


def test_a_release_gives_it_all_back() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    released = release("alice", hold_id)

    assert released.status == 200
    assert released.body == {
        "holdId": hold_id,
        "userId": "alice",
        "released": 500,
        "balance": 1000,
        "available": 1000,
        "currency": "usd",
    }
    assert history("alice") == [("deposit", 1000), ("hold", 0), ("hold_released", 0)]
    assert stored("alice") == (1000, 0)
    assert CreditGuard.get("alice", f"hold#{hold_id}").expiry_bucket is None


def test_a_hold_or_a_spend_beyond_the_available_balance_is_402_with_available_and_balance() -> None:
    deposit("alice", 1000)
    a_hold(amount=800)

    refused_hold = hold("alice", {"amount": 201, "expiresInSeconds": 60}, key="hold-2")
    refused_spend = post("/api/users/{userId}/spend", "alice", {"amount": 201}, key="spend-1")

    for refused in (refused_hold, refused_spend):
        assert refused.status == 402
        assert refused.body["error"]["code"] == "insufficient_credits"
        assert (refused.body["error"]["available"], refused.body["error"]["balance"]) == (200, 1000)
    assert hold("alice", {"amount": 200, "expiresInSeconds": 60}, key="hold-3").status == 201
    assert stored("alice") == (0, 1000)
    assert_adds_up("alice")


def test_the_service_balance_route_says_what_is_held_and_available() -> None:
    deposit("alice", 1000)
    a_hold(amount=300)
    event = api_event("GET", "/api/users/{userId}/balance", path_parameters={"userId": "alice"})

    response = invoke(spend_handler, event)

    assert response.body == {
        "userId": "alice",
        "currency": "usd",
        "balance": 1000,
        "held": 300,
        "available": 700,
    }
    assert ledger.get_balance("alice") == 1000


# --- Idempotency-Key: the first answer again, or 409 ---------------------------------------------------


def test_each_change_replays_its_first_answer_and_changes_nothing_more() -> None:
    deposit("alice", 1000)
    first = hold("alice", {"amount": 500, "expiresInSeconds": 600})
    again = hold("alice", {"amount": 500, "expiresInSeconds": 600})
    hold_id = first.body["holdId"]
    other = a_hold(amount=100, key="hold-2")
    captured, captured_again = (capture("alice", hold_id, {"amount": 200}) for _ in range(2))
    released, released_again = (release("alice", other) for _ in range(2))

    assert (again.status, again.body, again.headers.get("Idempotent-Replayed")) == (201, first.body, "true")
    assert "Idempotent-Replayed" not in first.headers
    assert (captured_again.status, captured_again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert captured_again.body == captured.body
    assert (
        released_again.status,
        released_again.body,
        released_again.headers.get("Idempotent-Replayed"),
    ) == (
        200,
        released.body,
        "true",
    )
    assert history("alice") == [
        ("deposit", 1000),
        ("hold", 0),
        ("hold", 0),
        ("hold_released", 0),
        ("spend", -200),
    ]
    assert_adds_up("alice")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"amount": 500, "expiresInSeconds": 600}, {"amount": 501, "expiresInSeconds": 600}),
        ({"amount": 500, "expiresInSeconds": 600}, {"amount": 500, "expiresInSeconds": 601}),
        (
            {"amount": 500, "expiresInSeconds": 600},
            {"amount": 500, "expiresInSeconds": 600, "description": "x"},
        ),
    ],
)
def test_a_hold_key_with_another_body_is_409_and_changes_nothing(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    deposit("alice", 1000)
    assert hold("alice", first).status == 201

    reused = hold("alice", second)

    assert (reused.status, reused.body["error"]["code"]) == (409, "idempotency_key_reused")
    assert stored("alice") == (500, 500)


def test_a_settling_key_with_another_body_or_hold_is_409() -> None:
    deposit("alice", 1000)
    one, two = a_hold(amount=300, key="h1"), a_hold(amount=300, key="h2")
    assert capture("alice", one, {"amount": 100}, key="k").status == 201

    other_amount = capture("alice", one, {"amount": 101}, key="k")
    other_hold = capture("alice", two, {"amount": 100}, key="k")
    a_release = release("alice", two, key="k")
    a_spend = post("/api/users/{userId}/spend", "alice", {"amount": 1}, key="k")

    for reused in (other_amount, other_hold, a_release, a_spend):
        assert (reused.status, reused.body["error"]["code"]) == (409, "idempotency_key_reused"), reused.body
    assert len(active_holds("alice")) == 1
    assert_adds_up("alice")


# --- 404 and 409 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hold_id", ["not-a-ulid", "01KBN3Z8Q6W5V0XK3T1Y9M2R4", "0" * 27, str(ULID())])
def test_an_unknown_or_malformed_hold_id_is_404(hold_id: str) -> None:
    deposit("alice", 1000)
    a_hold()

    for response in (capture("alice", hold_id, {"amount": 1}), release("alice", hold_id)):
        assert (response.status, response.body["error"]["code"]) == (404, "hold_not_found")
    assert stored("alice") == (500, 500)


def test_another_users_hold_is_404_and_stays_as_it_is() -> None:
    deposit("alice", 1000)
    deposit("mallory", 1000)
    hold_id = a_hold("alice")

    responses = [capture("mallory", hold_id, {"amount": 1}), release("mallory", hold_id)]

    assert [(r.status, r.body["error"]["code"]) for r in responses] == [(404, "hold_not_found")] * 2
    assert stored("alice") == (500, 500)
    assert history("mallory") == [("deposit", 1000)]


@pytest.mark.parametrize(
    ("settle", "then", "state"),
    [
        ("release", "capture", "released"),
        ("release", "release", "released"),
        ("capture", "capture", "captured"),
        ("capture", "release", "captured"),
    ],
)
def test_settling_a_settled_hold_is_409_with_its_final_state(settle: str, then: str, state: str) -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)
    first = capture("alice", hold_id, {"amount": 120}) if settle == "capture" else release("alice", hold_id)
    assert first.status in (200, 201)
    rows = history("alice")

    late = (
        capture("alice", hold_id, {"amount": 1}, key="late")
        if then == "capture"
        else release("alice", hold_id, key="late")
    )

    assert (late.status, late.body["error"]["code"]) == (409, "hold_not_active")
    described = late.body["error"]["hold"]
    assert (described["holdId"], described["state"], described["amount"]) == (hold_id, state, 500)
    assert described.get("captured") == (120 if state == "captured" else None)
    assert described["expiresAt"].endswith("Z")
    assert history("alice") == rows


def test_a_capture_meeting_a_hold_past_its_time_expires_it_and_is_409_expired() -> None:
    deposit("alice", 1000)
    made = hold("alice", {"amount": 400, "expiresInSeconds": 1})
    hold_id = made.body["holdId"]
    expires_at = int(CreditGuard.get("alice", f"hold#{hold_id}").hold_expires_at)
    wait_until(lambda: time.time() > expires_at, "the one-second hold to pass its time")

    late = capture("alice", hold_id, {"amount": 100})
    later = release("alice", hold_id)

    for response in (late, later):
        assert (response.status, response.body["error"]["code"]) == (409, "hold_not_active")
        assert response.body["error"]["hold"]["state"] == "expired"
    assert history("alice") == [("deposit", 1000), ("hold", 0), ("hold_expired", 0)]
    assert stored("alice") == (1000, 0)
    assert CreditGuard.get("alice", f"hold#{hold_id}").expiry_bucket is None


def ttl_of(user: str, hold_id: str) -> float | None:
    """The hold item's TTL as stored (Unix seconds), None when it has none."""
    item = CreditGuard._get_connection().get_item(user, f"hold#{hold_id}", consistent_read=True)["Item"]
    return float(item["expiresAt"]["N"]) if "expiresAt" in item else None


@pytest.mark.parametrize("settle", ["capture", "release", "expire"])
def test_an_active_hold_has_no_ttl_and_a_settled_one_is_kept_seven_days_from_settling(settle: str) -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=300, seconds=1)
    week = 7 * 86_400
    # DynamoDB deletes an item once its TTL passes, whatever its state: an active hold must carry none.
    assert ttl_of("alice", hold_id) is None

    before = time.time()
    if settle == "capture":
        assert capture("alice", hold_id, {"amount": 100}).status == 201
    elif settle == "release":
        assert release("alice", hold_id).status == 200
    else:
        much_later = before + 30 * 86_400
        assert holds.expire_hold("alice", hold_id, currency="usd", now=lambda: much_later)
        before = much_later
    after = time.time() if settle != "expire" else before

    ttl = ttl_of("alice", hold_id)
    assert ttl is not None
    assert math.floor(before) + week <= ttl <= math.ceil(after) + week
    assert_adds_up("alice")


@pytest.mark.parametrize("settle", ["capture", "release"])
def test_a_retry_after_the_holds_time_answers_the_first_answer_not_409(settle: str) -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=300, seconds=1)
    do = (
        (lambda: capture("alice", hold_id, {"amount": 100}))
        if settle == "capture"
        else (lambda: release("alice", hold_id))
    )
    first = do()
    assert first.status in (200, 201), first.body
    expires_at = int(CreditGuard.get("alice", f"hold#{hold_id}").hold_expires_at)
    wait_until(lambda: time.time() > expires_at, "the one-second hold to pass its time")
    rows = history("alice")

    again = do()

    assert (again.status, again.body, again.headers.get("Idempotent-Replayed")) == (
        first.status,
        first.body,
        "true",
    )
    assert history("alice") == rows


def test_a_key_used_elsewhere_is_409_reused_before_a_hold_past_its_time_is_expired() -> None:
    deposit("alice", 1000)
    done, late = a_hold(amount=100, seconds=600, key="h1"), a_hold(amount=200, seconds=1, key="h2")
    assert capture("alice", done, {"amount": 100}, key="k").status == 201
    expires_at = int(CreditGuard.get("alice", f"hold#{late}").hold_expires_at)
    wait_until(lambda: time.time() > expires_at, "the one-second hold to pass its time")

    reused = capture("alice", late, {"amount": 100}, key="k")

    assert (reused.status, reused.body["error"]["code"]) == (409, "idempotency_key_reused")
    # The sweep expires it; this request changed nothing.
    assert CreditGuard.get("alice", f"hold#{late}").state == "active"
    assert_adds_up("alice")


# --- Bounds --------------------------------------------------------------------------------------------

BAD_HOLDS: list[tuple[str, Any, str]] = [
    ("not json", "{", "invalid_body"),
    ("a list", [500], "invalid_body"),
    ("no amount", {"expiresInSeconds": 60}, "invalid_body"),
    ("no expiry", {"amount": 5}, "invalid_body"),
    ("an unknown field", {"amount": 5, "expiresInSeconds": 60, "userId": "bob"}, "invalid_body"),
    ("zero", {"amount": 0, "expiresInSeconds": 60}, "invalid_amount"),
    ("negative", {"amount": -5, "expiresInSeconds": 60}, "invalid_amount"),
    ("a fraction", {"amount": 2.5, "expiresInSeconds": 60}, "invalid_amount"),
    ("a string amount", {"amount": "5", "expiresInSeconds": 60}, "invalid_amount"),
    ("true", {"amount": True, "expiresInSeconds": 60}, "invalid_amount"),
    ("one past the bound", {"amount": MAX_AMOUNT + 1, "expiresInSeconds": 60}, "invalid_amount"),
    ("expiry zero", {"amount": 5, "expiresInSeconds": 0}, "invalid_body"),
    ("expiry negative", {"amount": 5, "expiresInSeconds": -1}, "invalid_body"),
    ("expiry past a day", {"amount": 5, "expiresInSeconds": 86_401}, "invalid_body"),
    ("expiry a fraction", {"amount": 5, "expiresInSeconds": 1.5}, "invalid_body"),
    ("expiry a string", {"amount": 5, "expiresInSeconds": "60"}, "invalid_body"),
    ("expiry null", {"amount": 5, "expiresInSeconds": None}, "invalid_body"),
    ("expiry true", {"amount": 5, "expiresInSeconds": True}, "invalid_body"),
    ("an empty description", {"amount": 5, "expiresInSeconds": 60, "description": " "}, "invalid_body"),
    ("a long description", {"amount": 5, "expiresInSeconds": 60, "description": "x" * 501}, "invalid_body"),
]


@pytest.mark.parametrize(("case", "body", "code"), BAD_HOLDS, ids=[case for case, _, _ in BAD_HOLDS])
def test_a_bad_hold_is_400_and_changes_nothing(case: str, body: Any, code: str) -> None:
    deposit("alice", 1000)

    response = hold("alice", body)

    assert (response.status, response.body["error"]["code"]) == (400, code), case
    assert history("alice") == [("deposit", 1000)]
    assert stored("alice") == (1000, 0)


def test_the_bounds_themselves_are_taken() -> None:
    deposit("alice", 1000)

    longest = hold("alice", {"amount": 1, "expiresInSeconds": 86_400, "description": "x" * 500}, key="a")
    shortest = hold("alice", {"amount": 999, "expiresInSeconds": 1}, key="b")
    largest = hold("alice", {"amount": MAX_AMOUNT, "expiresInSeconds": 60}, key="c")

    assert (longest.status, shortest.status) == (201, 201)
    assert (largest.status, largest.body["error"]["code"]) == (402, "insufficient_credits")
    assert (
        "86400" in hold("alice", {"amount": 1, "expiresInSeconds": 86_401}, key="d").body["error"]["message"]
    )


BAD_CAPTURES: list[tuple[str, Any, str]] = [
    ("no amount", {}, "invalid_body"),
    ("an unknown field", {"amount": 5, "description": "x"}, "invalid_body"),
    ("negative", {"amount": -5}, "invalid_amount"),
    ("a fraction", {"amount": 2.5}, "invalid_amount"),
    ("a string", {"amount": "5"}, "invalid_amount"),
    ("true", {"amount": True}, "invalid_amount"),
    ("null", {"amount": None}, "invalid_amount"),
    ("one past the bound", {"amount": MAX_AMOUNT + 1}, "invalid_amount"),
    ("one more than held", {"amount": 501}, "invalid_amount"),
]


@pytest.mark.parametrize(("case", "body", "code"), BAD_CAPTURES, ids=[case for case, _, _ in BAD_CAPTURES])
def test_a_bad_capture_is_400_and_the_hold_stays_active(case: str, body: Any, code: str) -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    response = capture("alice", hold_id, body)

    assert (response.status, response.body["error"]["code"]) == (400, code), case
    assert stored("alice") == (500, 500)
    assert len(active_holds("alice")) == 1


def test_a_capture_of_more_than_held_names_the_amount_held_and_of_zero_says_to_release() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    more, zero = capture("alice", hold_id, {"amount": 501}), capture("alice", hold_id, {"amount": 0})

    assert "the 500 this hold holds" in more.body["error"]["message"]
    assert (zero.status, zero.body["error"]["code"]) == (400, "invalid_amount")
    assert "release" in zero.body["error"]["message"]
    assert len(active_holds("alice")) == 1


def test_a_release_takes_no_fields_and_every_change_needs_an_idempotency_key() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    with_field = release("alice", hold_id, {"amount": 5})
    no_keys = [
        hold("alice", {"amount": 5, "expiresInSeconds": 60}, key=None),
        capture("alice", hold_id, {"amount": 5}, key=None),
        release("alice", hold_id, key=None),
    ]

    assert (with_field.status, with_field.body["error"]["code"]) == (400, "invalid_body")
    assert [(r.status, r.body["error"]["code"]) for r in no_keys] == [(400, "missing_idempotency_key")] * 3
    assert stored("alice") == (500, 500)


# --- One transaction each --------------------------------------------------------------------------------


@contextmanager
def dynamodb_calls() -> Iterator[list[str]]:
    calls: list[str] = []
    client = models.connection().client

    def record(model: Any, **_: Any) -> None:
        calls.append(str(model.name))

    client.meta.events.register("before-call.dynamodb", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb", record)


def test_create_capture_and_release_are_one_transaction_each() -> None:
    deposit("alice", 1000)
    with dynamodb_calls() as creating:
        hold_id = a_hold(amount=500)
    other = a_hold(amount=100, key="hold-2")
    with dynamodb_calls() as capturing:
        capture("alice", hold_id, {"amount": 5})
    with dynamodb_calls() as releasing:
        release("alice", other)

    # The hold is read before it is settled, and the balance answered is read after.
    assert creating == ["TransactWriteItems", "GetItem"]
    assert capturing == releasing == ["GetItem", "TransactWriteItems", "GetItem"]


# --- Expiry ---------------------------------------------------------------------------------------------


def test_the_sweep_expires_every_hold_past_its_time_once_and_leaves_the_others() -> None:
    deposit("alice", 10_000)
    deposit("bob", 10_000)
    short = [a_hold("alice", 100 + n, seconds=60, key=f"s{n}") for n in range(12)]
    long = a_hold("bob", 700, seconds=3600, key="long")
    later = time.time() + 180

    first = holds.expire_due(currency="usd", now=lambda: later)
    second = holds.expire_due(currency="usd", now=lambda: later)

    assert (first.expired, first.failed, second.expired) == (12, 0, 0)
    assert history("alice").count(("hold_expired", 0)) == 12
    assert {CreditGuard.get("alice", f"hold#{h}").state for h in short} == {"expired"}
    assert CreditGuard.get("bob", f"hold#{long}").state == "active"
    assert stored("alice") == (10_000, 0)
    assert stored("bob") == (9_300, 700)
    assert_adds_up("alice")
    assert_adds_up("bob")
    assert audit.audit().drifts == []


def test_the_sweep_moves_its_checkpoint_only_past_minutes_fully_behind_it() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=100, seconds=60)
    expires_at = int(CreditGuard.get("alice", f"hold#{hold_id}").hold_expires_at)
    just_after = expires_at + 1

    early = holds.expire_due(currency="usd", now=lambda: just_after)
    checkpoint = SweepRecord.get(SWEEP_KEY, holds.HOLDS_CHECKPOINT).swept_minute

    assert early.expired == 1
    # The hold's own minute is not counted swept until its end and the index's lag are behind.
    assert checkpoint is not None
    assert checkpoint < expires_at // 60
    much_later = expires_at + 600
    later = holds.expire_due(currency="usd", now=lambda: much_later)
    assert int(SweepRecord.get(SWEEP_KEY, holds.HOLDS_CHECKPOINT).swept_minute) >= expires_at // 60
    # The next run starts after the checkpoint: the minute since, and those still within the index's lag.
    with dynamodb_calls() as calls:
        holds.expire_due(currency="usd", now=lambda: much_later + 60)
    assert calls.count("Query") == (2 + holds.INDEX_LAG_SECONDS // 60) * holds.EXPIRY_SHARDS
    assert later.expired == 0


def test_the_sweep_stops_when_the_functions_time_runs_short_and_the_next_run_goes_on() -> None:
    deposit("alice", 1000)
    a_hold(amount=100, seconds=60)
    later = time.time() + 300

    stopped = holds.expire_due(lambda: holds.SAFETY_MARGIN_SECONDS - 1, currency="usd", now=lambda: later)
    went_on = holds.expire_due(currency="usd", now=lambda: later)

    assert (stopped.finished, stopped.expired) == (False, 0)
    assert (went_on.finished, went_on.expired) == (True, 1)


def test_the_reconcile_function_runs_the_holds_sweep_on_its_task() -> None:
    deposit("alice", 1000)
    made = hold("alice", {"amount": 250, "expiresInSeconds": 1})
    expires_at = int(CreditGuard.get("alice", f"hold#{made.body['holdId']}").hold_expires_at)
    wait_until(lambda: time.time() > expires_at, "the one-second hold to pass its time")

    result = reconcile({"task": "holds"}, LambdaContext("reconcile"))

    assert (result["expired"], result["failed"]) == (1, 0)
    assert history("alice") == [("deposit", 1000), ("hold", 0), ("hold_expired", 0)]


def test_capture_release_and_expiry_racing_on_each_hold_settle_it_exactly_once() -> None:
    deposit("alice", 100_000)
    ids = [a_hold(amount=1000, seconds=30, key=f"h{n}") for n in range(16)]
    before, after = time.time(), time.time() + 120
    outcomes: dict[str, list[str]] = {hold_id: [] for hold_id in ids}
    errors: list[BaseException] = []

    def attempt(hold_id: str, name: str, act: Callable[[], object]) -> None:
        try:
            result = act()
            if result is not False:
                outcomes[hold_id].append(name)
        except HoldNotActiveError:
            pass
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = []
    for n, hold_id in enumerate(ids):
        actions = {
            "captured": lambda h=hold_id, n=n: holds.capture_hold(
                "alice", h, 400, idempotency_key=f"c{n}", actor=SERVICE, currency="usd", now=lambda: before
            ),
            "released": lambda h=hold_id, n=n: holds.release_hold(
                "alice", h, idempotency_key=f"r{n}", actor=SERVICE, currency="usd", now=lambda: before
            ),
            "expired": lambda h=hold_id: holds.expire_hold("alice", h, currency="usd", now=lambda: after),
        }
        threads += [
            threading.Thread(target=attempt, args=(hold_id, name, act)) for name, act in actions.items()
        ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(len(won) == 1 for won in outcomes.values()), outcomes
    for hold_id, [won] in outcomes.items():
        assert CreditGuard.get("alice", f"hold#{hold_id}").state == won
    captures = sum(won == ["captured"] for won in outcomes.values())
    assert stored("alice") == (100_000 - 400 * captures, 0)
    assert_adds_up("alice")


def test_a_hold_that_takes_the_available_balance_below_the_threshold_is_a_dip_for_auto_top_up() -> None:
    from wallet.auto_top_up import may_need_top_up

    deposit("alice", 1000)
    a_hold(amount=600)
    item = CreditBalance.get("alice", consistent_read=True).serialize()
    image = {name: int(value["N"]) if "N" in value else value.get("S") for name, value in item.items()}

    assert may_need_top_up(image | {"autoTopUp": True, "autoTopUpThreshold": 500})
    assert not may_need_top_up(image | {"autoTopUp": True, "autoTopUpThreshold": 400})


def test_the_sweep_finds_the_index_when_its_checkpoint_is_the_first_item_of_the_table_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh process (the reconcile function's, make expire-holds') reads the checkpoint before any hold.
    monkeypatch.setattr(models.connection(), "_tables", {})
    monkeypatch.setattr(CreditGuard, "_connection", None)
    monkeypatch.setattr(SweepRecord, "_connection", None)

    report = holds.expire_due(currency="usd")

    assert (report.expired, report.failed) == (0, 0)


def test_a_hold_without_expires_in_seconds_is_400_saying_it_has_no_default() -> None:
    deposit("alice", 1000)

    response = hold("alice", {"amount": 5, "description": "job 1"})

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_body")
    message = response.body["error"]["message"]
    assert message.startswith("The body needs expiresInSeconds, 1 to 86400: it has no default"), message
    assert (history("alice"), stored("alice")) == ([("deposit", 1000)], (1000, 0))


def test_a_hold_refuses_what_spends_refuse_in_text_and_numbers_quoting_the_caller() -> None:
    deposit("alice", 1000)

    nul = hold("alice", {"amount": 5, "expiresInSeconds": 60, "description": "a\nb\x00c"})
    exponent = hold("alice", '{"amount": 5, "expiresInSeconds": 6e2}', key="hold-2")
    amount = hold("alice", '{"amount": 5e0, "expiresInSeconds": 60}', key="hold-3")

    assert (nul.status, nul.body["error"]["message"]) == (
        400,
        "description must be one line of printable text: character 2 is U+000A, a control character, "
        "line break or lone surrogate.",
    )
    for response, quoted in ((exponent, "not 6e2"), (amount, "not 5e0")):
        assert response.status == 400
        assert response.body["error"]["message"].endswith(quoted), response.body
    assert (history("alice"), stored("alice")) == ([("deposit", 1000)], (1000, 0))


def test_a_hold_of_the_largest_fields_with_500_escaped_characters_fits_in_a_body() -> None:
    deposit("alice", 1000)
    longest = "\U0001f600" * 500
    body = json.dumps({"amount": 1000, "expiresInSeconds": 86_400, "description": longest})

    made = hold("alice", body)

    assert made.status == 201, made.body
    assert [guard.description for guard in active_holds("alice")] == [longest]


def test_a_capture_of_a_written_zero_quotes_it_and_the_hold_stays_active() -> None:
    deposit("alice", 1000)
    hold_id = a_hold(amount=500)

    response = capture("alice", hold_id, '{"amount": 0.0}')

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    assert response.body["error"]["message"].endswith("not 0.0"), response.body
    assert len(active_holds("alice")) == 1

"""The wallet's events built from stream records, and their publication: each event once per cause with
a stable id, balance.low once per dip, and a PutEvents failure sending its record back to the stream."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from functions.wallet_events import app
from wallet import event_bus, wallet_events
from wallet.wallet_events import WalletEvent

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "wallet-events"
BALANCE_STREAM = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/test-credit-balance/stream/2026-01-01T00:00:00"
)


def validate(event: WalletEvent) -> None:
    schema = json.loads((SCHEMAS / f"{event.type}.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event.detail)


def test_there_is_a_schema_for_each_event_type_and_no_other() -> None:
    assert {path.name.removesuffix(".json") for path in SCHEMAS.glob("*.json")} == set(wallet_events.TYPES)
    for path in SCHEMAS.glob("*.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def changes(balances: list[int], threshold: int) -> list[WalletEvent]:
    """The events of a balance item going through `balances`, one stream record per change."""
    found: list[WalletEvent] = []
    for number, (before, after) in enumerate(itertools.pairwise(balances)):
        found += wallet_events.from_balance_change(
            {"userId": "alice", "balance": before},
            {"userId": "alice", "balance": after},
            f"{number:06d}",
            threshold,
        )
    return found


def test_balance_low_once_per_dip_and_exhausted_when_it_reaches_zero() -> None:
    # Given a threshold of 500 and, by hand: dips begin at 600 -> 400 and at 700 -> 450 (300 stays in the
    # first dip), and the balance reaches 0 once, at 450 -> 0
    balances = [1000, 800, 600, 400, 300, 700, 450, 0, 0]

    events = changes(balances, 500)

    assert [(event.type, event.detail["available"]) for event in events] == [
        ("balance.low", 400),
        ("balance.low", 450),
        ("balance.exhausted", 0),
    ]
    for event in events:
        validate(event)


def test_a_threshold_of_0_sends_no_balance_low_and_a_user_s_own_threshold_wins() -> None:
    assert [e.type for e in changes([600, 400], 0)] == []
    own = wallet_events.from_balance_change(
        {"userId": "bob", "balance": 1000},
        {"userId": "bob", "balance": 900, "lowBalanceThreshold": 950},
        "1",
        0,
    )
    assert [(e.type, e.detail["threshold"]) for e in own] == [("balance.low", 950)]


def test_a_redelivered_record_gives_the_same_event_ids_and_another_record_other_ids() -> None:
    old, new = {"userId": "alice", "balance": 600}, {"userId": "alice", "balance": 0}

    first = wallet_events.from_balance_change(old, new, "000123", 500)
    again = wallet_events.from_balance_change(old, new, "000123", 500)
    other = wallet_events.from_balance_change(old, new, "000124", 500)

    assert [e.detail for e in first] == [e.detail for e in again]
    assert len({e.id for e in first + other}) == 4


def test_sub_balances_and_removed_items_have_no_events() -> None:
    assert (
        wallet_events.from_balance_change({"balance": 600}, {"userId": "alice#s3", "balance": 0}, "1", 500)
        == []
    )
    assert wallet_events.from_balance_change({"userId": "alice", "balance": 600}, None, "1", 500) == []


def test_raising_the_threshold_above_the_balance_begins_a_dip_and_lowering_it_ends_one() -> None:
    # By hand: 800 credits; the threshold goes 500 -> 1000 (low now), -> 900 (still low: no event),
    # -> 500 (not low), then a spend to 400 (low again)
    items = [
        {"userId": "e", "balance": 800, "lowBalanceThreshold": 500},
        {"userId": "e", "balance": 800, "lowBalanceThreshold": 1000},
        {"userId": "e", "balance": 800, "lowBalanceThreshold": 900},
        {"userId": "e", "balance": 800, "lowBalanceThreshold": 500},
        {"userId": "e", "balance": 400, "lowBalanceThreshold": 500},
    ]
    events = [
        (n, e.detail["threshold"])
        for n, (old, new) in enumerate(itertools.pairwise(items))
        for e in wallet_events.from_balance_change(old, new, str(n), 0)
    ]
    assert events == [(0, 1000), (3, 500)]


def test_a_new_balance_item_begins_no_dip() -> None:
    assert wallet_events.from_balance_change(None, {"userId": "new", "balance": 0}, "1", 500) == []


def test_a_hot_account_s_main_item_has_no_balance_events() -> None:
    # A refill moves credits from the main item to a sub-balance: the account has not dipped.
    old, new = {"userId": "hot", "balance": 600, "shards": 8}, {"userId": "hot", "balance": 0, "shards": 8}
    assert wallet_events.from_balance_change(old, new, "1", 500) == []


def test_auto_top_up_failing_is_an_event_with_its_payment() -> None:
    old = {
        "userId": "carol",
        "balance": 100,
        "autoTopUpStatus": "on",
        "autoTopUpEpisode": "01PAY",
        "autoTopUpIntent": "pi_1",
    }
    new = {
        "userId": "carol",
        "balance": 100,
        "autoTopUpStatus": "failed",
        "autoTopUpReason": "Your card was declined.",
    }

    [event] = wallet_events.from_balance_change(old, new, "7", 0)

    assert (event.type, event.detail["paymentId"], event.detail["stripePaymentIntentId"]) == (
        "auto_top_up.failed",
        "01PAY",
        "pi_1",
    )
    validate(event)
    assert wallet_events.from_balance_change(new, new, "8", 0) == []


ROWS: list[tuple[dict[str, Any], str | None]] = [
    (
        {
            "userId": "u",
            "transactionId": "01DEP",
            "type": "deposit",
            "amount": 1000,
            "source": "checkout",
            "paymentId": "01DEP",
            "stripeSessionId": "cs_1",
            "createdAt": "2026-01-01T00:00:00Z",
        },
        "credits.deposited",
    ),
    (
        {
            "userId": "u",
            "transactionId": "01REF",
            "type": "refund",
            "amount": -300,
            "source": "stripe",
            "paymentId": "01DEP",
            "stripeEventId": "evt_1",
            "createdAt": "2026-01-01T00:00:00Z",
        },
        "credits.clawed_back",
    ),
    (
        {
            "userId": "u",
            "transactionId": "01EXP",
            "type": "hold_expired",
            "amount": 0,
            "source": "service",
            "holdId": "01HOLD",
            "reserved": 250,
            "createdAt": "2026-01-01T00:00:00Z",
        },
        "hold.expired",
    ),
    ({"userId": "u", "transactionId": "01SP", "type": "spend", "amount": -5, "createdAt": "x"}, None),
    ({"userId": "u", "transactionId": "01WON", "type": "dispute_won", "amount": 300, "createdAt": "x"}, None),
    (
        {"userId": "u", "transactionId": "01RF", "type": "refund_failed", "amount": 300, "createdAt": "x"},
        None,
    ),
]


@pytest.mark.parametrize(("row", "expected"), ROWS)
def test_each_row_type_has_its_event_or_none(row: dict[str, Any], expected: str | None) -> None:
    events = wallet_events.from_row(row, lambda user: (700, 0))

    assert [event.type for event in events] == ([expected] if expected else [])
    for event in events:
        assert (event.detail["transactionId"], event.detail["balance"]) == (row["transactionId"], 700)
        validate(event)


def test_a_claw_back_says_what_it_took_and_why() -> None:
    [event] = wallet_events.from_row(ROWS[1][0], lambda user: (700, 0))
    assert (event.detail["amount"], event.detail["reason"], event.detail["paymentId"]) == (
        300,
        "refund",
        "01DEP",
    )


def test_a_dispute_notice_is_one_needs_response_with_its_payment_and_due_date() -> None:
    item = {
        "userId": "u",
        "guardId": "notice#dp_1Abc#needs_response",
        "noticePaymentId": "01DEP",
        "noticeDueBy": 1767225600,  # 2026-01-01T00:00:00Z
        "createdAt": "2025-12-20T10:00:00.000Z",
    }

    [event] = wallet_events.from_notice(item, lambda user: (-300, 0))
    [again] = wallet_events.from_notice(item | {"noticeClaim": "another"}, lambda user: (-300, 0))

    assert (event.type, event.detail["disputeId"], event.detail["status"]) == (
        "dispute.needs_response",
        "dp_1Abc",
        "needs_response",
    )
    assert (event.detail["dueBy"], event.detail["paymentId"]) == ("2026-01-01T00:00:00Z", "01DEP")
    assert again.id == event.id
    validate(event)
    [no_answer] = wallet_events.from_notice(item | {"noticeDueBy": 0}, lambda user: (0, 0))
    assert "dueBy" not in no_answer.detail


class FlakyBus:
    """PutEvents that refuses the entries whose type is in `refuse` the first `times` times it sees them."""

    def __init__(self, refuse: set[str], times: int = 1) -> None:
        self.refuse, self.times = refuse, times
        self.requests: list[list[dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.refused: dict[str, int] = {}

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.requests.append(Entries)
        results: list[dict[str, Any]] = []
        for entry in Entries:
            detail = json.loads(entry["Detail"])
            if entry["DetailType"] in self.refuse and self.refused.get(detail["id"], 0) < self.times:
                self.refused[detail["id"]] = self.refused.get(detail["id"], 0) + 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.accepted.append(detail)
                results.append({"EventId": "e"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def events_of(count: int) -> list[WalletEvent]:
    return [WalletEvent("balance.low", {"id": f"id-{n}", "type": "balance.low"}) for n in range(count)]


def test_publish_sends_at_most_10_a_request_and_only_the_failed_entries_again() -> None:
    bus = FlakyBus(refuse={"balance.low"}, times=1)

    not_sent = event_bus.publish(events_of(23), bus, "b")

    assert not_sent == set()
    assert [len(request) for request in bus.requests] == [10, 10, 3, 10, 10, 3]
    assert sorted(e["id"] for e in bus.accepted) == sorted(f"id-{n}" for n in range(23))


def test_publish_gives_back_what_still_fails_after_its_tries() -> None:
    bus = FlakyBus(refuse={"balance.low"}, times=event_bus.ATTEMPTS)
    assert event_bus.publish(events_of(2), bus, "b") == {"id-0", "id-1"}


def record(sequence: str, old: int, new: int) -> dict[str, Any]:
    return {
        "eventName": "MODIFY",
        "eventSourceARN": BALANCE_STREAM,
        "dynamodb": {
            "ApproximateCreationDateTime": 1767225600,
            "SequenceNumber": sequence,
            "OldImage": {"userId": {"S": "dave"}, "balance": {"N": str(old)}},
            "NewImage": {"userId": {"S": "dave"}, "balance": {"N": str(new)}},
        },
    }


def test_a_record_whose_event_eventbridge_refused_goes_back_to_the_stream_and_comes_again_with_its_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a bus that refuses balance.exhausted three times (all of one invocation's tries), then takes it
    bus = FlakyBus(refuse={"balance.exhausted"}, times=event_bus.ATTEMPTS)
    monkeypatch.setattr(app, "bus_client", bus)
    batch = {"Records": [record("100", 900, 800), record("101", 800, 0), record("102", 0, 0)]}

    # When the batch is handled, then handled again as the stream redelivers it
    first = app.stream_handler(batch, context())
    second = app.stream_handler(batch, context())

    # Then only the refused event's record is reported, and the event arrives once the bus takes it,
    # with the id it had; the balance.low of the same record (threshold 500) was sent both times
    assert first == {"batchItemFailures": [{"itemIdentifier": "101"}]}
    assert second == {"batchItemFailures": []}
    ids = [(e["type"], e["id"]) for e in bus.accepted]
    assert ids.count(ids[0]) == 2
    assert [t for t, _ in ids] == ["balance.low", "balance.low", "balance.exhausted"]
    assert {e["occurredAt"] for e in bus.accepted} == {"2026-01-01T00:00:00Z"}


def context() -> Any:
    from devstack.balance_stream import TriggerContext

    return TriggerContext("WalletEventsFunction")

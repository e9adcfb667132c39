"""Stripe's events through Amazon EventBridge: the envelope AWS and Stripe document, the same table as the
webhook, and what is not a Stripe event of ours from the partner source dropped without a change."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import (
    DOORS,
    EVENTBRIDGE_SAMPLE,
    deliver_by_eventbridge,
    eventbridge_envelope,
    invoke_eventbridge,
    start_checkout,
)
from tests.integration.test_webhook_reversals import charge, paid_deposit
from tests.integration.test_webhook_reversals import event as reversal_event
from wallet import ledger
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
EVENTS = Path(__file__).resolve().parents[2] / "events"
# Every event on a bus has these top-level fields (AWS, "Amazon EventBridge events":
# docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html).
ENVELOPE_FIELDS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(EVENTBRIDGE_SAMPLE.read_text())
    return loaded


def test_the_sample_is_eventbridges_envelope_around_the_sample_stripe_event() -> None:
    envelope = sample()

    assert set(envelope) == ENVELOPE_FIELDS
    # Stripe's partner event sources are named aws.partner/stripe.com/<event destination id>.
    assert envelope["source"].startswith("aws.partner/stripe.com/ed_")
    assert envelope["detail"] == json.loads(
        (EVENTS / "stripe" / "checkout.session.completed.json").read_text()
    )
    assert envelope["detail-type"] == envelope["detail"]["type"]


def test_the_sample_credits_its_session_once_however_often_it_arrives() -> None:
    answers = [invoke_eventbridge(sample()) for _ in range(3)]

    assert [a.body for a in answers] == [{"received": True}] * 3
    assert ledger.get_balance("user-123") == 5000
    assert len(list(CreditTransaction.query("user-123"))) == 1


@pytest.mark.parametrize("order", [("webhook", "eventbridge"), ("eventbridge", "webhook")])
def test_during_the_cut_over_each_event_through_both_doors_credits_once(
    stripe_emulator: StripeEmulator, order: tuple[str, str]
) -> None:
    """Both doors on: Stripe sends every event to the webhook endpoint and to the event destination."""
    paid = [stripe_emulator.pay(start_checkout("alice", amount))[-1] for amount in (1000, 5000)]

    for event in paid:
        for door in order:
            assert DOORS[door](stripe_emulator.sign(event)).status == 200
        # A late retry through the first door changes nothing either.
        assert DOORS[order[0]](stripe_emulator.sign(event)).status == 200

    assert ledger.get_balance("alice") == 6000
    assert len(list(CreditTransaction.query("alice"))) == 2


def changed(path: str, value: Any) -> dict[str, Any]:
    envelope = copy.deepcopy(sample())
    *parents, last = path.split(".")
    target = envelope
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return envelope


BAD_EVENTS = {
    "another partner source": changed("source", "aws.partner/stripe.com/ed_test_someoneelse"),
    "a custom source": changed("source", "com.example.orders"),
    "no source": changed("source", None),
    "no detail": changed("detail", None),
    "a detail that is a string": changed("detail", json.dumps(sample()["detail"])),
    "a detail that is not an event": changed("detail.object", "checkout.session"),
    "a type the table does not name": changed("detail.type", "customer.created"),
    "a detail-type other than the event's": changed("detail-type", "checkout.session.expired"),
    "an id that is not an event's": changed("detail.id", "cs_test_123"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_what_is_not_a_known_stripe_event_from_the_source_is_logged_counted_and_dropped(
    case: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    answer = invoke_eventbridge(BAD_EVENTS[case])

    # Returned, not raised: nothing for Lambda to retry.
    assert (answer.status, answer.body) == (200, {"dropped": True})
    assert ledger.get_balance("user-123") == 0
    assert list(CreditTransaction.query("user-123")) == []
    captured = capsys.readouterr()
    assert captured.out.replace(" ", "").count('"UnknownEventBridgeEvents":[1.0]') == 1
    logged = captured.out + captured.err + caplog.text
    assert "EventBridge event dropped" in logged
    # The stray event's contents are not logged, only its envelope's id and source.
    assert "customer@example.com" not in logged


def test_with_no_partner_source_configured_every_eventbridge_event_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_EVENT_SOURCE", "")

    answer = invoke_eventbridge(sample())

    assert answer.body == {"dropped": True}
    assert ledger.get_balance("user-123") == 0


def test_an_event_type_the_table_names_but_the_rule_would_not_send_is_still_decided_by_the_table(
    stripe_emulator: StripeEmulator,
) -> None:
    """The rule filters on the table's types; the function checks again rather than trust the rule."""
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))
    envelope = eventbridge_envelope(completed)

    assert invoke_eventbridge(envelope).body == {"received": True}
    assert deliver_by_eventbridge(completed).body == {"received": True}
    assert ledger.get_balance("alice") == 1000


# --- Reordering, through either door and across both ------------------------------------------------------


def refund_rows(user: str) -> list[tuple[str, int]]:
    return sorted((row.type, int(row.amount)) for row in CreditTransaction.query(user, consistent_read=True))


@pytest.mark.parametrize(
    ("early_door", "deposit_door"),
    [
        ("webhook", "webhook"),
        ("eventbridge", "eventbridge"),
        ("eventbridge", "webhook"),
        ("webhook", "eventbridge"),
    ],
)
def test_a_refund_that_overtakes_its_deposit_fails_then_is_applied_once(
    stripe_emulator: StripeEmulator, early_door: str, deposit_door: str
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))
    refund = stripe_emulator.sign(
        reversal_event("charge.refunded", charge(completed["data"]["object"], 1000))
    )

    early = DOORS[early_door](refund)
    DOORS[deposit_door](stripe_emulator.sign(completed))
    retried = [DOORS[early_door](refund).status, DOORS[deposit_door](refund).status]

    # A failure both doors retry: a 500 to Stripe, an error to Lambda.
    assert early.status == 500
    assert retried == [200, 200]
    assert refund_rows("alice") == [("deposit", 1000), ("refund", -1000)]


@pytest.mark.parametrize("door", sorted(DOORS))
def test_partial_refunds_out_of_order_take_the_latest_total_once(
    stripe_emulator: StripeEmulator, door: str
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    for refunded in (250, 600, 250):  # the last one late, stale
        assert (
            DOORS[door](
                stripe_emulator.sign(reversal_event("charge.refunded", charge(session, refunded)))
            ).status
            == 200
        )

    assert refund_rows("alice") == [("deposit", 1000), ("refund", -350), ("refund", -250)]
    assert ledger.get_balance("alice") == 400

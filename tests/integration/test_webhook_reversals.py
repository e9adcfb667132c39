"""Refunds and disputes through the real webhook handler: what a reversed payment bought is taken back
once, whatever order or how often Stripe delivers the events."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import deliver, start_checkout
from wallet import ledger
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


def paid_deposit(emulator: StripeEmulator, user: str, amount: int) -> dict[str, Any]:
    """A paid, credited Checkout Session of `user`'s; the session as its event carried it."""
    session_id = start_checkout(user, amount)
    *_, completed = emulator.pay(session_id)
    assert deliver(emulator.sign(completed)).status == 200
    session: dict[str, Any] = completed["data"]["object"]
    return session


def charge(session: dict[str, Any], refunded: int = 0, *, ours: bool = True) -> dict[str, Any]:
    """The charge of a session's payment, as charge.refunded carries it: cumulative amount_refunded."""
    return {
        "id": "ch_" + session["payment_intent"].removeprefix("pi_"),
        "object": "charge",
        "amount": session["amount_total"],
        "amount_captured": session["amount_total"],
        "amount_refunded": refunded,
        "refunded": refunded == session["amount_total"],
        "currency": session["currency"],
        "livemode": False,
        "paid": True,
        "status": "succeeded",
        "payment_intent": session["payment_intent"],
        "metadata": dict(session["metadata"]) if ours else {},
    }


def dispute(session: dict[str, Any], status: str = "needs_response") -> dict[str, Any]:
    return {
        "id": "dp_" + session["payment_intent"].removeprefix("pi_"),
        "object": "dispute",
        "amount": session["amount_total"],
        "charge": "ch_" + session["payment_intent"].removeprefix("pi_"),
        "payment_intent": session["payment_intent"],
        "currency": session["currency"],
        "livemode": False,
        "reason": "fraudulent",
        "status": status,
        "metadata": {},
    }


def event(kind: str, data_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{ULID()}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": data_object},
    }


def send(emulator: StripeEmulator, kind: str, data_object: dict[str, Any]) -> int:
    return deliver(emulator.sign(event(kind, data_object))).status


def rows(user: str) -> list[tuple[str, int]]:
    return sorted((row.type, int(row.amount)) for row in CreditTransaction.query(user, consistent_read=True))


def balance_is_the_sum_of_rows(user: str) -> int:
    balance = ledger.get_balance(user)
    assert balance == sum(amount for _, amount in rows(user))
    return balance


def test_a_full_refund_takes_back_every_credit_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 5000)

    statuses = [send(stripe_emulator, "charge.refunded", charge(session, 5000)) for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert rows("alice") == [("deposit", 5000), ("refund", -5000)]
    assert balance_is_the_sum_of_rows("alice") == 0


def test_partial_refunds_out_of_order_take_the_latest_total_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.refunded", charge(session, 250))
    send(stripe_emulator, "charge.refunded", charge(session, 600))
    send(stripe_emulator, "charge.refunded", charge(session, 250))  # late, stale

    assert rows("alice") == [("deposit", 1000), ("refund", -350), ("refund", -250)]
    assert balance_is_the_sum_of_rows("alice") == 400


def test_a_refund_of_a_bonus_pack_takes_the_bonus_too(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wallet import settings

    monkeypatch.setenv("CREDIT_PACKS", "1000,5000:5500,10000")
    settings.price_list.cache_clear()
    try:
        session = paid_deposit(stripe_emulator, "alice", 5000)
        send(stripe_emulator, "charge.refunded", charge(session, 2500))
        half = balance_is_the_sum_of_rows("alice")
        send(stripe_emulator, "charge.refunded", charge(session, 5000))
    finally:
        monkeypatch.undo()
        settings.price_list.cache_clear()

    assert half == 2750
    assert balance_is_the_sum_of_rows("alice") == 0


def test_a_refund_after_the_credits_were_spent_leaves_a_debt(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    ledger.spend(
        "alice", 900, idempotency_key="k", description=None, actor="arn:aws:iam::1:user/s", currency="usd"
    )

    send(stripe_emulator, "charge.refunded", charge(session, 1000))

    assert balance_is_the_sum_of_rows("alice") == -900


def test_a_refund_that_overtakes_its_deposit_is_answered_500_then_applied(
    stripe_emulator: StripeEmulator,
) -> None:
    session_id = start_checkout("alice", 1000)
    *_, completed = stripe_emulator.pay(session_id)
    session = completed["data"]["object"]
    refund_event = stripe_emulator.sign(event("charge.refunded", charge(session, 1000)))

    early = deliver(refund_event)
    deliver(stripe_emulator.sign(completed))
    retried = deliver(refund_event)

    assert (early.status, early.body["error"]["code"]) == (500, "deposit_not_recorded")
    assert retried.status == 200
    assert rows("alice") == [("deposit", 1000), ("refund", -1000)]


def test_a_refund_of_a_charge_that_is_not_ours_is_ignored(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    foreign = charge(session, 1000, ours=False) | {"payment_intent": "pi_someone_else"}

    assert send(stripe_emulator, "charge.refunded", foreign) == 200
    assert send(stripe_emulator, "charge.refunded", foreign | {"payment_intent": None}) == 200
    assert rows("alice") == [("deposit", 1000)]


def test_a_dispute_takes_the_credits_and_a_win_gives_them_back_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 5000)

    send(stripe_emulator, "charge.dispute.created", dispute(session))
    opened = balance_is_the_sum_of_rows("alice")
    for _ in range(2):
        send(stripe_emulator, "charge.dispute.closed", dispute(session, "won"))
    send(stripe_emulator, "charge.dispute.created", dispute(session))  # a late redelivery

    assert opened == 0
    assert rows("alice") == [("deposit", 5000), ("dispute", -5000), ("dispute_won", 5000)]
    assert balance_is_the_sum_of_rows("alice") == 5000


def test_a_lost_dispute_keeps_the_credits_taken(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", dispute(session))
    send(stripe_emulator, "charge.dispute.created", dispute(session))
    send(stripe_emulator, "charge.dispute.closed", dispute(session, "lost"))

    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]


def test_a_dispute_closed_as_lost_before_it_opened_takes_the_credits_once(
    stripe_emulator: StripeEmulator,
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.closed", dispute(session, "lost"))
    send(stripe_emulator, "charge.dispute.created", dispute(session))

    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]


def test_a_dispute_of_a_charge_that_is_not_ours_is_ignored(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    status = send(
        stripe_emulator, "charge.dispute.created", dispute(session) | {"payment_intent": "pi_other"}
    )

    assert status == 200
    assert rows("alice") == [("deposit", 1000)]


def emitted(output: str) -> set[str]:
    """The metric names in the CloudWatch embedded-metric lines Powertools printed."""
    names = set()
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for definition in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names |= {metric["Name"] for metric in definition["Metrics"]}
    return names


def test_claw_backs_and_disputes_are_counted_for_the_alarms(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    capsys.readouterr()

    send(stripe_emulator, "charge.dispute.created", dispute(session))
    opened = emitted(capsys.readouterr().out)
    send(stripe_emulator, "charge.dispute.created", dispute(session))
    repeated = emitted(capsys.readouterr().out)

    assert {"DisputesOpened", "CreditsClawedBack"} <= opened
    assert not {"DisputesOpened", "CreditsClawedBack"} & repeated

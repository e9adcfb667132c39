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


# --- what a payment owes, rule by rule (README's webhook table) -------------------------------------------


def refund_object(
    session: dict[str, Any], refund_id: str, amount: int, status: str = "succeeded"
) -> dict[str, Any]:
    """A Refund as refund.* and charge.refund.updated carry it."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": "ch_" + session["payment_intent"].removeprefix("pi_"),
        "currency": session["currency"],
        "payment_intent": session["payment_intent"],
        "status": status,
        "metadata": {},
    }


def a_dispute(
    session: dict[str, Any], dispute_id: str, status: str, amount: int | None = None
) -> dict[str, Any]:
    return dispute(session, status) | {
        "id": dispute_id,
        "amount": session["amount_total"] if amount is None else amount,
        "is_charge_refundable": status.startswith("warning_"),
    }


def test_a_refund_during_an_inquiry_stays_taken_when_the_inquiry_closes(
    stripe_emulator: StripeEmulator,
) -> None:
    """The customer who asks the bank and then the merchant gets the money back once, not the credits too."""
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_inq", "warning_needs_response"))
    held = balance_is_the_sum_of_rows("alice")
    send(stripe_emulator, "charge.refunded", charge(session, 1000))
    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 1000))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_inq", "warning_closed"))

    assert held == 0
    assert rows("alice") == [("deposit", 1000), ("inquiry", -1000)]
    assert balance_is_the_sum_of_rows("alice") == 0


def test_a_partial_refund_during_an_inquiry_keeps_only_the_refund_taken(
    stripe_emulator: StripeEmulator,
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_inq", "warning_needs_response"))
    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 400))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_inq", "warning_closed"))

    assert rows("alice") == [("deposit", 1000), ("inquiry", -1000), ("inquiry_closed", 600)]
    assert balance_is_the_sum_of_rows("alice") == 600


def test_an_escalated_dispute_takes_its_share_less_what_refunds_took(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 300))
    send(
        stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "warning_needs_response", 1000)
    )
    send(stripe_emulator, "charge.dispute.updated", a_dispute(session, "dp_1", "needs_response", 1000))
    send(
        stripe_emulator, "charge.dispute.funds_withdrawn", a_dispute(session, "dp_1", "needs_response", 1000)
    )

    assert rows("alice") == [("deposit", 1000), ("inquiry", -700), ("refund", -300)]
    assert balance_is_the_sum_of_rows("alice") == 0


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("charge.dispute.closed", "won"),
        ("charge.dispute.funds_reinstated", "won"),
    ],
)
def test_a_won_dispute_gives_back_what_it_took(
    stripe_emulator: StripeEmulator, kind: str, status: str
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))
    send(stripe_emulator, kind, a_dispute(session, "dp_1", status))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", status))

    assert rows("alice") == [("deposit", 1000), ("dispute", -1000), ("dispute_won", 1000)]


def test_a_dispute_lost_then_won_on_appeal_gives_back_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    stages = ["needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"]

    for stage in stages:
        send(stripe_emulator, "charge.dispute.updated", a_dispute(session, "dp_1", stage))
    appealing = balance_is_the_sum_of_rows("alice")
    for _ in range(2):
        send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", "won"))
    send(stripe_emulator, "charge.dispute.updated", a_dispute(session, "dp_1", "appeal_under_review"))  # late

    assert appealing == 0
    assert rows("alice") == [("deposit", 1000), ("dispute", -1000), ("dispute_won", 1000)]


def test_a_second_dispute_on_the_same_charge_is_its_own(stripe_emulator: StripeEmulator) -> None:
    """An inquiry closes; months later a chargeback with a new id is lost: it takes the credits."""
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_inq", "warning_needs_response"))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_inq", "warning_closed"))
    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_formal", "needs_response"))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_formal", "lost"))

    assert rows("alice") == [
        ("deposit", 1000),
        ("dispute", -1000),
        ("inquiry", -1000),
        ("inquiry_closed", 1000),
    ]
    assert balance_is_the_sum_of_rows("alice") == 0


@pytest.mark.parametrize("undone", ["failed", "canceled"])
def test_a_refund_that_does_not_go_through_gives_back_once(
    stripe_emulator: StripeEmulator, undone: str
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.refunded", charge(session, 400))
    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 400))
    for kind in ("refund.failed", "refund.updated", "charge.refund.updated", "refund.updated"):
        send(stripe_emulator, kind, refund_object(session, "re_1", 400, undone))
    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 400))  # late, older

    assert rows("alice") == [("deposit", 1000), ("refund", -400), ("refund_failed", 400)]
    assert balance_is_the_sum_of_rows("alice") == 1000


def test_an_older_refund_event_after_a_newer_one_changes_nothing(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "refund.created", refund_object(session, "re_2", 300))
    send(stripe_emulator, "charge.refunded", charge(session, 500))
    send(stripe_emulator, "refund.created", refund_object(session, "re_1", 200))
    send(stripe_emulator, "charge.refunded", charge(session, 200))  # the first refund's, late

    assert balance_is_the_sum_of_rows("alice") == 500


def test_every_dispute_and_refund_status_of_the_pinned_sdk_is_handled() -> None:
    import typing

    import stripe

    from wallet.payment_state import DISPUTE_HOLDS, DISPUTE_ORDER, INQUIRY, REFUND_ORDER, REFUND_UNDONE

    sdk_statuses = set(typing.get_args(typing.get_args(stripe.Dispute.__annotations__["status"])[0]))

    assert set(DISPUTE_ORDER) == sdk_statuses
    assert set(DISPUTE_ORDER) - DISPUTE_HOLDS == {"warning_closed", "won"}
    assert "prevented:block" not in DISPUTE_HOLDS
    assert {"warning_needs_response", "warning_under_review", "warning_closed"} == INQUIRY
    # Refund.status is a plain str in the SDK; its docstring lists these.
    assert set(REFUND_ORDER) == {"pending", "requires_action", "succeeded", "failed", "canceled"}
    assert {"failed", "canceled"} == REFUND_UNDONE


@pytest.mark.parametrize("status", ["prevented", "lost"])
def test_a_dispute_that_repaid_the_cardholder_keeps_the_credits_taken(
    stripe_emulator: StripeEmulator, status: str
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", status))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", status))

    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]


def test_a_status_the_pinned_api_does_not_list_changes_nothing(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    status = send(stripe_emulator, "charge.dispute.updated", a_dispute(session, "dp_1", "charge_refunded"))
    refund_status = send(stripe_emulator, "refund.updated", refund_object(session, "re_1", 1000, "reversed"))

    assert (status, refund_status) == (200, 200)
    assert rows("alice") == [("deposit", 1000)]


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("charge.refunded", {"amount_refunded": -100}),
        ("charge.refunded", {"amount_refunded": 10.5}),
        ("charge.refunded", {"amount_refunded": True}),
        ("charge.refunded", {"amount_refunded": 1200, "amount": 1200}),
        ("charge.refunded", {"amount_refunded": 1001}),
        ("charge.refunded", {"amount_refunded": 500, "currency": "eur"}),
        ("refund.created", {"amount": -1}),
        ("refund.created", {"amount": 1001}),
        ("refund.created", {"amount": "500"}),
        ("refund.created", {"currency": "gbp"}),
        ("charge.dispute.created", {"amount": -5}),
        ("charge.dispute.created", {"currency": "jpy"}),
        ("charge.dispute.created", {"amount": 2**53}),
    ],
)
def test_an_event_whose_amounts_or_currency_do_not_fit_takes_nothing_and_is_rejected(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str], kind: str, change: dict[str, Any]
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    base = {
        "charge.refunded": charge(session, 0),
        "refund.created": refund_object(session, "re_1", 500),
        "charge.dispute.created": a_dispute(session, "dp_1", "needs_response"),
    }[kind]
    capsys.readouterr()

    status = send(stripe_emulator, kind, base | change)

    assert status == 200
    assert rows("alice") == [("deposit", 1000)]
    assert "RejectedFulfilments" in emitted(capsys.readouterr().out)


def test_a_dispute_that_overtakes_its_deposit_is_answered_500_then_applied(
    stripe_emulator: StripeEmulator,
) -> None:
    session_id = start_checkout("alice", 1000)
    *_, completed = stripe_emulator.pay(session_id)
    session = completed["data"]["object"]
    early = stripe_emulator.sign(
        event("charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))
    )
    reads_before = [r for r in stripe_emulator.requests if r.path.startswith("/v1/payment_intents/")]

    first = deliver(early)
    reads = [r for r in stripe_emulator.requests if r.path.startswith("/v1/payment_intents/")]
    deliver(stripe_emulator.sign(completed))
    retried = deliver(early)

    assert (first.status, first.body["error"]["code"]) == (500, "deposit_not_recorded")
    assert len(reads) - len(reads_before) == 1, "one Stripe read, of the PaymentIntent"
    assert retried.status == 200
    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]


def test_a_refund_of_another_integrations_payment_is_answered_200(stripe_emulator: StripeEmulator) -> None:
    from tests.integration.test_fulfilment_mark import session_made_elsewhere

    *_, completed = stripe_emulator.pay(session_made_elsewhere(stripe_emulator, 700, {"order": "42"}))
    elsewhere = completed["data"]["object"]

    refunded = send(stripe_emulator, "refund.created", refund_object(elsewhere, "re_x", 700))
    disputed = send(stripe_emulator, "charge.dispute.created", a_dispute(elsewhere, "dp_x", "needs_response"))
    unknown = send(
        stripe_emulator,
        "charge.dispute.created",
        a_dispute(elsewhere, "dp_y", "needs_response") | {"payment_intent": "pi_nowhere"},
    )

    assert (refunded, disputed, unknown) == (200, 200, 200)


def test_a_refund_or_dispute_of_a_payment_that_was_rejected_takes_nothing_and_the_sweep_goes_on(
    stripe_emulator: StripeEmulator,
) -> None:
    """Our metadata copied onto a session of another amount: never credited, so nothing to take back."""
    from wallet import reconciliation

    stripe_emulator.reset()  # the sweep reads the whole log: only this test's events
    genuine = stripe_emulator.client().v1.checkout.sessions.retrieve(start_checkout("alice", 1000))
    metadata = genuine.to_dict()["metadata"]
    params: Any = {
        "mode": "payment",
        "success_url": "https://elsewhere.example/ok",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 10000, "product_data": {"name": "X"}},
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }
    forged = stripe_emulator.client().v1.checkout.sessions.create(params)
    *_, completed = stripe_emulator.pay(forged.id)
    session = completed["data"]["object"]
    assert deliver(stripe_emulator.sign(completed)).status == 200

    disputed = send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))
    refunded = [
        deliver(stripe_emulator.sign(sent)).status
        for sent in stripe_emulator.refund(session["payment_intent"])
    ]
    report = reconciliation.sweep(lambda: 300.0)

    assert (disputed, refunded) == (200, [200, 200])
    assert rows("alice") == []
    # The session and its payment_intent.succeeded, the refund's charge.refunded and refund.created: none
    # failing, the session rejected, the refund's two events not ours to take back.
    assert (report.replayed, report.failed, report.rejected, report.not_ours) == (4, 0, 1, 2)


# --- the same rules with Stripe's objects as the emulator makes them --------------------------------------


def deliver_all(emulator: StripeEmulator, sent: list[dict[str, Any]]) -> None:
    for each in sent:
        assert deliver(emulator.sign(each)).status == 200, each["type"]


def test_the_inquiry_and_refund_lifecycle_played_on_the_emulator_leaves_nothing_to_give_away(
    stripe_emulator: StripeEmulator,
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])
    client = stripe_emulator.client()

    deliver_all(stripe_emulator, stripe_emulator.open_dispute(charge_id, inquiry=True))
    client.v1.refunds.create({"charge": charge_id, "amount": 400})
    stripe_emulator.drain()
    refunded = [e for e in stripe_emulator.events if e["type"] in ("charge.refunded", "refund.created")][-2:]
    deliver_all(stripe_emulator, refunded)
    deliver_all(stripe_emulator, stripe_emulator.dispute_action(stripe_emulator.dispute_of(charge_id), "win"))

    assert balance_is_the_sum_of_rows("alice") == 600


def test_a_failed_refund_and_an_appeal_won_played_on_the_emulator(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])

    refund_events = stripe_emulator.refund(charge_id, 300)
    deliver_all(stripe_emulator, refund_events)
    refund_id = next(e["data"]["object"]["id"] for e in refund_events if e["type"] == "refund.created")
    deliver_all(stripe_emulator, stripe_emulator.fail_refund(refund_id))
    after_failure = balance_is_the_sum_of_rows("alice")
    deliver_all(stripe_emulator, stripe_emulator.open_dispute(charge_id))
    dispute_id = stripe_emulator.dispute_of(charge_id)
    for step in ("lose", "appeal", "submit", "win"):
        deliver_all(stripe_emulator, stripe_emulator.dispute_action(dispute_id, step))

    assert after_failure == 1000
    kinds = [kind for kind, _ in rows("alice")]
    assert sorted(kinds) == ["deposit", "dispute", "dispute_won", "refund", "refund_failed"]
    assert balance_is_the_sum_of_rows("alice") == 1000

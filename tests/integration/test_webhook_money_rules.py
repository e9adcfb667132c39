"""The money rules of refunds and disputes, each through the real signed webhook handler (README, "How a
top-up is credited exactly once", the webhook table): disputes above the price, disputes that need an
answer, prevented disputes of either case type, a chargeback under a new id beside an open inquiry,
credits never shown beyond Stripe's truth as delivered, unknown statuses, and guards written by earlier
releases. Expected balances are worked out by hand from Stripe's semantics, in each test's comment."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import deliver
from tests.conftest import TABLE_NAMES
from tests.integration.test_webhook_reversals import (
    a_dispute,
    balance_is_the_sum_of_rows,
    charge,
    deliver_all,
    emitted,
    event,
    paid_deposit,
    refund_object,
    rows,
    send,
)
from wallet import dispute_notices, once
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")

Notices = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def notices(monkeypatch: pytest.MonkeyPatch) -> Notices:
    """What reached the alarm topic: (subject, message) per publish."""
    sent: Notices = []

    def publish(subject: str, message: str) -> None:
        sent.append((subject, json.loads(message)))

    monkeypatch.setattr(dispute_notices, "_publish", publish)
    return sent


def stripe_reads(emulator: StripeEmulator, since: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests[since:] if r.method == "GET"]


# --- a dispute takes at most what the payment credited ----------------------------------------------------


def test_a_chargeback_above_the_price_takes_every_credit_and_is_not_rejected(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str], notices: Notices
) -> None:
    # Paid 1,000; a dispute of 1,003 (currency fluctuation) is capped at 1,000: all credits, no more.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    capsys.readouterr()

    statuses = [
        send(stripe_emulator, kind, a_dispute(session, "dp_1", status, 1003))
        for kind, status in [
            ("charge.dispute.created", "needs_response"),
            ("charge.dispute.funds_withdrawn", "needs_response"),
            ("charge.dispute.closed", "lost"),
        ]
    ]

    assert statuses == [200, 200, 200]
    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]
    assert balance_is_the_sum_of_rows("alice") == 0
    assert "RejectedFulfilments" not in emitted(capsys.readouterr().out)


def test_a_dispute_of_the_largest_amount_accepted_is_capped_too(stripe_emulator: StripeEmulator) -> None:
    # 2^53 - 1 is the bound on every amount (wallet.amounts); 2^53 is rejected (test_webhook_reversals).
    session = paid_deposit(stripe_emulator, "alice", 1000)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response", 2**53 - 1))

    assert balance_is_the_sum_of_rows("alice") == 0


def test_a_chargeback_above_the_charge_played_on_the_emulator_takes_all_and_a_win_gives_all_back(
    stripe_emulator: StripeEmulator,
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])

    deliver_all(stripe_emulator, stripe_emulator.open_dispute(charge_id, 1100))
    after_opening = balance_is_the_sum_of_rows("alice")
    deliver_all(
        stripe_emulator, stripe_emulator.close_dispute(stripe_emulator.dispute_of(charge_id), won=True)
    )

    assert after_opening == 0
    assert balance_is_the_sum_of_rows("alice") == 1000


# --- a dispute that needs an answer reaches the alarm topic, once per dispute and stage ------------------


def test_a_dispute_after_a_full_refund_takes_nothing_and_still_asks_for_an_answer(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str], notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    send(stripe_emulator, "charge.refunded", charge(session, 1000))
    capsys.readouterr()
    opened = a_dispute(session, "dp_1", "needs_response") | {"evidence_details": {"due_by": 1_900_000_000}}

    statuses = [send(stripe_emulator, "charge.dispute.created", opened) for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert rows("alice") == [("deposit", 1000), ("refund", -1000)]
    assert len(notices) == 1
    subject, message = notices[0]
    assert "dp_1" in subject
    assert (message["disputeId"], message["chargeId"], message["status"]) == (
        "dp_1",
        opened["charge"],
        "needs_response",
    )
    assert (message["dueBy"], message["dueByIso"]) == (1_900_000_000, "2030-03-17T17:46:40Z")
    assert message["paymentId"] == session["metadata"]["paymentId"]
    assert "DisputesOpened" in emitted(capsys.readouterr().out)


def test_each_stage_that_needs_an_answer_is_announced_once_even_when_the_inquiry_already_holds_the_credits(
    stripe_emulator: StripeEmulator, notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    stages = [
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.updated", "needs_response"),  # the inquiry escalates under its own id
        ("charge.dispute.closed", "lost"),
        ("charge.dispute.updated", "appeal_needs_response"),
    ]

    for kind, status in stages * 2:
        assert send(stripe_emulator, kind, a_dispute(session, "dp_1", status)) == 200

    assert [m["status"] for _, m in notices] == [
        "warning_needs_response",
        "needs_response",
        "appeal_needs_response",
    ]
    assert balance_is_the_sum_of_rows("alice") == 0


def test_concurrent_deliveries_of_a_dispute_that_needs_an_answer_announce_it_once(
    stripe_emulator: StripeEmulator, notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    signed = stripe_emulator.sign(
        event("charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))
    )
    statuses: list[int] = []
    start = threading.Barrier(8)

    def one() -> None:
        start.wait()
        statuses.append(deliver(signed).status)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 8
    assert len(notices) == 1
    assert balance_is_the_sum_of_rows("alice") == 0


def test_a_notice_that_could_not_be_published_is_a_500_and_the_redelivery_publishes_it(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch, notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    opened = stripe_emulator.sign(
        event("charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))
    )
    working = dispute_notices._publish

    def unreachable(subject: str, message: str) -> None:
        raise ConnectionError("SNS unreachable")

    monkeypatch.setattr(dispute_notices, "_publish", unreachable)
    failed = deliver(opened).status
    monkeypatch.setattr(dispute_notices, "_publish", working)
    again = [deliver(opened).status for _ in range(2)]

    assert (failed, again) == (500, [200, 200])
    assert [m["disputeId"] for _, m in notices] == ["dp_1"]
    # The ledger took the credits once, on the first delivery.
    assert rows("alice") == [("deposit", 1000), ("dispute", -1000)]


def test_a_claim_left_by_a_delivery_that_died_before_publishing_is_taken_over_later(
    stripe_emulator: StripeEmulator, notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    dynamodb = boto3.client("dynamodb")
    stale = int(time.time()) - once.CLAIM_SECONDS - 1
    dynamodb.put_item(
        TableName=TABLE_NAMES["CreditGuardTable"],
        Item={
            "userId": {"S": "alice"},
            "guardId": {"S": "notice#dp_1#needs_response"},
            "noticeClaim": {"S": "died"},
            "noticeClaimedAt": {"N": str(stale)},
        },
    )

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))

    assert len(notices) == 1


def test_a_fresh_claim_of_another_delivery_is_left_to_it(
    stripe_emulator: StripeEmulator, notices: Notices
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    boto3.client("dynamodb").put_item(
        TableName=TABLE_NAMES["CreditGuardTable"],
        Item={
            "userId": {"S": "alice"},
            "guardId": {"S": "notice#dp_1#needs_response"},
            "noticeClaim": {"S": "busy"},
            "noticeClaimedAt": {"N": str(int(time.time()))},
        },
    )

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response"))

    assert notices == []


def test_a_chargeback_whose_webhook_was_lost_is_announced_by_the_sweep_once(
    stripe_emulator: StripeEmulator, notices: Notices
) -> None:
    from wallet import reconciliation

    stripe_emulator.reset()  # the sweep reads the whole log: only this test's events
    session = paid_deposit(stripe_emulator, "alice", 1000)
    stripe_emulator.open_dispute(stripe_emulator.charge_of(session["id"]))  # never delivered

    reconciliation.sweep(lambda: 300.0)
    reconciliation.sweep(lambda: 300.0)

    assert [m["status"] for _, m in notices] == ["needs_response"]
    assert balance_is_the_sum_of_rows("alice") == 0


# --- prevented: a resolution takes the credits, a block takes none --------------------------------------


def prevented(session: dict[str, Any], dispute_id: str, case_type: str) -> dict[str, Any]:
    return a_dispute(session, dispute_id, "prevented") | {
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "case_type": case_type}}
    }


@pytest.mark.parametrize(("case_type", "kept"), [("resolution", 0), ("block", 1000)])
def test_a_prevented_dispute_takes_the_credits_only_when_it_refunded_the_cardholder(
    stripe_emulator: StripeEmulator, case_type: str, kept: int
) -> None:
    # Stripe's Dispute prevention guide: a resolution refunds the cardholder, a block moves no money.
    session = paid_deposit(stripe_emulator, "alice", 1000)

    for kind in ("charge.dispute.created", "charge.dispute.closed"):
        send(stripe_emulator, kind, prevented(session, "dp_1", case_type))

    assert balance_is_the_sum_of_rows("alice") == kept


@pytest.mark.parametrize("case_type", ["resolution", "block"])
def test_prevented_disputes_played_on_the_emulator(stripe_emulator: StripeEmulator, case_type: str) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)

    deliver_all(
        stripe_emulator,
        stripe_emulator.prevent_dispute(stripe_emulator.charge_of(session["id"]), case_type=case_type),
    )

    assert balance_is_the_sum_of_rows("alice") == (0 if case_type == "resolution" else 1000)


@pytest.mark.parametrize(
    ("first", "then", "kept"),
    [
        ("won", "resolution", 0),
        ("resolution", "won", 0),
        ("won", "block", 1000),
        ("block", "won", 1000),
        ("block", "resolution", 0),
        ("resolution", "block", 0),
    ],
)
def test_won_and_prevented_of_one_id_end_alike_in_either_order(
    stripe_emulator: StripeEmulator, first: str, then: str, kept: int
) -> None:
    # Never both at Stripe; should both arrive, the one that holds the credits stands, whatever the order.
    session = paid_deposit(stripe_emulator, "alice", 1000)

    for each in (first, then):
        body = a_dispute(session, "dp_1", "won") if each == "won" else prevented(session, "dp_1", each)
        send(stripe_emulator, "charge.dispute.closed", body)

    assert balance_is_the_sum_of_rows("alice") == kept


# --- a chargeback ends any inquiry's hold on its charge, whatever the ids -------------------------------


@pytest.mark.parametrize("inquiry_first", [True, False])
def test_a_chargeback_under_a_new_id_that_is_won_gives_back_what_the_open_inquiry_held(
    stripe_emulator: StripeEmulator, inquiry_first: bool
) -> None:
    # dp_1 an inquiry, never closed; dp_2 the chargeback, won: the customer keeps all 1,000.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    inquiry = ("charge.dispute.created", a_dispute(session, "dp_1", "warning_needs_response"))
    chargeback = [
        ("charge.dispute.created", a_dispute(session, "dp_2", "needs_response")),
        ("charge.dispute.closed", a_dispute(session, "dp_2", "won")),
    ]

    for kind, body in [inquiry, *chargeback] if inquiry_first else [*chargeback, inquiry]:
        send(stripe_emulator, kind, body)

    assert balance_is_the_sum_of_rows("alice") == 1000


def test_an_inquiry_escalated_under_a_new_id_played_on_the_emulator(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])

    deliver_all(stripe_emulator, stripe_emulator.open_dispute(charge_id, inquiry=True))
    deliver_all(stripe_emulator, stripe_emulator.charge_back(charge_id))
    held = balance_is_the_sum_of_rows("alice")
    deliver_all(
        stripe_emulator, stripe_emulator.close_dispute(stripe_emulator.dispute_of(charge_id), won=True)
    )

    assert held == 0
    assert balance_is_the_sum_of_rows("alice") == 1000


# --- never more credits than Stripe's truth as of the events delivered ----------------------------------


def refund_events(sent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The events by type, each charge's list of refunds dropped: API versions since 2022-11-15 send a
    Charge without `refunds`, so `amount_refunded` is all a charge event tells."""
    by_type = {each["type"]: each for each in sent}
    for each in by_type.values():
        if each["data"]["object"]["object"] == "charge":
            each["data"]["object"].pop("refunds", None)
    return by_type


def test_a_failed_refund_then_a_new_one_whose_charge_event_comes_first_shows_700_at_once(
    stripe_emulator: StripeEmulator,
) -> None:
    # A (300) fails, B (300) succeeds; B's charge.refunded (amount_refunded 300) comes before its
    # refund.created: Stripe's truth is 300 refunded, so 700 from that delivery on.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])
    a = refund_events(stripe_emulator.refund(charge_id, 300))
    deliver_all(stripe_emulator, [a["refund.created"], a["charge.refunded"]])
    deliver_all(stripe_emulator, stripe_emulator.fail_refund(a["refund.created"]["data"]["object"]["id"]))
    after_failure = balance_is_the_sum_of_rows("alice")
    b = refund_events(stripe_emulator.refund(charge_id, 300))
    before = len(stripe_emulator.requests)

    deliver_all(stripe_emulator, [b["charge.refunded"]])
    shown = balance_is_the_sum_of_rows("alice")
    deliver_all(stripe_emulator, [b["refund.created"]])

    assert after_failure == 1000
    assert shown == 700
    assert balance_is_the_sum_of_rows("alice") == 700
    # At most one read, on the ambiguous path only: the payment's refunds listed once.
    assert stripe_reads(stripe_emulator, before) == ["GET /v1/refunds"]


def test_a_refund_on_the_common_path_asks_stripe_nothing(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    a = refund_events(stripe_emulator.refund(stripe_emulator.charge_of(session["id"]), 300))
    before = len(stripe_emulator.requests)

    deliver_all(stripe_emulator, [a["refund.created"], a["charge.refunded"]])

    assert balance_is_the_sum_of_rows("alice") == 700
    assert stripe_reads(stripe_emulator, before) == []


def test_a_failed_refund_gives_nothing_back_that_a_newer_refund_took(stripe_emulator: StripeEmulator) -> None:
    # A (300) refunded and seen; at Stripe A then fails and B (300) succeeds. Delivered: only A's failure.
    # Stripe's truth is 300 refunded (B): the failure must not give 300 back.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])
    a = refund_events(stripe_emulator.refund(charge_id, 300))
    deliver_all(stripe_emulator, [a["charge.refunded"], a["refund.created"]])
    failure = stripe_emulator.fail_refund(a["refund.created"]["data"]["object"]["id"])
    stripe_emulator.refund(charge_id, 300)

    deliver_all(stripe_emulator, failure)

    assert balance_is_the_sum_of_rows("alice") == 700


def test_a_failed_refund_alone_gives_its_credits_back_after_one_read(stripe_emulator: StripeEmulator) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])
    a = refund_events(stripe_emulator.refund(charge_id, 300))
    deliver_all(stripe_emulator, [a["charge.refunded"], a["refund.created"]])
    failure = stripe_emulator.fail_refund(a["refund.created"]["data"]["object"]["id"])
    before = len(stripe_emulator.requests)

    deliver_all(stripe_emulator, failure)
    deliver_all(stripe_emulator, [a["charge.refunded"]])  # a stale snapshot, late

    assert balance_is_the_sum_of_rows("alice") == 1000
    # The read made the state exact; the duplicates of the failure that followed read nothing more.
    assert stripe_reads(stripe_emulator, before).count("GET /v1/refunds") <= 2


@pytest.mark.parametrize(("start", "move"), [("pending", "fail"), ("requires_action", "cancel")])
def test_a_refund_that_never_went_through_gives_its_credits_back_once(
    stripe_emulator: StripeEmulator, start: str, move: str
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    charge_id = stripe_emulator.charge_of(session["id"])
    stripe_emulator.start_refunds_as(charge_id, start)
    a = refund_events(stripe_emulator.refund(charge_id, 400))
    deliver_all(stripe_emulator, [a["charge.refunded"], a["refund.created"]])
    taken = balance_is_the_sum_of_rows("alice")

    deliver_all(
        stripe_emulator, stripe_emulator.refund_action(a["refund.created"]["data"]["object"]["id"], move)
    )

    assert taken == 600
    assert balance_is_the_sum_of_rows("alice") == 1000


def test_a_deposit_without_its_price_takes_the_refunds_share_before_the_charge_event(
    stripe_emulator: StripeEmulator,
) -> None:
    # Deposits recorded before the price was stored: the refund's share of what the PaymentIntent
    # received (one read), not every credit.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    deposit = next(row for row in CreditTransaction.query("alice") if row.type == "deposit")
    deposit.update(actions=[CreditTransaction.amount_paid.remove()])
    charge_id = stripe_emulator.charge_of(session["id"])
    a = refund_events(stripe_emulator.refund(charge_id, 300))

    deliver_all(stripe_emulator, [a["refund.created"]])

    assert balance_is_the_sum_of_rows("alice") == 700


# --- a status the pinned API does not list --------------------------------------------------------------


def test_an_unknown_status_is_logged_with_its_value_and_counted(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    capsys.readouterr()

    status = send(stripe_emulator, "charge.dispute.updated", a_dispute(session, "dp_1", "escalated_twice"))
    out = capsys.readouterr().out

    assert status == 200
    assert rows("alice") == [("deposit", 1000)]
    assert "UnknownStatuses" in emitted(out)
    [logged] = [r for r in caplog.records if "pinned API" in r.getMessage()]
    assert "escalated_twice" in logged.__dict__["reason"]


def test_an_unknown_refund_status_is_counted_too(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    capsys.readouterr()

    send(stripe_emulator, "refund.updated", refund_object(session, "re_1", 300, "reversed"))

    assert "UnknownStatuses" in emitted(capsys.readouterr().out)
    assert rows("alice") == [("deposit", 1000)]


def test_a_refund_of_a_charge_that_is_not_ours_changes_nothing_and_is_counted(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    capsys.readouterr()
    foreign = charge(session, 1000, ours=False) | {"payment_intent": "pi_another_integration"}

    status = send(stripe_emulator, "charge.refunded", foreign)

    assert status == 200
    assert rows("alice") == [("deposit", 1000)]
    assert "EventsNotOurs" in emitted(capsys.readouterr().out)


# --- guards written by earlier releases -----------------------------------------------------------------


def old_guard(user: str, payment_id: str, **counts: int | str) -> None:
    """A payment's guard as releases before per-refund state wrote it (git history of wallet/ledger.py:
    `refunded`, `disputed`, `disputeStatus`, `version`), with the refund row and balance it went with."""
    item: dict[str, Any] = {"userId": {"S": user}, "guardId": {"S": f"payment#{payment_id}"}}
    for name, value in counts.items():
        item[name] = {"S": value} if isinstance(value, str) else {"N": str(value)}
    boto3.client("dynamodb").put_item(TableName=TABLE_NAMES["CreditGuardTable"], Item=item)


def old_row(user: str, payment_id: str, kind: str, amount: int) -> None:
    from ulid import ULID

    from wallet import ledger

    CreditTransaction(
        user,
        str(ULID()),
        type=kind,
        amount=amount,
        source="stripe",
        payment_id=payment_id,
        created_at="2025-01-01T00:00:00.000Z",
    ).save()
    boto3.client("dynamodb").update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": user}},
        UpdateExpression="ADD balance :a",
        ExpressionAttributeValues={":a": {"N": str(amount)}},
    )
    assert ledger.get_balance(user) is not None


def test_a_won_dispute_after_an_old_releases_refund_leaves_what_the_refund_did_not_take(
    stripe_emulator: StripeEmulator,
) -> None:
    # 1,000 paid; 300 refunded under the old code; then a dispute of the other 700, won: 700 left.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    payment_id = session["metadata"]["paymentId"]
    old_row("alice", payment_id, "refund", -300)
    old_guard("alice", payment_id, refunded=300, disputed=0, version=1)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response", 700))
    held = balance_is_the_sum_of_rows("alice")
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", "won", 700))

    assert held == 0
    assert balance_is_the_sum_of_rows("alice") == 700


def test_an_old_releases_open_dispute_is_held_until_its_own_events_say_it_was_won(
    stripe_emulator: StripeEmulator,
) -> None:
    session = paid_deposit(stripe_emulator, "alice", 1000)
    payment_id = session["metadata"]["paymentId"]
    old_row("alice", payment_id, "dispute", -1000)
    old_guard("alice", payment_id, refunded=0, disputed=1000, disputeStatus="needs_response", version=1)

    send(stripe_emulator, "charge.refunded", charge(session, 0))
    held = balance_is_the_sum_of_rows("alice")
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", "won"))

    assert held == 0
    assert balance_is_the_sum_of_rows("alice") == 1000


def test_a_state_written_with_one_legacy_count_keeps_it_as_refunded(stripe_emulator: StripeEmulator) -> None:
    # The release between wrote `legacyTaken` into its JSON state; it came from refunds.
    session = paid_deposit(stripe_emulator, "alice", 1000)
    payment_id = session["metadata"]["paymentId"]
    old_row("alice", payment_id, "refund", -300)
    state = {"refunds": {}, "chargeRefunded": 0, "chargeAmount": 0, "disputes": {}, "legacyTaken": 300}
    old_guard("alice", payment_id, state=json.dumps(state), taken=300, version=2)

    send(stripe_emulator, "charge.dispute.created", a_dispute(session, "dp_1", "needs_response", 700))
    send(stripe_emulator, "charge.dispute.closed", a_dispute(session, "dp_1", "won", 700))

    assert balance_is_the_sum_of_rows("alice") == 700

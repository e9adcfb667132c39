"""The hourly sweep replays Stripe's event log: whatever a lost webhook would have done is done, once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from devstack.stripe_emulator import StripeEmulator, checkout_sessions
from functions.reconcile.app import lambda_handler
from tests.checkout_flow import deliver, start_checkout
from tests.lambda_events import LambdaContext
from wallet import ledger, reconciliation, stripe_events
from wallet.errors import LedgerUnavailableError, PaymentsUnavailableError
from wallet.models import CreditTransaction
from wallet.outcomes import Outcome
from wallet.payments import Event
from wallet.sweep_records import FAILED, SWEEP_KEY, SweepRecord

pytestmark = pytest.mark.usefixtures("tables", "only_this_tests_events")
# The reconcile function's timeout in template.yaml.
SCHEDULED_RUN = LambdaContext(remaining_ms=300_000)
DAY = 24 * 3600


@pytest.fixture
def only_this_tests_events(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


def plenty_of_time() -> float:
    return 300.0


def time_for(calls: int) -> Callable[[], float]:
    """Plenty of time for `calls` looks at the clock, then none: a run cut short mid-way."""
    left: Iterator[float] = iter([300.0] * calls)
    return lambda: next(left, 1.0)


def paid_and_delivered(emulator: StripeEmulator, user: str, amount: int) -> str:
    session = start_checkout(user, amount)
    *_, completed = emulator.pay(session)
    deliver(emulator.sign(completed))
    return session


def metric_values(output: str) -> dict[str, float]:
    """The metrics Powertools printed as CloudWatch embedded-metric lines, by name."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for definition in record["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    value = record[metric["Name"]]
                    values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_a_delayed_payment_settled_five_days_after_checkout_is_credited_once(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bank debit opened five days ago, whose settlement webhook was lost
    five_days_ago = int(time.time()) - 5 * DAY
    with monkeypatch.context() as past:
        past.setattr(checkout_sessions, "now", lambda: five_days_ago)
        session = start_checkout("alice", 5000)
    [pending] = stripe_emulator.pay_later(session)
    deliver(stripe_emulator.sign(pending))
    stripe_emulator.settle(session)
    assert ledger.get_balance("alice") == 0

    # When the sweep runs twice
    first = lambda_handler({"source": "aws.scheduler"}, SCHEDULED_RUN)
    second = lambda_handler({"source": "aws.scheduler"}, SCHEDULED_RUN)

    # Then the payment is credited by the first, once
    assert (first["credited"], second["credited"]) == (1, 0)
    assert ledger.get_balance("alice") == 5000
    [row] = CreditTransaction.query("alice")
    assert row.stripe_session_id == session


def test_a_lost_refund_is_taken_back_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_and_delivered(stripe_emulator, "bob", 5000)
    stripe_emulator.refund(stripe_emulator.charge_of(session), 2000)

    first = reconciliation.sweep(plenty_of_time)
    second = reconciliation.sweep(plenty_of_time)

    assert (first.reversed, second.reversed) == (1, 0)
    assert first.credited == 0
    assert ledger.get_balance("bob") == 3000


def test_a_lost_dispute_is_taken_back_once(stripe_emulator: StripeEmulator) -> None:
    session = paid_and_delivered(stripe_emulator, "carol", 1000)
    stripe_emulator.open_dispute(stripe_emulator.charge_of(session))

    first = reconciliation.sweep(plenty_of_time)
    second = reconciliation.sweep(plenty_of_time)

    assert (first.reversed, second.reversed) == (1, 0)
    assert ledger.get_balance("carol") == 0


def test_only_events_since_the_checkpoint_are_asked_for(stripe_emulator: StripeEmulator) -> None:
    paid_and_delivered(stripe_emulator, "dave", 1000)
    reconciliation.sweep(plenty_of_time)
    stripe_emulator.pay(start_checkout("dave", 5000))

    later = reconciliation.sweep(plenty_of_time)

    # The session's checkout.session.completed, and its PaymentIntent's payment_intent.succeeded, which is
    # replayed for auto top-up's sake and left alone as a Checkout payment's.
    assert (later.replayed, later.credited) == (2, 1)
    assert ledger.get_balance("dave") == 6000
    listed = [r.params for r in stripe_emulator.requests if r.method == "GET" and r.path == "/v1/events"]
    assert listed[-1].get("ending_before") is not None
    assert sorted(listed[-1]["types"]) == sorted(stripe_events.REPLAYED)


def test_a_sweep_cut_short_resumes_from_its_checkpoint_without_replaying_twice(
    stripe_emulator: StripeEmulator,
) -> None:
    # A shopper per checkout: one user may open only CHECKOUTS_PER_HOUR an hour (wallet.rate_limits).
    for n in range(30):
        stripe_emulator.pay(start_checkout(f"erin-{n}", 1000))

    stopped = reconciliation.sweep(time_for(12))
    finished = reconciliation.sweep(plenty_of_time)

    assert stopped.finished is False
    assert 0 < stopped.credited < 30
    assert finished.finished is True
    # Each payment's checkout.session.completed and payment_intent.succeeded.
    assert stopped.replayed + finished.replayed == 2 * 30
    assert stopped.credited + finished.credited == 30
    assert sum(ledger.get_balance(f"erin-{n}") for n in range(30)) == 30_000


def test_the_sweep_pages_oldest_first_through_more_than_a_page(stripe_emulator: StripeEmulator) -> None:
    # A shopper per checkout: one user may open only CHECKOUTS_PER_HOUR an hour (wallet.rate_limits).
    for n in range(105):
        stripe_emulator.pay(start_checkout(f"fay-{n}", 1000))
    reconciliation.sweep(time_for(0))  # a first run with no time: nothing replayed, nothing saved
    for n in range(105, 210):
        stripe_emulator.pay(start_checkout(f"fay-{n}", 1000))

    first = reconciliation.sweep(plenty_of_time)

    assert first.credited == 210
    assert sum(ledger.get_balance(f"fay-{n}") for n in range(210)) == 210_000
    assert first.checkpoint == stripe_emulator.events[-1]["id"]


def test_one_failing_event_is_recorded_and_retried_without_stopping_the_rest(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, bad = stripe_emulator.pay(start_checkout("gina", 1000))
    stripe_emulator.pay(start_checkout("hugo", 1000))
    act_on = stripe_events.act_on

    def ledger_down_for_the_first(event: Event) -> Outcome:
        if event.id == bad["id"]:
            raise LedgerUnavailableError("a blip")
        return act_on(event)

    with monkeypatch.context() as outage:
        outage.setattr(stripe_events, "act_on", ledger_down_for_the_first)
        first = reconciliation.sweep(plenty_of_time)
    [failure] = SweepRecord.query(SWEEP_KEY, SweepRecord.guard_id.startswith(FAILED))
    second = reconciliation.sweep(plenty_of_time)
    third = reconciliation.sweep(plenty_of_time)

    assert (first.failed, first.credited, first.finished) == (1, 1, True)
    assert (failure.event_id, failure.reason, failure.attempts) == (bad["id"], "LedgerUnavailableError", 1)
    assert (second.retried, second.credited, second.failed) == (1, 1, 0)
    assert (third.replayed, third.credited) == (0, 0)
    assert (ledger.get_balance("gina"), ledger.get_balance("hugo")) == (1000, 1000)


def test_events_older_than_stripe_keeps_are_not_asked_for(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.pay(start_checkout("ivan", 1000))

    report = reconciliation.sweep(plenty_of_time, now=time.time() + 31 * DAY)

    assert report.replayed == 0
    [listed] = [r.params for r in stripe_emulator.requests if r.path == "/v1/events"]
    assert int(listed["created"]["gte"]) > time.time() + DAY


def test_stripe_down_fails_the_sweep_loudly(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.fail_next(3, status=500)

    with pytest.raises(PaymentsUnavailableError):
        reconciliation.sweep(plenty_of_time)


def test_a_webhook_the_sweep_makes_up_for_is_counted_for_the_alarm(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    session = paid_and_delivered(stripe_emulator, "judy", 1000)
    stripe_emulator.pay(start_checkout("judy", 5000))
    stripe_emulator.refund(stripe_emulator.charge_of(session))
    capsys.readouterr()

    lambda_handler({"source": "aws.scheduler"}, SCHEDULED_RUN)

    values = metric_values(capsys.readouterr().out)
    # Two checkout.session.completed and their payment_intent.succeeded; the refund's charge.refunded
    # and refund.created, one of which applies it.
    assert values["EventsReplayed"] == 6
    assert values["SweepCredited"] == 1
    assert values["SweepReversed"] == 1
    assert values["SweepFailures"] == 0


def test_the_audit_still_runs_from_the_same_function() -> None:
    report = lambda_handler({"task": "audit"}, SCHEDULED_RUN)

    assert report["drifts"] == []

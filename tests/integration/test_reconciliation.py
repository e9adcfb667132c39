"""The hourly sweep credits paid sessions whose webhook was lost, once, and nothing else."""

from __future__ import annotations

import time

import pytest

from devstack.stripe_emulator import StripeEmulator
from functions.reconcile.app import lambda_handler
from tests.checkout_flow import deliver, start_checkout
from tests.lambda_events import LambdaContext
from wallet import ledger, payments, reconciliation
from wallet.errors import PaymentsUnavailableError
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables", "only_this_tests_sessions")
# The reconcile function's timeout in template.yaml.
SCHEDULED_RUN = LambdaContext(remaining_ms=300_000)


@pytest.fixture
def only_this_tests_sessions(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


def plenty_of_time() -> float:
    return 300.0


def test_a_lost_webhook_is_credited_by_the_sweep_once(stripe_emulator: StripeEmulator) -> None:
    lost = start_checkout("alice", 5000)
    stripe_emulator.pay(lost)

    first = lambda_handler({"source": "aws.scheduler"}, SCHEDULED_RUN)
    second = lambda_handler({"source": "aws.scheduler"}, SCHEDULED_RUN)

    assert first["credited"] == 1
    assert second["credited"] == 0
    assert second["already_credited"] == 1
    assert ledger.get_balance("alice") == 5000
    [row] = CreditTransaction.query("alice")
    assert row.stripe_session_id == lost


def test_sessions_already_credited_by_the_webhook_change_nothing(stripe_emulator: StripeEmulator) -> None:
    [completed] = stripe_emulator.pay(start_checkout("bob", 1000))
    deliver(stripe_emulator.sign(completed))

    report = reconciliation.sweep(plenty_of_time)

    assert report.credited == 0
    assert ledger.get_balance("bob") == 1000


def test_unpaid_expired_and_foreign_sessions_are_left_alone(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.pay_later(start_checkout("carol", 1000))
    stripe_emulator.expire(start_checkout("carol", 5000))
    foreign = stripe_emulator.client().v1.checkout.sessions.create(
        {
            "mode": "payment",
            "success_url": "https://elsewhere.example/ok",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {"currency": "usd", "unit_amount": 700, "product_data": {"name": "Mug"}},
                }
            ],
        }
    )
    stripe_emulator.pay(foreign.id)

    report = reconciliation.sweep(plenty_of_time)

    assert report.credited == 0
    assert report.not_ours >= 1
    assert ledger.get_balance("carol") == 0


def test_sessions_older_than_72_hours_are_not_listed(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.pay(start_checkout("dave", 1000))

    report = reconciliation.sweep(plenty_of_time, now=time.time() + 73 * 3600)

    assert report.paid_sessions == 0
    assert ledger.get_balance("dave") == 0


def test_the_sweep_pages_through_every_session(stripe_emulator: StripeEmulator) -> None:
    for _ in range(105):
        stripe_emulator.pay(start_checkout("erin", 1000))

    report = reconciliation.sweep(plenty_of_time)

    assert report.credited == 105
    assert ledger.get_balance("erin") == 105_000
    assert any(r.params.get("starting_after") for r in stripe_emulator.requests if r.method == "GET")


def test_the_sweep_stops_in_time_and_the_next_one_finishes(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.pay(start_checkout("frank", 1000))

    stopped = reconciliation.sweep(lambda: 1.0)
    finished = reconciliation.sweep(plenty_of_time)

    assert (stopped.finished, stopped.credited) == (False, 0)
    assert (finished.finished, finished.credited) == (True, 1)


def test_stripe_down_fails_the_sweep_loudly(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.fail_next(3, status=500)

    with pytest.raises(PaymentsUnavailableError):
        reconciliation.sweep(plenty_of_time)


def test_only_paid_sessions_are_listed(stripe_emulator: StripeEmulator) -> None:
    paid = start_checkout("gina", 1000)
    stripe_emulator.pay(paid)
    stripe_emulator.pay_later(start_checkout("gina", 1000))

    listed = [s.id for s in payments.paid_checkout_sessions(int(time.time()) - 60)]

    assert paid in listed
    assert len(listed) == len(set(listed))

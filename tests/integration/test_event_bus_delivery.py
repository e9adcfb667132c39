"""The local stand-in for Stripe's partner event bus: the emulator's events in EventBridge's envelope,
handed to the EventBridge function with the webhook sender's retries and drain; and `make run
STRIPE_EVENTS=eventbridge`, which credits a top-up through it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from devstack.stripe_emulator import StripeEmulator
from devstack.webhook_delivery import EventBusSender
from functions.stripe_webhook.app import eventbridge_handler
from tests.checkout_flow import start_checkout
from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, settle
from tests.lambda_events import LambdaContext
from wallet import ledger
from wallet.models import CreditTransaction
from wallet.stripe_events import ENDPOINT_EVENTS

FAST = (0.01, 0.01)
SOURCE = os.environ["STRIPE_EVENT_SOURCE"]


@contextmanager
def emulator_delivering_to(bus: EventBusSender) -> Iterator[StripeEmulator]:
    """The Stripe emulator the SDK talks to, as the suite's own, handing its events to the local bus."""
    from wallet import payments

    emulator = StripeEmulator(
        api_key=os.environ["STRIPE_SECRET_KEY"],
        webhook_secret=os.environ["STRIPE_WEBHOOK_SECRET"],
        deliver=bus,
    )
    # The suite's session emulator is what every later test talks to: point the SDK back at it after.
    suites = os.environ.get("STRIPE_API_BASE")
    with emulator:
        os.environ["STRIPE_API_BASE"] = emulator.api_base
        payments.stripe_client.cache_clear()
        try:
            yield emulator
        finally:
            if suites is None:
                os.environ.pop("STRIPE_API_BASE", None)
            else:
                os.environ["STRIPE_API_BASE"] = suites
            payments.stripe_client.cache_clear()


class Target:
    """The EventBridge function, failing the first `failures` invocations as an unreachable ledger would."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.envelopes: list[dict[str, Any]] = []

    def __call__(self, envelope: dict[str, Any]) -> object:
        self.envelopes.append(envelope)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the ledger could not be reached")
        return eventbridge_handler(envelope, LambdaContext())


@pytest.mark.usefixtures("tables")
def test_a_failed_invocation_is_retried_and_the_payment_credited_once() -> None:
    target = Target(failures=1)
    with (
        EventBusSender(target, SOURCE, ENDPOINT_EVENTS, retry_delays=FAST) as bus,
        emulator_delivering_to(bus) as emulator,
    ):
        *_, completed = emulator.pay(start_checkout("alice", 5000))
        emulator.drain()

    first = target.envelopes[0]
    assert [a.succeeded for a in bus.attempts if a.event_id == first["detail"]["id"]] == [False, True]
    # Only what the rule's pattern names reaches the function: the event table's types.
    assert {e["detail-type"] for e in target.envelopes} <= set(ENDPOINT_EVENTS)
    assert "charge.succeeded" not in {a.event_type for a in bus.attempts}
    assert ledger.get_balance("alice") == 5000
    assert len(list(CreditTransaction.query("alice"))) == 1
    # EventBridge's envelope (docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html).
    mine = [e for e in target.envelopes if e["detail"]["id"] == completed["id"]]
    assert {(e["source"], e["detail-type"]) for e in mine} == {(SOURCE, "checkout.session.completed")}
    assert set(mine[0]) == {
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


@pytest.mark.usefixtures("tables")
def test_every_event_delivered_twice_credits_once() -> None:
    target = Target()
    with (
        EventBusSender(target, SOURCE, ENDPOINT_EVENTS, retry_delays=FAST, twice=True) as bus,
        emulator_delivering_to(bus) as emulator,
    ):
        *_, completed = emulator.pay(start_checkout("alice", 1000))
        emulator.drain()

    assert len([e for e in target.envelopes if e["detail"]["id"] == completed["id"]]) == 2
    assert ledger.get_balance("alice") == 1000


@pytest.mark.parametrize("source", ["", "aws.partner/example.com/x", "com.example"])
def test_only_a_stripe_partner_source_is_taken(source: str) -> None:
    with pytest.raises(ValueError, match="partner event source"):
        EventBusSender(Target(), source, ENDPOINT_EVENTS)


@pytest.fixture(scope="module")
def eventbridge_stack() -> Iterator[DevStackProcess]:
    with DevStackProcess({"STRIPE_EVENTS": "eventbridge"}) as running:
        yield running


def test_make_run_with_eventbridge_credits_a_top_up_through_the_bus(
    eventbridge_stack: DevStackProcess,
) -> None:
    alice = Shopper(eventbridge_stack, "alice-eventbridge")
    session = alice.checkout(5000)

    alice.on_checkout_page(session, "pay")
    settle(eventbridge_stack)

    assert "events go to the partner event bus aws.partner/stripe.com/" in eventbridge_stack.log()
    [deposit] = alice.balance()["transactions"]
    assert (deposit["type"], deposit["amount"], deposit["paymentId"]) == (
        "deposit",
        5000,
        session["paymentId"],
    )

"""The sample events in events/ are Stripe-shaped, and the webhook treats each one as the table says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.stripe_emulator import StripeEmulator, fixture
from functions.stripe_webhook.app import lambda_handler
from tests.checkout_flow import deliver
from tests.lambda_events import invoke
from wallet import ledger

EVENTS = Path(__file__).resolve().parents[2] / "events"
CREDITS = {
    "checkout.session.completed.json": 5000,
    "checkout.session.completed.unpaid.json": 0,
    "checkout.session.async_payment_succeeded.json": 5000,
    "checkout.session.async_payment_failed.json": 0,
    "checkout.session.expired.json": 0,
}


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / "stripe" / name).read_text())
    return loaded


def test_every_sample_event_is_listed() -> None:
    assert sorted(p.name for p in (EVENTS / "stripe").glob("*.json")) == sorted(CREDITS)


@pytest.mark.parametrize("name", sorted(CREDITS))
def test_sample_events_have_the_keys_of_stripes_own_objects(name: str) -> None:
    event = sample(name)

    assert set(event) == set(fixture("event"))
    assert set(event["data"]["object"]) == set(fixture("checkout.session"))
    assert event["type"] == name.removesuffix(".json").removesuffix(".unpaid")


@pytest.mark.usefixtures("tables")
@pytest.mark.parametrize(("name", "credits"), sorted(CREDITS.items()))
def test_the_webhook_credits_only_the_paid_samples(
    stripe_emulator: StripeEmulator, name: str, credits: int
) -> None:
    response = deliver(stripe_emulator.sign(sample(name)))

    assert response.status == 200
    assert ledger.get_balance("user-123") == credits


@pytest.mark.usefixtures("tables")
def test_the_sample_webhook_request_is_refused_for_its_placeholder_signature() -> None:
    request = json.loads((EVENTS / "api_post_stripe_webhook.json").read_text())

    response = invoke(lambda_handler, request)

    assert json.loads(request["body"])["type"] == "checkout.session.completed"
    assert response.status == 400
    assert ledger.get_balance("user-123") == 0

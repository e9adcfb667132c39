"""The page routes that call Stripe are limited per signed-in user and hour: one user past the limit is
answered 429 before Stripe is called, and everyone else is untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devstack.stripe_emulator import StripeEmulator
from functions.auto_top_up.app import lambda_handler as auto_top_up_routes
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.integration.test_auto_top_up_stripe import _routes_event
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import rate_limits
from wallet.errors import TooManyCheckoutsError

pytestmark = pytest.mark.usefixtures("tables")


def open_checkout(user: str) -> HttpResponse:
    return invoke(
        create_checkout, api_event("POST", "/api/checkout", user=user, body=json.dumps({"amount": 1000}))
    )


def set_up_card(user: str) -> HttpResponse:
    return invoke(auto_top_up_routes, _routes_event("POST", "/api/payment-method", user))


@pytest.mark.parametrize(
    ("start", "limit", "code"),
    [
        (open_checkout, rate_limits.CHECKOUTS_PER_HOUR, "too_many_checkouts"),
        (set_up_card, rate_limits.CARD_SETUPS_PER_HOUR, "too_many_card_setups"),
    ],
)
def test_one_user_past_the_hourly_limit_gets_429_and_stripe_is_not_called(
    stripe_emulator: StripeEmulator, start: object, limit: int, code: str
) -> None:
    assert callable(start)
    answers = [start("alice").status for _ in range(limit)]
    calls = len(stripe_emulator.requests)

    refused = start("alice")

    assert answers == [201] * limit
    assert (refused.status, refused.body["error"]["code"]) == (429, code)
    assert "try again later" in refused.body["error"]["message"]
    assert len(stripe_emulator.requests) == calls
    assert start("bob").status == 201


def test_the_count_starts_again_each_hour() -> None:
    now = datetime(2026, 12, 4, 16, 59, tzinfo=UTC)
    for _ in range(2):
        rate_limits.count("alice", "checkouts", 2, TooManyCheckoutsError, now)

    with pytest.raises(TooManyCheckoutsError):
        rate_limits.count("alice", "checkouts", 2, TooManyCheckoutsError, now)
    rate_limits.count("alice", "checkouts", 2, TooManyCheckoutsError, now + timedelta(minutes=1))

"""GET /api/checkout/{sessionId}: a credited session is answered from the ledger without Stripe, and
made-up ids cost Stripe nothing beyond a small hourly allowance per user."""

from __future__ import annotations

import pytest

from devstack.stripe_emulator import StripeEmulator
from functions.create_checkout.app import lambda_handler
from tests.checkout_flow import deliver, start_checkout
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import ledger, session_lookups

pytestmark = pytest.mark.usefixtures("tables", "fresh_emulator")


@pytest.fixture
def fresh_emulator(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


def checkout_status(user: str, session_id: str) -> HttpResponse:
    path = {"sessionId": session_id}
    return invoke(
        lambda_handler, api_event("GET", "/api/checkout/{sessionId}", user=user, path_parameters=path)
    )


def stripe_lookups(emulator: StripeEmulator) -> int:
    return sum(
        1 for r in emulator.requests if r.method == "GET" and r.path.startswith("/v1/checkout/sessions/")
    )


def test_a_credited_session_is_answered_without_asking_stripe(stripe_emulator: StripeEmulator) -> None:
    session = start_checkout("alice", 5000)
    *_, completed = stripe_emulator.pay(session)
    deliver(stripe_emulator.sign(completed))

    response = checkout_status("alice", session)

    assert (response.status, response.body) == (
        200,
        {"status": "complete", "paymentStatus": "paid", "credited": True, "amount": 5000},
    )
    assert stripe_lookups(stripe_emulator) == 0
    assert ledger.get_balance("alice") == 5000


def test_another_users_credited_session_is_not_found_without_asking_stripe(
    stripe_emulator: StripeEmulator,
) -> None:
    session = start_checkout("alice", 1000)
    *_, completed = stripe_emulator.pay(session)
    deliver(stripe_emulator.sign(completed))

    response = checkout_status("mallory", session)

    assert (response.status, response.body["error"]["code"]) == (404, "not_found")
    assert stripe_lookups(stripe_emulator) == 0


@pytest.mark.parametrize("junk", ["pi_123", "cs_", "cs_../../v1/charges", "x" * 300, "cs_a b"])
def test_ids_that_are_not_checkout_sessions_cost_nothing(stripe_emulator: StripeEmulator, junk: str) -> None:
    response = checkout_status("alice", junk)

    assert response.status == 404
    assert stripe_emulator.requests == []


def test_made_up_session_ids_stop_reaching_stripe_past_the_hourly_allowance(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_lookups, "STRIPE_LOOKUPS_PER_HOUR", 3)

    answers = [checkout_status("mallory", f"cs_test_madeup{n}").status for n in range(10)]
    someone_else = checkout_status("alice", "cs_test_madeup0").status

    assert answers == [404] * 3 + [429] * 7
    assert someone_else == 404
    assert stripe_lookups(stripe_emulator) == 4

"""POST /api/checkout and GET /api/checkout/{sessionId}, through the real handler and Stripe SDK."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import stripe
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from functions.create_checkout.app import lambda_handler
from tests.checkout_flow import start_checkout, webhook_request
from tests.lambda_events import HttpResponse, api_event, invoke
from tests.lambda_pool import Containers
from wallet import ledger, marker, settings
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")

ALLOWED = "1000, 5000, 10000"


def post_checkout(body: str | bytes, user: str | None = "alice") -> HttpResponse:
    return invoke(lambda_handler, api_event("POST", "/api/checkout", user=user, body=body))


def get_checkout(session_id: str, user: str | None = "alice") -> HttpResponse:
    path = {"sessionId": session_id}
    return invoke(
        lambda_handler, api_event("GET", "/api/checkout/{sessionId}", user=user, path_parameters=path)
    )


def sdk(emulator: StripeEmulator) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_emulator", base_addresses={"api": emulator.api_base})


def stripe_calls(emulator: StripeEmulator) -> int:
    return len(emulator.requests)


def test_a_checkout_session_for_a_pack_carries_the_user_and_payment(stripe_emulator: StripeEmulator) -> None:
    response = post_checkout(json.dumps({"amount": 5000, "userId": "mallory"}))

    assert response.status == 201
    assert set(response.body) == {"sessionId", "url", "paymentId"}
    payment_id = response.body["paymentId"]
    ULID.from_str(payment_id)
    created = stripe_emulator.requests[-1]
    session = sdk(stripe_emulator).v1.checkout.sessions.retrieve(response.body["sessionId"]).to_dict()
    metadata = {"userId": "alice", "amount": "5000", "paymentId": payment_id}
    metadata["creditsMark"] = marker.mark(
        settings.fulfilment_keys()[0],
        user_id="alice",
        payment_id=payment_id,
        credits=5000,
        amount=5000,
        currency="usd",
    )
    assert session["url"] == response.body["url"]
    assert (session["mode"], session["amount_total"], session["currency"]) == ("payment", 5000, "usd")
    assert session["metadata"] == metadata
    assert session["client_reference_id"] == "alice"
    assert session["success_url"] == (
        "https://credits.example.test/dashboard/credits/?checkout=success&session_id={CHECKOUT_SESSION_ID}"
    )
    assert session["cancel_url"] == "https://credits.example.test/dashboard/credits/?checkout=cancelled"
    assert (created.method, created.path, created.idempotency_key) == (
        "POST",
        "/v1/checkout/sessions",
        payment_id,
    )
    assert created.params["payment_intent_data"]["metadata"] == metadata
    assert created.params["line_items"][0]["price_data"]["unit_amount"] == "5000"
    # Named in the page's own units, as its pack reads: "$50", "Adds $50.00".
    assert created.params["line_items"][0]["price_data"]["product_data"]["name"] == "Credits worth $50"
    # Adaptive Pricing off per session, never left to the Dashboard: the customer pays in the mark's currency.
    assert created.params["adaptive_pricing"] == {"enabled": "false"}
    assert session["adaptive_pricing"] == {"enabled": False}


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        '{"amount": "5000"}',
        '{"amount": 50.0}',
        '{"amount": -5000}',
        '{"amount": 0}',
        '{"amount": 499}',
        '{"amount": 100001}',
        '{"amount": 4999.5}',
        '{"amount": true}',
        '{"amount": null}',
        '{"amount": [5000]}',
    ],
)
def test_an_amount_that_is_not_a_pack_is_a_400_listing_the_packs(
    stripe_emulator: StripeEmulator, body: str
) -> None:
    before = stripe_calls(stripe_emulator)

    response = post_checkout(body)

    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_amount"
    assert ALLOWED in response.body["error"]["message"]
    assert stripe_calls(stripe_emulator) == before


@pytest.mark.parametrize(
    "body", ["", "not json", "[5000]", '"5000"', b"\xff\xfe", json.dumps({"amount": 5000, "pad": "x" * 8200})]
)
def test_a_body_that_is_not_a_small_json_object_is_a_400(
    stripe_emulator: StripeEmulator, body: str | bytes
) -> None:
    before = stripe_calls(stripe_emulator)

    response = (
        post_checkout(body)
        if body != b"\xff\xfe"
        else invoke(
            lambda_handler, api_event("POST", "/api/checkout", user="alice", body=body, base64_body=True)
        )
    )

    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_body"
    assert stripe_calls(stripe_emulator) == before


def test_without_a_verified_user_it_is_a_401(stripe_emulator: StripeEmulator) -> None:
    before = stripe_calls(stripe_emulator)

    assert post_checkout('{"amount": 5000}', user=None).status == 401
    assert get_checkout("cs_test_abc", user=None).status == 401
    assert stripe_calls(stripe_emulator) == before


def test_stripe_failing_is_a_502_that_names_no_internals(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.fail_next(3, status=500)

    response = post_checkout('{"amount": 5000}')

    assert response.status == 502
    assert response.body["error"]["code"] == "stripe_unavailable"
    assert "sk_test" not in json.dumps(response.body)
    assert "api_error" not in json.dumps(response.body)


def test_a_transient_stripe_error_is_retried_by_the_sdk(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.fail_next(1, status=500)

    assert post_checkout('{"amount": 1000}').status == 201


def test_back_from_a_paid_checkout_the_session_is_credited(stripe_emulator: StripeEmulator) -> None:
    session_id = start_checkout("alice", 5000)
    stripe_emulator.pay(session_id)

    response = get_checkout(session_id)

    assert (response.status, response.body) == (
        200,
        {"status": "complete", "paymentStatus": "paid", "credited": True, "amount": 5000},
    )
    assert ledger.get_balance("alice") == 5000
    assert get_checkout(session_id).body["credited"] is True
    assert ledger.get_balance("alice") == 5000


def test_an_open_or_pending_session_is_not_credited_yet(stripe_emulator: StripeEmulator) -> None:
    open_session = start_checkout("alice", 1000)
    pending_session = start_checkout("alice", 1000)
    stripe_emulator.pay_later(pending_session)

    assert get_checkout(open_session).body == {
        "status": "open",
        "paymentStatus": "unpaid",
        "credited": False,
        "amount": 1000,
    }
    assert get_checkout(pending_session).body["status"] == "complete"
    assert get_checkout(pending_session).body["credited"] is False
    assert ledger.get_balance("alice") == 0


@pytest.mark.parametrize(
    "session_id", ["cs_test_doesnotexist", "not-a-session", "cs_" + "a" * 300, "cs_../../v1"]
)
def test_an_unknown_session_is_a_404(stripe_emulator: StripeEmulator, session_id: str) -> None:
    response = get_checkout(session_id)

    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"


def test_another_users_session_is_a_404_and_is_not_credited(stripe_emulator: StripeEmulator) -> None:
    session_id = start_checkout("alice", 5000)
    stripe_emulator.pay(session_id)

    response = get_checkout(session_id, user="mallory")

    assert response.status == 404
    assert ledger.get_balance("alice") == ledger.get_balance("mallory") == 0


def test_stripe_failing_on_retrieve_is_a_502(stripe_emulator: StripeEmulator) -> None:
    session_id = start_checkout("alice", 5000)
    stripe_emulator.fail_next(3, status=503)

    response = get_checkout(session_id)

    assert response.status == 502
    assert response.body["error"]["code"] == "stripe_unavailable"


def test_the_success_page_racing_the_webhook_credits_once(
    stripe_emulator: StripeEmulator, containers: Containers
) -> None:
    session_id = start_checkout("alice", 10000)
    *_, completed = stripe_emulator.pay(session_id)
    delivery = ("stripe_webhook", webhook_request(stripe_emulator.sign(completed)))
    path = {"sessionId": session_id}
    success_page = (
        "create_checkout",
        api_event("GET", "/api/checkout/{sessionId}", user="alice", path_parameters=path),
    )

    responses = containers.invoke_all([delivery, success_page] * 16)

    assert Counter(status for status, _ in responses) == {200: 32}
    assert ledger.get_balance("alice") == 10000
    assert len(list(CreditTransaction.query("alice"))) == 1

"""GET /api/payments/{paymentId}/documents: a top-up's receipt and, with InvoicesEnabled, its paid invoice,
through the real handlers, the Stripe SDK and the emulator's pages."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator, invoices
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.checkout_flow import deliver, start_checkout
from tests.integration.test_stripe_emulator_after_payment import all_fit
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import ledger, rate_limits, receipts, settings
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


@pytest.fixture
def invoices_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INVOICES_ENABLED", "true")
    settings.invoices_enabled.cache_clear()
    yield
    settings.invoices_enabled.cache_clear()


@pytest.fixture(autouse=True)
def invoices_setting_read_afresh() -> Iterator[None]:
    settings.invoices_enabled.cache_clear()
    yield
    settings.invoices_enabled.cache_clear()


def documents(payment_id: str, user: str | None = "alice") -> HttpResponse:
    return invoke(
        create_checkout,
        api_event(
            "GET",
            "/api/payments/{paymentId}/documents",
            user=user,
            path_parameters={"paymentId": payment_id},
        ),
    )


def paid_top_up(emulator: StripeEmulator, user: str = "alice", amount: int = 1000) -> tuple[str, str]:
    """A top-up bought on Checkout and credited by its webhook: (session id, payment id)."""
    session_id = start_checkout(user, amount)
    *_, completed = emulator.pay(session_id)
    assert deliver(emulator.sign(completed)).status == 200
    payment_id = completed["data"]["object"]["metadata"]["paymentId"]
    return session_id, payment_id


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.headers["Content-Type"], answer.read()


def test_a_checkout_top_up_links_stripes_receipt_and_no_invoice_when_invoices_are_off(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given a top-up paid on Checkout and credited
    session_id, payment_id = paid_top_up(stripe_emulator)
    charge = stripe_emulator.charge_of(session_id)

    # When its owner asks for its documents
    response = documents(payment_id)

    # Then the receipt is the charge's, and there is no invoice
    assert response.status == 200
    assert response.body == {
        "paymentId": payment_id,
        "receiptUrl": f"{stripe_emulator.public_base_url}/receipts/{charge}",
        "invoiceUrl": None,
        "invoicePdf": None,
    }
    status, kind, page = fetch(response.body["receiptUrl"])
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert b"10.00 USD" in page
    # And the session asked for no invoice, nor for an address or tax id
    session = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id).to_dict()
    assert session["invoice_creation"]["enabled"] is False
    assert session["billing_address_collection"] is None


@pytest.mark.usefixtures("invoices_on")
def test_with_invoices_on_checkout_makes_a_paid_invoice_the_deposit_remembers(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given a top-up paid on Checkout while InvoicesEnabled is on
    session_id, payment_id = paid_top_up(stripe_emulator)
    session = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id).to_dict()

    # Then the session asked for the invoice, the billing address and a tax id
    create = next(
        r
        for r in reversed(stripe_emulator.requests)
        if r.method == "POST" and r.path == "/v1/checkout/sessions"
    )
    assert create.params["invoice_creation"] == {
        "enabled": "true",
        "invoice_data": {"metadata": {"paymentId": payment_id, "userId": "alice"}},
    }
    assert create.params["billing_address_collection"] == "required"
    assert create.params["tax_id_collection"] == {"enabled": "true"}
    # And the deposit row names the invoice the session's event carried
    assert CreditTransaction.get("alice", payment_id).stripe_invoice_id == session["invoice"]

    # When its owner asks for its documents: the invoice's page and PDF besides the receipt
    requests_before = len(stripe_emulator.requests)
    response = documents(payment_id)

    assert response.status == 200
    invoice = session["invoice"]
    assert response.body["invoiceUrl"] == f"{stripe_emulator.public_base_url}/invoices/{invoice}"
    assert response.body["invoicePdf"] == f"{stripe_emulator.public_base_url}/invoices/{invoice}/pdf"
    assert response.body["receiptUrl"] is not None
    # Two Stripe calls: the payment's charges and the invoice (the row named it: no session read)
    assert [r.path for r in stripe_emulator.requests[requests_before:]] == [
        "/v1/charges",
        f"/v1/invoices/{invoice}",
    ]
    status, kind, page = fetch(response.body["invoiceUrl"])
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert b"paid" in page
    status, kind, pdf = fetch(response.body["invoicePdf"])
    assert (status, kind) == (200, "application/pdf")
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")


@pytest.mark.usefixtures("invoices_on")
def test_a_deposit_recorded_without_its_invoice_finds_it_through_its_session(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given a deposit whose row was written without its invoice (an earlier release), though it has one
    session_id, payment_id = paid_top_up(stripe_emulator)
    row = CreditTransaction.get("alice", payment_id)
    row.stripe_invoice_id = None
    row.save()

    response = documents(payment_id)

    invoice = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id).to_dict()["invoice"]
    assert response.body["invoiceUrl"] == f"{stripe_emulator.public_base_url}/invoices/{invoice}"


def test_an_auto_top_up_links_the_receipt_of_its_off_session_charge(stripe_emulator: StripeEmulator) -> None:
    # Given an auto top-up: a PaymentIntent charged to a saved card, credited by its id
    client = stripe_emulator.client()
    customer = client.v1.customers.create({"metadata": {"userId": "alice"}})
    stripe_emulator.save_card(customer.id)
    [method] = stripe_emulator_payment_methods(stripe_emulator, customer.id)
    intent = client.v1.payment_intents.create(
        {
            "amount": 1000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method["id"],
            "off_session": True,
            "confirm": True,
            "metadata": {"source": "auto_top_up"},
        }
    )
    payment_id = str(ULID())
    ledger.add_credits(
        "alice",
        1000,
        source="auto_top_up",
        payment_id=payment_id,
        currency="usd",
        stripe_payment_intent_id=intent.id,
    )

    response = documents(payment_id)

    assert response.status == 200
    assert response.body["receiptUrl"] == f"{stripe_emulator.public_base_url}/receipts/{intent.latest_charge}"
    assert response.body["invoiceUrl"] is None


def stripe_emulator_payment_methods(emulator: StripeEmulator, customer: str) -> list[dict[str, Any]]:
    """The saved cards of `customer`, as `payment_method.attached` announced them."""
    return [
        event["data"]["object"]
        for event in emulator.events
        if event["type"] == "payment_method.attached" and event["data"]["object"]["customer"] == customer
    ]


def test_an_old_deposit_with_no_stripe_ids_answers_no_links_without_asking_stripe(
    stripe_emulator: StripeEmulator,
) -> None:
    payment_id = str(ULID())
    ledger.add_credits("alice", 500, source="stripe_payment", payment_id=payment_id, currency="usd")
    requests_before = len(stripe_emulator.requests)

    response = documents(payment_id)

    assert response.status == 200
    assert response.body == {
        "paymentId": payment_id,
        "receiptUrl": None,
        "invoiceUrl": None,
        "invoicePdf": None,
    }
    assert len(stripe_emulator.requests) == requests_before


def test_nobody_gets_another_users_receipt_and_only_deposits_have_one(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given alice's top-up and a spend of hers
    _, payment_id = paid_top_up(stripe_emulator)
    spend = ledger.spend("alice", 100, idempotency_key="k", description="x", actor="svc", currency="usd")
    requests_before = len(stripe_emulator.requests)

    # Then bob asking for alice's payment, anyone asking for a spend or a made-up id, is told there is none
    for payment, user in ((payment_id, "bob"), (spend.transaction_id, "alice"), (str(ULID()), "alice")):
        response = documents(payment, user)
        assert (response.status, response.body["error"]["code"]) == (404, "not_found")
    for malformed in ("x", "0" * 27, "01K" + "!" * 23, "%23" + payment_id):
        assert documents(malformed).status == 404
    # And nothing of it reached Stripe
    assert len(stripe_emulator.requests) == requests_before
    assert documents(payment_id, None).status == 401


def test_a_user_asking_past_the_hourly_limit_is_refused(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, payment_id = paid_top_up(stripe_emulator)
    monkeypatch.setattr(receipts, "RECEIPTS_PER_HOUR", 2)

    answers = [documents(payment_id).status for _ in range(3)]

    assert answers == [200, 200, 429]
    assert rate_limits.CHECKOUTS_PER_HOUR == 20  # a separate count: checkouts are not used up


def test_stripe_unreachable_is_a_502(stripe_emulator: StripeEmulator) -> None:
    _, payment_id = paid_top_up(stripe_emulator)
    stripe_emulator.fail_next(count=3, status=500)

    response = documents(payment_id)

    assert (response.status, response.body["error"]["code"]) == (502, "stripe_unavailable")


@pytest.mark.usefixtures("invoices_on")
def test_the_emulators_invoice_has_every_field_of_the_sdks_invoice_and_its_types(
    stripe_emulator: StripeEmulator,
) -> None:
    session_id, _ = paid_top_up(stripe_emulator)
    invoice_id = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id).invoice
    assert isinstance(invoice_id, str)

    invoice = stripe_emulator.client().v1.invoices.retrieve(invoice_id).to_dict()

    assert (
        set(invoice) == set(stripe.Invoice.__annotations__) - {"OBJECT_NAME"} == set(invoices.INVOICE_FIELDS)
    )
    assert all_fit(invoice, stripe.Invoice) == []
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_remaining"]) == ("paid", 1000, 0)


@pytest.mark.usefixtures("invoices_on")
def test_a_checkout_that_saves_the_card_updates_the_customer_the_invoice_names(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given invoices on, a checkout that also saves the card for auto top-up: the user's own Customer
    response = invoke(
        create_checkout,
        api_event("POST", "/api/checkout", user="alice", body='{"amount": 1000, "saveCard": true}'),
    )
    assert response.status == 201, response.body

    create = next(
        r
        for r in reversed(stripe_emulator.requests)
        if r.method == "POST" and r.path == "/v1/checkout/sessions"
    )
    # Then Checkout updates that customer's name and address from what the page took, for the invoice
    assert create.params["customer"].startswith("cus_")
    assert create.params["customer_update"] == {"address": "auto", "name": "auto"}
    assert create.params["invoice_creation"]["enabled"] == "true"
    assert create.params["tax_id_collection"] == {"enabled": "true"}

"""PaymentIntents: the one Checkout makes for a session on the customer's first attempt to pay."""

from __future__ import annotations

import copy

from devstack.stripe_emulator.fixtures import JsonObject, new_id, now, stripe_object
from devstack.stripe_emulator.store import CheckoutRecord


def new_payment_intent(record: CheckoutRecord) -> JsonObject:
    session = record.session
    intent_id = new_id("pi_")
    return stripe_object(
        "payment_intent",
        amount=session["amount_total"],
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        application=None,
        application_fee_amount=None,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method="automatic_async",
        client_secret=f"{intent_id}_secret_{new_id('', 25)}",
        confirmation_method="automatic",
        created=now(),
        currency=session["currency"],
        customer=None,
        customer_account=None,
        description=record.payment_intent_data.get("description"),
        excluded_payment_method_types=None,
        id=intent_id,
        last_payment_error=None,
        latest_charge=None,
        livemode=False,
        managed_payments=None,
        metadata=dict(record.payment_intent_data.get("metadata", {})),
        next_action=None,
        object="payment_intent",
        on_behalf_of=None,
        payment_method=None,
        payment_method_configuration_details=dict(session["payment_method_configuration_details"]),
        payment_method_options=copy.deepcopy(session["payment_method_options"]),
        payment_method_types=list(session["payment_method_types"]),
        processing=None,
        receipt_email=None,
        review=None,
        setup_future_usage=None,
        shipping=None,
        source=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="requires_payment_method",
        transfer_data=None,
        transfer_group=None,
    )


def attempt(record: CheckoutRecord) -> JsonObject:
    """The session's PaymentIntent, made on the customer's first attempt to pay, as Checkout does."""
    if record.payment_intent is None:
        record.payment_intent = new_payment_intent(record)
        record.session["payment_intent"] = record.payment_intent["id"]
    return record.payment_intent


def succeed(intent: JsonObject) -> None:
    intent.update(
        status="succeeded",
        amount_received=intent["amount"],
        payment_method=intent["payment_method"] or new_id("pm_"),
        latest_charge=(intent["latest_charge"] if intent["status"] == "processing" else new_id("ch_")),
        last_payment_error=None,
    )


def start_processing(intent: JsonObject) -> None:
    """A bank debit was submitted: the money arrives later (or not)."""
    intent.update(
        status="processing",
        payment_method=new_id("pm_"),
        latest_charge=new_id("py_"),
        last_payment_error=None,
    )


def fail(intent: JsonObject) -> None:
    intent.update(
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={
            "code": "payment_intent_payment_attempt_failed",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
            "message": "The latest payment attempt of this PaymentIntent has failed.",
            "type": "invalid_request_error",
        },
    )


def decline(intent: JsonObject) -> None:
    intent.update(
        status="requires_payment_method",
        payment_method=None,
        latest_charge=new_id("ch_"),
        last_payment_error={
            "code": "card_declined",
            "decline_code": "generic_decline",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card was declined.",
            "type": "card_error",
        },
    )


def cancel(intent: JsonObject) -> None:
    intent.update(status="canceled", canceled_at=now(), cancellation_reason="abandoned")

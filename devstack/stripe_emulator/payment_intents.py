"""PaymentIntents: the one Checkout makes for a session on the customer's first attempt to pay, and the
off-session ones `POST /v1/payment_intents` makes with a saved card.

Paid, it makes its Charge (`latest_charge`), with its metadata (the session's `payment_intent_data`), and
Stripe's `charge.succeeded` then `payment_intent.succeeded` are sent. A failed attempt (a decline, or an
off-session card that asks for authentication nobody can give) leaves it `requires_payment_method` with
its `last_payment_error`, as at Stripe. Every field is Stripe's for its state, null where nothing set it.
`GET /v1/payment_intents/{id}` shows it. Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy
from typing import Any

from devstack.stripe_emulator import charges, customers
from devstack.stripe_emulator.errors import StripeApiError, invalid, missing, no_such
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, METADATA, conform, expands
from devstack.stripe_emulator.store import CheckoutRecord, Store


def _payment_intent(**values: Any) -> JsonObject:
    """A PaymentIntent awaiting its payment method, as Stripe makes one, with `values` filled in.

    Every field starts as Stripe's own for a new PaymentIntent (null where nothing set it), never as its
    example's placeholders.
    """
    intent_id = new_id("pi_")
    defaults: JsonObject = {
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": now(),
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "id": intent_id,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "object": "payment_intent",
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    return stripe_object("payment_intent", **(defaults | values))


def new_payment_intent(record: CheckoutRecord) -> JsonObject:
    session = record.session
    return _payment_intent(
        amount=session["amount_total"],
        currency=session["currency"],
        customer=session["customer"],
        description=record.payment_intent_data.get("description"),
        metadata=dict(record.payment_intent_data.get("metadata", {})),
        payment_method_configuration_details=dict(session["payment_method_configuration_details"]),
        payment_method_options=copy.deepcopy(session["payment_method_options"]),
        payment_method_types=list(session["payment_method_types"]),
        setup_future_usage=record.payment_intent_data.get("setup_future_usage"),
    )


def attempt(store: Store, record: CheckoutRecord) -> JsonObject:
    """The session's PaymentIntent, made on the customer's first attempt to pay, as Checkout does."""
    if record.payment_intent is None:
        record.payment_intent = new_payment_intent(record)
        record.session["payment_intent"] = record.payment_intent["id"]
        store.payment_intents[record.payment_intent["id"]] = record.payment_intent
    return record.payment_intent


def succeed(store: Store, intent: JsonObject, email: str | None) -> list[JsonObject]:
    """The payment succeeded: by card at once (a new charge), or a bank debit's pending charge settled
    -> `[charge.succeeded, payment_intent.succeeded]`, in the order Stripe sends them."""
    processing = intent["status"] == "processing"
    intent.update(
        status="succeeded",
        amount_received=intent["amount"],
        payment_method=intent["payment_method"] or new_id("pm_"),
        latest_charge=(intent["latest_charge"] if processing else new_id("ch_")),
        last_payment_error=None,
    )
    if processing and intent["latest_charge"] in store.charges:
        charge = store.charges[intent["latest_charge"]]
        charges.settle(charge)
    else:
        charge = charges.new_charge(store, intent, email=email, bank_debit=False)
    return [store.publish("charge.succeeded", charge), store.publish("payment_intent.succeeded", intent)]


def start_processing(store: Store, intent: JsonObject, email: str | None) -> None:
    """A bank debit was submitted: its charge is pending until the money arrives (or not)."""
    intent.update(
        status="processing",
        payment_method=new_id("pm_"),
        latest_charge=new_id("py_"),
        last_payment_error=None,
    )
    charges.new_charge(store, intent, email=email, bank_debit=True)


def fail(store: Store, intent: JsonObject) -> None:
    if (charge := store.charges.get(intent["latest_charge"])) is not None:
        charges.fail(charge)
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


def payment_intent_of(store: Store, intent_id: str, param: str) -> JsonObject:
    intent = store.payment_intents.get(intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, param)
    return intent


def retrieve(store: Store, intent_id: str, params: JsonObject) -> JsonObject:
    expand_charge = expands(conform(params, EXPAND_ONLY, ""), "latest_charge")
    intent = copy.deepcopy(payment_intent_of(store, intent_id, "intent"))
    if expand_charge and intent["latest_charge"] in store.charges:
        intent["latest_charge"] = copy.deepcopy(store.charges[intent["latest_charge"]])
    return intent


# --- Off-session PaymentIntents: `POST /v1/payment_intents` with a saved card, confirmed at once. ---

_OFF_SESSION_PARAMS: JsonObject = {
    "amount": int,
    "currency": str,
    "customer": str,
    "payment_method": str,
    "off_session": str,
    "confirm": str,
    "metadata": METADATA,
}
# How each test card's off-session attempt fails, as Stripe answers it: the message and the error's fields.
_DECLINES: dict[str, tuple[str, JsonObject]] = {
    "card_declined": (
        "Your card was declined.",
        {"code": "card_declined", "decline_code": "generic_decline", "type": "card_error"},
    ),
    "authentication_required": (
        "Your card was declined. This transaction requires authentication.",
        {"code": "authentication_required", "decline_code": "authentication_required", "type": "card_error"},
    ),
    "insufficient_funds": (
        "Your card has insufficient funds.",
        {"code": "card_declined", "decline_code": "insufficient_funds", "type": "card_error"},
    ),
    "lost_card": (
        "Your card was declined.",
        {"code": "card_declined", "decline_code": "lost_card", "type": "card_error"},
    ),
    "expired_card": (
        "Your card has expired.",
        {"code": "expired_card", "decline_code": "expired_card", "type": "card_error"},
    ),
    "processing_error": (
        "An error occurred while processing your card. Try again in a little bit.",
        {"code": "processing_error", "type": "card_error"},
    ),
}


def create_off_session(store: Store, params: JsonObject, request: RequestContext) -> JsonObject:
    """Charge a customer's saved card without the customer: `payment_intent.succeeded` and its charge, or
    the card's decline as Stripe answers it (402 `card_error`, with its `decline_code`, the PaymentIntent
    and the card) with `payment_intent.payment_failed`. A deleted customer, or a card no longer attached
    to the customer (detached at the Dashboard), is Stripe's 400 `invalid_request_error`."""
    params = conform(params, _OFF_SESSION_PARAMS, "")
    for name in ("amount", "currency", "customer", "payment_method"):
        if name not in params:
            raise missing(name)
    if params.get("confirm") != "true" or params.get("off_session") != "true":
        raise invalid("This emulator makes only confirmed off-session PaymentIntents.", "confirm")
    customers.live_customer(store, params["customer"], "customer")
    method = customers.payment_method_of(store, params["payment_method"], "payment_method")
    if method["customer"] is None:
        raise StripeApiError(
            400,
            "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
            "attachment, shared with a connected account without Customer attachment, or was detached "
            "from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must "
            "attach it to a Customer first.",
            param="payment_method",
        )
    if method["customer"] != params["customer"]:
        raise invalid("The PaymentMethod is not attached to this customer.", "payment_method")
    intent = _payment_intent(
        amount=params["amount"],
        # A PaymentIntent made by the API takes its payment methods from the account's configuration.
        automatic_payment_methods={"allow_redirects": "always", "enabled": True},
        currency=params["currency"],
        customer=params["customer"],
        metadata=dict(params.get("metadata", {})),
        payment_method=method["id"],
        payment_method_configuration_details={"id": store.payment_method_configuration, "parent": None},
        status="processing",
    )
    intent_id = intent["id"]
    store.payment_intents[intent_id] = intent
    behaviour = store.payment_method_behaviour.get(method["id"], "succeeds")
    if behaviour == "processing_error_once":
        store.payment_method_behaviour[method["id"]] = "succeeds"  # the next attempt pays
        behaviour = "processing_error"
    if behaviour in _DECLINES:
        message, error = _DECLINES[behaviour]
        # Off-session nobody can authenticate, so Stripe fails the attempt: the PaymentIntent waits for
        # another payment method, its error naming the card that failed (never `requires_action`).
        doc_url = f"https://stripe.com/docs/error-codes/{error['code'].replace('_', '-')}"
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error={
                "message": message,
                "doc_url": doc_url,
                "payment_method": copy.deepcopy(method),
                **error,
            },
        )
        request.events.append(store.publish("payment_intent.payment_failed", intent, request))
        details: JsonObject = {
            "payment_intent": copy.deepcopy(intent),
            "payment_method": copy.deepcopy(method),
        }
        if "decline_code" in error:
            details["decline_code"] = error["decline_code"]
        raise StripeApiError(402, message, error_type="card_error", code=error["code"], details=details)
    intent.update(
        status="succeeded",
        amount_received=intent["amount"],
        latest_charge=new_id("ch_"),
        last_payment_error=None,
    )
    charge = charges.new_charge(store, intent, email=None, bank_debit=False)
    request.events.append(store.publish("charge.succeeded", charge, request))
    request.events.append(store.publish("payment_intent.succeeded", intent, request))
    return copy.deepcopy(intent)

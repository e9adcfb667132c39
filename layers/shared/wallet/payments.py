"""Stripe, behind the few calls the product makes: create and retrieve a Checkout Session, verify an event.

Stripe's errors are translated here, at the boundary, into the domain's; nothing above this module
sees a Stripe type.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import stripe
from ulid import ULID

from wallet import invoicing, marker, settings
from wallet.errors import (
    CheckoutSessionNotFoundError,
    InvalidEventError,
    PaymentAttemptFailedError,
    PaymentDeclinedError,
    PaymentsUnavailableError,
)
from wallet.packs import Pack, label
from wallet.totals import NO_TERMS, Terms, Totals, read_totals, with_terms

# The API version this code was written against; Stripe answers in its shapes whatever the account's default.
API_VERSION = "2026-10-28.endive"
# Stay well inside the functions' time limit; the SDK retries timeouts, connection errors, 409 and 5xx.
TIMEOUT_SECONDS = 8
NETWORK_RETRIES = 2
PRODUCT_NAME = "Credits"
# How far a webhook's signed timestamp may be from now, either way, before the delivery is refused.
SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class NewCheckout:
    session_id: str
    url: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """The fields of a Checkout Session that fulfilment reads."""

    id: str
    status: str | None
    payment_status: str | None
    amount_total: int | None
    currency: str | None
    payment_intent_id: str | None
    metadata: Mapping[str, str]
    livemode: bool = False
    created: int | None = None
    invoice_id: str | None = None
    totals: Totals | None = None  # None where only a total is known: a PaymentIntent's amount


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    livemode: bool
    data_object: Mapping[str, Any]
    created: int | None = None
    previous_attributes: Mapping[str, Any] = field(default_factory=dict)
    """What an update's event says its change replaced (`data.previous_attributes`)."""
    api_version: str | None = None
    """The Stripe API version `data` is rendered in, fixed when the event was created (the SDK's Event)."""


def event_of(data: Mapping[str, Any]) -> Event:
    """The fields the product reads of an event, as a delivery or Stripe's API carries it."""
    body = data.get("data")
    data_object = body.get("object") if isinstance(body, Mapping) else None
    previous = body.get("previous_attributes") if isinstance(body, Mapping) else None
    created = data.get("created")
    api_version = data.get("api_version")
    return Event(
        id=str(data.get("id", "")),
        type=str(data.get("type", "")),
        livemode=data.get("livemode") is True,
        data_object=data_object if isinstance(data_object, Mapping) else {},
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        previous_attributes=previous if isinstance(previous, Mapping) else {},
        api_version=api_version if isinstance(api_version, str) else None,
    )


# -- the client: one per container, holding no key; each call passes the current one (rotation) ---------


@cache
def stripe_client() -> stripe.StripeClient:
    """One client per container, holding no key: each call passes the key (`calling`), so the client can
    be built into a SnapStart snapshot and a rotated key is used once the secret's cache expires."""
    api_base = settings.stripe_api_base()
    return stripe.StripeClient(
        "",
        stripe_version=API_VERSION,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        base_addresses={"api": api_base} if api_base else None,
    )


def calling(client: stripe.StripeClient | None) -> tuple[stripe.StripeClient, stripe.RequestOptions]:
    """The client to call and the options that go with it: the container's with the key, or the one given."""
    if client is not None:
        return client, {}
    return stripe_client(), {"api_key": settings.stripe_secret_key()}


def create_checkout_session(
    user_id: str,
    pack: Pack,
    currency: str,
    site_url: str,
    client: stripe.StripeClient | None = None,
    *,
    save_card_for: str | None = None,
    terms: Terms = NO_TERMS,
) -> NewCheckout:
    """A Checkout Session for a pack or a chosen amount, on `terms`; the new payment id rides in its metadata
    back to fulfilment. With `save_card_for` (the user's Customer), the card is saved for auto top-up."""
    payment_id = str(ULID())
    metadata = {"userId": user_id, "amount": str(pack.credits), "paymentId": payment_id}
    # What fulfilment may credit, fixed now: see wallet.marker.
    metadata[marker.METADATA_KEY] = marker.mark(
        settings.fulfilment_keys()[0],
        user_id=user_id,
        payment_id=payment_id,
        credits=pack.credits,
        amount=pack.amount,
        currency=currency,
        terms=terms.text(),
    )
    intent_data: stripe.params.checkout.SessionCreateParamsPaymentIntentData = {"metadata": metadata}
    price_data: stripe.params.checkout.SessionCreateParamsLineItemPriceData = {
        "currency": currency,
        "unit_amount": pack.amount,
        "product_data": {"name": f"{PRODUCT_NAME} worth {label(pack.credits, currency)}"},
    }
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": price_data}],
        "metadata": metadata,
        "payment_intent_data": intent_data,
        # Off whatever the Dashboard says: the customer pays the pack's price in `currency`, which is
        # what the mark fixes and what fulfilment checks the session's amount_total against.
        "adaptive_pricing": {"enabled": False},
        "client_reference_id": user_id,
        "success_url": f"{site_url}/dashboard/credits/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{site_url}/dashboard/credits/?checkout=cancelled",
    }
    if save_card_for:
        params["customer"] = save_card_for
        intent_data["setup_future_usage"] = "off_session"
    invoicing.ask_for_invoice(params, payment_id, user_id, existing_customer=save_card_for is not None)
    with_terms(params, price_data, terms, pack)
    try:
        # The payment id as idempotency key: a retried request cannot open a second session.
        sdk, options = calling(client)
        session = sdk.v1.checkout.sessions.create(params, options={**options, "idempotency_key": payment_id})
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not create the Checkout Session") from exc
    if not session.url:
        raise PaymentsUnavailableError("Stripe returned a Checkout Session without a URL")
    return NewCheckout(session_id=session.id, url=session.url, payment_id=payment_id)


def retrieve_checkout_session(session_id: str, client: stripe.StripeClient | None = None) -> CheckoutSession:
    try:
        sdk, options = calling(client)
        session = sdk.v1.checkout.sessions.retrieve(session_id, options=options)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise CheckoutSessionNotFoundError(session_id) from exc
        raise PaymentsUnavailableError("Stripe did not return the Checkout Session") from exc
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not return the Checkout Session") from exc
    return checkout_session(session.to_dict())


def checkout_session(data: Mapping[str, Any]) -> CheckoutSession:
    """The fields fulfilment reads, from a Checkout Session as Stripe's API or an event carries it."""
    metadata = data.get("metadata") or {}
    return CheckoutSession(
        id=str(data.get("id", "")),
        status=data.get("status"),
        payment_status=data.get("payment_status"),
        amount_total=data.get("amount_total"),
        currency=data.get("currency"),
        payment_intent_id=invoicing.expandable_id(data.get("payment_intent")),
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {},
        livemode=data.get("livemode") is True,
        created=data.get("created") if isinstance(data.get("created"), int) else None,
        invoice_id=invoicing.expandable_id(data.get("invoice")),
        totals=read_totals(data),
    )


def verify_event(payload: bytes, signature: str | None, secret: str) -> Event:
    """The event in `payload` once Stripe's signature over those exact bytes checks out, signed within
    SIGNATURE_TOLERANCE_SECONDS of now."""
    if not signature:
        raise InvalidEventError("The Stripe-Signature header is missing.")
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
        ).to_dict()
    except stripe.SignatureVerificationError as exc:
        raise InvalidEventError("The Stripe-Signature header does not match the body or is too old.") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidEventError("The body is not a Stripe event.") from exc
    # The SDK refuses only old timestamps; one far ahead would keep a captured delivery replayable.
    # The `t=` timestamp of the header, read as the SDK read it when it verified it.
    signed_at = int(next(p.split("=", 2)[1] for p in signature.split(",") if p.split("=", 2)[0] == "t"))
    if signed_at > time.time() + SIGNATURE_TOLERANCE_SECONDS:
        raise InvalidEventError("The Stripe-Signature timestamp is in the future.")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidEventError("The body is not a Stripe event.")
    return event_of(event)


# --- Auto top-up: the Stripe Customer, the saved card, and the off-session charge. ---


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    """One auto top-up: the pack's price, charged to the saved card without the customer present."""

    customer_id: str
    payment_method_id: str
    amount: int
    currency: str
    metadata: Mapping[str, str]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """The fields of a PaymentIntent that auto top-up reads, as an event carries it."""

    id: str
    status: str | None
    amount: int | None
    amount_received: int | None
    currency: str | None
    metadata: Mapping[str, str]
    failure_code: str | None = None
    decline_code: str | None = None
    failure_type: str | None = None
    """`last_payment_error.type`: `card_error`, `invalid_request_error`, ..."""
    livemode: bool = False
    created: int | None = None


@dataclass(frozen=True, slots=True)
class SavedCard:
    payment_method_id: str
    customer_id: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


# Failures Stripe may answer differently a moment later; every other failure of a charge is final.
PASSING_CODES = frozenset({"processing_error", "lock_timeout", "rate_limit"})


@dataclass(frozen=True, slots=True)
class ChargeFailure:
    """Why an off-session charge failed, classified once for the trigger and the webhook alike."""

    code: str
    """Stripe's error code (`card_declined`, `expired_card`, ...), or `card_gone` / `customer_gone` for a
    card detached or a customer deleted at Stripe, `connection_error` or `api_error` when Stripe did not
    answer or failed."""
    decline_code: str | None
    final: bool
    """Final: trying again cannot succeed (turn auto top-up off); otherwise the same charge may be."""


def charge_failure(
    *,
    code: str | None,
    decline_code: str | None,
    error_type: str | None,
    status: int | None,
    param: str | None,
) -> ChargeFailure:
    """The one rule for what a failed off-session charge means, from Stripe's error as the API answers it
    or as a PaymentIntent's `last_payment_error` carries it (`status` None there, and for no answer)."""
    if code in PASSING_CODES or status == 429 or status == 409:
        return ChargeFailure(code or "rate_limit", None, final=False)
    if error_type == "card_error" or status == 402:
        return ChargeFailure(code or "card_declined", decline_code, final=True)
    if error_type == "invalid_request_error" and status in (None, 400, 404):
        # The saved card detached, or the customer deleted, elsewhere (the Dashboard, another integration).
        return ChargeFailure("customer_gone" if param == "customer" else "card_gone", None, final=True)
    if error_type == "idempotency_error":
        return ChargeFailure("idempotency_error", None, final=True)
    return ChargeFailure("api_error" if status else "connection_error", None, final=False)


def charge_off_session(charge: OffSessionCharge, client: stripe.StripeClient | None = None) -> str:
    """Make and confirm the PaymentIntent; its id. The idempotency key makes a retry the same charge.

    Raises PaymentDeclinedError when no retry can succeed, PaymentAttemptFailedError when one may."""
    params: stripe.params.PaymentIntentCreateParams = {
        "amount": charge.amount,
        "currency": charge.currency,
        "customer": charge.customer_id,
        "payment_method": charge.payment_method_id,
        "off_session": True,
        "confirm": True,
        "metadata": dict(charge.metadata),
    }
    try:
        sdk, options = calling(client)
        intent = sdk.v1.payment_intents.create(
            params, options={**options, "idempotency_key": charge.idempotency_key}
        )
    except stripe.StripeError as exc:
        error = exc.error
        failure = charge_failure(
            code=(error.code if error else None) or exc.code,
            decline_code=error.decline_code if error else None,
            error_type=error.type if error else None,
            status=exc.http_status,
            param=error.param if error else None,
        )
        if failure.final:
            raise PaymentDeclinedError(failure.code, failure.decline_code) from exc
        raise PaymentAttemptFailedError(failure.code, answered=exc.http_status == 402) from exc
    if intent.status == "requires_action":
        raise PaymentDeclinedError("authentication_required")
    return intent.id


def create_customer(user_id: str, client: stripe.StripeClient | None = None) -> str:
    """A Stripe Customer for the user; keyed on the user, so two first needs at once make one."""
    try:
        sdk, options = calling(client)
        customer = sdk.v1.customers.create(
            {"metadata": {"userId": user_id}}, options={**options, "idempotency_key": f"customer-{user_id}"}
        )
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not create the customer") from exc
    return customer.id


def create_card_setup_session(
    customer_id: str, user_id: str, currency: str, site_url: str, client: stripe.StripeClient | None = None
) -> str:
    """A setup-mode Checkout Session that saves a card for off-session use without paying; its URL."""
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "setup",
        "currency": currency,
        "customer": customer_id,
        "client_reference_id": user_id,
        "metadata": {"userId": user_id, "purpose": "save_card"},
        "setup_intent_data": {"metadata": {"userId": user_id}},
        "success_url": f"{site_url}/dashboard/credits/?card=saved",
        "cancel_url": f"{site_url}/dashboard/credits/?card=cancelled",
    }
    try:
        sdk, options = calling(client)
        session = sdk.v1.checkout.sessions.create(params, options=options)
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not create the card set-up session") from exc
    if not session.url:
        raise PaymentsUnavailableError("Stripe returned a Checkout Session without a URL")
    return session.url


def detach_payment_method(payment_method_id: str, client: stripe.StripeClient | None = None) -> None:
    """Detach a saved card from its customer; one already detached or gone is detached."""
    try:
        sdk, options = calling(client)
        sdk.v1.payment_methods.detach(payment_method_id, options=options)
    except stripe.InvalidRequestError as exc:
        if exc.http_status not in (400, 404):
            raise PaymentsUnavailableError("Stripe did not detach the card") from exc
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not detach the card") from exc


def payment_intent(data: Mapping[str, Any]) -> PaymentIntent:
    """The fields auto top-up reads, from a PaymentIntent as an event carries it."""
    metadata = data.get("metadata") or {}
    error = data.get("last_payment_error")
    code = error.get("code") if isinstance(error, Mapping) else None
    decline_code = error.get("decline_code") if isinstance(error, Mapping) else None
    failure_type = error.get("type") if isinstance(error, Mapping) else None
    return PaymentIntent(
        id=str(data.get("id", "")),
        status=data.get("status"),
        amount=data.get("amount"),
        amount_received=data.get("amount_received"),
        currency=data.get("currency"),
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {},
        failure_code=code if isinstance(code, str) else None,
        decline_code=decline_code if isinstance(decline_code, str) else None,
        failure_type=failure_type if isinstance(failure_type, str) else None,
        livemode=data.get("livemode") is True,
        created=data.get("created") if isinstance(data.get("created"), int) else None,
    )


def retrieve_payment_intent(
    payment_intent_id: str, client: stripe.StripeClient | None = None
) -> PaymentIntent | None:
    """A PaymentIntent as Stripe has it, read with the read-only key; None when Stripe has none such."""
    options: stripe.RequestOptions = {}
    sdk = client
    if sdk is None:
        sdk, options = stripe_client(), {"api_key": settings.stripe_read_key()}
    try:
        intent = sdk.v1.payment_intents.retrieve(payment_intent_id, options=options)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise PaymentsUnavailableError("Stripe did not return the PaymentIntent") from exc
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not return the PaymentIntent") from exc
    return payment_intent(intent.to_dict())


def list_refunds(
    payment_intent_id: str, client: stripe.StripeClient | None = None
) -> list[tuple[str, int, str]]:
    """Every refund of a PaymentIntent as Stripe has it now (id, amount, status), read with the read-only
    key (Refunds: Read); `auto_paging_iter` follows Stripe's pages of at most 100."""
    options: stripe.RequestOptions = {}
    sdk = client
    if sdk is None:
        sdk, options = stripe_client(), {"api_key": settings.stripe_read_key()}
    try:
        listed = sdk.v1.refunds.list({"payment_intent": payment_intent_id, "limit": 100}, options=options)
        return [(r.id, int(r.amount), str(r.status)) for r in listed.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not list the payment's refunds") from exc


def saved_card(data: Mapping[str, Any]) -> SavedCard:
    """A card PaymentMethod's summary, as `payment_method.attached` carries it: no Stripe call."""
    card = data.get("card")
    card = card if isinstance(card, Mapping) else {}
    customer = data.get("customer")
    return SavedCard(
        payment_method_id=str(data.get("id", "")),
        customer_id=customer if isinstance(customer, str) else None,
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )

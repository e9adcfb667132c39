"""Stripe, behind the few calls the product makes: create and retrieve a Checkout Session, verify an event.

Stripe's errors are translated here, at the boundary, into the domain's; nothing above this module
sees a Stripe type.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import stripe
from ulid import ULID

from wallet import marker, settings
from wallet.errors import CheckoutSessionNotFoundError, InvalidEventError, PaymentsUnavailableError
from wallet.packs import Pack

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


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    livemode: bool
    data_object: Mapping[str, Any]


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
    user_id: str, pack: Pack, currency: str, site_url: str, client: stripe.StripeClient | None = None
) -> NewCheckout:
    """A Checkout Session for one pack; the new payment id rides in its metadata back to fulfilment."""
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
    )
    params: stripe.params.checkout.SessionCreateParams = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": pack.amount,
                    "product_data": {"name": f"{pack.credits:,} {PRODUCT_NAME}"},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": user_id,
        "success_url": f"{site_url}/dashboard/credits/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{site_url}/dashboard/credits/?checkout=cancelled",
    }
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
    payment_intent = data.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    metadata = data.get("metadata") or {}
    return CheckoutSession(
        id=str(data.get("id", "")),
        status=data.get("status"),
        payment_status=data.get("payment_status"),
        amount_total=data.get("amount_total"),
        currency=data.get("currency"),
        payment_intent_id=payment_intent if isinstance(payment_intent, str) else None,
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {},
        livemode=data.get("livemode") is True,
        created=data.get("created") if isinstance(data.get("created"), int) else None,
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
    if _signed_at(signature) > time.time() + SIGNATURE_TOLERANCE_SECONDS:
        raise InvalidEventError("The Stripe-Signature timestamp is in the future.")
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidEventError("The body is not a Stripe event.")
    return Event(
        id=event["id"],
        type=event["type"],
        livemode=bool(event.get("livemode")),
        data_object=data_object if isinstance(data_object, Mapping) else {},
    )


def _signed_at(signature: str) -> int:
    """The `t=` timestamp of a Stripe-Signature header, read as the SDK read it when it verified it."""
    return int(next(part.split("=", 2)[1] for part in signature.split(",") if part.split("=", 2)[0] == "t"))

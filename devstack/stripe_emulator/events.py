"""Events: built in the shape of Stripe's example event, kept newest last, signed as Stripe signs them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import stripe

from devstack.stripe_emulator.fixtures import JsonObject, new_id, now, stripe_object

Signer = Callable[[bytes, int | None], str]
"""Computes the `Stripe-Signature` header of a payload at a timestamp (None: now)."""


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """An event as Stripe posts it: the exact body bytes and the `Stripe-Signature` header over them."""

    event: JsonObject
    payload: bytes
    signature: str
    headers: dict[str, str]
    # Kept so a sender can sign each attempt afresh, as Stripe does; it holds the secret, so never shown.
    signer: Signer | None = field(default=None, repr=False, compare=False)

    def resigned(self, timestamp: int | None = None) -> SignedEvent:
        """The same payload signed again now (or at `timestamp`), as Stripe signs each delivery attempt.

        An event made without a signer (built by hand) is returned as it is.
        """
        if self.signer is None:
            return self
        return signed_event(self.event, self.payload, self.signer, timestamp)


def signed_event(event: JsonObject, payload: bytes, signer: Signer, timestamp: int | None) -> SignedEvent:
    signature = signer(payload, timestamp)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature,
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return SignedEvent(event=event, payload=payload, signature=signature, headers=headers, signer=signer)


Deliver = Callable[[SignedEvent], None]


@dataclass(slots=True)
class RequestContext:
    """The API request being answered: its id and key go into the events it causes, collected here."""

    request_id: str
    idempotency_key: str | None
    events: list[JsonObject] = field(default_factory=list)


def new_event(
    event_type: str, obj: JsonObject, *, delivered: bool, request: RequestContext | None = None
) -> JsonObject:
    """A Stripe event about `obj` (copied as it is now), caused by `request` or by nothing (None)."""
    return stripe_object(
        "event",
        api_version=stripe.api_version,
        created=now(),
        data={"object": copy.deepcopy(obj)},
        id=new_id("evt_"),
        livemode=False,
        object="event",
        pending_webhooks=1 if delivered else 0,
        request={
            "id": request.request_id if request else None,
            "idempotency_key": request.idempotency_key if request else None,
        },
        type=event_type,
    )

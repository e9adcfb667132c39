"""Events: in the shape of Stripe's example event, signed and listed as Stripe does."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import stripe

from devstack.stripe_emulator.errors import invalid, no_such
from devstack.stripe_emulator.fixtures import JsonObject, new_id, now, stripe_object
from devstack.stripe_emulator.forms import (
    EXPAND_ONLY,
    RANGE,
    conform,
    created_matches,
    expands,
    stripe_params,
)

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
    event_type: str,
    obj: JsonObject,
    *,
    delivered: bool,
    request: RequestContext | None = None,
    previous_attributes: JsonObject | None = None,
) -> JsonObject:
    """A Stripe event about `obj` (copied as it is now), caused by `request` or by nothing (None); an
    update's event carries the values its change replaced (`previous_attributes`)."""
    data: JsonObject = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(previous_attributes)
    return stripe_object(
        "event",
        api_version=stripe.api_version,
        created=now(),
        data=data,
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


# -- GET /v1/events, GET /v1/events/{id} ----------------------------------------------------------------

_LIST_URL = "/v1/events"
_LIST_PARAMS: JsonObject = {
    "created": RANGE,
    "ending_before": str,
    "expand": [str],
    "limit": int,
    "starting_after": str,
    "type": str,
    "types": [str],
}
_STRIPE_LIST_PARAMS = stripe_params(stripe.params.EventListParams)


def list_events(events: Sequence[JsonObject], params: JsonObject) -> JsonObject:
    """Stripe's page of `events` (kept oldest first), newest first, filtered by type and creation time."""
    params = conform(params, _LIST_PARAMS, "", _STRIPE_LIST_PARAMS)
    expands(params, "")
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"Invalid limit: must be between 1 and 100, got {limit}", "limit")
    if "type" in params and "types" in params:
        raise invalid("You may only specify one of these parameters: type, types.", "types")
    if "starting_after" in params and "ending_before" in params:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after.", "ending_before"
        )
    positions = {event["id"]: position for position, event in enumerate(events)}
    newest_first = [
        (position, event) for position, event in reversed(list(enumerate(events))) if _matches(event, params)
    ]
    if "starting_after" in params:
        cursor = _cursor(positions, params["starting_after"], "starting_after")
        older = [(position, event) for position, event in newest_first if position < cursor]
        page, has_more = older[:limit], len(older) > limit
    elif "ending_before" in params:
        cursor = _cursor(positions, params["ending_before"], "ending_before")
        newer = [(position, event) for position, event in newest_first if position > cursor]
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        page, has_more = newest_first[:limit], len(newest_first) > limit
    return {
        "object": "list",
        "data": [copy.deepcopy(event) for _, event in page],
        "has_more": has_more,
        "url": _LIST_URL,
    }


def retrieve(events: Sequence[JsonObject], event_id: str, params: JsonObject) -> JsonObject:
    expands(conform(params, EXPAND_ONLY, ""), "")
    for event in events:
        if event["id"] == event_id:
            return copy.deepcopy(event)
    raise no_such("event", event_id, "id")


def _cursor(positions: Mapping[str, int], event_id: str, param: str) -> int:
    if event_id not in positions:
        raise no_such("event", event_id, param)
    return positions[event_id]


def _matches(event: JsonObject, params: Mapping[str, Any]) -> bool:
    if "type" in params and not _type_matches(event["type"], params["type"]):
        return False
    if "types" in params and event["type"] not in params["types"]:
        return False
    return created_matches(event["created"], params.get("created"))


def _type_matches(event_type: str, wanted: str) -> bool:
    """Stripe's `type` filter: an event name, or a group of them with `*` as a wildcard (`charge.*`)."""
    return fnmatch.fnmatchcase(event_type, wanted)

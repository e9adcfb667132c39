"""Stripe's event log (`GET /v1/events`, kept 30 days), read page by page for the sweep.

Stripe lists events newest first. `ending_before=<id>` answers the page just newer than that event (still
newest first), so walking the log oldest first from a checkpoint is: ask for the page ending before the
checkpoint, act on it in reverse, move the checkpoint to its newest event, repeat while `has_more`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from wallet.errors import PaymentsUnavailableError
from wallet.payments import Event, calling, event_of

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    event: Event
    created: int
    """When Stripe made it (Unix seconds); Stripe keeps it 30 days from then."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[LoggedEvent]
    has_more: bool


class CheckpointGoneError(Exception):
    """The checkpoint's event is no longer in Stripe's log (older than 30 days): start again from the edge."""


def newer_than(checkpoint: str, types: Collection[str], client: stripe.StripeClient | None = None) -> Page:
    """Up to a page of the events of `types` just after `checkpoint`, OLDEST first."""
    params: stripe.params.EventListParams = {
        "ending_before": checkpoint,
        "types": sorted(types),
        "limit": PAGE_SIZE,
    }
    page = _list(params, client)
    return Page(list(reversed(page.events)), page.has_more)


def older_than(
    cursor: str | None, types: Collection[str], created_since: int, client: stripe.StripeClient | None = None
) -> Page:
    """Up to a page of the events of `types` made since `created_since`, before `cursor` (None: from the
    newest), NEWEST first: how the sweep finds the oldest event on its first run."""
    params: stripe.params.EventListParams = {
        "created": {"gte": created_since},
        "types": sorted(types),
        "limit": PAGE_SIZE,
    }
    if cursor:
        params["starting_after"] = cursor
    return _list(params, client)


def retrieve(event_id: str, client: stripe.StripeClient | None = None) -> LoggedEvent | None:
    """One event again, or None once Stripe no longer keeps it."""
    try:
        sdk, options = calling(client)
        event = sdk.v1.events.retrieve(event_id, options=options)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise PaymentsUnavailableError("Stripe did not return the event") from exc
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not return the event") from exc
    return logged_event(event.to_dict())


def logged_event(data: Mapping[str, Any]) -> LoggedEvent:
    """An event as Stripe's API answers it; the same fields the webhook reads from a delivery."""
    event = event_of(data)
    return LoggedEvent(event, event.created or 0)


def _list(params: stripe.params.EventListParams, client: stripe.StripeClient | None) -> Page:
    try:
        sdk, options = calling(client)
        listed = sdk.v1.events.list(params, options=options)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404 and ("ending_before" in params or "starting_after" in params):
            cursor = params.get("ending_before") or params.get("starting_after")
            raise CheckpointGoneError(str(cursor)) from exc
        raise PaymentsUnavailableError("Stripe did not list the events") from exc
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not list the events") from exc
    return Page([logged_event(event.to_dict()) for event in listed.data], bool(listed.has_more))

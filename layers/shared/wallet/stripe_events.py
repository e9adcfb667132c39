"""Every Stripe event the product acts on, and the module that owns its rule: one table.

The webhook (`handle_webhook`), Amazon EventBridge (`handle_eventbridge`) and the sweep (`act_on`)
dispatch through `EVENTS`; the sweep's `types[]` (`REPLAYED`), the README's list of events for the
webhook endpoint and the one `make deploy` prints (`ENDPOINT_EVENTS`) are read off it, and so is the
EventBridge rule's `detail-type` list in template.yaml (a template test holds them equal). An owner's
module is imported when its first event arrives, so a cold start pays only for the rule the event in
hand needs. Any type not here is ignored (200).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from wallet import settings
from wallet.errors import InvalidEventError
from wallet.outcomes import Outcome, Result, WebhookOutcome
from wallet.payments import Event, event_of, verify_event

# Stripe's GET /v1/events takes at most this many `types[]`.
MAX_LISTED_TYPES = 20


@dataclass(frozen=True, slots=True)
class Rule:
    owner: str
    """`module:function`, called with the event; returns an Outcome."""
    does: str
    """What the product does with the event, in a sentence (the README's table says the same)."""
    replayed: bool = True
    """Whether the sweep replays it from Stripe's log: False where a lost delivery loses nothing."""


CHECKOUT = "wallet.fulfilment:on_checkout_event"
REFUNDS = "wallet.reversals:on_refund_event"
DISPUTES = "wallet.reversals:on_dispute_event"
AUTO_TOP_UP = "wallet.auto_top_up_events:on_payment_intent_event"

EVENTS: Mapping[str, Rule] = MappingProxyType(
    {
        "checkout.session.completed": Rule(CHECKOUT, "credits a paid session; an unpaid one waits"),
        "checkout.session.async_payment_succeeded": Rule(CHECKOUT, "credits the delayed payment"),
        "checkout.session.async_payment_failed": Rule(CHECKOUT, "logged, nothing credited", replayed=False),
        "checkout.session.expired": Rule(CHECKOUT, "logged, nothing credited", replayed=False),
        "charge.refunded": Rule(REFUNDS, "takes back the refunded share (cumulative amount_refunded)"),
        "refund.created": Rule(REFUNDS, "takes back the refund's share, once per refund id"),
        "refund.updated": Rule(REFUNDS, "a refund's new status; failed or canceled gives its share back"),
        "refund.failed": Rule(REFUNDS, "gives back what the failed refund took"),
        "charge.refund.updated": Rule(REFUNDS, "a refund's new status, as refund.updated"),
        "charge.dispute.created": Rule(DISPUTES, "an inquiry or chargeback holds the disputed share"),
        "charge.dispute.updated": Rule(DISPUTES, "a dispute's new stage: escalated, under review, appealed"),
        "charge.dispute.funds_withdrawn": Rule(DISPUTES, "a chargeback holds the disputed share"),
        "charge.dispute.funds_reinstated": Rule(DISPUTES, "a won dispute gives its share back"),
        "charge.dispute.closed": Rule(DISPUTES, "won or inquiry closed gives back; lost keeps"),
        "payment_intent.succeeded": Rule(AUTO_TOP_UP, "credits an auto top-up"),
        "payment_intent.payment_failed": Rule(AUTO_TOP_UP, "turns auto top-up off, with the reason"),
        "payment_intent.requires_action": Rule(AUTO_TOP_UP, "turns auto top-up off, with the reason"),
        "payment_method.attached": Rule(
            "wallet.auto_top_up_events:on_card_attached", "a customer's card becomes the saved card"
        ),
        "payment_method.detached": Rule(
            "wallet.auto_top_up_events:on_card_detached",
            "the saved card detached elsewhere turns auto top-up off, with the reason",
        ),
    }
)
ENDPOINT_EVENTS = tuple(EVENTS)
"""The events the webhook endpoint at Stripe must send: every one in the table."""
REPLAYED = frozenset(kind for kind, rule in EVENTS.items() if rule.replayed)
"""What the sweep asks Stripe's log for (`types[]`)."""


def handle_webhook(payload: bytes, signature: str | None) -> WebhookOutcome:
    """Verify a Stripe webhook delivery and act on it as its type's owner says."""
    event = verify_event(payload, signature, settings.stripe_webhook_secret())
    return WebhookOutcome(event.id, event.type, act_on(event), event.api_version)


def handle_eventbridge(envelope: Mapping[str, Any], partner_source: str) -> WebhookOutcome:
    """Act on a Stripe event delivered by Amazon EventBridge from the partner event source
    `partner_source`, as the webhook acts on the same event.

    The envelope is EventBridge's (docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html):
    `source` is the partner event source's name, `aws.partner/stripe.com/ed_...`, `detail-type` the Stripe
    event's type and `detail` the Stripe event itself, a snapshot event as a webhook body holds
    (https://docs.stripe.com/event-destinations/eventbridge). No signature: only the account's partner
    event bus, which only Stripe's source writes to, invokes the function; the source is checked again.
    InvalidEventError for anything else, or for a Stripe event this table does not name.
    """
    source = envelope.get("source")
    if not partner_source or source != partner_source:
        raise InvalidEventError(f"The event's source is not the configured partner event source: {source!r}.")
    detail = envelope.get("detail")
    if not isinstance(detail, Mapping) or detail.get("object") != "event":
        raise InvalidEventError("The event's detail is not a Stripe event.")
    event = event_of(detail)
    if (
        not event.id.startswith("evt_")
        or event.type not in EVENTS
        or envelope.get("detail-type") != event.type
    ):
        raise InvalidEventError(f"The event's detail is not a Stripe event of a known type: {event.type!r}.")
    return WebhookOutcome(event.id, event.type, act_on(event), event.api_version)


def act_on(event: Event) -> Outcome:
    """The webhook's path after the signature check: also the sweep's, for an event read back from
    Stripe's API with our key."""
    rule = EVENTS.get(event.type)
    if rule is None:
        return Outcome(Result.IGNORED)
    return _owner(rule.owner)(event)


@cache
def _owner(owner: str) -> Callable[[Event], Outcome]:
    module, function = owner.split(":")
    handler: Callable[[Event], Outcome] = getattr(importlib.import_module(module), function)
    return handler

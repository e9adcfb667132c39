"""Fulfilment: turn a paid Checkout Session into credits, exactly once, from wherever news of it arrives.

Both the webhook and the success page call `fulfil`; it is safe to call any number of times, at once,
for one session, because the ledger writes each payment id once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ulid import ULID

from wallet import ledger, settings
from wallet.ledger import Credit
from wallet.payments import CheckoutSession, Event, checkout_session, verify_event

SOURCE = "stripe_payment"
FULFILLING_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
CLOSING_EVENTS = {"checkout.session.async_payment_failed", "checkout.session.expired"}


class Result(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    AWAITING_PAYMENT = "awaiting_payment"
    """Not paid yet: a delayed payment method is still settling, or the customer has not paid."""
    REJECTED = "rejected"
    """Paid, but not a session this deployment can credit: a retry cannot fix it, a person must look."""
    NOT_CREDITED = "not_credited"
    """The payment failed or the session expired: nothing to credit."""
    IGNORED = "ignored"
    """An event type the product does not act on."""


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    session_id: str | None = None
    user_id: str | None = None
    payment_id: str | None = None
    credits: int | None = None
    reason: str | None = None

    @property
    def credited(self) -> bool:
        return self.result in (Result.CREDITED, Result.ALREADY_CREDITED)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    event_id: str
    event_type: str
    outcome: Outcome


def fulfil(session: CheckoutSession, event_id: str | None = None) -> Outcome:
    """Credit a paid session once. Unpaid sessions wait; sessions that do not add up are rejected."""
    if session.payment_status != "paid":
        return Outcome(Result.AWAITING_PAYMENT, session.id, session.metadata.get("userId"))
    user_id = session.metadata.get("userId", "")
    payment_id = session.metadata.get("paymentId", "")
    credits = session.metadata.get("amount", "")
    rejected = _reason_to_reject(session, user_id, payment_id, credits)
    if rejected:
        return Outcome(Result.REJECTED, session.id, user_id or None, payment_id or None, reason=rejected)
    credit = ledger.add_credits(
        user_id,
        int(credits),
        source=SOURCE,
        payment_id=payment_id,
        currency=settings.price_list().currency,
        stripe_session_id=session.id,
        stripe_payment_intent_id=session.payment_intent_id,
        stripe_event_id=event_id,
    )
    result = Result.CREDITED if credit is Credit.CREDITED else Result.ALREADY_CREDITED
    return Outcome(result, session.id, user_id, payment_id, int(credits))


def handle_webhook(payload: bytes, signature: str | None) -> WebhookOutcome:
    """Verify a Stripe webhook delivery and act on it as the event type asks."""
    event = verify_event(payload, signature, settings.stripe_webhook_secret())
    return WebhookOutcome(event.id, event.type, _act_on(event))


def _act_on(event: Event) -> Outcome:
    if event.type not in FULFILLING_EVENTS | CLOSING_EVENTS:
        return Outcome(Result.IGNORED)
    session = checkout_session(event.data_object)
    if event.type in CLOSING_EVENTS:
        return Outcome(Result.NOT_CREDITED, session.id, session.metadata.get("userId"), reason=event.type)
    return fulfil(session, event_id=event.id)


def _reason_to_reject(session: CheckoutSession, user_id: str, payment_id: str, credits: str) -> str | None:
    prices = settings.price_list()
    if session.livemode != settings.stripe_livemode():
        mode, deployment = ("live", "test") if session.livemode else ("test", "live")
        return f"a {mode}-mode session in a {deployment}-mode deployment (STRIPE_LIVEMODE)"
    if not user_id or not payment_id or not credits:
        return "metadata userId, paymentId or amount is missing"
    try:
        ULID.from_str(payment_id)
    except ValueError:
        return "metadata paymentId is not a ULID"
    # ASCII only: str.isdigit() also passes "²", which int() refuses.
    if not (credits.isascii() and credits.isdigit()):
        return "metadata amount is not a whole number"
    if session.currency != prices.currency:
        return f"currency {session.currency} is not {prices.currency}"
    pack = prices.pack(session.amount_total or 0)
    if pack is None:
        return f"amount_total {session.amount_total} is not the price of a pack"
    if pack.credits != int(credits):
        return f"metadata amount {credits} is not the {pack.credits} credits of the {pack.amount} pack"
    return None

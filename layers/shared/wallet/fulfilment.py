"""Fulfilment: turn a paid Checkout Session into credits, exactly once, from wherever news of it arrives,
and act on every event the webhook receives.

Both the webhook and the success page call `fulfil`; it is safe to call any number of times, at once,
for one session, because the ledger writes each payment id once. Refunds and disputes go to
`reversals`, which takes back what they reversed, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ulid import ULID

from wallet import auto_top_up, ledger, marker, reversals, settings
from wallet.ledger import Credit, Taken
from wallet.payments import (
    CheckoutSession,
    Event,
    checkout_session,
    payment_intent,
    saved_card,
    verify_event,
)

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
    CLAWED_BACK = "clawed_back"
    """A refund or dispute took back credits."""
    RESTORED = "restored"
    """A won dispute gave the credits back."""
    NOTHING_MORE = "nothing_more"
    """A refund or dispute the ledger already reflects: repeated, stale, or settled."""
    NOT_OURS = "not_ours"
    """A refund or dispute of a charge with no deposit here: another integration's."""
    AUTO_TOP_UP_FAILED = "auto_top_up_failed"
    """An auto top-up's payment failed or needs the customer: auto top-up is off with a reason."""
    CARD_SAVED = "card_saved"
    """A card attached to one of our customers is now the user's saved card."""


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
    if not _ours(session):
        # Another integration on the same Stripe account: not a fault, nothing to alarm about.
        return Outcome(Result.NOT_OURS, session.id, reason="no metadata of this product")
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
        amount_paid=session.amount_total,
    )
    result = Result.CREDITED if credit is Credit.CREDITED else Result.ALREADY_CREDITED
    return Outcome(result, session.id, user_id, payment_id, int(credits))


def handle_webhook(payload: bytes, signature: str | None) -> WebhookOutcome:
    """Verify a Stripe webhook delivery and act on it as the event type asks."""
    event = verify_event(payload, signature, settings.stripe_webhook_secret())
    return WebhookOutcome(event.id, event.type, _act_on(event))


# -- the sweep: the same path for an event read back from Stripe's log ----------------------------------


def replay(event: Event) -> Outcome:
    """Act on an event read from Stripe's API with our key, exactly as on its webhook delivery."""
    return _act_on(event)


# -- end of the sweep's block ---------------------------------------------------------------------------


def _act_on(event: Event) -> Outcome:
    if event.type in reversals.REVERSAL_EVENTS:
        return _reverse(event)
    if event.type in AUTO_TOP_UP_EVENTS:
        return _auto_top_up(event)
    if event.type not in FULFILLING_EVENTS | CLOSING_EVENTS:
        return Outcome(Result.IGNORED)
    session = checkout_session(event.data_object)
    if event.type in CLOSING_EVENTS:
        return Outcome(Result.NOT_CREDITED, session.id, session.metadata.get("userId"), reason=event.type)
    return fulfil(session, event_id=event.id)


def _reverse(event: Event) -> Outcome:
    reversed_ = reversals.reverse(event.type, event.data_object, event.id)
    change = reversed_.change
    deposit = change.deposit
    user_id, payment_id = (deposit.user_id, deposit.payment_id) if deposit else (None, None)
    if change.result is Taken.NO_DEPOSIT:
        return Outcome(Result.NOT_OURS, reason=f"no deposit for {reversed_.payment_intent_id}")
    if change.result is Taken.NOTHING_MORE:
        return Outcome(Result.NOTHING_MORE, user_id=user_id, payment_id=payment_id)
    result = Result.RESTORED if change.amount > 0 else Result.CLAWED_BACK
    return Outcome(result, user_id=user_id, payment_id=payment_id, credits=abs(change.amount))


def _ours(session: CheckoutSession) -> bool:
    """The same rule for the webhook, the success page and the sweep: this product's sessions carry a
    payment id, and since the cut-over a mark; a session with neither belongs to another integration."""
    return "paymentId" in session.metadata or marker.METADATA_KEY in session.metadata


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
    mark = session.metadata.get(marker.METADATA_KEY)
    if mark is not None:
        # What was fixed at creation; the price list may have changed since.
        terms_hold = marker.holds(
            mark,
            settings.fulfilment_keys(),
            user_id=user_id,
            payment_id=payment_id,
            credits=int(credits),
            amount=session.amount_total or 0,
            currency=session.currency or "",
        )
        return None if terms_hold else "metadata or amount do not match the session's mark: altered or forged"
    # Sessions made before the upgrade that brought the mark (UNMARKED_SESSIONS_UNTIL) are still checked
    # against the price list; Stripe keeps their events 30 days, after which the setting can go.
    if (session.created or 0) >= settings.unmarked_sessions_until():
        return "the session carries no mark, which every session made here since the cut-over does"
    pack = prices.pack(session.amount_total or 0)
    if pack is None:
        return f"amount_total {session.amount_total} is not the price of a pack"
    if pack.credits != int(credits):
        return f"metadata amount {credits} is not the {pack.credits} credits of the {pack.amount} pack"
    return None


# --- Auto top-up: its PaymentIntents and the saved card, all from the event's own data (no Stripe call). ---

AUTO_TOP_UP_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_method.attached",
}
# What the webhook acts on, so what the sweep replays from Stripe's log (`types[]` of GET /v1/events): a
# lost auto top-up payment is recovered as a lost checkout is, and its dip ends.
REPLAYED_EVENTS = frozenset(FULFILLING_EVENTS | reversals.REVERSAL_EVENTS | AUTO_TOP_UP_EVENTS)


def _auto_top_up(event: Event) -> Outcome:
    if event.type == "payment_method.attached":
        user_id = auto_top_up.save_card(saved_card(event.data_object))
        return Outcome(Result.CARD_SAVED, user_id=user_id) if user_id else Outcome(Result.IGNORED)
    intent = payment_intent(event.data_object)
    # A Checkout payment's PaymentIntent is credited through its session; only auto top-ups count here.
    if not auto_top_up.is_auto_top_up(intent):
        return Outcome(Result.IGNORED)
    if event.type != "payment_intent.succeeded":
        user_id = auto_top_up.payment_failed(intent)
        if user_id is None:
            return Outcome(Result.IGNORED)
        payment_id = intent.metadata.get("paymentId")
        return Outcome(Result.AUTO_TOP_UP_FAILED, user_id=user_id, payment_id=payment_id)
    credited = auto_top_up.credit(intent, event_id=event.id)
    if isinstance(credited, str):
        return Outcome(
            Result.REJECTED,
            user_id=intent.metadata.get("userId"),
            payment_id=intent.metadata.get("paymentId"),
            reason=credited,
        )
    result = Result.CREDITED if credited.result is Credit.CREDITED else Result.ALREADY_CREDITED
    return Outcome(result, user_id=credited.user_id, payment_id=credited.payment_id, credits=credited.credits)

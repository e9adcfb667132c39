"""Fulfilment: turn a paid Checkout Session into credits, exactly once, from wherever news of it arrives.

The webhook, the success page and the sweep call `fulfil`; it is safe to call any number of times, at
once, for one session, because the ledger writes each payment id once. `reason_to_reject` is the one
rule that decides whether a paid session or payment is one this deployment credits.
"""

from __future__ import annotations

from typing import Final

from ulid import ULID

from wallet import ledger, marker, settings, totals
from wallet.ledger import Credit
from wallet.outcomes import Outcome, Result
from wallet.payments import CheckoutSession, Event, PaymentIntent, checkout_session

SOURCE = "stripe_payment"
FULFILLING_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
NOT_OURS: Final = "not ours"
"""`payment_verdict` of a payment with no metadata of this product: another integration's."""


def fulfil(session: CheckoutSession, event_id: str | None = None) -> Outcome:
    """Credit a paid session once. Unpaid sessions wait; sessions that do not add up are rejected."""
    if not _ours(session):
        # Another integration on the same Stripe account: not a fault, nothing to alarm about.
        return Outcome(Result.NOT_OURS, session.id, reason="no metadata of this product")
    if not _settled(session):
        return Outcome(Result.AWAITING_PAYMENT, session.id, session.metadata.get("userId"))
    user_id = session.metadata.get("userId", "")
    payment_id = session.metadata.get("paymentId", "")
    credits = session.metadata.get("amount", "")
    rejected = reason_to_reject(session)
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
        amount_tax=session.totals.tax if session.totals else None,
        stripe_invoice_id=session.invoice_id,
    )
    result = Result.CREDITED if credit is Credit.CREDITED else Result.ALREADY_CREDITED
    return Outcome(result, session.id, user_id, payment_id, int(credits))


def on_checkout_event(event: Event) -> Outcome:
    """`checkout.session.completed` and `.async_payment_succeeded` credit a paid session;
    `.async_payment_failed` and `.expired` credit nothing."""
    session = checkout_session(event.data_object)
    if event.type not in FULFILLING_EVENTS:
        return Outcome(Result.NOT_CREDITED, session.id, session.metadata.get("userId"), reason=event.type)
    return fulfil(session, event_id=event.id)


def payment_verdict(intent: PaymentIntent) -> str | None:
    """Whether a payment is one this deployment credits, judged as its session would be: None when it is,
    NOT_OURS for another integration's, else why it was (or will be) rejected. For an auto top-up, and
    for a refund or dispute that arrives before its deposit, from the PaymentIntent's metadata and mark
    (a Checkout payment carries its session's; an auto top-up its own, made the same way)."""
    if "paymentId" not in intent.metadata and marker.METADATA_KEY not in intent.metadata:
        return NOT_OURS
    # A PaymentIntent holds no subtotal: where tax or a discount may have moved the total (metadata
    # terms), the mark is checked against the price it names, and Checkout's totals are the session's.
    price = intent.metadata.get(totals.PRICE_KEY, "")
    if intent.metadata.get(totals.METADATA_KEY) and price.isascii() and price.isdigit():
        charged = int(price)
    else:
        charged = intent.amount or 0
    return reason_to_reject(
        CheckoutSession(
            id=intent.id,
            status="complete",
            payment_status="paid",
            amount_total=charged,
            currency=intent.currency,
            payment_intent_id=intent.id,
            metadata=intent.metadata,
            livemode=intent.livemode,
            created=intent.created,
        )
    )


def _settled(session: CheckoutSession) -> bool:
    """Paid, or owing nothing because a promotion code took the whole price: Checkout completes such a
    session with `payment_status` no_payment_required and no payment (docs.stripe.com/payments/checkout/
    no-cost-orders); the mark and the totals are checked as for any other."""
    if session.payment_status == "paid":
        return True
    return (
        session.payment_status == "no_payment_required"
        and session.status == "complete"
        and session.amount_total == 0
        and session.totals is not None
        and session.totals.discount > 0
    )


def _ours(session: CheckoutSession) -> bool:
    """The same rule for the webhook, the success page and the sweep: this product's sessions carry a
    payment id, and since the cut-over a mark; a session with neither belongs to another integration."""
    return "paymentId" in session.metadata or marker.METADATA_KEY in session.metadata


def reason_to_reject(session: CheckoutSession) -> str | None:
    """Why a paid session is not one this deployment credits, or None when it is."""
    user_id = session.metadata.get("userId", "")
    payment_id = session.metadata.get("paymentId", "")
    credits = session.metadata.get("amount", "")
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
        varies = session.metadata.get(totals.METADATA_KEY, "")
        terms = totals.read_terms(varies)
        if terms is None:
            return f"metadata terms {varies[:60]!r} are not terms this product writes"
        paid = session.totals or totals.Totals.of_total(session.amount_total or 0)
        # What was fixed at creation, the price the customer was offered before any discount or tax;
        # the price list may have changed since.
        terms_hold = marker.holds(
            mark,
            settings.fulfilment_keys(),
            user_id=user_id,
            payment_id=payment_id,
            credits=int(credits),
            amount=paid.subtotal,
            currency=session.currency or "",
            terms=varies,
        )
        if not terms_hold:
            return "metadata or amount do not match the session's mark: altered or forged"
        # Stripe's arithmetic must hold too: a total that does not add up is not credited, but alarmed.
        wrong = totals.problem(paid, terms)
        return None if wrong is None else f"the totals do not add up: {wrong}"
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

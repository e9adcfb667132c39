"""Auto top-up's Stripe events: its PaymentIntents succeed or fail, and a card is attached to or detached
from one of our customers. All from the event's own data: no Stripe call."""

from __future__ import annotations

from wallet import auto_top_up
from wallet.ledger import Credit
from wallet.outcomes import Outcome, Result
from wallet.payments import Event, payment_intent, saved_card


def on_payment_intent_event(event: Event) -> Outcome:
    """`payment_intent.succeeded` credits an auto top-up; `.payment_failed` and `.requires_action` turn
    auto top-up off with the reason. A Checkout payment's PaymentIntent is credited through its session."""
    intent = payment_intent(event.data_object)
    if not auto_top_up.is_auto_top_up(intent):
        return Outcome(Result.IGNORED)
    if event.type != "payment_intent.succeeded":
        user_id = auto_top_up.payment_failed(intent)
        if user_id is None:
            return Outcome(Result.IGNORED)
        return Outcome(
            Result.AUTO_TOP_UP_FAILED, user_id=user_id, payment_id=intent.metadata.get("paymentId")
        )
    credited = auto_top_up.credit(intent, event_id=event.id)
    if isinstance(credited, str):
        return Outcome(
            Result.REJECTED,
            user_id=intent.metadata.get("userId"),
            payment_id=intent.metadata.get("paymentId"),
            reason=credited,
        )
    result = Result.CREDITED if credited.result is Credit.CREDITED else Result.ALREADY_CREDITED
    return Outcome(
        result,
        user_id=credited.user_id,
        payment_id=credited.payment_id,
        credits=credited.credits,
        row_type="deposit",
    )


def on_card_attached(event: Event) -> Outcome:
    """`payment_method.attached` to one of our customers: the user's saved card, unless the user removed
    or replaced a card after it was attached (a late or replayed event)."""
    user_id = auto_top_up.save_card(saved_card(event.data_object), created=event.created)
    return Outcome(Result.CARD_SAVED, user_id=user_id) if user_id else Outcome(Result.IGNORED)


def on_card_detached(event: Event) -> Outcome:
    """`payment_method.detached`: the user's saved card detached elsewhere turns auto top-up off with a
    reason; one this product removed or replaced changes nothing. The customer it had is in
    `previous_attributes`, its `customer` being null now."""
    customer = event.previous_attributes.get("customer")
    user_id = auto_top_up.card_detached(
        str(event.data_object.get("id", "")), customer if isinstance(customer, str) else None, event.created
    )
    return Outcome(Result.CARD_GONE, user_id=user_id) if user_id else Outcome(Result.IGNORED)

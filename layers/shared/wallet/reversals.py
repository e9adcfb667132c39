"""Refunds and disputes: take back what a reversed payment bought, and give it back when a dispute is won.

Stripe's events carry what is needed: a charge's cumulative `amount_refunded` out of its `amount`, a
dispute's `amount` and `status`, and the PaymentIntent that finds the deposit. No Stripe call is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ulid import ULID

from wallet import ledger, settings
from wallet.errors import DepositNotRecordedError
from wallet.ledger import PaymentChange, Reversal, Taken

REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED = "charge.dispute.closed"
REVERSAL_EVENTS = frozenset({REFUNDED, DISPUTE_CREATED, DISPUTE_CLOSED})
# A closed inquiry (`warning_closed`) never took the money; a won dispute gave it back.
GIVEN_BACK = frozenset({"won", "warning_closed"})


@dataclass(frozen=True, slots=True)
class Reversed:
    change: PaymentChange
    payment_intent_id: str | None


def reverse(event_type: str, data_object: Mapping[str, Any], event_id: str | None) -> Reversed:
    """Apply a refund or dispute event to the deposit its PaymentIntent paid for, once."""
    payment_intent_id = _id(data_object.get("payment_intent"))
    if payment_intent_id is None:
        return Reversed(PaymentChange(Taken.NO_DEPOSIT), None)
    currency = settings.price_list().currency
    if event_type == REFUNDED:
        change = ledger.claw_back(
            payment_intent_id,
            Reversal.REFUND,
            taken=_minor_units(data_object.get("amount_refunded")),
            paid=_minor_units(data_object.get("amount")),
            currency=currency,
            stripe_event_id=event_id,
        )
        if change.result is Taken.NO_DEPOSIT and _ours(data_object.get("metadata")):
            # Our payment, whose deposit has not been recorded yet: a later delivery applies it.
            raise DepositNotRecordedError(payment_intent_id)
        return Reversed(change, payment_intent_id)
    status = data_object.get("status")
    disputed = _minor_units(data_object.get("amount"))
    if event_type == DISPUTE_CLOSED and status in GIVEN_BACK:
        change = ledger.restore(payment_intent_id, currency=currency, stripe_event_id=event_id)
    elif event_type == DISPUTE_CLOSED and status != "lost":
        change = PaymentChange(Taken.NOTHING_MORE)
    else:
        change = ledger.claw_back(
            payment_intent_id,
            Reversal.DISPUTE,
            taken=disputed,
            paid=None,
            currency=currency,
            stripe_event_id=event_id,
            final=event_type == DISPUTE_CLOSED,
        )
    return Reversed(change, payment_intent_id)


def _id(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value.startswith("pi_") else None


def _minor_units(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _ours(metadata: object) -> bool:
    """Whether a charge carries this product's metadata (copied from its PaymentIntent at payment)."""
    if not isinstance(metadata, Mapping) or not metadata.get("userId"):
        return False
    try:
        ULID.from_str(str(metadata.get("paymentId", "")))
    except ValueError:
        return False
    return True

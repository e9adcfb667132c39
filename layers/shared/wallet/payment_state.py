"""What one payment's refunds and disputes say the customer may keep: a small model, derived from
Stripe's objects as its events carry them, never from the order they arrive in.

The state records each refund by its id (amount, status) and each dispute by its id (amount, status),
and what the ledger has taken back so far. Folding in an observation is commutative and idempotent:
an older status never overwrites a later one (a refund that failed stays failed, a dispute that was won
stays won), so duplicates, reordering and the sweep's replays all end in the same state. The ledger
writes one row for the difference between what it has taken and what the state says to take.

Money (Stripe's amounts, minor units of the payment) and credits (what the deposit granted, bonus
included) are kept apart: the share of credits taken is the share of the payment taken back, rounded
half up, so a full refund takes exactly the credits granted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Self

# A refund moves forward only: pending or requires_action, then succeeded, then (at the bank) failed;
# canceled ends a refund that never went through. The later status wins whatever order events arrive in.
REFUND_ORDER: Mapping[str, int] = MappingProxyType(
    {"pending": 1, "requires_action": 1, "succeeded": 2, "failed": 3, "canceled": 3}
)
REFUND_UNDONE = frozenset({"failed", "canceled"})
"""Refunds that returned nothing to the customer: the credits they took come back."""

# Every status of the pinned SDK's Dispute.status, in the order a dispute can move through them: an
# inquiry (warning_*) closes or escalates to a chargeback, which is won or lost, and a lost one may be
# appealed and then won. `prevented` (stopped upstream, e.g. Visa RDR: the cardholder got the money back
# without a chargeback) ends a dispute where it starts, as `won` ends one.
DISPUTE_ORDER: Mapping[str, int] = MappingProxyType(
    {
        "warning_needs_response": 1,
        "warning_under_review": 2,
        "warning_closed": 3,
        "needs_response": 4,
        "under_review": 5,
        "lost": 6,
        "appeal_needs_response": 7,
        "appeal_under_review": 8,
        "won": 9,
        "prevented": 9,
    }
)
INQUIRY = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
"""An inquiry withdraws no money at Stripe; while open it holds the credits, closed it holds none."""
DISPUTE_HOLDS = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "needs_response",
        "under_review",
        "lost",
        "appeal_needs_response",
        "appeal_under_review",
        "prevented",
    }
)
"""Statuses in which the disputed share is not the customer's: an open inquiry (held, in case it
escalates), a chargeback open, lost or under appeal, and a prevented one (the cardholder was repaid).
`warning_closed` and `won` hold nothing."""


@dataclass(frozen=True, slots=True)
class Reversal:
    """A refund's or a dispute's amount (minor units of the payment) and its latest status."""

    amount: int
    status: str


@dataclass(frozen=True, slots=True)
class PaymentState:
    refunds: Mapping[str, Reversal] = field(default_factory=dict)
    charge_refunded: int = 0
    """The largest `amount_refunded` a charge event showed: what counts when no refund object is known."""
    charge_amount: int = 0
    """The charge's `amount`, for a deposit that did not record what was paid."""
    disputes: Mapping[str, Reversal] = field(default_factory=dict)
    taken: int = 0
    """Credits the ledger has taken back for this payment so far (net of what it gave back)."""
    version: int = 0
    """Moves with every write, so two changes decided on one state cannot both commit."""
    legacy_taken: int = 0
    """Credits taken before refunds and disputes were kept per id; held until a dispute is known."""

    def with_refund(self, refund_id: str, amount: int, status: str) -> Self:
        known = self.refunds.get(refund_id)
        if known is not None and REFUND_ORDER[known.status] >= REFUND_ORDER[status]:
            return self
        return replace(self, refunds={**self.refunds, refund_id: Reversal(amount, status)})

    def with_charge(self, amount: int, amount_refunded: int) -> Self:
        if amount_refunded <= self.charge_refunded and amount <= self.charge_amount:
            return self
        return replace(
            self,
            charge_amount=max(amount, self.charge_amount),
            charge_refunded=max(amount_refunded, self.charge_refunded),
        )

    def with_dispute(self, dispute_id: str, amount: int, status: str) -> Self:
        known = self.disputes.get(dispute_id)
        if known is not None and DISPUTE_ORDER[known.status] >= DISPUTE_ORDER[status]:
            return self
        return replace(self, disputes={**self.disputes, dispute_id: Reversal(amount, status)})

    def same_facts(self, other: PaymentState) -> bool:
        """Whether two states know the same refunds and disputes, whatever the ledger did about them."""
        return (self.refunds, self.charge_refunded, self.charge_amount, self.disputes) == (
            other.refunds,
            other.charge_refunded,
            other.charge_amount,
            other.disputes,
        )

    def refunded(self, paid: int) -> int:
        """Money refunded for good: the refunds not failed or canceled. A charge's `amount_refunded`
        counts where refund objects have not arrived yet, less the refunds known to have failed since."""
        live = sum(r.amount for r in self.refunds.values() if r.status not in REFUND_UNDONE)
        undone = sum(r.amount for r in self.refunds.values() if r.status in REFUND_UNDONE)
        return max(0, min(paid, max(live, self.charge_refunded - undone)))

    def disputed(self) -> int:
        """Money that disputes hold: those in a status of DISPUTE_HOLDS."""
        return sum(d.amount for d in self.disputes.values() if d.status in DISPUTE_HOLDS)

    def to_take(self, credits: int, paid: int | None) -> int:
        """The credits the customer may not keep: the share of the payment that refunds and disputes took
        back, together never more than all of it (a dispute takes the part refunds had not)."""
        # A deposit made before prices were recorded: the charge's amount, else the largest amount seen.
        paid = paid or self.charge_amount or max([1, *(r.amount for r in self.disputes.values())])
        share = _share(credits, min(paid, self.refunded(paid) + self.disputed()), paid)
        legacy = self.legacy_taken if not self.disputes else 0
        return min(credits, max(share, legacy))

    def to_json(self) -> str:
        return json.dumps(
            {
                "refunds": {k: [v.amount, v.status] for k, v in sorted(self.refunds.items())},
                "chargeRefunded": self.charge_refunded,
                "chargeAmount": self.charge_amount,
                "disputes": {k: [v.amount, v.status] for k, v in sorted(self.disputes.items())},
                "legacyTaken": self.legacy_taken,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PaymentState:
        """A state as DynamoDB holds it on the payment's guard (a raw item); empty for no item.

        Guards written before refunds and disputes were kept per id carry only `refunded` and
        `disputed` (credits): what they took stays taken until a dispute of the payment is known."""
        version = int(item.get("version", {}).get("N", 0))
        taken = int(item.get("taken", {}).get("N", 0))
        saved = item.get("state", {}).get("S")
        if saved is None:
            legacy = int(item.get("refunded", {}).get("N", 0)) + int(item.get("disputed", {}).get("N", 0))
            return PaymentState(taken=legacy, version=version, legacy_taken=legacy)
        data = json.loads(saved)
        return PaymentState(
            refunds={k: Reversal(int(a), str(s)) for k, (a, s) in data.get("refunds", {}).items()},
            charge_refunded=int(data.get("chargeRefunded", 0)),
            charge_amount=int(data.get("chargeAmount", 0)),
            disputes={k: Reversal(int(a), str(s)) for k, (a, s) in data.get("disputes", {}).items()},
            taken=taken,
            version=version,
            legacy_taken=int(data.get("legacyTaken", 0)),
        )


def _share(credits: int, taken: int, paid: int) -> int:
    """credits * taken / paid, rounded half up, in whole numbers: all of it when all was taken."""
    if paid <= 0:
        return 0
    taken = max(0, min(taken, paid))
    return (2 * credits * taken + paid) // (2 * paid)

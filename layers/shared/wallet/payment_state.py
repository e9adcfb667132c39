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

The one fold that is not commutative is a read of Stripe (`with_stripe_refunds`), made only when the
events delivered cannot tell what refunds took (`ambiguous`); docs/ARCHITECTURE.md ("What Stripe says a
payment owes") gives the whole rule and why no order of deliveries shows more than Stripe's truth.
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
# appealed and then won. `won` and `prevented` both end a dispute; a dispute is never both, but should
# both arrive for one id the status that holds the credits ranks last, so the fold is commutative and
# never shows more than Stripe's truth: won < prevented as a block < prevented as a resolution.
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
        "prevented": 11,
    }
)
PREVENTED_BLOCK = "prevented:block"
"""A `prevented` dispute whose `payment_method_details.card.case_type` is `block`: Stripe stopped it with
the merchant's evidence and no money moved (https://docs.stripe.com/disputes/prevention-preview: "Block
disputes entirely"). A `resolution` refunded the cardholder ("automatically resolve (refund)"), and is
kept as `prevented`, which is also how states written before case types were read hold it."""
FOLD_ORDER: Mapping[str, int] = MappingProxyType({**DISPUTE_ORDER, PREVENTED_BLOCK: 10})
"""DISPUTE_ORDER with the block case of `prevented` in its place: what a dispute's fold compares."""
INQUIRY = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
"""An inquiry withdraws no money at Stripe; while open it holds the credits, closed it holds none."""
CHARGEBACK = frozenset(
    {"needs_response", "under_review", "won", "lost", "appeal_needs_response", "appeal_under_review"}
)
"""A formal dispute (a chargeback), whatever became of it: once a charge has one, under any id, no inquiry
of that charge holds anything more (the chargeback holds what it takes, and an inquiry escalated under a
new id is never closed at Stripe)."""
NEEDS_RESPONSE = frozenset({"warning_needs_response", "needs_response", "appeal_needs_response"})
"""Stages the merchant must answer before `evidence_details.due_by`, or lose the money."""
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
escalates), a chargeback open, lost or under appeal, and a dispute prevented as a resolution (the
cardholder was refunded). `warning_closed`, `won` and a prevented block hold nothing."""


@dataclass(frozen=True, slots=True)
class Reversal:
    """A refund's or a dispute's amount (minor units of the payment) and its latest status."""

    amount: int
    status: str


@dataclass(frozen=True, slots=True)
class PaymentState:
    refunds: Mapping[str, Reversal] = field(default_factory=dict)
    charge_refunded: int = 0
    """The largest `amount_refunded` a charge event showed, or what Stripe said when it was last read."""
    charge_amount: int = 0
    """The charge's `amount`, for a deposit that did not record what was paid."""
    disputes: Mapping[str, Reversal] = field(default_factory=dict)
    taken: int = 0
    """Credits the ledger has taken back for this payment so far (net of what it gave back)."""
    version: int = 0
    """Moves with every write, so two changes decided on one state cannot both commit."""
    legacy_refunded: int = 0
    """Credits refunds took before refunds were kept per id: a floor on what refunds took since."""
    legacy_disputed: int = 0
    """Credits a dispute took before disputes were kept per id: held until a dispute is known by id."""

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
        """`status` is one of FOLD_ORDER's: a `prevented` block comes as PREVENTED_BLOCK."""
        known = self.disputes.get(dispute_id)
        if known is not None and FOLD_ORDER[known.status] >= FOLD_ORDER[status]:
            return self
        return replace(self, disputes={**self.disputes, dispute_id: Reversal(amount, status)})

    def with_stripe_refunds(self, listed: Mapping[str, Reversal], seen_refunded: int) -> Self:
        """Fold in every refund Stripe lists for the payment now. Their live total is the charge's
        `amount_refunded` as of the read, and replaces the snapshot `seen_refunded` that made the state
        ambiguous; a snapshot delivered meanwhile is kept, as it may be newer than the read."""
        state = self
        for refund_id, refund in listed.items():
            state = state.with_refund(refund_id, refund.amount, refund.status)
        now_refunded = sum(r.amount for r in listed.values() if r.status not in REFUND_UNDONE)
        if state.charge_refunded == seen_refunded:
            return replace(state, charge_refunded=now_refunded)
        return replace(state, charge_refunded=max(state.charge_refunded, now_refunded))

    def same_facts(self, other: PaymentState) -> bool:
        """Whether two states know the same refunds and disputes, whatever the ledger did about them."""
        return (self.refunds, self.charge_refunded, self.charge_amount, self.disputes) == (
            other.refunds,
            other.charge_refunded,
            other.charge_amount,
            other.disputes,
        )

    def ambiguous(self) -> bool:
        """Whether what refunds took cannot be told from what was delivered: a charge showed more refunded
        than the live refunds known, and a refund is known to have failed or been canceled, so the
        charge's figure may predate that (then it over-counts) or follow it (then a refund not delivered
        yet is behind it). While no refund is known undone, `amount_refunded` has only grown, so the
        largest figure delivered is the newest and there is nothing to ask Stripe."""
        return self.charge_refunded > self._live() and any(
            r.status in REFUND_UNDONE for r in self.refunds.values()
        )

    def refunded(self, paid: int, credits: int = 0) -> int:
        """Money refunded: the refunds not failed or canceled, or the charge's `amount_refunded` where
        that says more (its refunds' own events are still to come), never less than what refunds took
        before they were kept per id."""
        legacy = _money(credits, self.legacy_refunded, paid) if credits else 0
        return max(0, min(paid, max(self._live(), self.charge_refunded, legacy)))

    def disputed(self, paid: int) -> int:
        """Money that disputes hold, each at most what was paid (a dispute's amount may be more than the
        charge's, e.g. by currency fluctuation: Stripe's Dispute.amount); an inquiry holds nothing once
        the charge has a chargeback under any id."""
        charged_back = any(d.status in CHARGEBACK for d in self.disputes.values())
        return sum(
            min(d.amount, paid)
            for d in self.disputes.values()
            if d.status in DISPUTE_HOLDS and not (charged_back and d.status in INQUIRY)
        )

    def paid(self, paid: int | None) -> int:
        """What was paid: the deposit's record, else (deposits made before prices were recorded) the
        charge's amount, else the largest amount a refund or dispute named."""
        amounts = [r.amount for r in (*self.refunds.values(), *self.disputes.values())]
        return paid or self.charge_amount or max([1, self.charge_refunded, *amounts])

    def to_take(self, credits: int, paid: int | None) -> int:
        """The credits the customer may not keep: the share of the payment that refunds and disputes took
        back, together never more than all of it (a dispute takes the part refunds had not)."""
        paid = self.paid(paid)
        share = _share(credits, min(paid, self.refunded(paid, credits) + self.disputed(paid)), paid)
        legacy = self.legacy_refunded + (self.legacy_disputed if not self.disputes else 0)
        return min(credits, max(share, legacy))

    def _live(self) -> int:
        return sum(r.amount for r in self.refunds.values() if r.status not in REFUND_UNDONE)

    def to_json(self) -> str:
        return json.dumps(
            {
                "refunds": {k: [v.amount, v.status] for k, v in sorted(self.refunds.items())},
                "chargeRefunded": self.charge_refunded,
                "chargeAmount": self.charge_amount,
                "disputes": {k: [v.amount, v.status] for k, v in sorted(self.disputes.items())},
                "legacyRefunded": self.legacy_refunded,
                "legacyDisputed": self.legacy_disputed,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PaymentState:
        """A state as DynamoDB holds it on the payment's guard (a raw item); empty for no item.

        Guards written before refunds and disputes were kept per id carry only `refunded` and `disputed`
        (credits taken): the refunded credits stay a floor on what refunds took, the disputed ones are
        held until a dispute of the payment is known by id. A state written with one `legacyTaken` (the
        release between) counts it as refunded, as refunds were what such guards mostly carried."""
        version = int(item.get("version", {}).get("N", 0))
        taken = int(item.get("taken", {}).get("N", 0))
        saved = item.get("state", {}).get("S")
        if saved is None:
            refunded = int(item.get("refunded", {}).get("N", 0))
            disputed = int(item.get("disputed", {}).get("N", 0))
            return PaymentState(
                taken=refunded + disputed,
                version=version,
                legacy_refunded=refunded,
                legacy_disputed=disputed,
            )
        data = json.loads(saved)
        return PaymentState(
            refunds={k: Reversal(int(a), str(s)) for k, (a, s) in data.get("refunds", {}).items()},
            charge_refunded=int(data.get("chargeRefunded", 0)),
            charge_amount=int(data.get("chargeAmount", 0)),
            disputes={k: Reversal(int(a), str(s)) for k, (a, s) in data.get("disputes", {}).items()},
            taken=taken,
            version=version,
            legacy_refunded=int(data.get("legacyRefunded", data.get("legacyTaken", 0))),
            legacy_disputed=int(data.get("legacyDisputed", 0)),
        )


def _money(credits: int, taken: int, paid: int) -> int:
    """The least money whose share (`_share`) is `taken` credits: what a legacy guard's credits stood for."""
    return max(0, -(-(2 * paid * taken - paid) // (2 * credits)))


def _share(credits: int, taken: int, paid: int) -> int:
    """credits * taken / paid, rounded half up, in whole numbers: all of it when all was taken."""
    if paid <= 0:
        return 0
    taken = max(0, min(taken, paid))
    return (2 * credits * taken + paid) // (2 * paid)

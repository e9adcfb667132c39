"""What a customer may keep of a paid top-up, as Stripe's documents define it: a reference written apart
from the product (it imports nothing from `wallet`), so that a test can hold the ledger against it.

A paid Checkout Session of `paid` (minor units) granted `credits`. Stripe then moves money back to the
cardholder by refunds and disputes; the customer keeps the credits less the same share of them as the
money that went back, rounded half up, never more than all of them:

    kept = credits - share(min(paid, refunded + disputed_holding))
    share(x) = credits * x / paid, rounded half up: (2 * credits * x + paid) // (2 * paid)

`refunded` is the sum of the refunds whose latest status is `pending`, `requires_action` or `succeeded`: the
pinned SDK's `Refund.status` is "pending, requires_action, succeeded, failed, or canceled", and a `failed`
refund's `failure_balance_transaction` "reverses the initial balance transaction" (stripe/_refund.py;
https://docs.stripe.com/refunds#failed-refunds), while a canceled one never left; a pending or waiting
refund is on its way to the cardholder and may still succeed, so it is not the customer's to spend.

`disputed_holding` is the sum over the charge's disputes (each by its latest status, each capped at `paid`:
a Dispute's `amount` is "usually the amount of the charge, but it can differ (usually because of currency
fluctuation ...)", stripe/_dispute.py) of those that hold money back:

* an inquiry (`warning_needs_response`, `warning_under_review`) moves no money but may become a chargeback,
  so while open it holds, unless the charge also has a chargeback (under any dispute id), which is then
  the one that counts; `warning_closed` holds nothing (https://docs.stripe.com/disputes/how-disputes-work,
  "Before the dispute": inquiries);
* a chargeback holds while it is `needs_response` or `under_review`, once `lost`, and while appealed
  (`appeal_needs_response`, `appeal_under_review`); `won` gives the money back (Stripe's
  `charge.dispute.funds_reinstated`);
* `prevented` depends on `payment_method_details.card.case_type`: `resolution` means the dispute was
  resolved by refunding the cardholder, `block` that it was stopped with no money moved ("Adds support for
  Dispute Preventions", https://docs.stripe.com/changelog/basil/2025-08-27/add-preventions-to-dispute:
  "Stripe can block or resolve disputes before they're raised to formal chargebacks"; the SDK's
  `case_type` literals `block`, `chargeback`, `compliance`, `inquiry`, `resolution`).

Part way through, the ledger has seen only the events delivered so far. `Seen` folds them: each Refund and
Dispute at its newest delivered event (newest as Stripe created the events, not as they arrived), and the
newest delivered Charge's `amount_refunded` (cumulative, stripe/_charge.py), less the refunds seen failed
or canceled since that Charge was sent, which counts as refunded money when it says more than the refunds
known by id. The ledger may never show more than
`credits - share(min(take_delivered, take_now))`: what the delivered events say is gone, unless Stripe's
objects now say less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

StripeObject = Mapping[str, Any]

REFUND_STILL_OUT = frozenset({"pending", "requires_action", "succeeded"})
"""Refund statuses in which the money is with the cardholder, or on its way."""
INQUIRY_OPEN = frozenset({"warning_needs_response", "warning_under_review"})
CHARGEBACK = frozenset(
    {"needs_response", "under_review", "won", "lost", "appeal_needs_response", "appeal_under_review"}
)
"""Every status of a formal chargeback, whatever its outcome."""
CHARGEBACK_HOLDS = frozenset(
    {"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"}
)


def share(credits: int, paid: int, money: int) -> int:
    """`credits * money / paid`, rounded half up, in integers."""
    return (2 * credits * money + paid) // (2 * paid)


def case_type(dispute: StripeObject) -> str | None:
    details = dispute.get("payment_method_details") or {}
    card = details.get("card") or {}
    found = card.get("case_type")
    return None if found is None else str(found)


def holds(dispute: StripeObject, charge_has_chargeback: bool) -> bool:
    """Whether this dispute, at its status, keeps its amount from the customer."""
    status = dispute["status"]
    if status in INQUIRY_OPEN:
        return not charge_has_chargeback
    if status == "prevented":
        return case_type(dispute) == "resolution"
    return status in CHARGEBACK_HOLDS


def money_back(
    paid: int,
    refunds: Iterable[StripeObject],
    disputes: Iterable[StripeObject],
    amount_refunded: int = 0,
) -> int:
    """What of `paid` went back to the cardholder, or is held back for them, at most `paid`."""
    refunded = max(sum(int(r["amount"]) for r in refunds if r["status"] in REFUND_STILL_OUT), amount_refunded)
    disputes = list(disputes)
    chargeback = any(d["status"] in CHARGEBACK for d in disputes)
    holding = sum(min(int(d["amount"]), paid) for d in disputes if holds(d, chargeback))
    return min(paid, refunded + holding)


def kept(credits: int, paid: int, money: int) -> int:
    """The credits the customer keeps once `money` of what they paid went back."""
    return credits - share(credits, paid, money)


@dataclass
class Seen:
    """One charge's Refunds, Disputes and Charge as the events seen so far show them, each at its newest
    event by Stripe's order of creation (`order`), whatever order they were seen in."""

    refunds: dict[str, tuple[int, StripeObject]] = field(default_factory=dict)
    disputes: dict[str, tuple[int, StripeObject]] = field(default_factory=dict)
    charge: tuple[int, int] = (-1, 0)
    """(order, amount_refunded) of the newest Charge seen."""

    def add(self, order: int, event: StripeObject) -> None:
        found = event["data"]["object"]
        kind = found.get("object")
        if kind == "charge":
            if order > self.charge[0]:
                self.charge = (order, int(found["amount_refunded"]))
            return
        known = {"refund": self.refunds, "dispute": self.disputes}.get(kind)
        if known is None:
            return
        if found["id"] not in known or known[found["id"]][0] < order:
            known[found["id"]] = (order, found)

    def money_back(self, paid: int, *, charge: bool = True) -> int:
        """What these objects say went back. The newest Charge's `amount_refunded` counted the refunds
        live when it was sent: those seen failed or canceled after it are taken off it (all of them, so
        a refund made after the Charge and undone is taken off too: never more than Stripe says).
        `charge=False` for every version of every Refund seen: their sum is `amount_refunded` then."""
        since, amount_refunded = self.charge
        undone_since = sum(
            int(refund["amount"])
            for order, refund in self.refunds.values()
            if order > since and refund["status"] not in REFUND_STILL_OUT
        )
        return money_back(
            paid,
            (refund for _, refund in self.refunds.values()),
            (dispute for _, dispute in self.disputes.values()),
            max(0, amount_refunded - undone_since) if charge else 0,
        )

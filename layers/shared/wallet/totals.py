"""What a Checkout Session's totals may be, given the terms it was made with: Stripe's own arithmetic.

Stripe's Checkout Session: `amount_subtotal` is the items before discounts and taxes, `total_details`
holds `amount_discount`, `amount_tax` and `amount_shipping`, and `amount_total` is what the customer
paid. Tax added to the price (`tax_behavior` exclusive) is on top of the discounted subtotal; tax inside
the price (inclusive) is part of it, so the total does not move
(https://docs.stripe.com/payments/checkout/taxes, "Tax behavior";
https://support.stripe.com/questions/inclusive-and-exclusive-tax-options-in-the-tax-rate-api-and-stripe-tax):

    exclusive: amount_total = amount_subtotal - amount_discount + amount_tax + amount_shipping
    inclusive: amount_total = amount_subtotal - amount_discount + amount_shipping, amount_tax inside it

The terms ride in the session's metadata under the mark (wallet.marker), so none can be added after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItemPriceData

    from wallet.packs import Pack

METADATA_KEY = "terms"
"""Metadata naming what Checkout may change of the totals; absent when it may change nothing."""
PRICE_KEY = "price"
"""Metadata holding the list price the mark fixed, when the total may differ from it: a PaymentIntent
carries no subtotal, and a refund that overtakes its deposit is judged from the PaymentIntent."""
TAX_BEHAVIORS = ("exclusive", "inclusive")


@dataclass(frozen=True, slots=True)
class Terms:
    tax_behavior: str | None = None
    """`exclusive` or `inclusive` when Stripe Tax applies; None when the session collects no tax."""
    promotion_codes: bool = False

    def text(self) -> str:
        """The metadata value: `tax=exclusive,promotion_codes`; empty for none."""
        parts = [f"tax={self.tax_behavior}"] if self.tax_behavior else []
        return ",".join([*parts, "promotion_codes"] if self.promotion_codes else parts)

    def metadata(self, pack: Pack) -> dict[str, str]:
        """What a session on these terms carries beside its credits (the mark covers both): none when the
        total is the price."""
        return {METADATA_KEY: self.text(), PRICE_KEY: str(pack.amount)} if self.text() else {}


NO_TERMS = Terms()
"""Checkout changes nothing: the customer pays the price."""


def with_terms(
    params: SessionCreateParams, price_data: SessionCreateParamsLineItemPriceData, terms: Terms, pack: Pack
) -> None:
    """Checkout's parameters for `terms`, as the pinned SDK names them, and the metadata that names them
    (the one dict the session and its PaymentIntent carry; its mark is made over `terms.text()`)."""
    params["metadata"].update(terms.metadata(pack))
    if terms.tax_behavior:
        # Stripe Tax from the billing address; a business's tax id for its invoice; the line item says
        # whether the price holds the tax (https://docs.stripe.com/payments/checkout/taxes).
        price_data["tax_behavior"] = "inclusive" if terms.tax_behavior == "inclusive" else "exclusive"
        params["automatic_tax"] = {"enabled": True}
        params["billing_address_collection"] = "required"
        params["tax_id_collection"] = {"enabled": True}
        if "customer" in params:
            # Stripe asks for it with a Customer: the address and name collected are saved to it.
            params["customer_update"] = {"address": "auto", "name": "auto"}
    if terms.promotion_codes:
        # The customer pays less; the credits stay what the mark fixed.
        params["allow_promotion_codes"] = True


def read_terms(text: str) -> Terms | None:
    """The terms a metadata value names; None when it is not one `Terms.text` writes."""
    tax, promotions = None, False
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name == "tax" and value in TAX_BEHAVIORS and tax is None:
            tax = value
        elif part == "promotion_codes" and not promotions:
            promotions = True
        else:
            return None
    terms = Terms(tax, promotions)
    return terms if terms.text() == text else None


@dataclass(frozen=True, slots=True)
class Totals:
    """A session's amounts in minor units, as Stripe reports them."""

    subtotal: int
    discount: int
    tax: int
    shipping: int
    total: int

    @classmethod
    def of_total(cls, total: int) -> Totals:
        """A payment known only by its total (a PaymentIntent): no discount, no tax."""
        return cls(total, 0, 0, 0, total)


def read_totals(data: Mapping[str, Any]) -> Totals | None:
    """A Checkout Session's totals as Stripe's API or an event carries it; None without a subtotal."""
    details = data.get("total_details")
    details = details if isinstance(details, Mapping) else {}
    amounts: list[Any] = [
        data.get("amount_subtotal"),
        details.get("amount_discount") or 0,
        details.get("amount_tax") or 0,
        details.get("amount_shipping") or 0,  # null when the session has no shipping
        data.get("amount_total"),
    ]
    # A bool is an int to Python; Stripe never sends one for an amount.
    if not all(isinstance(amount, int) and not isinstance(amount, bool) for amount in amounts):
        return None
    subtotal, discount, tax, shipping, total = amounts
    return Totals(subtotal, discount, tax, shipping, total)


def problem(totals: Totals, terms: Terms) -> str | None:
    """Why these totals are not what a session on these terms can show, or None when they add up."""
    amounts = (totals.subtotal, totals.discount, totals.tax, totals.shipping, totals.total)
    if any(amount < 0 for amount in amounts):
        return f"a negative amount in the totals {amounts}"
    if totals.discount and not terms.promotion_codes:
        return f"a discount of {totals.discount} on a session that allows no promotion code"
    if totals.tax and terms.tax_behavior is None:
        return f"tax of {totals.tax} on a session that collects none"
    if totals.discount > totals.subtotal:
        return f"a discount of {totals.discount} is more than the subtotal {totals.subtotal}"
    discounted = totals.subtotal - totals.discount
    if terms.tax_behavior == "inclusive":
        expected = discounted + totals.shipping
        if totals.tax > discounted:
            return f"inclusive tax of {totals.tax} is more than the {discounted} it is part of"
    else:
        expected = discounted + totals.tax + totals.shipping
    if totals.total != expected:
        rule = (
            "subtotal - discount + shipping"
            if terms.tax_behavior == "inclusive"
            else ("subtotal - discount + tax + shipping")
        )
        return f"amount_total {totals.total} is not {rule} = {expected}"
    return None

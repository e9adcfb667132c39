"""Promotion codes and Stripe Tax on the emulator's Checkout Sessions: a session's totals as Stripe
computes them (https://docs.stripe.com/payments/checkout/taxes, "Tax behavior";
https://docs.stripe.com/payments/checkout/discounts).

The emulated customer is always in one place, so tax is one fixed test rate, TEST_TAX_RATE_PERCENT, on the
discounted subtotal: added on top for an exclusive price, found inside the price for an inclusive one
(tax = amount * rate / (100 + rate)). Stripe rounds each tax amount to the currency's minor unit; the
emulator rounds half up. A discount comes first: a percentage of the subtotal rounded half up, or a fixed
amount, never more than the subtotal.
"""

from __future__ import annotations

from dataclasses import dataclass

from devstack.stripe_emulator.errors import invalid
from devstack.stripe_emulator.fixtures import JsonObject
from devstack.stripe_emulator.store import CheckoutRecord

TEST_TAX_RATE_PERCENT = 10


@dataclass(frozen=True, slots=True)
class PromotionCode:
    id: str
    coupon: str
    percent_off: int | None = None
    amount_off: int | None = None
    currency: str | None = None


# The codes a customer may type on the emulator's Checkout page, as a Dashboard would have made them.
TEST_PROMOTION_CODES = {
    "SAVE20": PromotionCode("promo_test_save20", "coupon_test_20pct", percent_off=20),
    "FIVEOFF": PromotionCode("promo_test_fiveoff", "coupon_test_500usd", amount_off=500, currency="usd"),
}


def lookup(code: str) -> PromotionCode | None:
    """A test promotion code; customers type codes in any case, as on Stripe."""
    return TEST_PROMOTION_CODES.get(code.strip().upper())


def discount_of(code: PromotionCode, subtotal: int) -> int:
    if code.percent_off is not None:
        return min(subtotal, (2 * subtotal * code.percent_off + 100) // 200)
    return min(subtotal, code.amount_off or 0)


def tax_of(taxable: int, behavior: str) -> int:
    rate = TEST_TAX_RATE_PERCENT
    if behavior == "inclusive":
        return (2 * taxable * rate + (100 + rate)) // (2 * (100 + rate))
    return (2 * taxable * rate + 100) // 200


def tax_behavior(record: CheckoutRecord) -> str | None:
    """The line items' tax behaviour when automatic tax is on: one for all, as this product sends."""
    if not record.session["automatic_tax"]["enabled"]:
        return None
    behaviors = {item["price_data"].get("tax_behavior", "unspecified") for item in record.line_items}
    return behaviors.pop() if len(behaviors) == 1 else "mixed"


def check_tax(params: JsonObject, line_items: list[JsonObject]) -> None:
    """Stripe refuses automatic tax on a price whose tax behaviour is not set (no Dashboard default here)."""
    automatic = params.get("automatic_tax", {}).get("enabled", "false")
    if automatic != "true":
        return
    for index, item in enumerate(line_items):
        if item["price_data"].get("tax_behavior") not in ("exclusive", "inclusive"):
            raise invalid(
                "automatic_tax needs a tax_behavior of exclusive or inclusive on every price (this emulated "
                "account has no default tax behavior)",
                f"line_items[{index}][price_data][tax_behavior]",
            )


def price(record: CheckoutRecord, code: PromotionCode | None) -> None:
    """Set the session's totals, discounts and automatic tax status from its items, `code` and tax."""
    session = record.session
    subtotal = session["amount_subtotal"] or 0
    discount = discount_of(code, subtotal) if code else 0
    behavior = tax_behavior(record)
    tax = tax_of(subtotal - discount, behavior) if behavior in ("exclusive", "inclusive") else 0
    total = subtotal - discount + (tax if behavior == "exclusive" else 0)
    session["amount_total"] = total
    session["total_details"] = {"amount_discount": discount, "amount_shipping": 0, "amount_tax": tax}
    session["discounts"] = [{"coupon": code.coupon, "promotion_code": code.id}] if code else []
    if behavior is not None:
        session["automatic_tax"] = {
            "enabled": True,
            "liability": {"type": "self"},
            "provider": "stripe",
            "status": "complete",
        }

"""Checkout's paid invoice for a top-up (InvoicesEnabled): what a session asks for it, and how an object
names it. Below wallet.payments, which adds these to the sessions it makes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from wallet import settings

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


def ask_for_invoice(
    params: SessionCreateParams, payment_id: str, user_id: str, *, existing_customer: bool
) -> None:
    """With InvoicesEnabled, Checkout makes a paid invoice after the payment (Stripe's post-payment invoices,
    docs.stripe.com/payments/checkout/receipts) with the billing address and the tax id it collects
    (docs.stripe.com/tax/checkout/tax-ids); an existing customer's name and address are updated from what
    the page took (`customer_update`), so the invoice shows what was typed."""
    if not settings.invoices_enabled():
        return
    params["invoice_creation"] = {
        "enabled": True,
        "invoice_data": {"metadata": {"paymentId": payment_id, "userId": user_id}},
    }
    params["billing_address_collection"] = "required"
    params["tax_id_collection"] = {"enabled": True}
    if existing_customer:
        params["customer_update"] = {"address": "auto", "name": "auto"}


def expandable_id(value: object) -> str | None:
    """The id an expandable field names: the id itself, or the expanded object's."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None

"""A deposit's receipt and invoice, asked of Stripe when the user asks for them.

Stripe keeps both: a charge's `receipt_url`, and the hosted page and PDF of the invoice Checkout makes
when InvoicesEnabled is on. Neither is stored on the deposit row: the webhook credits a payment with no
Stripe call (the session's event carries no charge), and the links Stripe gives stay Stripe's to keep
current (a receipt shows later refunds). The deposit row, read by the signed-in user's own key, says which
PaymentIntent, Checkout Session and invoice to ask about; another user's payment id reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from pynamodb.exceptions import DoesNotExist, PynamoDBException
from ulid import ULID

from wallet import invoicing, payments, rate_limits, settings
from wallet.errors import (
    DepositNotFoundError,
    LedgerUnavailableError,
    PaymentsUnavailableError,
    TooManyReceiptsError,
)
from wallet.models import CreditTransaction
from wallet.writes import DEPOSIT

# Each asks Stripe up to three times; far above what a person clicking through their top-ups does.
RECEIPTS_PER_HOUR = 60


def documents(user_id: str, payment_id: str) -> PaymentDocuments:
    """The receipt and invoice links of `user_id`'s deposit `payment_id` (its transaction id)."""
    try:
        ULID.from_str(payment_id)
    except ValueError:
        raise DepositNotFoundError(payment_id) from None
    try:
        # Deposits are on the account's main partition, hot or not: one strongly consistent read.
        row = CreditTransaction.get(user_id, payment_id, consistent_read=True)
    except DoesNotExist:
        raise DepositNotFoundError(payment_id) from None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the top-up") from exc
    if row.type != DEPOSIT:
        raise DepositNotFoundError(payment_id)
    rate_limits.count(user_id, "receipts", RECEIPTS_PER_HOUR, TooManyReceiptsError)
    # A deposit credited before its invoice was recorded (or before invoices were on) may still have one:
    # its session is asked, only while invoices are on.
    session = row.stripe_session_id if row.stripe_invoice_id is None and settings.invoices_enabled() else None
    return payment_documents(row.stripe_payment_intent_id, row.stripe_invoice_id, session)


@dataclass(frozen=True, slots=True)
class PaymentDocuments:
    receipt_url: str | None
    """Charge.receipt_url: Stripe's receipt, "kept up-to-date to the latest state of the charge, including
    any refunds" (the SDK's Charge)."""
    invoice_url: str | None
    """Invoice.hosted_invoice_url; null until the invoice is finalized."""
    invoice_pdf: str | None


def payment_documents(
    payment_intent_id: str | None,
    invoice_id: str | None,
    session_id: str | None = None,
    client: stripe.StripeClient | None = None,
) -> PaymentDocuments:
    """The receipt of a PaymentIntent's paid charge (one list of its charges, Charges: Read) and, given its
    invoice or the Checkout Session that may have made one, the invoice's pages (Invoices: Read; and
    Checkout Sessions: Read to learn the invoice of a deposit recorded without it)."""
    try:
        sdk, options = payments.calling(client)
        receipt = None
        if payment_intent_id:
            charges = sdk.v1.charges.list({"payment_intent": payment_intent_id, "limit": 10}, options=options)
            # Newest first; a declined attempt before the paid one has no receipt worth showing.
            paid = next((charge for charge in charges.data if charge.paid), None)
            receipt = paid.receipt_url if paid else None
        if invoice_id is None and session_id:
            session = sdk.v1.checkout.sessions.retrieve(session_id, options=options)
            invoice_id = invoicing.expandable_id(session.to_dict().get("invoice"))
        if invoice_id is None:
            return PaymentDocuments(receipt, None, None)
        invoice = sdk.v1.invoices.retrieve(invoice_id, options=options)
    except stripe.StripeError as exc:
        raise PaymentsUnavailableError("Stripe did not return the payment's receipt or invoice") from exc
    return PaymentDocuments(receipt, invoice.hosted_invoice_url, invoice.invoice_pdf)

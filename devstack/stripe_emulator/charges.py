"""Charges: the one a PaymentIntent makes when the customer pays, as Stripe shows it (`GET /v1/charges/{id}`).

A card payment's charge (`ch_...`) succeeds at once; a bank debit's (`py_...`, as Stripe names them) is
`pending` until the payment settles or fails. Refunds add to its `amount_refunded` (a failed or canceled
one takes its amount back off); a dispute, inquiry or chargeback, sets `disputed`. Every function here runs
with the emulator's lock held.
"""

from __future__ import annotations

import copy

from devstack.stripe_emulator.errors import no_such
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, conform, expands
from devstack.stripe_emulator.invoices import receipt_url
from devstack.stripe_emulator.store import Store


def new_charge(store: Store, intent: JsonObject, *, email: str | None, bank_debit: bool) -> JsonObject:
    """The charge of `intent`'s successful (or, for a bank debit, submitted) payment, kept in `store`."""
    charge_id = intent["latest_charge"]
    amount = intent["amount"]
    template = fixture("charge")
    billing_details = dict.fromkeys(template["billing_details"]) | {
        "address": dict.fromkeys(template["billing_details"]["address"]) | {"country": "US"},
        "email": email,
    }
    charge = stripe_object(
        "charge",
        amount=amount,
        amount_captured=amount,
        amount_refunded=0,
        application=None,
        application_fee=None,
        application_fee_amount=None,
        balance_transaction=None if bank_debit else new_id("txn_"),
        billing_details=billing_details,
        calculated_statement_descriptor="CREDITS",
        captured=True,
        created=now(),
        currency=intent["currency"],
        customer=intent["customer"],
        description=intent["description"],
        disputed=False,
        failure_balance_transaction=None,
        failure_code=None,
        failure_message=None,
        fraud_details={},
        id=charge_id,
        livemode=False,
        metadata=dict(intent["metadata"]),
        object="charge",
        on_behalf_of=None,
        outcome={
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        paid=not bank_debit,
        payment_intent=intent["id"],
        payment_method=intent["payment_method"],
        payment_method_details=_bank_debit_details() if bank_debit else _card_details(amount),
        receipt_email=None,
        receipt_number=None,
        receipt_url=receipt_url(store.public_base_url, charge_id),
        refunded=False,
        refunds={"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge_id}/refunds"},
        review=None,
        shipping=None,
        source=None,
        source_transfer=None,
        statement_descriptor=None,
        statement_descriptor_suffix=None,
        status="pending" if bank_debit else "succeeded",
        transfer_data=None,
        transfer_group=None,
    )
    store.charges[charge_id] = charge
    return charge


def _card_details(amount: int) -> JsonObject:
    details = fixture("charge")["payment_method_details"]
    card = details["card"]
    # Neither an installment plan nor 3-D Secure took part: Stripe shows each as null, not an empty shell.
    card.update(
        amount_authorized=amount,
        fingerprint=new_id("", 16),
        installments=None,
        three_d_secure=None,
        wallet=None,
    )
    card["overcapture"]["maximum_amount_capturable"] = amount
    return {"card": card, "type": "card"}


def _bank_debit_details() -> JsonObject:
    return {
        "type": "us_bank_account",
        "us_bank_account": {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "fingerprint": new_id("", 16),
            "last4": "6789",
            "mandate": new_id("mandate_"),
            "payment_reference": None,
            "routing_number": "110000000",
        },
    }


def settle(charge: JsonObject) -> None:
    """A bank debit's money arrived."""
    charge.update(status="succeeded", paid=True, balance_transaction=new_id("txn_"))


def fail(charge: JsonObject) -> None:
    """A bank debit was returned unpaid."""
    charge.update(
        status="failed",
        paid=False,
        amount_captured=0,
        failure_code="insufficient_funds",
        failure_message="The account has insufficient funds to cover this payment.",
    )


def charge_of(store: Store, charge_id: str, param: str) -> JsonObject:
    charge = store.charges.get(charge_id)
    if charge is None:
        raise no_such("charge", charge_id, param)
    return charge


def retrieve(store: Store, charge_id: str, params: JsonObject) -> JsonObject:
    expand_intent = expands(conform(params, EXPAND_ONLY, ""), "payment_intent")
    charge = copy.deepcopy(charge_of(store, charge_id, "id"))
    if expand_intent:
        charge["payment_intent"] = copy.deepcopy(store.payment_intents[charge["payment_intent"]])
    return charge

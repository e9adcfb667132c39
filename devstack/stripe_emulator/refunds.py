"""Refunds: `POST /v1/refunds` of a charge or a PaymentIntent, in full or in part, and `GET /v1/refunds/{id}`.

A refund succeeds at once; its charge's `amount_refunded` grows (and `refunded` turns true once nothing is
left) and Stripe's `charge.refunded` (the charge, its cumulative `amount_refunded`) and `refund.created`
(the refund) are sent. Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy

import stripe

from devstack.stripe_emulator.charges import charge_of
from devstack.stripe_emulator.errors import StripeApiError, invalid, no_such
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, METADATA, conform, expands, stripe_params
from devstack.stripe_emulator.payment_intents import payment_intent_of
from devstack.stripe_emulator.store import Store

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_CREATE_PARAMS: JsonObject = {
    "amount": int,
    "charge": str,
    "expand": [str],
    "metadata": METADATA,
    "payment_intent": str,
    "reason": str,
}
_STRIPE_CREATE_PARAMS = stripe_params(stripe.params.RefundCreateParams)


def create(
    store: Store, params: JsonObject, request: RequestContext | None
) -> tuple[JsonObject, list[JsonObject]]:
    """The refund `params` ask for, and the events it sends: `[charge.refunded, refund.created]`."""
    params = conform(params, _CREATE_PARAMS, "", _STRIPE_CREATE_PARAMS)
    expand_charge = expands(params, "charge")
    charge = _charge_to_refund(store, params)
    remaining = charge["amount"] - charge["amount_refunded"]
    amount = params.get("amount", remaining)
    if "amount" in params and amount < 1:
        raise invalid("Invalid positive integer", "amount", "parameter_invalid_integer")
    reason = params.get("reason")
    if reason is not None and reason not in REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REASONS)}", "reason")
    if charge["disputed"]:
        raise StripeApiError(
            400,
            f"Charge {charge['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
        )
    if charge["refunded"] or remaining == 0:
        raise StripeApiError(
            400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    if charge["status"] != "succeeded":
        raise StripeApiError(
            400,
            f"Charge {charge['id']} is {charge['status']}; only a succeeded charge can be refunded.",
            code="charge_not_refundable",
        )
    if amount > remaining:
        raise StripeApiError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
            code="amount_too_large",
            param="amount",
        )
    refund = stripe_object(
        "refund",
        amount=amount,
        balance_transaction=new_id("txn_"),
        charge=charge["id"],
        created=now(),
        currency=charge["currency"],
        customer=charge["customer"],
        customer_account=None,
        destination_details=_destination_details(charge),
        id=new_id("re_"),
        metadata=params.get("metadata", {}),
        object="refund",
        payment_intent=charge["payment_intent"],
        payment_method=charge["payment_method"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
    )
    store.refunds[refund["id"]] = refund
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
    events = [
        store.publish("charge.refunded", charge, request),
        store.publish("refund.created", refund, request),
    ]
    rendered = copy.deepcopy(refund)
    if expand_charge:
        rendered["charge"] = copy.deepcopy(charge)
    return rendered, events


def _charge_to_refund(store: Store, params: JsonObject) -> JsonObject:
    charge_id, intent_id = params.get("charge"), params.get("payment_intent")
    if charge_id is None and intent_id is None:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent or charge.",
            "charge",
        )
    if intent_id is not None:
        intent = payment_intent_of(store, intent_id, "payment_intent")
        if intent["status"] != "succeeded" or intent["latest_charge"] not in store.charges:
            raise StripeApiError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        if charge_id is not None and charge_id != intent["latest_charge"]:
            raise invalid(f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.", "charge")
        charge_id = intent["latest_charge"]
    assert charge_id is not None
    return charge_of(store, charge_id, "charge")


def _destination_details(charge: JsonObject) -> JsonObject:
    if charge["payment_method_details"]["type"] == "us_bank_account":
        return {
            "type": "us_bank_transfer",
            "us_bank_transfer": {"reference": None, "reference_status": "pending"},
        }
    details: JsonObject = fixture("refund")["destination_details"]
    details["card"].update(reference=None, reference_status="pending", reference_type=None)
    return details


def retrieve(store: Store, refund_id: str, params: JsonObject) -> JsonObject:
    expand_charge = expands(conform(params, EXPAND_ONLY, ""), "charge")
    refund = store.refunds.get(refund_id)
    if refund is None:
        raise no_such("refund", refund_id, "id")
    rendered = copy.deepcopy(refund)
    if expand_charge:
        rendered["charge"] = copy.deepcopy(store.charges[refund["charge"]])
    return rendered

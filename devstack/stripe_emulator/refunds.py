"""Refunds: `POST /v1/refunds` of a charge or a PaymentIntent, in full or in part, `GET /v1/refunds/{id}`,
and `GET /v1/refunds` (newest first, by `charge` or `payment_intent`, paged by `limit` and `starting_after`).

`POST /v1/refunds/{id}/cancel` cancels one that waits for the customer (`requires_action`), as Stripe's
does. A refund is made `succeeded`, or in the status a test asked the charge's refunds to start in
(`start_refunds_as`: `pending` or `requires_action`); either way its charge's `amount_refunded` grows (and
`refunded` turns true once nothing is left) and Stripe's `charge.refunded` (the charge, its cumulative
`amount_refunded`) and `refund.created` (the refund) are sent. A charge under a chargeback is not refunded;
one under an inquiry (its dispute `is_charge_refundable`) is.

What happens to a refund afterwards is played by `act`, as the bank would: `succeed` (from pending or
requires_action), `fail` (from pending or succeeded, with a `failure_reason`) and `cancel` (from pending or
requires_action). A failed or canceled refund gives its amount back to the charge's `amount_refunded`, and
sends `refund.updated` and `charge.refund.updated` (with `refund.failed` first when it failed). Every
function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy

import stripe

from devstack.stripe_emulator.charges import charge_of
from devstack.stripe_emulator.errors import (
    InvalidTransitionError,
    StripeApiError,
    UnknownObjectError,
    invalid,
    no_such,
)
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, METADATA, conform, expands, stripe_params
from devstack.stripe_emulator.payment_intents import payment_intent_of
from devstack.stripe_emulator.store import Store

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
ACTIONS = ("succeed", "fail", "cancel")
# The statuses a test can have a charge's new refunds start in.
STARTING_STATUSES = ("succeeded", "pending", "requires_action")
DEFAULT_FAILURE_REASON = "expired_or_canceled_card"
FAILURE_REASONS = (
    "charge_for_pending_refund_disputed",
    "declined",
    "expired_or_canceled_card",
    "insufficient_funds",
    "lost_or_stolen_card",
    "merchant_request",
    "unknown",
)
# From which statuses each action moves a refund, and to which.
_MOVES = {
    "succeed": (("pending", "requires_action"), "succeeded"),
    "fail": (("pending", "succeeded"), "failed"),
    "cancel": (("pending", "requires_action"), "canceled"),
}
# How long a customer has to give the details a `requires_action` refund waits for.
_ACTION_SECONDS = 30 * 24 * 60 * 60
_CREATE_PARAMS: JsonObject = {
    "amount": int,
    "charge": str,
    "expand": [str],
    "metadata": METADATA,
    "payment_intent": str,
    "reason": str,
}
_STRIPE_CREATE_PARAMS = stripe_params(stripe.params.RefundCreateParams)
_LIST_PARAMS: JsonObject = {
    "charge": str,
    "ending_before": str,
    "expand": [str],
    "limit": int,
    "payment_intent": str,
    "starting_after": str,
}
_STRIPE_LIST_PARAMS = stripe_params(stripe.params.RefundListParams)


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
    dispute = store.latest_dispute(charge["id"])
    if dispute is not None and not dispute["is_charge_refundable"]:
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
    created = now()
    status = store.refunds_start_as.get(charge["id"], "succeeded")
    refund = stripe_object(
        "refund",
        amount=amount,
        balance_transaction=new_id("txn_"),
        charge=charge["id"],
        created=created,
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
        status=status,
        transfer_reversal=None,
    )
    # Stripe shows these only while the refund waits: why, or what the customer has to do.
    if status == "pending":
        refund["pending_reason"] = "processing"
    elif status == "requires_action":
        refund["next_action"] = {
            "display_details": {
                "email_sent": {
                    "email_sent_at": created,
                    "email_sent_to": charge["billing_details"]["email"] or "customer@example.com",
                },
                "expires_at": created + _ACTION_SECONDS,
            },
            "type": "display_details",
        }
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


def start_refunds_as(store: Store, charge_id: str, status: str) -> None:
    """Make the charge's refunds from now on start in `status` (`succeeded`, `pending`, `requires_action`)."""
    if charge_id not in store.charges:
        raise UnknownObjectError(f"no charge {charge_id!r} in this emulator")
    if status not in STARTING_STATUSES:
        raise ValueError(f"a refund starts as one of {', '.join(STARTING_STATUSES)}, not {status!r}")
    if status == "succeeded":
        store.refunds_start_as.pop(charge_id, None)
    else:
        store.refunds_start_as[charge_id] = status


def act(
    store: Store,
    refund_id: str,
    action: str,
    failure_reason: str | None = None,
    request: RequestContext | None = None,
) -> list[JsonObject]:
    """The bank settles (`succeed`), returns (`fail`) or the refund is canceled (`cancel`) -> the events:
    `[refund.failed]` when it failed, then `[refund.updated, charge.refund.updated]`."""
    refund = store.refunds.get(refund_id)
    if refund is None:
        raise UnknownObjectError(f"no refund {refund_id!r} in this emulator")
    if action not in _MOVES:
        raise ValueError(f"a refund's action is one of {', '.join(ACTIONS)}, not {action!r}")
    if failure_reason is not None and action != "fail":
        raise ValueError("failure_reason is given only to fail a refund")
    failure_reason = failure_reason or DEFAULT_FAILURE_REASON
    if failure_reason not in FAILURE_REASONS:
        raise ValueError(
            f"a refund's failure_reason is one of {', '.join(FAILURE_REASONS)}, not {failure_reason!r}"
        )
    sources, status = _MOVES[action]
    if refund["status"] not in sources:
        raise InvalidTransitionError(
            f"cannot {action} refund {refund_id}: it is {refund['status']}; "
            f"only a refund that is {' or '.join(sources)} can be"
        )
    refund["status"] = status
    refund.pop("pending_reason", None)
    refund.pop("next_action", None)
    charge = store.charges[refund["charge"]]
    sent = []
    if status in ("failed", "canceled"):
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    if status == "failed":
        refund.update(failure_balance_transaction=new_id("txn_"), failure_reason=failure_reason)
        sent.append(store.publish("refund.failed", refund, request))
    charge["refunds"]["data"] = [
        copy.deepcopy(refund) if listed["id"] == refund_id else listed for listed in charge["refunds"]["data"]
    ]
    sent += [
        store.publish("refund.updated", refund, request),
        store.publish("charge.refund.updated", refund, request),
    ]
    return sent


def cancel_by_api(store: Store, refund_id: str, params: JsonObject, request: RequestContext) -> JsonObject:
    """`POST /v1/refunds/{id}/cancel`: Stripe cancels only a refund that waits for the customer."""
    expand_charge = expands(conform(params, EXPAND_ONLY, ""), "charge")
    refund = store.refunds.get(refund_id)
    if refund is None:
        raise no_such("refund", refund_id, "refund")
    if refund["status"] != "requires_action":
        raise StripeApiError(
            400,
            f"Refund {refund_id} has a status of {refund['status']}; only a refund with a status of "
            "requires_action can be canceled.",
        )
    request.events.extend(act(store, refund_id, "cancel", request=request))
    rendered = copy.deepcopy(refund)
    if expand_charge:
        rendered["charge"] = copy.deepcopy(store.charges[refund["charge"]])
    return rendered


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


def list_refunds(store: Store, params: JsonObject) -> JsonObject:
    """`GET /v1/refunds`: the refunds as they are now, newest first, of one charge or PaymentIntent."""
    params = conform(params, _LIST_PARAMS, "", _STRIPE_LIST_PARAMS)
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"Invalid limit: must be between 1 and 100, got {limit}", "limit")
    if "ending_before" in params:
        raise invalid("This emulator pages refunds forward only (starting_after).", "ending_before")
    newest_first = [
        refund
        for refund in reversed(store.refunds.values())
        if params.get("charge", refund["charge"]) == refund["charge"]
        and params.get("payment_intent", refund["payment_intent"]) == refund["payment_intent"]
    ]
    if "starting_after" in params:
        ids = [refund["id"] for refund in newest_first]
        if params["starting_after"] not in store.refunds:
            raise no_such("refund", params["starting_after"], "starting_after")
        at = ids.index(params["starting_after"]) + 1 if params["starting_after"] in ids else len(ids)
        newest_first = newest_first[at:]
    page = newest_first[:limit]
    return {
        "object": "list",
        "data": [copy.deepcopy(refund) for refund in page],
        "has_more": len(newest_first) > limit,
        "url": "/v1/refunds",
    }

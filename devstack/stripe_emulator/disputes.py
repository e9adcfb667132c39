"""Disputes (chargebacks): opened, won or lost by a test control, since Stripe's API cannot make one.

Opening one sets its charge's `disputed` and sends `charge.dispute.created`; winning or losing it sends
`charge.dispute.closed` with `status` `won` or `lost`. `GET /v1/disputes/{id}` shows it. A charge has at
most one dispute, as at Stripe. Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy

from devstack.stripe_emulator.errors import InvalidTransitionError, UnknownObjectError, no_such
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, conform, expands
from devstack.stripe_emulator.store import Store

ACTIONS = ("open", "win", "lose")
DEFAULT_REASON = "fraudulent"
REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "noncompliant",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
_RESPONSE_DAYS = 7 * 24 * 60 * 60


def open_dispute(
    store: Store, charge_id: str, amount: int | None = None, reason: str = DEFAULT_REASON
) -> list[JsonObject]:
    """The cardholder disputes the charge -> `[charge.dispute.created]`."""
    charge = store.charges.get(charge_id)
    if charge is None:
        raise UnknownObjectError(f"no charge {charge_id!r} in this emulator")
    if charge["disputed"]:
        raise InvalidTransitionError(f"charge {charge_id} has already been disputed")
    if charge["status"] != "succeeded":
        raise InvalidTransitionError(
            f"charge {charge_id} is {charge['status']}: only a paid charge is disputed"
        )
    amount = charge["amount"] if amount is None else amount
    if not 1 <= amount <= charge["amount"]:
        raise ValueError(f"a dispute's amount is between 1 and the charge's {charge['amount']}, not {amount}")
    if reason not in REASONS:
        raise ValueError(f"a dispute's reason is one of {', '.join(REASONS)}, not {reason!r}")
    created = now()
    template = fixture("dispute")
    dispute = stripe_object(
        "dispute",
        amount=amount,
        balance_transactions=[],
        charge=charge_id,
        created=created,
        currency=charge["currency"],
        enhanced_eligibility_types=[],
        evidence=template["evidence"],
        evidence_details={
            "due_by": created + _RESPONSE_DAYS,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        id=new_id("dp_"),
        is_charge_refundable=False,
        livemode=False,
        metadata={},
        object="dispute",
        payment_intent=charge["payment_intent"],
        payment_method_details=_payment_method_details(charge),
        reason=reason,
        status="needs_response",
    )
    store.disputes[dispute["id"]] = dispute
    charge["disputed"] = True
    return [store.publish("charge.dispute.created", dispute)]


def close_dispute(store: Store, dispute_id: str, *, won: bool) -> list[JsonObject]:
    """The card network decides -> `[charge.dispute.closed]`, its status `won` or `lost`."""
    dispute = store.disputes.get(dispute_id)
    if dispute is None:
        raise UnknownObjectError(f"no dispute {dispute_id!r} in this emulator")
    if dispute["status"] in ("won", "lost"):
        raise InvalidTransitionError(f"dispute {dispute_id} is closed already: {dispute['status']}")
    dispute["status"] = "won" if won else "lost"
    return [store.publish("charge.dispute.closed", dispute)]


def dispute_of_charge(store: Store, charge_id: str) -> str:
    """The id of the charge's dispute."""
    if charge_id not in store.charges:
        raise UnknownObjectError(f"no charge {charge_id!r} in this emulator")
    for dispute in store.disputes.values():
        if dispute["charge"] == charge_id:
            return str(dispute["id"])
    raise InvalidTransitionError(f"charge {charge_id} has no dispute to close")


def _payment_method_details(charge: JsonObject) -> JsonObject | None:
    if charge["payment_method_details"]["type"] != "card":
        return None
    details: JsonObject = fixture("dispute")["payment_method_details"]
    details["card"].update(case_type="chargeback", network_reason_code="10.4")
    return details


def retrieve(store: Store, dispute_id: str, params: JsonObject) -> JsonObject:
    expand_charge = expands(conform(params, EXPAND_ONLY, ""), "charge")
    dispute = store.disputes.get(dispute_id)
    if dispute is None:
        raise no_such("dispute", dispute_id, "dispute")
    rendered = copy.deepcopy(dispute)
    if expand_charge:
        rendered["charge"] = copy.deepcopy(store.charges[dispute["charge"]])
    return rendered

"""Disputes: inquiries, chargebacks and their appeals, moved by a test control, since Stripe's API cannot.

Every status Stripe gives a dispute can be reached, each by the step that reaches it at Stripe:

    inquire   -> warning_needs_response  (an inquiry: no money moves, the charge can still be refunded)
    open      -> needs_response          (a chargeback: the money and Stripe's dispute fee are withdrawn)
    prevent   -> prevented               (resolved upstream, as by Visa RDR: the cardholder is refunded,
                                          no fee; `payment_method_details.card.case_type` `resolution`)
    block     -> prevented               (blocked with the merchant's data, no money moves; `case_type`
                                          `block`: Stripe's "Dispute prevention" guide and its
                                          2025-08-27 changelog "Adds support for Dispute Preventions")
    charge_back -> needs_response        (a chargeback under a NEW id while the charge's inquiry is open;
                                          the inquiry is left as it was, never closed, as issuers may do)
    escalate     warning_* -> needs_response                 (the inquiry becomes a chargeback)
    submit       *needs_response -> *under_review            (evidence submitted)
    win          warning_* -> warning_closed; a chargeback or appeal -> won (the money is reinstated)
    lose         a chargeback or appeal -> lost
    appeal       lost -> appeal_needs_response

Each step sends Stripe's events: `charge.dispute.created`, `.updated`, `.closed`, `.funds_withdrawn` and
`.funds_reinstated`, each carrying the dispute as it is then; a chargeback also fails the charge's pending
refunds (`charge_for_pending_refund_disputed`). A charge has one dispute at a time; a new one may follow
only once its latest is `warning_closed`, or (`charge_back`) while it is an open inquiry. A chargeback's
amount may exceed the charge's by up to a tenth (Stripe's Dispute.amount: "usually the amount of the
charge, but it can differ (usually because of currency fluctuation...)"). Any other step is an
`InvalidTransitionError`.
`GET /v1/disputes/{id}` shows a dispute. Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy

from devstack.stripe_emulator import refunds
from devstack.stripe_emulator.errors import InvalidTransitionError, UnknownObjectError, no_such
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import EXPAND_ONLY, conform, expands
from devstack.stripe_emulator.store import Store

# What makes a new dispute (these take an amount and a reason), then what moves the latest one.
OPENING = ("inquire", "open", "prevent", "block", "charge_back")
ACTIONS = (*OPENING, "escalate", "submit", "win", "lose", "appeal")
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
INQUIRY = ("warning_needs_response", "warning_under_review")
CHARGEBACK = ("needs_response", "under_review", "appeal_needs_response", "appeal_under_review")
CLOSED = ("warning_closed", "won", "lost", "prevented")
_SUBMITTED = {
    "warning_needs_response": "warning_under_review",
    "needs_response": "under_review",
    "appeal_needs_response": "appeal_under_review",
}
_RESPONSE_DAYS = 7 * 24 * 60 * 60
# Stripe's dispute fee in the US, in cents; withdrawn with a chargeback and kept whatever the outcome.
_DISPUTE_FEE = 1500
# The card network's code for each kind of case: Visa's "fraud, card absent" and its RDR resolution.
_CASE_TYPES = {
    "inquire": "inquiry",
    "open": "chargeback",
    "prevent": "resolution",
    "block": "block",
    "charge_back": "chargeback",
}
_STATUSES = {
    "inquire": "warning_needs_response",
    "open": "needs_response",
    "prevent": "prevented",
    "block": "prevented",
    "charge_back": "needs_response",
}
# What withdraws the money (with the fee), and what ends where it starts.
_CHARGEBACKS = ("open", "charge_back")
_PREVENTED = ("prevent", "block")


def open_dispute(
    store: Store,
    charge_id: str,
    amount: int | None = None,
    reason: str = DEFAULT_REASON,
    *,
    action: str = "open",
) -> list[JsonObject]:
    """A new dispute of the charge: an inquiry (`inquire`), a chargeback (`open`) or one stopped upstream
    (`prevent`) -> its events, `charge.dispute.created` first."""
    if action not in OPENING:
        raise ValueError(f"a dispute is opened by one of {', '.join(OPENING)}, not {action!r}")
    charge = store.charges.get(charge_id)
    if charge is None:
        raise UnknownObjectError(f"no charge {charge_id!r} in this emulator")
    latest = latest_dispute(store, charge_id)
    if action == "charge_back" and (latest is None or latest["status"] not in INQUIRY):
        raise InvalidTransitionError(
            f"charge {charge_id} has no open inquiry: a chargeback under a new id follows an open inquiry"
        )
    if action != "charge_back" and latest is not None and latest["status"] != "warning_closed":
        raise InvalidTransitionError(
            f"charge {charge_id} has already been disputed ({latest['id']} is {latest['status']}): "
            "a new dispute follows only a closed inquiry"
        )
    if charge["status"] != "succeeded":
        raise InvalidTransitionError(
            f"charge {charge_id} is {charge['status']}: only a paid charge is disputed"
        )
    amount = charge["amount"] if amount is None else amount
    most = charge["amount"] + charge["amount"] // 10 if action in _CHARGEBACKS else charge["amount"]
    if not 1 <= amount <= most:
        raise ValueError(
            f"a dispute's amount is between 1 and the charge's {charge['amount']} (a chargeback's up to "
            f"{charge['amount'] + charge['amount'] // 10}, for currency fluctuation), not {amount}"
        )
    if reason not in REASONS:
        raise ValueError(f"a dispute's reason is one of {', '.join(REASONS)}, not {reason!r}")
    created = now()
    status = _STATUSES[action]
    dispute = stripe_object(
        "dispute",
        amount=amount,
        balance_transactions=[],
        charge=charge_id,
        created=created,
        currency=charge["currency"],
        enhanced_eligibility_types=[],
        evidence=fixture("dispute")["evidence"],
        evidence_details={
            # A prevented dispute takes no response: Stripe's 0 for "no response allowed".
            "due_by": 0 if action in _PREVENTED else created + _RESPONSE_DAYS,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        id=new_id("dp_"),
        is_charge_refundable=action == "inquire",
        livemode=False,
        metadata={},
        object="dispute",
        payment_intent=charge["payment_intent"],
        payment_method_details=_payment_method_details(charge, _CASE_TYPES[action]),
        reason=reason,
        status=status,
    )
    store.disputes[dispute["id"]] = dispute
    charge["disputed"] = True
    sent = [store.publish("charge.dispute.created", dispute)]
    if action in _CHARGEBACKS:
        sent += _withdraw(store, dispute, fee=_DISPUTE_FEE)
    elif action == "block":
        sent.append(store.publish("charge.dispute.closed", dispute))
    elif action == "prevent":
        # The customer's money goes back upstream without a chargeback, so without its fee or event.
        dispute["balance_transactions"].append(_balance_transaction(dispute, -amount, fee=0))
        sent.append(store.publish("charge.dispute.closed", dispute))
    return sent


def act(store: Store, dispute_id: str, action: str) -> list[JsonObject]:
    """Move the dispute by `action` (`escalate`, `submit`, `win`, `lose`, `appeal`) -> the events sent."""
    dispute = store.disputes.get(dispute_id)
    if dispute is None:
        raise UnknownObjectError(f"no dispute {dispute_id!r} in this emulator")
    status = dispute["status"]
    if action in OPENING:
        raise InvalidTransitionError(
            f"cannot {action} dispute {dispute_id}: {action} makes a new dispute, and this one is {status}"
        )
    if action == "escalate":
        if status not in INQUIRY:
            raise _refused(dispute, action, "only an open inquiry (warning_*) escalates to a chargeback")
        dispute["status"] = "needs_response"
        dispute["is_charge_refundable"] = False
        dispute["evidence_details"]["due_by"] = now() + _RESPONSE_DAYS
        if dispute["payment_method_details"] is not None:
            dispute["payment_method_details"]["card"]["case_type"] = "chargeback"
        return [
            store.publish("charge.dispute.updated", dispute),
            *_withdraw(store, dispute, fee=_DISPUTE_FEE),
        ]
    if action == "submit":
        if status not in _SUBMITTED:
            raise _refused(dispute, action, f"evidence is submitted only while it is {', '.join(_SUBMITTED)}")
        details = dispute["evidence_details"]
        details.update(has_evidence=True, submission_count=details["submission_count"] + 1)
        dispute["status"] = _SUBMITTED[status]
        return [store.publish("charge.dispute.updated", dispute)]
    if action == "win":
        if status in INQUIRY:
            dispute["status"] = "warning_closed"
            return [store.publish("charge.dispute.closed", dispute)]
        if status not in CHARGEBACK:
            raise _refused(dispute, action, "only an open inquiry, chargeback or appeal is won")
        dispute["status"] = "won"
        closed = store.publish("charge.dispute.closed", dispute)
        dispute["balance_transactions"].append(_balance_transaction(dispute, dispute["amount"], fee=0))
        return [closed, store.publish("charge.dispute.funds_reinstated", dispute)]
    if action == "lose":
        if status not in CHARGEBACK:
            hint = "an inquiry is won (closed) or escalated, never lost" if status in INQUIRY else ""
            raise _refused(dispute, action, hint or "only an open chargeback or appeal is lost")
        dispute["status"] = "lost"
        return [store.publish("charge.dispute.closed", dispute)]
    if action == "appeal":
        if status != "lost":
            raise _refused(dispute, action, "only a lost dispute is appealed")
        dispute["status"] = "appeal_needs_response"
        dispute["evidence_details"]["due_by"] = now() + _RESPONSE_DAYS
        return [store.publish("charge.dispute.updated", dispute)]
    raise ValueError(f"a dispute's action is one of {', '.join(ACTIONS)}, not {action!r}")


def close_dispute(store: Store, dispute_id: str, *, won: bool) -> list[JsonObject]:
    """The card network decides: `win` or `lose` (see `act`)."""
    return act(store, dispute_id, "win" if won else "lose")


def latest_dispute(store: Store, charge_id: str) -> JsonObject | None:
    """The charge's newest dispute, the one its test control moves; None when it was never disputed."""
    return store.latest_dispute(charge_id)


def dispute_of_charge(store: Store, charge_id: str) -> str:
    """The id of the charge's latest dispute."""
    if charge_id not in store.charges:
        raise UnknownObjectError(f"no charge {charge_id!r} in this emulator")
    dispute = latest_dispute(store, charge_id)
    if dispute is None:
        raise InvalidTransitionError(f"charge {charge_id} has no dispute")
    return str(dispute["id"])


def _refused(dispute: JsonObject, action: str, why: str) -> InvalidTransitionError:
    return InvalidTransitionError(
        f"cannot {action} dispute {dispute['id']}: it is {dispute['status']}; {why}"
    )


def _withdraw(store: Store, dispute: JsonObject, *, fee: int) -> list[JsonObject]:
    """The chargeback takes the disputed amount and the fee -> `charge.dispute.funds_withdrawn`; a refund
    of the charge still pending fails then, as at Stripe (`charge_for_pending_refund_disputed`)."""
    dispute["balance_transactions"].append(_balance_transaction(dispute, -dispute["amount"], fee=fee))
    sent = [store.publish("charge.dispute.funds_withdrawn", dispute)]
    for refund in list(store.refunds.values()):
        if refund["charge"] == dispute["charge"] and refund["status"] == "pending":
            sent += refunds.act(store, refund["id"], "fail", "charge_for_pending_refund_disputed")
    return sent


def _balance_transaction(dispute: JsonObject, amount: int, *, fee: int) -> JsonObject:
    """A withdrawal (negative) or reinstatement of the disputed money, as Stripe records it."""
    created = now()
    withdrawal = amount < 0
    return stripe_object(
        "balance_transaction",
        amount=amount,
        available_on=created,
        created=created,
        currency=dispute["currency"],
        description=f"Chargeback {'withdrawal' if withdrawal else 'reversal'} for {dispute['charge']}",
        exchange_rate=None,
        fee=fee,
        fee_details=(
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": dispute["currency"],
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        id=new_id("txn_"),
        net=amount - fee,
        reporting_category="dispute" if withdrawal else "dispute_reversal",
        source=dispute["id"],
        status="available",
        type="adjustment",
    )


def _payment_method_details(charge: JsonObject, case_type: str) -> JsonObject | None:
    if charge["payment_method_details"]["type"] != "card":
        return None
    details: JsonObject = fixture("dispute")["payment_method_details"]
    details["card"].update(case_type=case_type, network_reason_code="10.4")
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

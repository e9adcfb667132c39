"""Refunds and disputes: what Stripe says of a payment's refunds and disputes becomes the credits its
customer may keep (`wallet.payment_state`), and the ledger writes the difference once.

Each event carries a Stripe object (a Charge, a Refund or a Dispute) that is folded into the payment's
state; the ledger then writes one row for what changed. Events may come in any order, twice, or from
the sweep: the state is the same whatever the order, so the rows are too. No Stripe call is made on
the common path; one read, with the webhook's read-only key, on each of three rare paths:
- a refund or dispute that arrives before its deposit: its PaymentIntent tells whether the payment is
  ours (then 500, so Stripe and the sweep deliver it again) or not (200);
- a payment whose refunds are ambiguous (`PaymentState.ambiguous`: a refund failed or was canceled, and
  a charge showed more refunded than the live refunds known): the payment's refunds are listed;
- a deposit made before prices were recorded, refunded or disputed before any charge event told its
  amount: its PaymentIntent's amount.

An event whose amounts or currency do not fit its payment (negative, not whole, a refund of more than was
paid, another currency) changes nothing and is rejected: logged, counted, alarmed. A dispute of more than
was paid is not refused: it holds what was paid. A status the pinned API does not list changes nothing
and is counted (`UNKNOWN_STATUS`). A dispute stage that needs a response is noticed once
(`wallet.dispute_notices`), whatever the ledger did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from wallet import amounts, dispute_notices, ledger, payments, settings
from wallet.errors import DepositNotRecordedError, InvalidAmountError
from wallet.ledger import Deposit, PaymentChange, RowKinds, Taken
from wallet.outcomes import Outcome, Result
from wallet.payment_state import (
    DISPUTE_ORDER,
    INQUIRY,
    NEEDS_RESPONSE,
    PREVENTED_BLOCK,
    REFUND_ORDER,
    PaymentState,
    Reversal,
)
from wallet.payments import Event

REFUND_ROWS = RowKinds(take=ledger.REFUND, give=ledger.REFUND_FAILED)
INQUIRY_ROWS = RowKinds(take=ledger.INQUIRY, give=ledger.INQUIRY_CLOSED)
DISPUTE_ROWS = RowKinds(take=ledger.DISPUTE, give=ledger.DISPUTE_WON)

Observe = Callable[[PaymentState], PaymentState]
Parsed = tuple[str, Callable[[Deposit], Observe]]
"""An event's currency, and how it changes a payment's state once its deposit is known."""


class RejectedEventError(ValueError):
    """An event whose amounts or currency do not fit its payment: it changes nothing."""


def on_refund_event(event: Event) -> Outcome:
    """`charge.refunded` (a Charge, its cumulative `amount_refunded`), and `refund.created`,
    `refund.updated`, `refund.failed`, `charge.refund.updated` (a Refund, with its status)."""
    data = event.data_object
    is_charge = data.get("object") == "charge"
    return _settle(event, lambda: _charge(data) if is_charge else _refund(data), REFUND_ROWS, is_charge)


def on_dispute_event(event: Event) -> Outcome:
    """`charge.dispute.*`: a Dispute with its amount and status, one of DISPUTE_ORDER's."""
    data = event.data_object
    rows = INQUIRY_ROWS if data.get("status") in INQUIRY else DISPUTE_ROWS
    outcome = _settle(event, lambda: _dispute(data), rows, False)
    if data.get("status") in NEEDS_RESPONSE and outcome.payment_id is not None:
        noticed = dispute_notices.give_notice(outcome.user_id or "", outcome.payment_id, data)
        return replace(outcome, needs_response=noticed)
    return outcome


def _settle(
    event: Event,
    parse: Callable[[], Parsed | None],
    rows: RowKinds,
    is_charge: bool,
) -> Outcome:
    data = event.data_object
    payment_intent_id = _id(data.get("payment_intent"), "pi_")
    if payment_intent_id is None:
        return Outcome(Result.NOT_OURS, reason="no PaymentIntent: not a payment of this product")
    try:
        parsed = parse()
    except RejectedEventError as exc:
        return Outcome(Result.REJECTED, reason=f"{event.type} {data.get('id')}: {exc}")
    if parsed is None:
        return Outcome(
            Result.UNKNOWN_STATUS,
            reason=f"{event.type} {data.get('id')}: status {str(data.get('status'))[:64]!r} is not one "
            "the pinned API lists",
        )
    currency, observation = parsed
    deposit = ledger.deposit_for(payment_intent_id)
    if deposit is None:
        return _before_its_deposit(payment_intent_id, data if is_charge else None)
    ours = settings.price_list().currency
    try:
        if currency != ours:
            raise RejectedEventError(f"currency {currency} is not {ours}")
        observe = observation(deposit)
    except RejectedEventError as exc:
        return Outcome(
            Result.REJECTED,
            user_id=deposit.user_id,
            payment_id=deposit.payment_id,
            reason=f"{event.type} {data.get('id')}: {exc}",
        )
    observe = _reading_stripe(observe, deposit, payment_intent_id)
    change = ledger.settle_payment(deposit, observe, rows, currency=ours, stripe_event_id=event.id)
    return _outcome(change)


def _reading_stripe(observe: Observe, deposit: Deposit, payment_intent_id: str) -> Observe:
    """`observe`, completed by at most one read of Stripe where the events delivered cannot tell what a
    payment owes (the module's rare paths); the read is made once per event, however often the ledger
    decides again on a guard that moved."""
    reads: dict[str, PaymentState] = {}

    def complete(state: PaymentState) -> PaymentState:
        after = observe(state)
        # A deposit of an earlier release did not record what was paid: a share of it needs the amount.
        if (
            deposit.paid is None
            and not after.charge_amount
            and (after.refunds or after.charge_refunded or after.disputes)
        ):
            if "amount" not in reads:
                intent = payments.retrieve_payment_intent(payment_intent_id)
                paid = (intent.amount_received or intent.amount or 0) if intent else 0
                reads["amount"] = PaymentState(charge_amount=paid)
            after = after.with_charge(reads["amount"].charge_amount, 0)
        if after.ambiguous() or "refunds" in reads:
            if "refunds" not in reads:
                listed = payments.list_refunds(payment_intent_id)
                known = {refund_id: Reversal(amount, status) for refund_id, amount, status in listed}
                refunds = {k: v for k, v in known.items() if v.status in REFUND_ORDER}
                reads["refunds"] = PaymentState(refunds=refunds, charge_refunded=after.charge_refunded)
            read = reads["refunds"]
            after = after.with_stripe_refunds(read.refunds, read.charge_refunded)
        return after

    return complete


def _charge(data: Mapping[str, Any]) -> Parsed:
    amount = _minor_units(data.get("amount"), "amount")
    refunded = _minor_units(data.get("amount_refunded"), "amount_refunded")
    if refunded > amount:
        raise RejectedEventError(f"amount_refunded {refunded} is more than the charge's {amount}")
    # Expanded, a charge lists its refunds; each is folded in as its own event would be.
    listed = data.get("refunds")
    refunds = listed.get("data") if isinstance(listed, Mapping) else None
    parsed = [_refund(r) for r in refunds if isinstance(r, Mapping)] if isinstance(refunds, list) else []

    def observation(deposit: Deposit) -> Observe:
        _within(deposit, amount, "the charge's amount")
        observes = [each(deposit) for _, each in filter(None, parsed)]

        def observe(state: PaymentState) -> PaymentState:
            state = state.with_charge(amount, refunded)
            for each in observes:
                state = each(state)
            return state

        return observe

    return _currency(data), observation


def _refund(data: Mapping[str, Any]) -> Parsed | None:
    return _reversal(data, "refund", ("re_", "pyr_"), REFUND_ORDER, PaymentState.with_refund)


def _dispute(data: Mapping[str, Any]) -> Parsed | None:
    if data.get("status") == "prevented" and _case_type(data) == "block":
        # Stopped with no money moved: folded as its own status, which holds nothing.
        data = {**data, "status": PREVENTED_BLOCK}
        return _reversal(data, "dispute", ("dp_", "du_"), {PREVENTED_BLOCK: 0}, PaymentState.with_dispute)
    return _reversal(data, "dispute", ("dp_", "du_"), DISPUTE_ORDER, PaymentState.with_dispute)


def _case_type(data: Mapping[str, Any]) -> object:
    details = data.get("payment_method_details")
    card = details.get("card") if isinstance(details, Mapping) else None
    return card.get("case_type") if isinstance(card, Mapping) else None


def _reversal(
    data: Mapping[str, Any],
    kind: str,
    prefixes: tuple[str, ...],
    statuses: Mapping[str, int],
    fold: Callable[[PaymentState, str, int, str], PaymentState],
) -> Parsed | None:
    """A Refund or a Dispute: its id, amount and status; None for a status the pinned API does not list."""
    object_id = _id(data.get("id"), *prefixes)
    if object_id is None:
        raise RejectedEventError(f"a {kind} without an id")
    amount = _minor_units(data.get("amount"), "amount")
    status = data.get("status")
    if status not in statuses:
        return None

    def observation(deposit: Deposit) -> Observe:
        if kind == "refund":
            # Stripe refunds at most the charge; a dispute may name more (it holds what was paid).
            _within(deposit, amount, f"the {kind}'s amount")
        return lambda state: fold(state, object_id, amount, str(status))

    return _currency(data), observation


def _within(deposit: Deposit, amount: int, what: str) -> None:
    if deposit.paid is not None and amount > deposit.paid:
        raise RejectedEventError(f"{what} {amount} is more than the {deposit.paid} paid")


def _outcome(change: PaymentChange) -> Outcome:
    deposit = change.deposit
    user_id, payment_id = (deposit.user_id, deposit.payment_id) if deposit else (None, None)
    if change.result is not Taken.APPLIED:
        return Outcome(Result.NOTHING_MORE, user_id=user_id, payment_id=payment_id)
    result = Result.RESTORED if change.amount > 0 else Result.CLAWED_BACK
    return Outcome(
        result, user_id=user_id, payment_id=payment_id, credits=abs(change.amount), row_type=change.kind
    )


def _before_its_deposit(payment_intent_id: str, charge: Mapping[str, Any] | None) -> Outcome:
    """A refund or dispute whose deposit is not recorded: ours and still to come (raise, so that Stripe
    and the sweep deliver it again), rejected when paid (nothing to take), or another integration's.

    A charge carries its PaymentIntent's metadata, amount and currency; a refund or a dispute does not,
    so its PaymentIntent is read: the one Stripe call the webhook makes, on this rare path only."""
    if charge is not None:
        intent = payments.payment_intent({**charge, "id": payment_intent_id})
    else:
        found = payments.retrieve_payment_intent(payment_intent_id)
        if found is None:
            return Outcome(Result.NOT_OURS, reason=f"no PaymentIntent {payment_intent_id} at Stripe")
        intent = found
    # Imported here: the rule that decides what a payment credits, needed on this rare path only.
    from wallet import fulfilment

    verdict = fulfilment.payment_verdict(intent)
    if verdict is fulfilment.NOT_OURS:
        return Outcome(Result.NOT_OURS, reason=f"{payment_intent_id} carries no metadata of this product")
    if verdict is not None:
        return Outcome(Result.NOT_OURS, reason=f"{payment_intent_id} was never credited: {verdict}")
    raise DepositNotRecordedError(payment_intent_id)


def _id(value: object, *prefixes: str) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value.startswith(prefixes) else None


def _minor_units(value: object, name: str) -> int:
    try:
        return amounts.whole(value, name=name, minimum=0)
    except InvalidAmountError as exc:
        raise RejectedEventError(str(exc)) from None


def _currency(data: Mapping[str, Any]) -> str:
    currency = data.get("currency")
    return currency.lower() if isinstance(currency, str) else ""

"""The ledger: every change to a balance is one row, written in the same DynamoDB transaction as the balance
and as the guard that makes it happen once, so that a user's balance is always the sum of their rows.

It knows nothing of HTTP, Lambda or Stripe: callers hand it user ids, amounts and the cause of each
change (a payment id, an Idempotency-Key, a PaymentIntent id).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import PynamoDBException
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import account, hot_accounts, promotions, writes
from wallet.account import Receipt as Receipt
from wallet.account import get_balance as get_balance
from wallet.amounts import MAX_AMOUNT, spelled, whole
from wallet.errors import InvalidAmountError, InvalidPageError, LedgerUnavailableError
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.writes import ADJUSTMENT as ADJUSTMENT
from wallet.writes import DEPOSIT as DEPOSIT
from wallet.writes import DISPUTE as DISPUTE
from wallet.writes import DISPUTE_WON as DISPUTE_WON
from wallet.writes import HOLD as HOLD
from wallet.writes import HOLD_EXPIRED as HOLD_EXPIRED
from wallet.writes import HOLD_RELEASED as HOLD_RELEASED
from wallet.writes import INQUIRY as INQUIRY
from wallet.writes import INQUIRY_CLOSED as INQUIRY_CLOSED
from wallet.writes import REFUND as REFUND
from wallet.writes import REFUND_FAILED as REFUND_FAILED
from wallet.writes import ROW_TYPES as ROW_TYPES
from wallet.writes import SPEND as SPEND
from wallet.writes import balance_actions, transact

if TYPE_CHECKING:
    # Imported where refunds and disputes are settled: spends and balances never load it at init.
    from wallet.payment_state import PaymentState

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200
# Refunds and disputes of one payment change its guard optimistically; concurrent ones retry this often.
PAYMENT_ATTEMPTS = 6


class Credit(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    type: str
    amount: int
    source: str
    payment_id: str | None
    created_at: str
    description: str | None = None
    hold_id: str | None = None
    reserved: int | None = None  # what the hold a row belongs to held


@dataclass(frozen=True, slots=True)
class Page:
    transactions: list[Transaction]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    balance: int
    page: Page
    held: int = 0
    available: int = 0
    grants_expire: bool = False  # the account has had a grant that expires (the page's expiry line)


def check_amount(amount: object) -> int:
    return whole(amount, name="amount", minimum=1)


def add_credits(
    user_id: str,
    amount: int,
    *,
    source: str,
    payment_id: str,
    currency: str,
    stripe_session_id: str | None = None,
    stripe_payment_intent_id: str | None = None,
    stripe_event_id: str | None = None,
    amount_paid: int | None = None,
    amount_tax: int | None = None,
    stripe_invoice_id: str | None = None,
    expires_at: int | None = None,
) -> Credit:
    """Deposit `amount` for `payment_id` once: a second call for the same payment changes nothing.

    One TransactWriteItems puts the deposit row, on condition that its id is new, and adds the amount
    to the balance and its id to the deposits the grants' projection has still to fold (`newGrants`).
    `expires_at`: when these paid credits expire (Unix seconds); None: PAID_CREDITS_EXPIRE_DAYS decides."""
    expires_at = promotions.paid_expiry() if expires_at is None else expires_at
    check_amount(amount)
    if not user_id or not payment_id:
        raise ValueError("user_id and payment_id are required")
    now = writes.now()
    deposit = CreditTransaction(
        user_id,
        payment_id,
        type=DEPOSIT,
        amount=amount,
        source=source,
        payment_id=payment_id,
        stripe_session_id=stripe_session_id,
        stripe_payment_intent_id=stripe_payment_intent_id,
        stripe_event_id=stripe_event_id,
        stripe_invoice_id=stripe_invoice_id,
        amount_paid=amount_paid,
        amount_tax=amount_tax or None,
        grant_expires_at=expires_at,
        created_at=now,
    )
    actions = [*balance_actions(amount, currency, now), *writes.grant_actions(payment_id, expires_at)]

    def write(transaction: TransactWrite) -> None:
        transaction.save(deposit, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(CreditBalance(user_id), actions=actions)

    reasons = transact(write, "the ledger could not record the deposit")
    return Credit.CREDITED if reasons is None else Credit.ALREADY_CREDITED


def spend(
    user_id: str, amount: int, *, idempotency_key: str, description: str | None, actor: str, currency: str
) -> Receipt:
    """Take `amount` from the balance, never below zero, once per Idempotency-Key.

    One TransactWriteItems: the key's guard (new, or the first answer is replayed), the row, and the
    balance update on condition that `balance >= amount` (a hot account's: on a sub-balance).
    """
    check_amount(amount)
    return account.spend(
        user_id,
        amount,
        idempotency_key=idempotency_key,
        description=description,
        actor=actor,
        currency=currency,
    )


def adjust(
    user_id: str, amount: int, *, idempotency_key: str, reason: str, actor: str, currency: str
) -> Receipt:
    """An operator's correction, up or down, with the reason on the row; it may leave a negative balance."""
    if whole(amount, name="amount", minimum=-MAX_AMOUNT) == 0:
        raise InvalidAmountError(
            f"amount must be a non-zero whole number of minor units, not {spelled(amount)}"
        )
    if not reason.strip():
        raise ValueError("an adjustment needs a reason")
    return account.keyed_change(
        user_id,
        amount,
        kind=ADJUSTMENT,
        source="operator",
        idempotency_key=idempotency_key,
        description=reason.strip(),
        actor=actor,
        currency=currency,
    )


@dataclass(frozen=True, slots=True)
class Deposit:
    user_id: str
    payment_id: str
    credits: int
    paid: int | None  # what the customer paid, minor units; not on deposits made before refunds were


class Taken(StrEnum):
    APPLIED = "applied"
    NOTHING_MORE = "nothing_more"  # a repeated, stale or settled event: the ledger already reflects it
    NO_DEPOSIT = "no_deposit"
    """No deposit is recorded for this PaymentIntent (yet, or ever: another integration's charge)."""


@dataclass(frozen=True, slots=True)
class PaymentChange:
    result: Taken
    deposit: Deposit | None = None
    amount: int = 0  # signed: what the change did to the balance
    transaction_id: str | None = None
    kind: str | None = None  # the row's type, when one was written


@dataclass(frozen=True, slots=True)
class RowKinds:
    """The row a payment's change writes: `take` when it takes credits back, `give` when it returns them."""

    take: str
    give: str


def deposit_for(payment_intent_id: str) -> Deposit | None:
    """The deposit a PaymentIntent paid for: one query of the sparse index, no Stripe call."""
    try:
        rows = list(CreditTransaction.deposits_by_payment_intent.query(payment_intent_id, limit=2))
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not look up the payment") from exc
    deposits = [row for row in rows if row.type == DEPOSIT]
    if not deposits:
        return None
    row = deposits[0]
    return Deposit(
        row.user_id,
        row.transaction_id,
        int(row.amount),
        None if row.amount_paid is None else int(row.amount_paid),
    )


def settle_payment(
    deposit: Deposit,
    observe: Callable[[PaymentState], PaymentState],
    kinds: RowKinds,
    *,
    currency: str,
    stripe_event_id: str | None = None,
) -> PaymentChange:
    """Fold what Stripe said about a payment's refunds or disputes (`observe`) into its state, and write
    one row for the difference between what the ledger has taken back and what the state says to take.

    The state lives on the payment's guard and moves by version in the same transaction as the row and
    the balance, so a change is written once however often, and in whatever order, Stripe's events come.
    The first attempt assumes the payment untouched, which a first refund or dispute is; a guard that
    moved answers with its current state (ALL_OLD), and the change is decided again on that. Claw-backs
    may leave a negative balance.
    """
    from wallet.payment_state import PaymentState

    state = PaymentState()
    for _ in range(PAYMENT_ATTEMPTS):
        after = observe(state)
        if after.same_facts(state):
            if state.taken > 0:
                # A redelivery finishes a claw-back whose covering step failed after its commit.
                account.cover_debt(deposit.user_id, currency)
            return PaymentChange(Taken.NOTHING_MORE, deposit)
        to_take = after.to_take(deposit.credits, deposit.paid)
        amount = state.taken - to_take
        kind = kinds.take if amount < 0 else kinds.give
        transaction_id = str(ULID())
        moved = _write_payment_change(
            deposit,
            state,
            replace(after, taken=to_take),
            kind,
            amount,
            transaction_id,
            currency,
            stripe_event_id,
        )
        if moved is None:
            if not amount:
                return PaymentChange(Taken.NOTHING_MORE, deposit)
            return PaymentChange(Taken.APPLIED, deposit, amount, transaction_id, kind)
        state = moved
    raise LedgerUnavailableError("the payment kept changing under concurrent refunds or disputes")


def _write_payment_change(
    deposit: Deposit,
    state: PaymentState,
    after: PaymentState,
    kind: str,
    amount: int,
    transaction_id: str,
    currency: str,
    stripe_event_id: str | None,
) -> PaymentState | None:
    """One transaction: the payment's guard from `state` to `after`, the row and the balance. None when
    committed; otherwise the guard's current state, which another change got to first."""
    now = writes.now()
    guard = CreditGuard(deposit.user_id, f"payment#{deposit.payment_id}")
    unchanged = (
        CreditGuard.version == state.version if state.version else CreditGuard.guard_id.does_not_exist()
    )
    actions: list[Any] = [
        CreditGuard.state.set(after.to_json()),
        CreditGuard.taken.set(after.taken),
        CreditGuard.version.set(state.version + 1),
    ]
    row = CreditTransaction(
        deposit.user_id,
        transaction_id,
        type=kind,
        amount=amount,
        source="stripe",
        payment_id=deposit.payment_id,
        stripe_event_id=stripe_event_id,
        created_at=now,
    )

    def write(transaction: TransactWrite) -> None:
        if amount:
            transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(guard, actions=actions, condition=unchanged, return_values=ALL_OLD)
        if amount:
            transaction.update(CreditBalance(deposit.user_id), actions=balance_actions(amount, currency, now))

    reasons = transact(write, "the ledger could not record the refund or dispute")
    if reasons is None:
        if amount < 0:
            account.cover_debt(deposit.user_id, currency)
        return None
    # TransactWriteItems lists puts before updates: the guard follows the row when there is one.
    guard_reason = reasons[1 if amount else 0]
    current = (guard_reason.raw_item if guard_reason else None) or writes.guard_item(
        deposit.user_id, guard.guard_id
    )
    from wallet.payment_state import PaymentState

    return PaymentState.from_item(current)


def list_transactions(
    user_id: str,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    partitions: list[str] | None = None,
) -> Page:
    """The user's transactions, newest first, `limit` at a time (`partitions`: a hot account's)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidPageError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    after = None if cursor is None else decode_cursor(cursor)
    if partitions is None:
        partitions = [user_id]
    try:
        # One more than asked tells whether another page exists without a second query; a hot account's
        # partitions are each read so far and merged, newest first (ids are ULIDs: time-ordered).
        rows = list(
            heapq.merge(
                *(_newest(partition, limit + 1, after) for partition in partitions),
                key=lambda row: row.transaction_id,
                reverse=True,
            )
        )[: limit + 1]
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the history") from exc
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].transaction_id) if len(rows) > limit else None
    return Page([transaction_of(row) for row in page], next_cursor)


def _newest(partition: str, limit: int, after: str | None) -> list[CreditTransaction]:
    start = None if after is None else {"userId": {"S": partition}, "transactionId": {"S": after}}
    return list(
        CreditTransaction.query(partition, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    )


def statement(user_id: str, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> Statement:
    """The balance and one page of history: the two reads the balance page needs (a hot account's
    sub-balances and their partitions cost one read more, and one query each)."""
    now = account.balances(user_id)
    partitions = account.account_partitions(user_id) if hot_accounts.known(user_id) else None
    return Statement(
        now.balance, list_transactions(user_id, limit, cursor, partitions), now.held, now.available
    )


def transaction_of(row: CreditTransaction) -> Transaction:
    return Transaction(
        id=row.transaction_id,
        type=row.type,
        amount=int(row.amount),
        source=row.source,
        payment_id=row.payment_id,
        created_at=row.created_at,
        description=row.description,
        hold_id=row.hold_id,
        reserved=None if row.reserved is None else int(row.reserved),
    )


def encode_cursor(transaction_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": transaction_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The transaction id a cursor resumes after; it only ever names a row of the caller's own history."""
    refused = InvalidPageError("cursor is not one this API returned; start again without it")
    # The cursors issued are about 50 characters; a long one could nest JSON past the recursion limit.
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise refused
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        transaction_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
        ULID.from_str(transaction_id)
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError) as exc:
        raise refused from exc
    return str(transaction_id)

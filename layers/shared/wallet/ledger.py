"""The ledger: every change to a balance is one row, written in the same DynamoDB transaction as the
balance and as the guard that makes it happen once, so that a user's balance is always the sum of
their rows.

It knows nothing of HTTP, Lambda or Stripe: callers hand it user ids, amounts and the cause of each
change (a payment id, an Idempotency-Key, a PaymentIntent id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import CancellationReason, DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet.amounts import MAX_AMOUNT, spelled, whole
from wallet.errors import (
    IdempotencyKeyReusedError,
    InsufficientCreditsError,
    InvalidAmountError,
    InvalidPageError,
    LedgerBusyError,
    LedgerUnavailableError,
)
from wallet.models import CreditBalance, CreditGuard, CreditTransaction, connection
from wallet.principals import InvalidPrincipalError, principal

if TYPE_CHECKING:
    # Imported where refunds and disputes are settled: spends and balances never load it at init.
    from wallet.payment_state import PaymentState

# Row types; the sign of a row's amount says which way it moved the balance.
DEPOSIT = "deposit"
SPEND = "spend"
REFUND = "refund"
REFUND_FAILED = "refund_failed"
INQUIRY = "inquiry"
INQUIRY_CLOSED = "inquiry_closed"
DISPUTE = "dispute"
DISPUTE_WON = "dispute_won"
ADJUSTMENT = "adjustment"
# A hold's rows move nothing: the credits go from `balance` to `held` and back (wallet.holds); a capture
# is a `spend`.
HOLD = "hold"
HOLD_RELEASED = "hold_released"
HOLD_EXPIRED = "hold_expired"
ROW_TYPES = (
    DEPOSIT,
    SPEND,
    REFUND,
    REFUND_FAILED,
    INQUIRY,
    INQUIRY_CLOSED,
    DISPUTE,
    DISPUTE_WON,
    ADJUSTMENT,
    HOLD,
    HOLD_RELEASED,
    HOLD_EXPIRED,
)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200
# Real DynamoDB cancels one of two transactions that touch the same item at once; the loser retries.
CONFLICT_ATTEMPTS = 4
# A service may retry with the same Idempotency-Key for this long (the contract promises 24 h).
IDEMPOTENCY_KEY_LIFETIME = timedelta(days=7)
# Refunds and disputes of one payment change its guard optimistically; concurrent ones retry this often.
PAYMENT_ATTEMPTS = 6


class Contention:
    """What this process's transactions met: TransactionConflict cancellations and the retries they
    cost, and a hot account's refills and gathers. Read by the bench; counts only, never a decision."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._counts[name] += count

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


contention = Contention()


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
    reserved: int | None = None
    """What the hold a row belongs to held."""


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


@dataclass(frozen=True, slots=True)
class Balances:
    """The user's balance (what they own: the sum of their rows), what active holds keep of it, and what
    may be spent now (`available`, the stored `balance`)."""

    balance: int
    held: int
    available: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a spend or an adjustment did; `replayed` when its Idempotency-Key had already done it."""

    transaction_id: str
    user_id: str
    amount: int
    balance: int
    replayed: bool = False


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
) -> Credit:
    """Deposit `amount` for `payment_id` once: a second call for the same payment changes nothing.

    One TransactWriteItems puts the deposit row, on condition that its id is new, and adds the
    amount to the balance; either both happen or neither does.
    """
    check_amount(amount)
    if not user_id or not payment_id:
        raise ValueError("user_id and payment_id are required")
    now = _now()
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
        amount_paid=amount_paid,
        created_at=now,
    )

    def write(transaction: TransactWrite) -> None:
        transaction.save(deposit, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(CreditBalance(user_id), actions=_balance_actions(amount, currency, now))

    reasons = _transact(write, "the ledger could not record the deposit")
    return Credit.CREDITED if reasons is None else Credit.ALREADY_CREDITED


def spend(
    user_id: str, amount: int, *, idempotency_key: str, description: str | None, actor: str, currency: str
) -> Receipt:
    """Take `amount` from the balance, never below zero, once per Idempotency-Key.

    One TransactWriteItems: the key's guard (new, or the first answer is replayed), the row, and the
    balance update on condition that `balance >= amount`.
    """
    check_amount(amount)
    from wallet import hot_accounts

    hot = hot_accounts.known(user_id)
    if hot is not None:
        return hot_accounts.spend(
            user_id,
            amount,
            hot=hot,
            idempotency_key=idempotency_key,
            description=description,
            actor=actor,
            currency=currency,
            main_guard_seen=False,
        )
    return _keyed_change(
        user_id,
        -amount,
        kind=SPEND,
        source="service",
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
    return _keyed_change(
        user_id,
        amount,
        kind=ADJUSTMENT,
        source="operator",
        idempotency_key=idempotency_key,
        description=reason.strip(),
        actor=actor,
        currency=currency,
    )


def _keyed_change(
    user_id: str,
    amount: int,
    *,
    kind: str,
    source: str,
    idempotency_key: str,
    description: str | None,
    actor: str,
    currency: str,
) -> Receipt:
    fingerprint = _fingerprint(kind, amount, description)
    transaction_id = str(ULID())
    now = _now()
    guard = key_guard(
        user_id,
        actor,
        idempotency_key,
        fingerprint,
        transaction_id=transaction_id,
        amount=amount,
        created_at=now,
    )
    row = CreditTransaction(
        user_id,
        transaction_id,
        type=kind,
        amount=amount,
        source=source,
        description=description,
        actor=actor,
        created_at=now,
    )
    # Only a take can overdraw; an adjustment is an operator's decision, like a claw-back, within the bound.
    # A spend of a hot account is refused here (it is made on a sub-balance): no read decides which.
    covered = (
        (CreditBalance.balance >= -amount) & CreditBalance.shards.does_not_exist()
        if kind == SPEND
        else _within_bound(amount)
    )

    def write(transaction: TransactWrite) -> None:
        transaction.save(guard, condition=CreditGuard.guard_id.does_not_exist(), return_values=ALL_OLD)
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditBalance(user_id),
            actions=_balance_actions(amount, currency, now),
            condition=covered,
            return_values=ALL_OLD,
        )

    reasons = _transact(write, f"the ledger could not record the {kind}")
    if reasons is None:
        # A spend that committed here met no `shards`: the account is not hot, and nothing to cover.
        if amount < 0 and kind != SPEND:
            _cover_debt(user_id, currency)
        return Receipt(transaction_id, user_id, amount, get_balance(user_id))
    key_reason, _, balance_reason = reasons
    if key_reason is not None and key_reason.code == "ConditionalCheckFailed":
        receipt = _replay(key_reason.raw_item or _guard_item(user_id, guard.guard_id), fingerprint, user_id)
        if amount < 0 and kind != SPEND:
            # The retry finishes what the first attempt's covering step may have left undone.
            _cover_debt(user_id, currency)
        return receipt
    held = (balance_reason.raw_item if balance_reason else None) or {}
    if kind == SPEND and "shards" in held:
        from wallet import hot_accounts

        # Refused with its guard absent after the account became hot: the key was never used cold.
        return hot_accounts.spend(
            user_id,
            -amount,
            hot=hot_accounts.from_raw(user_id, held),
            idempotency_key=idempotency_key,
            description=description,
            actor=actor,
            currency=currency,
            main_guard_seen=True,
        )
    if kind != SPEND:
        raise InvalidAmountError(
            f"This adjustment would take the balance of {held.get('balance', {}).get('N', 0)} outside "
            f"-{MAX_AMOUNT} to {MAX_AMOUNT} minor units; nothing changed."
        )
    raise InsufficientCreditsError(
        int(held.get("balance", {}).get("N", 0)), int(held.get("held", {}).get("N", 0))
    )


def _replay(first: dict[str, Any], fingerprint: str, user_id: str) -> Receipt:
    """The first answer of an Idempotency-Key (its guard as DynamoDB holds it), or 409 for another body."""
    if first.get("fingerprint", {}).get("S") != fingerprint:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used with a different request; use a new key."
        )
    return Receipt(
        first["transactionId"]["S"], user_id, int(first["amount"]["N"]), get_balance(user_id), True
    )


def _cover_debt(user_id: str, currency: str) -> None:
    """A take on the main item of a hot account may leave it below zero while sub-balances hold credits:
    those come back to it, so spends stop when the account's total is short. One read when not hot."""
    from wallet import hot_accounts

    hot_accounts.cover_debt(user_id, currency)


def _within_bound(amount: int) -> Any:
    """The condition that a balance moved by `amount` stays within MAX_AMOUNT either way."""
    limit = (
        CreditBalance.balance <= MAX_AMOUNT - amount
        if amount > 0
        else CreditBalance.balance >= -MAX_AMOUNT - amount
    )
    return CreditBalance.balance.does_not_exist() | limit


@dataclass(frozen=True, slots=True)
class Deposit:
    user_id: str
    payment_id: str
    credits: int
    paid: int | None
    """What the customer paid, in minor units; not recorded on deposits made before refunds were."""


class Taken(StrEnum):
    APPLIED = "applied"
    NOTHING_MORE = "nothing_more"
    """A repeated, stale or already settled event: the ledger already reflects it."""
    NO_DEPOSIT = "no_deposit"
    """No deposit is recorded for this PaymentIntent (yet, or ever: another integration's charge)."""


@dataclass(frozen=True, slots=True)
class PaymentChange:
    result: Taken
    deposit: Deposit | None = None
    amount: int = 0
    """Signed: what the change did to the balance."""
    transaction_id: str | None = None
    kind: str | None = None
    """The row's type, when one was written."""


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
                _cover_debt(deposit.user_id, currency)
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
    now = _now()
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
            transaction.update(
                CreditBalance(deposit.user_id), actions=_balance_actions(amount, currency, now)
            )

    reasons = _transact(write, "the ledger could not record the refund or dispute")
    if reasons is None:
        if amount < 0:
            _cover_debt(deposit.user_id, currency)
        return None
    # TransactWriteItems lists puts before updates: the guard follows the row when there is one.
    guard_reason = reasons[1 if amount else 0]
    current = (guard_reason.raw_item if guard_reason else None) or _guard_item(
        deposit.user_id, guard.guard_id
    )
    from wallet.payment_state import PaymentState

    return PaymentState.from_item(current)


def _transact(write: Callable[[TransactWrite], None], failure: str) -> list[CancellationReason | None] | None:
    """Commit the transaction `write` builds: None when it committed, its cancellation reasons when a
    condition refused it. Conflicts with concurrent transactions are retried; anything else raises."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            with TransactWrite(connection=connection()) as transaction:
                write(transaction)
        except TransactWriteError as exc:
            reasons = list(exc.cancellation_reasons)
            codes = [reason.code if reason else None for reason in reasons]
            if "ConditionalCheckFailed" in codes:
                return reasons
            if "TransactionConflict" in codes:
                contention.add("conflicts")
            if "TransactionConflict" in codes and attempt < CONFLICT_ATTEMPTS:
                contention.add("retries")
                time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret
                continue
            if "TransactionConflict" in codes:
                raise LedgerBusyError(failure) from exc
            raise LedgerUnavailableError(failure) from exc
        except PynamoDBException as exc:
            raise LedgerUnavailableError(failure) from exc
        return None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _balance_actions(amount: int, currency: str, now: str) -> list[Any]:
    return [
        CreditBalance.balance.add(amount),
        CreditBalance.currency.set(currency),
        CreditBalance.updated_at.set(now),
    ]


def _guard_item(user_id: str, guard_id: str) -> dict[str, Any]:
    """A guard as DynamoDB holds it; read only when a cancellation did not carry it (ALL_OLD)."""
    try:
        guard = CreditGuard.get(user_id, guard_id, consistent_read=True)
    except DoesNotExist:
        return {}
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read a guard") from exc
    item: dict[str, Any] = guard.serialize()
    return item


def key_guard(
    partition: str,
    actor: str,
    idempotency_key: str,
    fingerprint: str,
    *,
    transaction_id: str,
    amount: int,
    created_at: str,
) -> CreditGuard:
    """An Idempotency-Key's guard, written with the change it makes: the first request's fingerprint and
    what it did, kept for IDEMPOTENCY_KEY_LIFETIME so a retry answers the first answer again."""
    return CreditGuard(
        partition,
        _key_guard_id(actor, idempotency_key),
        fingerprint=fingerprint,
        transaction_id=transaction_id,
        amount=amount,
        created_at=created_at,
        expires_at=IDEMPOTENCY_KEY_LIFETIME,
    )


def _key_guard_id(actor: str, idempotency_key: str) -> str:
    """An Idempotency-Key's guard, scoped to (caller, user, key): the user is the guard's partition, and
    two backends that pick the same key never meet. The caller is its role, not the session that signed."""
    try:
        caller = principal(actor)
    except InvalidPrincipalError:
        caller = actor
    return f"key#{caller}#{idempotency_key}"


def _fingerprint(kind: str, amount: int, description: str | None, *more: object) -> str:
    """What makes two requests with one Idempotency-Key the same request."""
    return hashlib.sha256(json.dumps([kind, amount, description, *more]).encode()).hexdigest()


def get_balance(user_id: str) -> int:
    """The user's balance in minor units, what they own (active holds included): the sum of their rows;
    0 for a user who never topped up."""
    return balances(user_id).balance


def balances(user_id: str) -> Balances:
    """The user's balance, held and available, in one read; a hot account's sub-balances cost one more."""
    try:
        item = CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return Balances(0, 0, 0)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    available, held = int(item.balance), int(item.held or 0)
    if item.shards:
        from wallet import hot_accounts

        available = hot_accounts.balances(user_id, item, hot_accounts.from_item(user_id, item).shards)
    return Balances(available + held, held, available)


def account_partitions(user_id: str) -> list[str]:
    """Every partition holding the user's rows (and, for the balance table, their balance items): the
    user's own, and each sub-balance's when the account is hot."""
    from wallet import hot_accounts

    return hot_accounts.account_partitions(user_id)


def is_sub_balance(key: str) -> bool:
    """Whether a balance item's key names a hot account's sub-balance rather than a user."""
    from wallet import hot_accounts

    return hot_accounts.is_shard(key)


def account_total(user_id: str) -> int:
    """What the user owns by the stored balances, read at one instant: available plus held, over the
    main item and every sub-balance. What the audit compares with the sum of the rows."""
    from wallet import hot_accounts

    hot = hot_accounts.hotness(user_id)
    return hot_accounts.read_snapshot(user_id, hot.shards).total


def list_transactions(
    user_id: str,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    partitions: list[str] | None = None,
) -> Page:
    """The user's transactions, newest first, `limit` at a time; pass `next_cursor` on for more.
    `partitions`: where the rows are (account_partitions), when the account may be hot."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidPageError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    after = None if cursor is None else _decode(cursor)
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
    next_cursor = _encode(page[-1].transaction_id) if len(rows) > limit else None
    return Page([_transaction(row) for row in page], next_cursor)


def _newest(partition: str, limit: int, after: str | None) -> list[CreditTransaction]:
    start = None if after is None else {"userId": {"S": partition}, "transactionId": {"S": after}}
    return list(
        CreditTransaction.query(partition, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    )


def statement(user_id: str, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> Statement:
    """The balance and one page of history: the two reads the balance page needs (a hot account's
    sub-balances and their partitions cost one read more, and one query each)."""
    now = balances(user_id)
    from wallet import hot_accounts

    hot = hot_accounts.known(user_id)
    partitions = hot_accounts.account_partitions(user_id, hot.shards) if hot else None
    return Statement(
        now.balance, list_transactions(user_id, limit, cursor, partitions), now.held, now.available
    )


def _transaction(row: CreditTransaction) -> Transaction:
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


def _encode(transaction_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": transaction_id}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The folded history (wallet.history) reads the same rows, with the same cursors, as list_transactions.
encode_cursor = _encode
decode_cursor = _decode
transaction_of = _transaction

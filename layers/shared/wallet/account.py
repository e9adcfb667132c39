"""The account: its main item, its sub-balances when it is hot (wallet.hot_accounts), and what its holds
keep in `held`. Every change the ledger or holds make to what a user may spend goes through here, so
the account's balance, held and available are read and written one way.

A keyed change (a spend, an adjustment) is one TransactWriteItems of the Idempotency-Key's guard, the
row and the balance item; a hot account's spend is made on the sub-balance its key names.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import hot_accounts, writes
from wallet.amounts import MAX_AMOUNT
from wallet.errors import (
    IdempotencyKeyReusedError,
    InsufficientCreditsError,
    InvalidAmountError,
    LedgerBusyError,
    LedgerUnavailableError,
)
from wallet.hot_accounts import Hotness
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.writes import SPEND, balance_actions, contention, key_guard, key_guard_id, transact

# A spend short on its sub-balance refills or gathers, then tries again, at most this many times.
SPEND_ROUNDS = 12


@dataclass(frozen=True, slots=True)
class Balances:
    """The user's balance (what they own: the sum of their rows), what active holds keep of it, and what
    may be spent now (`available`, the stored `balance`)."""

    balance: int
    held: int
    available: int
    grants_expire: bool = False
    """The account has had a grant that expires (wallet.writes.grant_actions)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a spend or an adjustment did; `replayed` when its Idempotency-Key had already done it."""

    transaction_id: str
    user_id: str
    amount: int
    balance: int
    replayed: bool = False


def balances(user_id: str) -> Balances:
    """The user's balance, held and available, in one read; a hot account's sub-balances cost one more."""
    try:
        item = CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return Balances(0, 0, 0)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    available, held = spendable(user_id, item), int(item.held or 0)
    return Balances(available + held, held, available, bool(item.grants_expire))


def spendable(user_id: str, main: CreditBalance) -> int:
    """What the account may spend now, for its main item as just read: the main item's available credits,
    and a hot account's sub-balances' too (one BatchGetItem more). What a low-balance rule compares."""
    if not main.shards:
        return int(main.balance)
    return hot_accounts.available(user_id, main, hot_accounts.from_item(user_id, main).shards)


def get_balance(user_id: str) -> int:
    """The user's balance in minor units, what they own (active holds included): the sum of their rows;
    0 for a user who never topped up."""
    return balances(user_id).balance


def account_partitions(user_id: str) -> list[str]:
    """Every partition holding the user's rows (and, for the balance table, their balance items): the
    user's own, and each sub-balance's when the account is hot."""
    return hot_accounts.account_partitions(user_id)


def is_sub_balance(key: str) -> bool:
    """Whether a balance item's key names a hot account's sub-balance rather than a user."""
    return hot_accounts.is_shard(key)


def account_total(user_id: str) -> int:
    """What the user owns by the stored balances, read at one instant: available plus held, over the
    main item and every sub-balance. What the audit compares with the sum of the rows."""
    hot = hot_accounts.hotness(user_id)
    return hot_accounts.read_snapshot(user_id, hot.shards).total


def cover_debt(user_id: str, currency: str) -> None:
    """A take on the main item of a hot account may leave it below zero while sub-balances hold credits:
    those come back to it, so spends stop when the account's total is short. One read when not hot."""
    hot_accounts.cover_debt(user_id, currency)


def hold_actions(amount: int, currency: str, stamp: str) -> list[Any]:
    """A hold moves `amount` from what may be spent (`balance`) to `held` on the main item."""
    return [*balance_actions(-amount, currency, stamp), CreditBalance.held.add(amount)]


def unhold_actions(back: int, held: int, currency: str, stamp: str) -> list[Any]:
    """`balance += back, held -= held`: a settled hold leaves `held`, and what it did not spend is
    available again."""
    return [*balance_actions(back, currency, stamp), CreditBalance.held.add(-held)]


def gather_to_main(user_id: str, amount: int, currency: str) -> hot_accounts.Snapshot | None:
    """Before a hold on a hot account is refused: its sub-balances' credits come to the main item."""
    return hot_accounts.gather_to_main(user_id, amount, currency)


def spend(
    user_id: str, amount: int, *, idempotency_key: str, description: str | None, actor: str, currency: str
) -> Receipt:
    """Take `amount` (positive) from what the account may spend, never below zero, once per key: from
    the main item, or from a sub-balance when the account is hot."""
    hot = hot_accounts.known(user_id)
    if hot is not None:
        return _spend_hot(user_id, amount, hot, idempotency_key, description, actor, currency, False)
    return keyed_change(
        user_id,
        -amount,
        kind=SPEND,
        source="service",
        idempotency_key=idempotency_key,
        description=description,
        actor=actor,
        currency=currency,
    )


def keyed_change(
    user_id: str,
    amount: int,
    *,
    kind: str,
    source: str,
    idempotency_key: str,
    description: str | None,
    actor: str,
    currency: str,
    expires_at: int | None = None,
) -> Receipt:
    """A change of the main item by `amount`, its row and its Idempotency-Key's guard in one transaction;
    a replay answers the first answer. `expires_at`: a grant's expiry (Unix seconds), on its row."""
    more = () if expires_at is None else (expires_at,)
    fingerprint = writes.fingerprint(kind, amount, description, *more)
    transaction_id = str(ULID())
    now = writes.now()
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
        grant_expires_at=expires_at,
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
            actions=[*balance_actions(amount, currency, now), *writes.grant_actions(None, expires_at)],
            condition=covered,
            return_values=ALL_OLD,
        )

    reasons = transact(write, f"the ledger could not record the {kind}")
    if reasons is None:
        # A spend that committed here met no `shards`: the account is not hot, and nothing to cover.
        if amount < 0 and kind != SPEND:
            cover_debt(user_id, currency)
        return Receipt(transaction_id, user_id, amount, get_balance(user_id))
    key_reason, _, balance_reason = reasons
    if key_reason is not None and key_reason.code == "ConditionalCheckFailed":
        receipt = replay(
            key_reason.raw_item or writes.guard_item(user_id, guard.guard_id), fingerprint, user_id
        )
        if amount < 0 and kind != SPEND:
            # The retry finishes what the first attempt's covering step may have left undone.
            cover_debt(user_id, currency)
        return receipt
    held = (balance_reason.raw_item if balance_reason else None) or {}
    if kind == SPEND and "shards" in held:
        # Refused with its guard absent after the account became hot: the key was never used cold.
        hot = hot_accounts.from_raw(user_id, held)
        return _spend_hot(user_id, -amount, hot, idempotency_key, description, actor, currency, True)
    if kind != SPEND:
        raise InvalidAmountError(
            f"This {kind} would take the balance of {held.get('balance', {}).get('N', 0)} outside "
            f"-{MAX_AMOUNT} to {MAX_AMOUNT} minor units; nothing changed."
        )
    raise InsufficientCreditsError(
        int(held.get("balance", {}).get("N", 0)), int(held.get("held", {}).get("N", 0))
    )


def replay(first: dict[str, Any], fingerprint: str, user_id: str) -> Receipt:
    """The first answer of an Idempotency-Key (its guard as DynamoDB holds it), or 409 for another body."""
    if first.get("fingerprint", {}).get("S") != fingerprint:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used with a different request; use a new key."
        )
    return Receipt(
        first["transactionId"]["S"], user_id, int(first["amount"]["N"]), get_balance(user_id), True
    )


def _within_bound(amount: int) -> Any:
    """The condition that a balance moved by `amount` stays within MAX_AMOUNT either way."""
    limit = (
        CreditBalance.balance <= MAX_AMOUNT - amount
        if amount > 0
        else CreditBalance.balance >= -MAX_AMOUNT - amount
    )
    return CreditBalance.balance.does_not_exist() | limit


def _spend_hot(
    user_id: str,
    amount: int,
    hot: Hotness,
    idempotency_key: str,
    description: str | None,
    actor: str,
    currency: str,
    main_guard_seen: bool,
) -> Receipt:
    """A spend of a hot account, from the sub-balance its key names.

    `main_guard_seen` when a transaction that included this key's guard in the main partition was
    refused after the account became hot: the key was not used before then. Otherwise, while a key used
    before the account became hot may still be retried, its guard there is read first.
    """
    fingerprint = writes.fingerprint(SPEND, -amount, description)
    guard_id = key_guard_id(actor, idempotency_key)
    if not main_guard_seen and time.time() < hot.since + writes.IDEMPOTENCY_KEY_LIFETIME.total_seconds():
        first = writes.guard_item(user_id, guard_id)
        if first:
            return replay(first, fingerprint, user_id)
    shard = hot_accounts.shard_key(user_id, hot_accounts.shard_of(actor, idempotency_key, hot.shards))
    transaction_id = str(ULID())
    now = writes.now()
    guard = key_guard(
        shard,
        actor,
        idempotency_key,
        fingerprint,
        transaction_id=transaction_id,
        amount=-amount,
        created_at=now,
    )
    row = CreditTransaction(
        shard,
        transaction_id,
        type=SPEND,
        amount=-amount,
        source="service",
        description=description,
        actor=actor,
        created_at=now,
    )

    def write(transaction: TransactWrite) -> None:
        transaction.save(guard, condition=CreditGuard.guard_id.does_not_exist(), return_values=ALL_OLD)
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditBalance(shard),
            actions=balance_actions(-amount, currency, now),
            condition=CreditBalance.balance >= amount,
            return_values=ALL_OLD,
        )

    for attempt in range(SPEND_ROUNDS):
        try:
            reasons = transact(write, "the ledger could not record the spend")
        except LedgerBusyError:
            # Nothing was written; the guard makes the next round the same spend.
            contention.add("hot_rounds")
            continue
        if reasons is None:
            return Receipt(transaction_id, user_id, -amount, get_balance(user_id))
        key_reason, _, shard_reason = reasons
        if key_reason is not None and key_reason.code == "ConditionalCheckFailed":
            return replay(key_reason.raw_item or writes.guard_item(shard, guard_id), fingerprint, user_id)
        held = int(((shard_reason.raw_item if shard_reason else None) or {}).get("balance", {}).get("N", 0))
        hot_accounts.cover(user_id, hot.shards, shard, amount - held, amount, currency)
        if attempt:
            contention.add("hot_rounds")
            time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not a secret
    snapshot = hot_accounts.read_snapshot(user_id, hot.shards)
    if snapshot.available < amount:
        raise InsufficientCreditsError(snapshot.available, snapshot.held)
    raise LedgerUnavailableError("the account's sub-balances kept moving; retry with the same key")

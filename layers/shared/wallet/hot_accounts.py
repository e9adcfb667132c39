"""Hot accounts: one account's spends spread over sub-balances, so that its debits are not capped by
what one DynamoDB item (one partition) takes in a second.

An account is hot when its balance item (the main item) has `shards` = N. It then has N sub-balance
items `<userId>#s<k>` in the balance table, and a hot spend's guard and row live in the same
partition of the guard and transactions tables: sub-balance k is a plain account of its own, with
one TransactWriteItems per spend. k = hash(caller, Idempotency-Key) mod N, and N never changes, so a
retry of a key always meets its guard. Deposits, claw-backs, adjustments and holds stay on the main
item; a sub-balance short of a spend takes a share of the main item (a refill), and when the main
item is short too, gathers what other sub-balances hold. A spend is refused (402) only when one
consistent read of every item (TransactGetItems) shows the account's available total short of it.

User ids never hold a "#" (wallet.http), so `<userId>#s<k>` names no user.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactGetError
from pynamodb.transactions import TransactGet, TransactWrite

from wallet import writes
from wallet.amounts import spelled
from wallet.errors import (
    InsufficientCreditsError,
    InvalidShardsError,
    LedgerBusyError,
    LedgerUnavailableError,
    ShardsAlreadySetError,
)
from wallet.models import CreditBalance, connection
from wallet.writes import balance_actions, contention, key_guard_id, transact

SEPARATOR = "#"
MIN_SHARDS = 2
MAX_SHARDS = 32
# A consistent read of every item of a hot account is retried this often when it meets a write in flight.
SNAPSHOT_ATTEMPTS = 8
# Hot accounts this process knows of; hotness never reverts, so an entry is never wrong, only evicted.
KNOWN_HOT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Hotness:
    shards: int
    since: float
    """Unix seconds: spends before this were made on the main item, with their guards in its partition."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every item of a hot account at one instant: the main item's available balance and held credits,
    and each sub-balance."""

    main: int
    held: int
    shards: tuple[int, ...]

    @property
    def available(self) -> int:
        return self.main + sum(self.shards)

    @property
    def total(self) -> int:
        return self.available + self.held


_known: OrderedDict[str, Hotness] = OrderedDict()
_known_lock = threading.Lock()


def forget() -> None:
    """Forget every hot account: only for a store emptied under the process (tests, the bench)."""
    with _known_lock:
        _known.clear()


def shard_key(user_id: str, shard: int) -> str:
    """Sub-balance `shard`'s key: its item in the balance table and its partition in the others."""
    return f"{user_id}{SEPARATOR}s{shard}"


def is_shard(key: str) -> bool:
    return SEPARATOR in key and not key.startswith(SEPARATOR)


def account_partitions(user_id: str, shards: int | None = None) -> list[str]:
    """Every partition holding the account's rows: the user's own, then each sub-balance's."""
    count = hotness(user_id).shards if shards is None else shards
    return [user_id] + [shard_key(user_id, k) for k in range(count)]


def shard_of(actor: str, idempotency_key: str, shards: int) -> int:
    """The sub-balance a caller's key spends from: stable for as long as the account has `shards`."""
    digest = hashlib.sha256(key_guard_id(actor, idempotency_key).encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def remember(user_id: str, hot: Hotness) -> None:
    with _known_lock:
        _known[user_id] = hot
        _known.move_to_end(user_id)
        while len(_known) > KNOWN_HOT_LIMIT:
            _known.popitem(last=False)


def known(user_id: str) -> Hotness | None:
    with _known_lock:
        return _known.get(user_id)


def hotness(user_id: str) -> Hotness:
    """Whether the account is hot, from this process's memory or one read of its main item; shards 0
    when it is not."""
    hot = known(user_id)
    if hot is not None:
        return hot
    try:
        main = CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return Hotness(0, 0.0)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    return from_item(user_id, main)


def from_item(user_id: str, main: CreditBalance) -> Hotness:
    """The hotness a main item shows, remembered when it is hot."""
    if not main.shards:
        return Hotness(0, 0.0)
    hot = Hotness(int(main.shards), float(main.sharded_at or 0))
    remember(user_id, hot)
    return hot


def from_raw(user_id: str, item: dict[str, Any]) -> Hotness:
    """The hotness of a main item as a cancelled transaction returned it (ALL_OLD)."""
    if "shards" not in item:
        return Hotness(0, 0.0)
    hot = Hotness(int(item["shards"]["N"]), float(item.get("shardedAt", {}).get("N", 0)))
    remember(user_id, hot)
    return hot


def make_hot(user_id: str, shards: object, *, currency: str) -> int:
    """Spread the account's spends over `shards` sub-balances from now on. Idempotent; the number is
    set once and never changed or removed (an Idempotency-Key's sub-balance depends on it)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not MIN_SHARDS <= shards <= MAX_SHARDS:
        raise InvalidShardsError(
            f"shards must be a whole number from {MIN_SHARDS} to {MAX_SHARDS}, not {spelled(shards)}"
        )
    count = shards
    now = writes.now()

    def write(transaction: TransactWrite) -> None:
        transaction.update(
            CreditBalance(user_id),
            actions=[
                CreditBalance.shards.set(count),
                CreditBalance.sharded_at.set(CreditBalance.sharded_at | int(time.time())),
                CreditBalance.currency.set(currency),
                CreditBalance.updated_at.set(now),
            ],
            condition=CreditBalance.shards.does_not_exist() | (CreditBalance.shards == count),
            return_values=ALL_OLD,
        )

    reasons = transact(write, "the ledger could not make the account hot")
    if reasons is not None:
        [refused] = reasons
        current = (refused.raw_item if refused else None) or {}
        raise ShardsAlreadySetError(int(current.get("shards", {}).get("N", 0)))
    hotness_now = hotness_of_main(user_id)
    if hotness_now is not None:
        remember(user_id, hotness_now)
    return count


def hotness_of_main(user_id: str) -> Hotness | None:
    try:
        main = CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    hot = from_item(user_id, main)
    return hot if hot.shards else None


def cover(user_id: str, shards: int, shard: str, need: int, amount: int, currency: str) -> None:
    """Bring `need` more credits to `shard`: a share of the main item when it has them (a refill), else
    what the main item and the other sub-balances hold (a gather). Raises InsufficientCreditsError when
    a consistent read of every item shows the account cannot cover `amount`."""
    main = _main_balance(user_id)
    if main >= need:
        # A share of the main item, so that a sub-balance refills rarely; never less than it needs.
        _move(user_id, shard, max(need, main // shards), currency)
        contention.add("refills")
        return
    snapshot = read_snapshot(user_id, shards)
    if snapshot.available < amount:
        raise InsufficientCreditsError(snapshot.available, snapshot.held)
    contention.add("gathers")
    sources = [(user_id, snapshot.main)] + [
        (shard_key(user_id, k), balance) for k, balance in enumerate(snapshot.shards)
    ]
    own = dict(sources).get(shard, 0)
    # A share of the whole account, as a refill brings, so the next debits do not each gather again.
    remaining = max(amount, snapshot.available // shards) - own
    # Straight into the short sub-balance: what a gather brings is not refilled to another on the way.
    for source, balance in sorted(sources, key=lambda item: -item[1]):
        if remaining <= 0:
            return
        if source == shard or balance <= 0:
            continue
        take = min(balance, remaining)
        if _move(source, shard, take, currency):
            remaining -= take


def _move(source: str, target: str, credits: int, currency: str) -> bool:
    """Move credits between two items of one account in one transaction, on condition that the source
    holds them; no row, as the account's total is unchanged. False when the source no longer does."""
    now = writes.now()

    def write(transaction: TransactWrite) -> None:
        transaction.update(
            CreditBalance(source),
            actions=balance_actions(-credits, currency, now),
            condition=CreditBalance.balance >= credits,
        )
        transaction.update(CreditBalance(target), actions=balance_actions(credits, currency, now))

    try:
        return transact(write, "the ledger could not move credits within the account") is None
    except LedgerBusyError:
        return False  # nothing moved; the spend's next round looks again


def _main_balance(user_id: str) -> int:
    try:
        return int(CreditBalance.get(user_id, consistent_read=True).balance)
    except DoesNotExist:
        return 0
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc


def read_snapshot(user_id: str, shards: int) -> Snapshot:
    """Every item of the account at one instant (TransactGetItems, which a write in flight cancels:
    retried)."""
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        try:
            with TransactGet(connection=connection()) as transaction:
                futures = [transaction.get(CreditBalance, key) for key in account_partitions(user_id, shards)]
        except TransactGetError as exc:
            codes = {reason.code for reason in exc.cancellation_reasons if reason}
            if "TransactionConflict" in codes and attempt < SNAPSHOT_ATTEMPTS:
                contention.add("conflicts")
                contention.add("retries")
                time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))  # noqa: S311 - jitter
                continue
            raise LedgerUnavailableError("the ledger could not read the account") from exc
        except PynamoDBException as exc:
            raise LedgerUnavailableError("the ledger could not read the account") from exc
        items: list[CreditBalance | None] = []
        for future in futures:
            try:
                items.append(future.get())
            except DoesNotExist:
                items.append(None)
        main, *rest = items
        return Snapshot(
            main=int(main.balance) if main else 0,
            held=_held(main),
            shards=tuple(int(item.balance) if item else 0 for item in rest),
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _held(main: CreditBalance | None) -> int:
    # Holds keep their credits on the main item, in `held`, where the model declares it.
    return int(getattr(main, "held", None) or 0)


def available(user_id: str, main: CreditBalance, shards: int) -> int:
    """The available credits of a hot account whose main item is `main`: one BatchGetItem of its
    sub-balances (not one instant: for an answer's balance, not for a decision)."""
    keys = account_partitions(user_id, shards)[1:]
    try:
        items = list(CreditBalance.batch_get(keys, consistent_read=True))
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    return int(main.balance) + sum(int(item.balance) for item in items)


def cover_debt(user_id: str, currency: str) -> None:
    """After a change left the main item of a hot account below zero (a claw-back, an adjustment), bring
    back what the sub-balances hold until it is covered: spends from them stop as soon as the account's
    total is short.

    Idempotent and resumable: the debt is read from the items each time (the main item below zero is the
    mark of a debt still to cover), and each move conditions on its source. A step that failed is
    finished by the next call: the retry of the adjustment's key, the redelivery of the refund's or
    dispute's event, or the sweep's replay of it (ledger.settle_payment covers on "same facts")."""
    hot = hotness(user_id)
    if not hot.shards:
        return
    snapshot = read_snapshot(user_id, hot.shards)
    debt = -snapshot.main
    for k, balance in sorted(enumerate(snapshot.shards), key=lambda item: -item[1]):
        if debt <= 0 or balance <= 0:
            return
        take = min(balance, debt)
        if _move(shard_key(user_id, k), user_id, take, currency):
            debt -= take


def gather_to_main(user_id: str, amount: int, currency: str) -> Snapshot | None:
    """Before a hold on a hot account is refused: bring what the sub-balances hold to the main item, where
    holds are taken, until it covers `amount`. The account as read when its total is short (the hold is
    refused on that), None when credits were moved or were already there and the hold may be tried again."""
    hot = hotness(user_id)
    if not hot.shards:
        return None
    snapshot = read_snapshot(user_id, hot.shards)
    if snapshot.available < amount:
        return snapshot
    contention.add("gathers")
    need = amount - snapshot.main
    for k, balance in sorted(enumerate(snapshot.shards), key=lambda item: -item[1]):
        if need <= 0:
            break
        if balance > 0 and _move(shard_key(user_id, k), user_id, min(balance, need), currency):
            need -= min(balance, need)
    return None

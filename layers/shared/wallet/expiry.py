"""Expiry: what is left of a grant past its expiry (not spent, not held) leaves the account as an
`expired` row, once, however often the sweep runs, whatever spend races it, wherever it stopped.

The amount comes from the account's grants as of now (wallet.projection.current: the stored projection
and every row after it). That read may miss a change committed meanwhile, so the expiry's transaction
conditions on every balance item of the account (the main item and a hot account's sub-balances) still
having the `changes` count it had before the rows were read; every balance write adds 1 to it in its
own update (wallet.writes.balance_actions). A stale expiry fails its condition and is tried again on a
fresh read; a repeated one finds nothing left. It takes only what the main item holds (a hot account's
credits are gathered to it first), so an expiry never makes a debt.

Only grants that expired SETTLE_SECONDS ago are expired: every row made before their expiry has then
committed (wallet.projection), so no debit the rules would charge to the grant can still arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import account, projection, writes
from wallet.errors import LedgerUnavailableError
from wallet.grants import Grants, Lot
from wallet.models import CreditBalance, CreditTransaction
from wallet.writes import EXPIRED, balance_actions, transact

# Consecutive tries on a fresh read when a change committed between the read and the expiry.
ATTEMPTS = 6
# Expired rows per transaction: with a balance item and up to 33 condition checks, inside the 100 items
# a TransactWriteItems holds.
ROWS_PER_TRANSACTION = 25


@dataclass(frozen=True, slots=True)
class Expired:
    credits: int
    rows: int
    stale: int
    """Expiries refused because the account changed under them, then tried again."""
    counts: dict[str, int | None] | None = None
    """The balance items' `changes` as the account stands after the expiry, as this call knows it; None
    when it gave up on stale reads (the account's view is not known then)."""
    next_expires_at: int | None = None
    """The soonest expiry among the grants with credits left or held afterwards (Unix seconds)."""


def next_expiry(grants: Grants) -> int | None:
    """The soonest expiry of a grant with credits left or held: when the account next has credits due."""
    return min(
        (
            lot.expires_at
            for lot in grants.lots.values()
            if lot.expires_at is not None and lot.left + lot.held > 0
        ),
        default=None,
    )


def expire(user_id: str, now_s: float, currency: str) -> Expired:
    """Expire what is left of the account's grants past their expiry, as of `now_s`: one read, then batch
    after batch, each folded into what was read; only a refused batch reads again."""
    credits = rows = stale = tries = 0
    read: Items | None = None
    grants = Grants()
    due: list[Lot] = []
    start = 0
    gathers = 0
    while tries < ATTEMPTS:
        if read is None:
            read = _read(user_id)
            grants = projection.current(user_id, now_s)
            if grants.total() != read.owned:
                # The rows read do not yet show every change the balance items do: read again.
                read, stale, tries = None, stale + 1, tries + 1
                continue
            wanted = sum(lot.left for lot in grants.due(now_s - projection.SETTLE_SECONDS))
            if read.main < wanted and read.spread > 0 and gathers < ATTEMPTS:
                # A hot account: its sub-balances' credits come to the main item, where expiries take, as
                # many as are due and there are; then both are read again, so the rows and the items
                # read are of one moment. A spend between the read and the gather may leave the main
                # item short still: then again, on what the new read says.
                account.gather_to_main(user_id, min(wanted, read.main + read.spread), currency)
                read, gathers = None, gathers + 1
                continue
            # Sorted once a read: each batch takes the next grants of it, so 10^5 grants due cost one sort.
            due, start = grants.due(now_s - projection.SETTLE_SECONDS), 0
        batch = _batch(due[start : start + ROWS_PER_TRANSACTION], max(read.main, 0))
        if not batch:
            return Expired(credits, rows, stale, read.counts, next_expiry(grants))
        written = _write(user_id, batch, read.counts, currency)
        if written is None:
            read, stale, tries = None, stale + 1, tries + 1
            continue
        tries = 0
        total = sum(part for _, part in batch)
        credits += total
        rows += len(batch)
        for row in written:
            grants.apply(projection.row_of(row))
        # A batch takes each of its grants whole, or the rest of the main item's balance (then the next
        # batch is empty): the grants after it are what is still due.
        start += len(batch)
        count = read.counts[user_id]
        read = Items(
            {**read.counts, user_id: 1 if count is None else count + 1},
            read.main - total,
            read.owned - total,
            read.spread,
        )
    return Expired(credits, rows, stale)


def _batch(due: list[Lot], main: int) -> list[tuple[Lot, int]]:
    batch: list[tuple[Lot, int]] = []
    for lot in due:
        part = min(lot.left, main)
        if part <= 0:
            break
        batch.append((lot, part))
        main -= part
    return batch


@dataclass(frozen=True, slots=True)
class Items:
    """The account's balance items as read: each one's `changes` (None where never counted), the main
    item's available balance, and what they all own (balance + held)."""

    counts: dict[str, int | None]
    main: int
    owned: int
    spread: int = 0
    """What a hot account's sub-balances hold, available to be gathered to the main item."""


def _read(user_id: str) -> Items:
    keys = account.account_partitions(user_id)
    try:
        items = {item.user_id: item for item in CreditBalance.batch_get(keys, consistent_read=True)}
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    counts = {key: None if key not in items else items[key].changes for key in keys}
    main = items.get(user_id)
    return Items(
        {key: None if count is None else int(count) for key, count in counts.items()},
        0 if main is None else int(main.balance),
        sum(int(item.balance or 0) + int(item.held or 0) for item in items.values()),
        sum(max(int(item.balance or 0), 0) for key, item in items.items() if key != user_id),
    )


def _unchanged(count: int | None) -> Any:
    return CreditBalance.changes.does_not_exist() if count is None else CreditBalance.changes == count


def _write(
    user_id: str, batch: list[tuple[Lot, int]], counts: dict[str, int | None], currency: str
) -> list[CreditTransaction] | None:
    """One transaction: the expired rows, the main item less their credits, on condition that no balance
    item of the account changed since it was read. The rows written; None when an item had changed."""
    now = writes.now()
    total = sum(part for _, part in batch)
    rows = [
        CreditTransaction(
            user_id,
            str(ULID()),
            type=EXPIRED,
            amount=-part,
            source="expiry",
            grant_id=lot.grant_id,
            created_at=now,
        )
        for lot, part in batch
    ]

    def write(transaction: TransactWrite) -> None:
        for row in rows:
            transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditBalance(user_id),
            actions=balance_actions(-total, currency, now),
            condition=_unchanged(counts[user_id]) & (CreditBalance.balance >= total),
        )
        for key, count in counts.items():
            if key != user_id:
                transaction.condition_check(CreditBalance, key, condition=_unchanged(count))

    refused = transact(write, "the ledger could not record an expiry")
    return rows if refused is None else None

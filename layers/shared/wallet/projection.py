"""The account's grants, kept: wallet.grants folded over the rows, stored with a watermark on the guard
table's `grants` item, exactly once and resumably, with no write on the spend path.

Rows are folded in transaction-id order (ULIDs; a hot account's partitions merged), and only those older
than SETTLE_SECONDS: a row's id is made in the request that commits it, and no Lambda runs longer, so no
row can commit below the watermark afterwards. Deposits are the exception: a deposit's id is its payment
id, made when the payment was (a delayed payment may settle days later). Each deposit adds its id to the
balance item's `newGrants` in its own transaction, and the projection removes the ids it folds in the
same transaction that moves its watermark, so each deposit is folded once, whenever it commits.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import account
from wallet.errors import LedgerUnavailableError
from wallet.grants import Grants, Row
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.writes import DEPOSIT, transact

# The longest a row's id may precede its commit: Lambda's longest run (15 minutes).
SETTLE_SECONDS = 900
PROJECTION = "grants"
# Rows folded per save, so a long history is folded in steps that each survive a crash.
BATCH_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class Stored:
    grants: Grants
    watermark: str | None
    version: int


def row_of(item: CreditTransaction) -> Row:
    return Row(
        id=item.transaction_id,
        type=item.type,
        amount=int(item.amount),
        at_ms=_instant(item),
        payment_id=item.payment_id,
        hold_id=item.hold_id,
        reserved=None if item.reserved is None else int(item.reserved),
        # What the credits cost the customer, net of the tax collected for the state.
        paid=None if item.amount_paid is None else int(item.amount_paid) - int(item.amount_tax or 0),
        expires_at=None if item.grant_expires_at is None else int(item.grant_expires_at),
        grant_id=item.grant_id,
    )


def _instant(item: CreditTransaction) -> int:
    """When a row was written (its `createdAt`, stamped just before its commit), in Unix milliseconds."""
    try:
        return int(datetime.fromisoformat(item.created_at).timestamp() * 1000)
    except (TypeError, ValueError):
        return int(ULID.from_str(item.transaction_id).milliseconds)


def stored(user_id: str) -> Stored:
    try:
        item = CreditGuard.get(user_id, PROJECTION, consistent_read=True)
    except DoesNotExist:
        return Stored(Grants(), None, 0)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the account's grants") from exc
    version = int(item.version or 0)
    if not Grants.current_form(item.state):
        # An earlier release's form, without the months' closing figures: fold the rows again, from the
        # first, in batches under the item's version, as for an account never projected.
        return Stored(Grants(), None, version)
    return Stored(Grants.from_json(item.state), item.transaction_id, version)


def horizon(now_s: float) -> str:
    """The least id of the millisecond SETTLE_SECONDS before `now_s`: rows below it are settled."""
    return str(ULID.from_timestamp(now_s - SETTLE_SECONDS))[:10] + "0" * 16


def rows_after(user_id: str, after: str | None, below: str | None) -> Iterator[CreditTransaction]:
    """The account's rows with ids after `after` and below `below`, oldest first, its partitions merged."""
    lowest = after or "0"
    highest = below or "Z" * 26

    def one(partition: str) -> Iterator[CreditTransaction]:
        for item in CreditTransaction.query(
            partition,
            CreditTransaction.transaction_id.between(lowest, highest),
            consistent_read=True,
        ):
            if item.transaction_id != after and item.transaction_id != below:
                yield item

    try:
        yield from heapq.merge(
            *(one(partition) for partition in account.account_partitions(user_id)),
            key=lambda item: item.transaction_id,
        )
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the account's rows") from exc


def new_deposits(user_id: str) -> set[str]:
    """The deposits committed and not yet folded (the balance item's `newGrants`)."""
    try:
        item = CreditBalance.get(user_id, consistent_read=True, attributes_to_get=["newGrants"])
    except DoesNotExist:
        return set()
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc
    return set(item.new_grants or ())


def _deposit(user_id: str, payment_id: str) -> CreditTransaction | None:
    try:
        return CreditTransaction.get(user_id, payment_id, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read a deposit") from exc


def catch_up(
    grants: Grants, user_id: str, after: str | None, below: str | None, batch: int | None = None
) -> tuple[str | None, set[str], bool]:
    """Fold onto `grants` the rows after `after` and below `below` (at most `batch` of them), then the
    deposits committed meanwhile whose ids lie at or below where it stopped. Rows are read before the
    deposits' set: a deposit is in the set from its commit until a projection folds it, so one the rows
    showed is in the set, and one that committed after they were read is folded from the set.
    Returns the new watermark, the deposits folded from the set, and whether rows remain past the batch."""
    watermark = after
    seen: set[str] = set()
    stopped = False
    for count, item in enumerate(rows_after(user_id, after, below)):
        if batch is not None and count >= batch:
            below, stopped = item.transaction_id, True
            break
        grants.apply(row_of(item))
        watermark = item.transaction_id
        if item.type == DEPOSIT:
            seen.add(item.transaction_id)
    pending = new_deposits(user_id)
    # Below where this fold stopped, a deposit the rows did not show committed after they were read.
    limit = below if below is not None else "Z" * 26
    folded = pending & seen
    for payment_id in sorted(pending - seen):
        if payment_id < limit:
            late = _deposit(user_id, payment_id)
            if late is not None:
                grants.apply(row_of(late))
            folded.add(payment_id)
    return watermark, folded, stopped


def project(user_id: str, now_s: float) -> Stored:
    """Bring the stored grants up to the settled rows, one batch; a projector that lost a race to another
    leaves the item as the winner wrote it. Returns what is stored now."""
    before = stored(user_id)
    grants = Grants.from_json(before.grants.to_json())
    settled = horizon(now_s)
    watermark, folded, _ = catch_up(grants, user_id, before.watermark, settled, BATCH_ROWS)
    if watermark == before.watermark and not folded:
        return before
    _save(user_id, before, grants, watermark, folded)
    return stored(user_id)


def _save(user_id: str, before: Stored, grants: Grants, watermark: str | None, folded: set[str]) -> None:
    # The item may exist without a version: the grants' index (wallet.grants_due) may be written first.
    unchanged = (
        CreditGuard.version == before.version if before.version else CreditGuard.version.does_not_exist()
    )
    actions: list[Any] = [
        CreditGuard.state.set(grants.to_json()),
        CreditGuard.version.set(before.version + 1),
    ]
    # None: a refold whose rows all lie past the horizon; an earlier form's watermark must not stay.
    actions.append(
        CreditGuard.transaction_id.remove()
        if watermark is None
        else CreditGuard.transaction_id.set(watermark)
    )

    def write(transaction: TransactWrite) -> None:
        transaction.update(CreditGuard(user_id, PROJECTION), actions=actions, condition=unchanged)
        if folded:
            transaction.update(CreditBalance(user_id), actions=[CreditBalance.new_grants.delete(folded)])

    transact(write, "the ledger could not save the account's grants")


def current(user_id: str, now_s: float) -> Grants:
    """The account's grants as of now, in memory: the stored projection and every row after it."""
    before = stored(user_id)
    catch_up(before.grants, user_id, before.watermark, None)
    return before.grants


def glance(user_id: str, most: int) -> Grants | None:
    """The account's grants as of now if at most `most` rows lie past the stored projection (a page's
    cost), else None: for the balance page, which must not read a long history."""
    before = stored(user_id)
    _, _, stopped = catch_up(before.grants, user_id, before.watermark, None, most)
    return None if stopped else before.grants

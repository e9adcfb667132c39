"""Which accounts have grants due, and the sweep that expires them.

An account's `grants` item (wallet.projection) carries its soonest expiry among the grants with credits
left or held (`grantsNextExpiry`) and a bucket (`grantsBucket`: the day of that expiry, or of the
indexing when that is later, and a shard of the user), the keys of the sparse index `grantsDue`. Two
writers keep it, so no grant is ever missed:

- the projector (functions/project_grants) only ever brings it earlier: to the soonest expiry of the
  stored grants and of the new rows it was given (a grant written a moment ago is not folded for
  SETTLE_SECONDS, but its row carries its expiry), on condition that the index does not already say
  as soon or sooner;
- the sweep, after expiring an account, sets it from the account's grants as of now, or removes it when
  nothing is left to expire, on condition that no balance item of the account changed since the expiry
  read it (each new grant changes one), so a grant written meanwhile is never indexed away.

The sweep (`{"task": "grants"}`, hourly) reads the buckets from the day after its checkpoint up to today,
for accounts whose next expiry is SETTLE_SECONDS past. An expired account is indexed again at today or
later, so it leaves the day's buckets; a day counts as swept once it ended SETTLE_SECONDS + the index's
lag ago and none of its accounts failed. An account is indexed at most a day early: one whose grants were
all spent before they expired is visited once at the expiry and removed.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, PynamoDBException, UpdateError
from pynamodb.transactions import TransactWrite

from wallet import account, expiry, projection
from wallet.errors import LedgerBusyError, LedgerUnavailableError
from wallet.models import CreditBalance, CreditGuard
from wallet.sweep_records import SWEEP_KEY, SweepRecord
from wallet.writes import transact

DAY_SECONDS = 86_400
# A day's accounts are spread over this many index partitions (by user), read in as many queries.
SHARDS = 8
# A day counts as swept once its end is this far past SETTLE_SECONDS: past the index's propagation.
INDEX_LAG_SECONDS = 60
# With no checkpoint yet (the first run after a deploy), the sweep starts this many days back.
FIRST_RUN_DAYS = 2
# The sweep stops with this much of the function's time left.
SAFETY_MARGIN_SECONDS = 10.0
# An account that changed between its expiry and its indexing is expired and indexed again this often.
INDEX_ATTEMPTS = 3
CHECKPOINT = "grants#checkpoint"


def bucket(user_id: str, expires_at: int, now_s: float) -> str:
    """The index bucket of an account next due at `expires_at`: that day, or today if it is past."""
    day = max(int(expires_at), math.floor(now_s)) // DAY_SECONDS
    return f"{_day_label(day)}#{zlib.crc32(user_id.encode()) % SHARDS}"


def _day_label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_SECONDS, UTC).strftime("%Y-%m-%d")


def soonest(expiries: Iterable[int | None]) -> int | None:
    return min((int(e) for e in expiries if e is not None), default=None)


def bring_forward(user_id: str, expires_at: int, now_s: float) -> bool:
    """Index the account as due at `expires_at` unless it already is at or before it. False when it was."""
    item = CreditGuard(user_id, projection.PROJECTION)
    try:
        item.update(
            actions=[
                CreditGuard.grants_bucket.set(bucket(user_id, expires_at, now_s)),
                CreditGuard.grants_next_expiry.set(int(expires_at)),
            ],
            condition=CreditGuard.grants_next_expiry.does_not_exist()
            | (CreditGuard.grants_next_expiry > int(expires_at)),
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise LedgerUnavailableError("the ledger could not index the account's grants") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not index the account's grants") from exc
    return True


def reindex(user_id: str, expires_at: int | None, counts: dict[str, int | None], now_s: float) -> bool:
    """Index the account as next due at `expires_at` (None: nothing left to expire, out of the index), on
    condition that its balance items still have the `changes` counted. False when one changed."""
    actions: list[Any] = (
        [CreditGuard.grants_bucket.remove(), CreditGuard.grants_next_expiry.remove()]
        if expires_at is None
        else [
            CreditGuard.grants_bucket.set(bucket(user_id, expires_at, now_s)),
            CreditGuard.grants_next_expiry.set(int(expires_at)),
        ]
    )

    def write(transaction: TransactWrite) -> None:
        transaction.update(CreditGuard(user_id, projection.PROJECTION), actions=actions)
        for key, count in counts.items():
            unchanged = (
                CreditBalance.changes.does_not_exist() if count is None else CreditBalance.changes == count
            )
            transaction.condition_check(CreditBalance, key, condition=unchanged)

    return transact(write, "the ledger could not index the account's grants") is None


def indexed(user_id: str) -> tuple[str | None, int | None]:
    """The account's bucket and next expiry as indexed (both None when it is not)."""
    try:
        item = CreditGuard.get(user_id, projection.PROJECTION, consistent_read=True)
    except DoesNotExist:
        return None, None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the account's grants") from exc
    next_expiry = None if item.grants_next_expiry is None else int(item.grants_next_expiry)
    return item.grants_bucket, next_expiry


# --- The projector ------------------------------------------------------------------------------------


def owner(partition: str) -> str:
    """The user whose rows a partition holds: a hot account's sub-balance `<userId>#s<k>` is its user's."""
    return partition.rsplit("#", 1)[0] if account.is_sub_balance(partition) else partition


def follow(
    user_id: str, now_s: float, fresh: Iterable[int], seconds_left: Callable[[], float] = lambda: math.inf
) -> projection.Stored:
    """Fold the account's settled rows into its stored grants, batch after batch while the watermark moves
    and time is left, then bring its index forward to the soonest expiry of the stored grants and of
    `fresh` (the expiries on rows just written, which the fold reaches only once they settle)."""
    state = projection.project(user_id, now_s)
    # Each call folds at most projection.BATCH_ROWS: the one that leaves the watermark where it was is
    # the one that found nothing more settled.
    while seconds_left() >= SAFETY_MARGIN_SECONDS:
        again = projection.project(user_id, now_s)
        if again.watermark == state.watermark:
            break
        state = again
    next_expiry = soonest([expiry.next_expiry(state.grants), *fresh])
    if next_expiry is not None:
        bring_forward(user_id, next_expiry, now_s)
    return state


# --- The sweep ----------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    accounts: int = 0
    """Accounts found due and expired (or found with nothing left) and indexed again."""
    credits: int = 0
    rows: int = 0
    failed: int = 0
    swept_until: str | None = None
    """The last day whose accounts due are all expired, as `YYYY-MM-DD` UTC."""
    finished: bool = True
    failures: list[str] = field(default_factory=list)


def expire_due(
    seconds_left: Callable[[], float] = lambda: math.inf,
    *,
    currency: str,
    now: Callable[[], float] = time.time,
) -> SweepReport:
    """Expire every account whose next expiry is SETTLE_SECONDS past, day by day from the day after the
    checkpoint up to today, and index each again from its grants as of now."""
    report = SweepReport()
    moment = now()
    today = math.floor(moment) // DAY_SECONDS
    checkpoint = _checkpoint()
    start = today - FIRST_RUN_DAYS if checkpoint is None else checkpoint + 1
    swept_up_to = checkpoint
    advancing = True
    for day in range(start, today + 1):
        if seconds_left() < SAFETY_MARGIN_SECONDS:
            report.finished = False
            break
        complete = _sweep_day(day, moment, currency, report, seconds_left)
        ended = (day + 1) * DAY_SECONDS + projection.SETTLE_SECONDS + INDEX_LAG_SECONDS <= moment
        if advancing and complete and ended:
            swept_up_to = day
        else:
            advancing = False
    if swept_up_to is not None and swept_up_to != checkpoint:
        _save_checkpoint(swept_up_to)
    report.swept_until = None if swept_up_to is None else _day_label(swept_up_to)
    return report


def _sweep_day(
    day: int, moment: float, currency: str, report: SweepReport, seconds_left: Callable[[], float]
) -> bool:
    """Expire the day's accounts due; False if any failed or time ran out."""
    complete = True
    due_by = math.floor(moment) - projection.SETTLE_SECONDS
    for shard in range(SHARDS):
        try:
            keys = CreditGuard.grants_due.query(
                f"{_day_label(day)}#{shard}", CreditGuard.grants_next_expiry <= due_by
            )
            for key in keys:
                if seconds_left() < SAFETY_MARGIN_SECONDS:
                    report.finished = False
                    return False
                if not _expire_account(key.user_id, moment, currency, report):
                    complete = False
        except PynamoDBException as exc:
            raise LedgerUnavailableError("the sweep could not read the accounts with grants due") from exc
    return complete


def _expire_account(user_id: str, moment: float, currency: str, report: SweepReport) -> bool:
    try:
        done = expire_and_index(user_id, moment, currency)
        failure = "StaleReads"
    except (LedgerUnavailableError, LedgerBusyError) as exc:
        done, failure = None, type(exc).__name__
    if done is not None:
        report.credits += done.credits
        report.rows += done.rows
    if done is not None and done.counts is not None:
        report.accounts += 1
        return True
    report.failed += 1
    report.failures.append(f"{user_id}: {failure}")
    return False


def expire_and_index(user_id: str, now_s: float, currency: str) -> expiry.Expired:
    """Expire the account's grants due as of `now_s`, then index it from what is left; tried again while
    the account changes in between. Its `counts` are None when it never got a steady view."""
    credits = rows = stale = 0
    for _ in range(INDEX_ATTEMPTS):
        done = expiry.expire(user_id, now_s, currency)
        credits, rows, stale = credits + done.credits, rows + done.rows, stale + done.stale
        if done.counts is None:
            break
        if reindex(user_id, done.next_expires_at, done.counts, now_s):
            return expiry.Expired(credits, rows, stale, done.counts, done.next_expires_at)
    return expiry.Expired(credits, rows, stale)


def _checkpoint() -> int | None:
    """The last day swept, kept as its last minute in the sweep records' `sweptMinute`."""
    try:
        record = SweepRecord.get(SWEEP_KEY, CHECKPOINT, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not read its checkpoint") from exc
    return None if record.swept_minute is None else int(record.swept_minute) // 1440


def _save_checkpoint(day: int) -> None:
    minute = (day + 1) * 1440 - 1
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = SweepRecord(SWEEP_KEY, CHECKPOINT, swept_minute=minute, updated_at=stamp)
    try:
        # Never backwards: two runs at once keep the later day.
        record.save(condition=SweepRecord.swept_minute.does_not_exist() | (SweepRecord.swept_minute < minute))
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise LedgerUnavailableError("the sweep could not save its checkpoint") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not save its checkpoint") from exc

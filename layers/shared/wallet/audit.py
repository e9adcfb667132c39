"""The audit: prove that every balance is the sum of its rows, that the account's grants (wallet.grants,
folded over the same rows in the same pass) add up to it too, and that what a balance holds aside
(`held`) is the sum of the user's active holds.

Nothing writes a balance without its row (both are in one transaction), so a difference is a defect or
a hand edit, and a person must look. A balance that moves while it is being read is read again; the
audit never reports a change in flight as drift.

It pages: over the balances, and over each user's rows a page at a time (a hot account's partitions a
page each, merged in transaction-id order, the order the grants fold in), so its memory does not grow
with a user's rows: the fold keeps only the grants with something left, held, or open to a refund.
Where it stands is saved in the guard table under the reserved key `#audit` (wallet.audit_checkpoint)
every few thousand rows and when its time runs short, with the grants folded so far; the next run
resumes from there, and a finished audit clears it. Each run reports what it checked itself: the runs of
one audit add up to one whole pass.

The grants are checked against balances whose rows add up (`grants.total()` = balance + held, over
every balance item of the account); a balance that is not the sum of its rows is reported as that.
Where the fold drops or adds credits the rows moved (a hold's row that moved credits, which the fold
reads as moving none), the rows may still add up while the grants do not: that is a `grant_drifts`.

It also counts the active holds more than an hour past their time: the minute's sweep expires each
within a minute or two, so such a hold means the sweep has stopped (an alarm), and its credits stay
held until it runs again.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from wallet import account, projection
from wallet.audit_checkpoint import AUDIT_KEY as AUDIT_KEY
from wallet.audit_checkpoint import CHECKPOINT as CHECKPOINT
from wallet.audit_checkpoint import SETTLE_ATTEMPTS as SETTLE_ATTEMPTS
from wallet.audit_checkpoint import AuditCheckpoint as AuditCheckpoint
from wallet.audit_checkpoint import Position, UserCheck
from wallet.audit_checkpoint import load as _load
from wallet.audit_checkpoint import save as _save
from wallet.errors import LedgerUnavailableError
from wallet.grants import Grants
from wallet.models import CreditBalance, CreditGuard, CreditTransaction

# Stop with this much time left, so that the report is still written within the function's limit.
SAFETY_MARGIN_SECONDS = 10.0
# Rows per query page: a page's items are all the audit holds of a user's rows at once.
ROWS_PAGE = 1000
BALANCES_PAGE = 100
# Save where the audit stands after this many rows and balances read, so a stop loses at most this much.
CHECKPOINT_EVERY = 5000
# An active hold this far past its time is one the minute's sweep has not reached for an hour.
OVERDUE_AFTER_SECONDS = 3600
# wallet.holds' names, kept here so the audit does not load the holds' module.
HOLD_PREFIX = "hold#"
ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Drift:
    user_id: str
    balance: int
    rows_total: int


@dataclass(frozen=True, slots=True)
class HeldDrift:
    user_id: str
    held: int
    active_holds: int
    """What the user's active holds add up to."""


@dataclass(frozen=True, slots=True)
class GrantDrift:
    user_id: str
    grants: int
    """What the account's grants add up to (wallet.grants: left + held - debt)."""
    balance: int
    """What its balance items say it owns: balance + held, every sub-balance's included."""


@dataclass
class AuditReport:
    users: int = 0
    """Balances whose check ended in this run (a user resumed from the checkpoint included)."""
    rows: int = 0
    """Rows read in this run; a balance that moved has its rows read again."""
    drifts: list[Drift] = field(default_factory=list)
    grant_drifts: list[GrantDrift] = field(default_factory=list)
    """Users whose rows add up to their balance items but whose grants do not."""
    held_drifts: list[HeldDrift] = field(default_factory=list)
    """Users whose `held` is not the sum of their active holds."""
    overdue_holds: int = 0
    """Active holds more than OVERDUE_AFTER_SECONDS past their time: the minute's sweep is not running."""
    unsettled: list[str] = field(default_factory=list)
    """Users whose balance moved on every read; the next audit checks them again."""
    finished: bool = True
    """False: stopped for time, with a checkpoint the next run resumes from."""
    resumed: bool = False
    """This run went on from the checkpoint of an earlier one."""


class _OutOfTimeError(Exception):
    """The run's time is nearly up: the position is saved and the next run goes on from it."""


def audit(
    seconds_left: Callable[[], float] = lambda: float("inf"),
    *,
    checkpoint_every: int = CHECKPOINT_EVERY,
    now: Callable[[], float] | None = None,
) -> AuditReport:
    """Page over every balance and compare it with the sum of the user's rows and with what the rows'
    grants add up to, and its `held` with the user's active holds, from the checkpoint of an unfinished
    audit if there is one."""
    report = AuditReport()
    clock = now or time.time
    try:
        loaded, saved = _load()
        position = loaded or Position()
        report.resumed = loaded is not None
        unsaved = 0

        def read(count: int) -> None:
            """Counts what was read since the last save, saves every `checkpoint_every`, and stops the
            run with the position saved when its time runs short."""
            nonlocal unsaved, saved
            unsaved += count
            if seconds_left() < SAFETY_MARGIN_SECONDS:
                _save(position)
                raise _OutOfTimeError
            if unsaved >= checkpoint_every:
                _save(position)
                saved, unsaved = True, 0

        try:
            if position.user is not None:
                _check(position.user, report, read)
                _check_holds(position.user.user_id, report, clock())
                report.users += 1
                position.user = None
            scan = CreditBalance.scan(
                consistent_read=True, page_size=BALANCES_PAGE, last_evaluated_key=position.balances_after
            )
            for balance in scan:
                read(1)
                # A hot account's sub-balances are audited with its main item, not as users of their own.
                if account.is_sub_balance(balance.user_id):
                    continue
                position.balances_after = {"userId": {"S": balance.user_id}}
                position.user = UserCheck(balance.user_id, _owned(balance))
                _check(position.user, report, read)
                _check_holds(balance.user_id, report, clock())
                report.users += 1
                position.user = None
        except _OutOfTimeError:
            report.finished = False
            return report
        if saved:
            AuditCheckpoint().delete()
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the audit could not read the ledger") from exc
    return report


def _check(user: UserCheck, report: AuditReport, read: Callable[[int], None]) -> None:
    """The user's rows, and the grants they fold into, against their balance, read before and after the
    rows: if it did not move in between, the rows are the ones it sums. A difference is confirmed by a
    second reading."""
    while user.attempt < SETTLE_ATTEMPTS:
        count = _fold(user, report, read)
        after = _balance(user.user_id)
        grants = user.grants.total()
        if after == user.seen == user.rows_total == grants:
            return
        if after == user.seen:
            user.differences += 1
            if user.differences == 2:
                if user.rows_total != after:
                    report.drifts.append(Drift(user.user_id, after, user.rows_total))
                else:
                    report.grant_drifts.append(GrantDrift(user.user_id, grants, after))
                return
        user.seen, user.rows_after, user.rows_total, user.grants = after, None, 0, Grants()
        user.attempt += 1
        read(count)
    report.unsettled.append(user.user_id)


def _fold(user: UserCheck, report: AuditReport, read: Callable[[int], None]) -> int:
    """Sum the user's rows after `user.rows_after` and fold them into `user.grants`, in one pass, a page
    at a time; `read` between pages, when the sum, the grants and the position agree. Returns how many
    rows were read since the last `read`."""
    count = 0
    for item in _rows(user.user_id, user.rows_after):
        row = projection.row_of(CreditTransaction.from_raw_data(item))
        user.grants.apply(row)
        user.rows_total += row.amount
        user.rows_after = {"userId": item["userId"], "transactionId": item["transactionId"]}
        count += 1
        if count == ROWS_PAGE:
            report.rows += count
            read(count)
            count = 0
    report.rows += count
    return count


def _check_holds(user_id: str, report: AuditReport, moment: float) -> None:
    """The user's `held` against their active holds, read between two readings of `held` (every hold's
    creation and settlement moves it); a difference is confirmed by a second reading. Not checkpointed
    within: a user's active holds are few, and read in one go."""
    differences = 0
    for _ in range(SETTLE_ATTEMPTS):
        seen = _held(user_id)
        total, overdue = _active_holds(user_id, moment)
        if _held(user_id) != seen:
            continue
        if total != seen:
            differences += 1
            if differences < 2:
                continue
            report.held_drifts.append(HeldDrift(user_id, seen, total))
        report.overdue_holds += overdue
        return
    report.unsettled.append(user_id)


def _held(user_id: str) -> int:
    try:
        return int(CreditBalance.get(user_id, consistent_read=True, attributes_to_get=["held"]).held or 0)
    except DoesNotExist:
        return 0


def _active_holds(user_id: str, moment: float) -> tuple[int, int]:
    """What the user's active holds add up to, and how many are past their time by more than an hour."""
    total = overdue = 0
    for hold in CreditGuard.query(
        user_id,
        CreditGuard.guard_id.startswith(HOLD_PREFIX),
        filter_condition=CreditGuard.state == ACTIVE,
        consistent_read=True,
        attributes_to_get=["amount", "holdExpiresAt"],
    ):
        total += int(hold.amount or 0)
        overdue += int(hold.hold_expires_at or 0) < moment - OVERDUE_AFTER_SECONDS
    return total, overdue


# -- What a user's balance is, and what their rows add up to: the one place holds and hot accounts change --


def _owned(balance: CreditBalance) -> int:
    """What the user's rows must add up to: what may be spent and what active holds keep aside, and for a
    hot account its sub-balances too, read at one instant."""
    if balance.shards:
        return account.account_total(balance.user_id)
    return int(balance.balance) + int(balance.held or 0)


def _balance(user_id: str) -> int:
    try:
        return _owned(CreditBalance.get(user_id, consistent_read=True))
    except DoesNotExist:
        return 0


def _rows(user_id: str, after: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """The user's rows after the row `after` names, as DynamoDB gives them, in transaction-id order: the
    order the grants fold in. A hot account's rows are in its own partition and each sub-balance's, read
    a page of each at a time and merged."""
    last = None if after is None else after["transactionId"]["S"]

    def partition_rows(partition: str) -> Iterator[dict[str, Any]]:
        start = None if last is None else {"userId": {"S": partition}, "transactionId": {"S": last}}
        while True:
            page = CreditTransaction._get_connection().query(
                partition, consistent_read=True, exclusive_start_key=start, limit=ROWS_PAGE
            )
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if start is None:
                return

    partitions = account.account_partitions(user_id)
    if len(partitions) == 1:
        return partition_rows(partitions[0])
    return heapq.merge(
        *(partition_rows(partition) for partition in partitions), key=lambda item: item["transactionId"]["S"]
    )

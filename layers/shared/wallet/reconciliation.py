"""The sweep: replay Stripe's event log through the webhook's own code, so a lost webhook loses nothing.

A delayed payment that settles days after checkout, a refund, a dispute: whatever the webhook acts on is
also in Stripe's log for 30 days. The sweep walks it oldest first from a checkpoint kept in DynamoDB and
hands each event to `stripe_events.act_on`, the webhook's path without the signature check (the event came
from Stripe's API, asked with our key). The ledger writes each change once, so an event the webhook
already handled changes nothing. One event's failure is recorded and retried by the next run; the rest
go on. The sweep stops with time to spare and the next run resumes from the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from stripe import StripeClient

from wallet import event_log, stripe_events
from wallet.errors import LedgerUnavailableError
from wallet.event_log import CheckpointGoneError, LoggedEvent
from wallet.outcomes import Result
from wallet.sweep_records import CHECKPOINT, FAILED, SWEEP_KEY, WALK_BACK, SweepRecord

# Stripe keeps events this long; the sweep starts this much inside it, so the oldest is still there.
RETENTION = timedelta(days=30)
EDGE_MARGIN = timedelta(hours=1)
# Stop with this much time left, so a long page does not run into the function's time limit.
SAFETY_MARGIN_SECONDS = 20.0
# So many failures in a row is an outage, not a bad event: stop, and leave the rest to the next run.
MAX_FAILURES_IN_A_ROW = 20

RECOVERED = {Result.CREDITED: "credited", Result.CLAWED_BACK: "reversed", Result.RESTORED: "reversed"}
COUNTED = RECOVERED | {
    Result.ALREADY_CREDITED: "already_done",
    Result.NOTHING_MORE: "already_done",
    Result.REJECTED: "rejected",
    Result.NOT_OURS: "not_ours",
}


@dataclass
class SweepReport:
    replayed: int = 0
    """Events handed to the webhook's code this run, retries included."""
    credited: int = 0
    """Deposits the sweep made: each is a webhook that was lost."""
    reversed: int = 0
    """Refunds, disputes and won disputes the sweep applied: each is a webhook that was lost."""
    already_done: int = 0
    rejected: int = 0
    not_ours: int = 0
    failed: int = 0
    """Events whose replay failed this run: recorded, retried by the next."""
    retried: int = 0
    """Earlier failures that went through this run."""
    gone: int = 0
    """Earlier failures Stripe no longer keeps: given up, a person must look."""
    finished: bool = True
    """False when the sweep stopped (for time, or after many failures in a row) before the newest event."""
    checkpoint: str | None = None
    failures: list[dict[str, str]] = field(default_factory=list)
    rejections: list[dict[str, str | None]] = field(default_factory=list)


def sweep(
    seconds_left: Callable[[], float],
    now: float | None = None,
    client: StripeClient | None = None,
) -> SweepReport:
    """Replay every event of the types the webhook acts on since the checkpoint (at most 30 days back)."""
    run = _Run(seconds_left, int(time.time() if now is None else now), client)
    run.retry_failures()
    if run.report.finished:
        run.walk_forward()
    return run.report


class _Run:
    def __init__(self, seconds_left: Callable[[], float], now: int, client: StripeClient | None) -> None:
        self.seconds_left = seconds_left
        self.client = client
        self.now = now
        self.edge = int(now - (RETENTION - EDGE_MARGIN).total_seconds())
        self.report = SweepReport()
        self.failures_in_a_row = 0

    def out_of_time(self) -> bool:
        if self.seconds_left() < SAFETY_MARGIN_SECONDS or self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            self.report.finished = False
        return not self.report.finished

    def retry_failures(self) -> None:
        for record in _query(SweepRecord.guard_id.startswith(FAILED)):
            if self.out_of_time():
                return
            logged = event_log.retrieve(record.event_id or "", self.client)
            if logged is None:
                self.report.gone += 1
                self.report.failures.append({"event_id": record.event_id or "", "reason": "gone from Stripe"})
                _delete(record)
            elif self.replay(logged):
                self.report.retried += 1
                _delete(record)

    def walk_forward(self) -> None:
        checkpoint = _get(CHECKPOINT)
        if checkpoint is None or checkpoint.event_id is None or (checkpoint.event_created or 0) < self.edge:
            oldest = self.find_oldest()
            if oldest is None:
                return
            self.replay(oldest)
            _save_checkpoint(oldest)
            cursor = oldest.event.id
        else:
            cursor = checkpoint.event_id
        self.report.checkpoint = cursor
        while not self.out_of_time():
            try:
                page = event_log.newer_than(cursor, stripe_events.REPLAYED, self.client)
            except CheckpointGoneError:
                _delete(SweepRecord(SWEEP_KEY, CHECKPOINT))
                self.report.finished = False
                return
            last: LoggedEvent | None = None
            try:
                for logged in page.events:
                    if self.out_of_time():
                        break
                    self.replay(logged)
                    last = logged
            finally:
                if last is not None:
                    _save_checkpoint(last)
                    cursor = self.report.checkpoint = last.event.id
            if not page.has_more or not page.events or last is not page.events[-1]:
                return

    def find_oldest(self) -> LoggedEvent | None:
        """The oldest event of the log inside Stripe's 30 days, walking back newest first; an interrupted
        walk carries on from where it stopped."""
        walk = _get(WALK_BACK)
        floor = walk.event_id if walk else None
        while not self.out_of_time():
            try:
                page = event_log.older_than(floor, stripe_events.REPLAYED, self.edge, self.client)
            except CheckpointGoneError:
                floor = None
                continue
            if not page.events:
                return event_log.retrieve(floor, self.client) if floor else None
            if not page.has_more:
                _delete(SweepRecord(SWEEP_KEY, WALK_BACK))
                return page.events[-1]
            floor = page.events[-1].event.id
            _save(SweepRecord(SWEEP_KEY, WALK_BACK, event_id=floor))
        return None

    def replay(self, logged: LoggedEvent) -> bool:
        """Act on one event as the webhook would; a failure is recorded for the next run, not raised."""
        self.report.replayed += 1
        try:
            outcome = stripe_events.act_on(logged.event)
        except Exception as exc:  # one event must not stop the rest; it is retried next run
            self.failures_in_a_row += 1
            self.report.failed += 1
            self.report.failures.append({"event_id": logged.event.id, "reason": type(exc).__name__})
            _record_failure(logged, type(exc).__name__)
            return False
        self.failures_in_a_row = 0
        counter = COUNTED.get(outcome.result)
        if counter:
            setattr(self.report, counter, getattr(self.report, counter) + 1)
        if outcome.result is Result.REJECTED:
            self.report.rejections.append(
                {"event_id": logged.event.id, "session_id": outcome.session_id, "reason": outcome.reason}
            )
        return True


def _record_failure(logged: LoggedEvent, reason: str) -> None:
    record = SweepRecord(SWEEP_KEY, FAILED + logged.event.id)
    expires = datetime.fromtimestamp(logged.created, UTC) + RETENTION
    try:
        record.update(
            actions=[
                SweepRecord.event_id.set(logged.event.id),
                SweepRecord.event_created.set(logged.created),
                SweepRecord.event_type.set(logged.event.type),
                SweepRecord.reason.set(reason),
                SweepRecord.attempts.add(1),
                SweepRecord.updated_at.set(_now_iso()),
                SweepRecord.expires_at.set(expires),
            ]
        )
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not record a failed event") from exc


def _save_checkpoint(logged: LoggedEvent) -> None:
    _save(
        SweepRecord(
            SWEEP_KEY,
            CHECKPOINT,
            event_id=logged.event.id,
            event_created=logged.created,
            event_type=logged.event.type,
            updated_at=_now_iso(),
        )
    )


def _get(guard_id: str) -> SweepRecord | None:
    try:
        return SweepRecord.get(SWEEP_KEY, guard_id, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not read its checkpoint") from exc


def _query(condition: object) -> list[SweepRecord]:
    try:
        return list(SweepRecord.query(SWEEP_KEY, condition, consistent_read=True))  # type: ignore[arg-type]
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not read its failed events") from exc


def _save(record: SweepRecord) -> None:
    try:
        record.save()
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not save its checkpoint") from exc


def _delete(record: SweepRecord) -> None:
    try:
        record.delete()
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not clear a record") from exc


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

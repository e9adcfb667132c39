"""Holds, for metered usage: reserve an estimate now, settle the actual cost later.

A hold moves credits from the user's `balance` (what may be spent now: available) to `held`, so spends
and other holds cannot take them; the user's balance, `balance + held`, is still the sum of their rows.
A hold ends exactly once, by the one transaction whose condition `state = active` holds: a capture
spends part or all of it and gives back the rest, a release gives it all back, and once its time is up
the minute's sweep, or any capture or release that meets it, expires it as a release would.

Each change is ONE TransactWriteItems holding the hold item (CreditGuard, `hold#<holdId>`), its row and
the balance, and for a service's request its Idempotency-Key guard, so a retry, a crash or a race of
capture, release and expiry settles a hold once and `held` never drifts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import CancellationReason, DoesNotExist, PutError, PynamoDBException
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import writes
from wallet.account import Balances, balances, gather_to_main, hold_actions, unhold_actions
from wallet.amounts import spelled, whole
from wallet.errors import (
    HoldNotActiveError,
    HoldNotFoundError,
    IdempotencyKeyReusedError,
    InsufficientCreditsError,
    InvalidAmountError,
    LedgerBusyError,
    LedgerUnavailableError,
)
from wallet.ledger import check_amount
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.sweep_records import SWEEP_KEY, SweepRecord
from wallet.writes import (
    HOLD,
    HOLD_EXPIRED,
    HOLD_RELEASED,
    SPEND,
    guard_item,
    key_guard,
    transact,
)

ACTIVE = "active"
CAPTURED = "captured"
RELEASED = "released"
EXPIRED = "expired"
HOLD_PREFIX = "hold#"
MAX_EXPIRES_IN_SECONDS = 86_400
# A settled hold is kept this long after it settled (its TTL, set then: an active hold has none, so DynamoDB
# never deletes one however long the sweep stops), so a late capture is still told its final state, and a
# replay of its capture or release within the Idempotency-Key's lifetime still finds it.
SETTLED_KEPT = timedelta(days=7)
# One minute's holds are spread over this many index partitions (by hold id), read in as many queries.
EXPIRY_SHARDS = 8
# A minute counts as swept once its end is this far behind: past the index's propagation, with room.
INDEX_LAG_SECONDS = 60
# With no checkpoint yet (the first run after a deploy), the sweep starts this far back.
FIRST_RUN_MINUTES = 60
# The sweep stops with this much of the function's time left.
SAFETY_MARGIN_SECONDS = 10.0
HOLDS_CHECKPOINT = "holds#checkpoint"
# A hold refused on a hot account's main item gathers its sub-balances and is tried again this often.
HOT_GATHER_ATTEMPTS = 3

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    user_id: str
    amount: int
    state: str
    expires_at: int
    """When it expires, in Unix seconds."""
    description: str | None = None
    captured: int | None = None

    def answer(self) -> dict[str, object]:
        """As the API describes a hold that is not active any more."""
        described: dict[str, object] = {"holdId": self.hold_id, "state": self.state, "amount": self.amount}
        if self.captured is not None:
            described["captured"] = self.captured
        return described | {"expiresAt": iso(self.expires_at)}


@dataclass(frozen=True, slots=True)
class Held:
    """What a hold's creation did; `replayed` when its Idempotency-Key had already done it."""

    hold: Hold
    balances: Balances
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Settled:
    """What a capture or a release did: `captured` credits spent (a `spend` row, `transaction_id`),
    `released` given back to the available balance."""

    hold: Hold
    transaction_id: str
    captured: int
    released: int
    balances: Balances
    replayed: bool = False


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_expires_in(seconds: object) -> int:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 1 <= seconds <= MAX_EXPIRES_IN_SECONDS
    ):
        raise ValueError(
            f"expiresInSeconds must be a whole number of seconds from 1 to {MAX_EXPIRES_IN_SECONDS} "
            f"(24 hours), not {spelled(seconds)}"
        )
    return seconds


def expiry_bucket(hold_id: str, expires_at: int) -> str:
    """The index partition of an active hold: its expiry minute and a shard of its id."""
    shard = ULID.from_str(hold_id).bytes[-1] % EXPIRY_SHARDS
    return f"{_minute_label(expires_at // 60)}#{shard}"


def _minute_label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M")


def create_hold(
    user_id: str,
    amount: int,
    *,
    expires_in: int,
    idempotency_key: str,
    description: str | None,
    actor: str,
    currency: str,
    now: Clock = time.time,
) -> Held:
    """Hold `amount` of the available balance for `expires_in` seconds, once per Idempotency-Key.

    One TransactWriteItems: the key's guard (new, or the first answer is replayed), the hold (new), its
    `hold` row (0 credits, `reserved` = amount) and `balance -= amount, held += amount` on condition that
    `balance >= amount`, as a spend's.
    """
    check_amount(amount)
    check_expires_in(expires_in)
    hold_id = str(ULID())
    moment = now()
    expires_at = math.ceil(moment) + expires_in
    stamp = _stamp(moment)
    guard = key_guard(
        user_id,
        actor,
        idempotency_key,
        writes.fingerprint(HOLD, amount, description, expires_in),
        transaction_id=hold_id,
        amount=amount,
        created_at=stamp,
    )
    hold = CreditGuard(
        user_id,
        HOLD_PREFIX + hold_id,
        amount=amount,
        state=ACTIVE,
        description=description,
        actor=actor,
        hold_expires_at=expires_at,
        expiry_bucket=expiry_bucket(hold_id, expires_at),
        created_at=stamp,
    )
    # The hold's own row has the hold's id, as a deposit's has its payment's.
    row = _row(user_id, hold_id, HOLD, 0, hold_id, amount, description, actor, stamp)

    def write(transaction: TransactWrite) -> None:
        transaction.save(guard, condition=CreditGuard.guard_id.does_not_exist(), return_values=ALL_OLD)
        transaction.save(hold, condition=CreditGuard.guard_id.does_not_exist())
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditBalance(user_id),
            actions=hold_actions(amount, currency, stamp),
            condition=CreditBalance.balance >= amount,
            return_values=ALL_OLD,
        )

    for _ in range(HOT_GATHER_ATTEMPTS):
        reasons = transact(write, "the ledger could not record the hold")
        if reasons is None:
            made = Hold(hold_id, user_id, amount, ACTIVE, expires_at, description)
            return Held(made, balances(user_id))
        key_reason, _, _, balance_reason = reasons
        if _refused(key_reason):
            first = _first_answer(
                key_reason.raw_item or guard_item(user_id, guard.guard_id), guard.fingerprint
            )
            return Held(_read(user_id, first["transactionId"]["S"]), balances(user_id), replayed=True)
        before = (balance_reason.raw_item if balance_reason else None) or {}
        held = int(before.get("held", {}).get("N", 0))
        if "shards" not in before:
            raise InsufficientCreditsError(int(before.get("balance", {}).get("N", 0)), held)
        # A hot account's credits may sit in its sub-balances: brought to the main item, then tried again.
        short = gather_to_main(user_id, amount, currency)
        if short is not None:
            raise InsufficientCreditsError(short.available, short.held)
    raise LedgerBusyError("the account's sub-balances kept moving; retry with the same Idempotency-Key")


def capture_hold(
    user_id: str,
    hold_id: str,
    amount: int,
    *,
    idempotency_key: str,
    actor: str,
    currency: str,
    now: Clock = time.time,
) -> Settled:
    """Spend `amount` (1 to what the hold holds) and give the rest back, once.

    One TransactWriteItems: the key's guard, the hold from active to captured on condition that it is
    active and not past its time, a `spend` row of `amount`, and `balance += held - amount, held -= held`.
    """
    whole(amount, name="amount", minimum=1)
    hold = _read(user_id, hold_id)
    if amount > hold.amount:
        raise InvalidAmountError(
            f"amount must be at most the {hold.amount} this hold holds, not {amount}; "
            "capture what was used, and the rest is released"
        )
    return _settle(hold, CAPTURED, amount, idempotency_key, actor, currency, now)


def release_hold(
    user_id: str, hold_id: str, *, idempotency_key: str, actor: str, currency: str, now: Clock = time.time
) -> Settled:
    """Give all of the hold back to the available balance, once: a `hold_released` row of 0 credits."""
    return _settle(_read(user_id, hold_id), RELEASED, 0, idempotency_key, actor, currency, now)


def _settle(
    hold: Hold, state: str, captured: int, idempotency_key: str, actor: str, currency: str, now: Clock
) -> Settled:
    moment = now()
    kind = SPEND if state == CAPTURED else HOLD_RELEASED
    transaction_id = str(ULID())
    stamp = _stamp(moment)
    user_id = hold.user_id
    fingerprint = writes.fingerprint(state, captured, None, hold.hold_id)
    guard = key_guard(
        user_id,
        actor,
        idempotency_key,
        fingerprint,
        transaction_id=transaction_id,
        amount=captured,
        created_at=stamp,
    )
    row = _row(
        user_id, transaction_id, kind, -captured, hold.hold_id, hold.amount, hold.description, actor, stamp
    )
    settled = _settled_actions(state, moment)
    if state == CAPTURED:
        settled.append(CreditGuard.captured.set(captured))
    if hold.state == ACTIVE and hold.expires_at <= moment:
        # Its key first: a retry of a request that settled it answers the first answer, not 409.
        first = guard_item(user_id, guard.guard_id)
        if first:
            return _replayed(first, hold, fingerprint)
        raise _expired_or_settled(hold, moment, currency)

    def write(transaction: TransactWrite) -> None:
        transaction.save(guard, condition=CreditGuard.guard_id.does_not_exist(), return_values=ALL_OLD)
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditGuard(user_id, HOLD_PREFIX + hold.hold_id),
            actions=settled,
            condition=(CreditGuard.state == ACTIVE) & (CreditGuard.hold_expires_at > math.floor(moment)),
            return_values=ALL_OLD,
        )
        transaction.update(
            CreditBalance(user_id),
            actions=unhold_actions(hold.amount - captured, hold.amount, currency, stamp),
        )

    reasons = transact(
        write, f"the ledger could not {'capture' if state == CAPTURED else 'release'} the hold"
    )
    if reasons is None:
        after = Hold(
            hold.hold_id,
            user_id,
            hold.amount,
            state,
            hold.expires_at,
            hold.description,
            captured if state == CAPTURED else None,
        )
        return Settled(after, transaction_id, captured, hold.amount - captured, balances(user_id))
    key_reason, _, hold_reason, _ = reasons
    if _refused(key_reason):
        return _replayed(key_reason.raw_item or guard_item(user_id, guard.guard_id), hold, fingerprint)
    if _refused(hold_reason) and key_reason is None:
        # Refused on the hold's state with the key's condition not reported: the key is asked before the
        # hold's state answers, so a request that settled the hold is replayed.
        first = guard_item(user_id, guard.guard_id)
        if first:
            return _replayed(first, hold, fingerprint)
    current = _hold_of(
        user_id,
        (hold_reason.raw_item if hold_reason else None) or guard_item(user_id, HOLD_PREFIX + hold.hold_id),
    )
    if current.state == ACTIVE and current.expires_at > moment:
        # Refused for a reason other than the hold's: nothing was written, and a retry may go through.
        raise LedgerUnavailableError("the ledger refused the settlement of an active hold")
    raise _expired_or_settled(current, moment, currency)


def _replayed(first: dict[str, Any], hold: Hold, fingerprint: str) -> Settled:
    """The first answer of the key whose guard is `first`: what it captured, the hold as it is now."""
    _first_answer(first, fingerprint)
    done = int(first["amount"]["N"])
    final = _read(hold.user_id, hold.hold_id)
    return Settled(
        final, first["transactionId"]["S"], done, hold.amount - done, balances(hold.user_id), replayed=True
    )


def _expired_or_settled(hold: Hold, moment: float, currency: str) -> HoldNotActiveError:
    """The refusal of a capture or release that met a hold not active any more: expired now if its time
    is up and it still was active, then told its final state."""
    if hold.state == ACTIVE and hold.expires_at <= moment:
        expire_hold(hold.user_id, hold.hold_id, currency=currency, now=lambda: moment, known=hold)
        hold = _read(hold.user_id, hold.hold_id)
    return HoldNotActiveError(hold.state, hold.answer())


def expire_hold(
    user_id: str, hold_id: str, *, currency: str, now: Clock = time.time, known: Hold | None = None
) -> bool:
    """Give back a hold whose time is up, once: True when this call expired it, False when it was
    settled already or is not due. One TransactWriteItems: the hold from active to expired on condition
    that it is active and past its time, a `hold_expired` row of 0 credits, and the balance."""
    hold = known or _read(user_id, hold_id)
    moment = now()
    if hold.state != ACTIVE or hold.expires_at > moment:
        return False
    stamp = _stamp(moment)
    row = _row(user_id, str(ULID()), HOLD_EXPIRED, 0, hold_id, hold.amount, hold.description, None, stamp)

    def write(transaction: TransactWrite) -> None:
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditGuard(user_id, HOLD_PREFIX + hold_id),
            actions=_settled_actions(EXPIRED, moment),
            condition=(CreditGuard.state == ACTIVE) & (CreditGuard.hold_expires_at <= math.floor(moment)),
        )
        transaction.update(
            CreditBalance(user_id), actions=unhold_actions(hold.amount, hold.amount, currency, stamp)
        )

    return transact(write, "the ledger could not expire the hold") is None


def _settled_actions(state: str, moment: float) -> list[Any]:
    """A hold leaving `active`: its new state, out of the sweep's index, and its TTL from now on."""
    return [
        CreditGuard.state.set(state),
        CreditGuard.expiry_bucket.remove(),
        CreditGuard.expires_at.set(datetime.fromtimestamp(moment, UTC) + SETTLED_KEPT),
    ]


def _refused(reason: CancellationReason | None) -> TypeGuard[CancellationReason]:
    return reason is not None and reason.code == "ConditionalCheckFailed"


def _first_answer(first: dict[str, Any], fingerprint: str | None) -> dict[str, Any]:
    """The key's guard as DynamoDB holds it, when it was used for this same request; else 409."""
    if first.get("fingerprint", {}).get("S") != fingerprint:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used with a different request; use a new key."
        )
    return first


def _row(
    user_id: str,
    transaction_id: str,
    kind: str,
    amount: int,
    hold_id: str,
    reserved: int,
    description: str | None,
    actor: str | None,
    stamp: str,
) -> CreditTransaction:
    return CreditTransaction(
        user_id,
        transaction_id,
        type=kind,
        amount=amount,
        source="service" if actor else "expiry",
        description=description,
        actor=actor,
        hold_id=hold_id,
        reserved=reserved,
        created_at=stamp,
    )


def _read(user_id: str, hold_id: str) -> Hold:
    """The user's hold; the lookup is by (user, hold id), so another user's hold is never found."""
    try:
        hold_id = str(ULID.from_str(hold_id))
    except ValueError as exc:
        raise HoldNotFoundError(f"no hold {hold_id!r}") from exc
    try:
        item = CreditGuard.get(user_id, HOLD_PREFIX + hold_id, consistent_read=True)
    except DoesNotExist as exc:
        raise HoldNotFoundError(f"no hold {hold_id!r}") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the hold") from exc
    return _hold_of(user_id, item.serialize())


def _hold_of(user_id: str, item: dict[str, Any]) -> Hold:
    """A hold from its item as DynamoDB holds it."""
    if not item:
        raise LedgerUnavailableError("a hold vanished while it was settled")
    captured = item.get("captured", {}).get("N")
    return Hold(
        hold_id=item["guardId"]["S"].removeprefix(HOLD_PREFIX),
        user_id=user_id,
        amount=int(item["amount"]["N"]),
        state=item["state"]["S"],
        expires_at=int(item["holdExpiresAt"]["N"]),
        description=item.get("description", {}).get("S"),
        captured=None if captured is None else int(captured),
    )


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- The minute's sweep -------------------------------------------------------------------------------


@dataclass
class ExpiryReport:
    expired: int = 0
    """Holds this run expired."""
    seen: int = 0
    """Holds past their time it found still in the index (settled meanwhile, or expired by this run)."""
    failed: int = 0
    swept_until: str | None = None
    """The last minute every hold expiring in which is settled, as `YYYY-MM-DDTHH:MM` UTC."""
    finished: bool = True
    failures: list[str] = field(default_factory=list)


def expire_due(
    seconds_left: Callable[[], float] = lambda: math.inf, *, currency: str, now: Clock = time.time
) -> ExpiryReport:
    """Expire every active hold past its time, reading the index one minute's buckets at a time from the
    minute after the checkpoint (the last minute fully swept) up to now; the checkpoint moves past a
    minute once its end is INDEX_LAG_SECONDS behind and all its holds are settled, so each run's work is
    the few minutes since the last one. Expiry is conditional on the hold being active: a hold a capture
    or release settled meanwhile, or one a run before expired, is left as it is."""
    report = ExpiryReport()
    moment = now()
    current = math.floor(moment) // 60
    checkpoint = _checkpoint()
    start = current - FIRST_RUN_MINUTES if checkpoint is None else checkpoint + 1
    settled_up_to = checkpoint
    advancing = True
    for minute in range(start, current + 1):
        if seconds_left() < SAFETY_MARGIN_SECONDS:
            report.finished = False
            break
        complete = _sweep_minute(minute, moment, currency, report, seconds_left)
        if advancing and complete and (minute + 1) * 60 + INDEX_LAG_SECONDS <= moment:
            settled_up_to = minute
        else:
            advancing = False
    if settled_up_to is not None and settled_up_to != checkpoint:
        _save_checkpoint(settled_up_to)
    report.swept_until = None if settled_up_to is None else _minute_label(settled_up_to)
    return report


def _sweep_minute(
    minute: int, moment: float, currency: str, report: ExpiryReport, seconds_left: Callable[[], float]
) -> bool:
    """Expire the minute's due holds; False if any failed or time ran out."""
    complete = True
    for shard in range(EXPIRY_SHARDS):
        bucket = f"{_minute_label(minute)}#{shard}"
        try:
            due = list(
                CreditGuard.active_holds.query(bucket, CreditGuard.hold_expires_at <= math.floor(moment))
            )
        except PynamoDBException as exc:
            raise LedgerUnavailableError("the sweep could not read the active holds") from exc
        for key in due:
            if seconds_left() < SAFETY_MARGIN_SECONDS:
                report.finished = False
                return False
            report.seen += 1
            hold_id = key.guard_id.removeprefix(HOLD_PREFIX)
            try:
                if expire_hold(key.user_id, hold_id, currency=currency, now=lambda: moment):
                    report.expired += 1
            except (LedgerUnavailableError, HoldNotFoundError) as exc:
                report.failed += 1
                report.failures.append(f"{key.user_id} {hold_id}: {type(exc).__name__}")
                complete = False
    return complete


def _checkpoint() -> int | None:
    try:
        record = SweepRecord.get(SWEEP_KEY, HOLDS_CHECKPOINT, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not read its checkpoint") from exc
    return None if record.swept_minute is None else int(record.swept_minute)


def _save_checkpoint(minute: int) -> None:
    record = SweepRecord(SWEEP_KEY, HOLDS_CHECKPOINT, swept_minute=minute, updated_at=_stamp(time.time()))
    try:
        # Never backwards: two runs at once (a retry beside the schedule) keep the later minute.
        record.save(condition=SweepRecord.swept_minute.does_not_exist() | (SweepRecord.swept_minute < minute))
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise LedgerUnavailableError("the sweep could not save its checkpoint") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the sweep could not save its checkpoint") from exc

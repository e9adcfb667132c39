"""The write primitives every change to an account is made of: one TransactWriteItems with its retries,
the balance actions, the Idempotency-Key's guard and fingerprint, and the time stamp rows carry.

It knows no operation: the ledger, the account and holds build their transactions from these.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import CancellationReason, DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from wallet.errors import LedgerBusyError, LedgerUnavailableError
from wallet.models import CreditBalance, CreditGuard, connection
from wallet.principals import InvalidPrincipalError, principal

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
# Free credits an operator gives (a promotion) or a new user receives (sign-up), maybe expiring; and what
# is left of a grant when it expires (wallet.grants, wallet.expiry).
GRANT = "grant"
EXPIRED = "expired"
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
    GRANT,
    EXPIRED,
    HOLD,
    HOLD_RELEASED,
    HOLD_EXPIRED,
)

# Real DynamoDB cancels one of two transactions that touch the same item at once; the loser retries.
CONFLICT_ATTEMPTS = 4
# A service may retry with the same Idempotency-Key for this long (the contract promises 24 h).
IDEMPOTENCY_KEY_LIFETIME = timedelta(days=7)


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


def transact(write: Callable[[TransactWrite], None], failure: str) -> list[CancellationReason | None] | None:
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


def balance_actions(amount: int, currency: str, now: str) -> list[Any]:
    """What a change of `amount` does to a balance item: its balance, currency, time stamp and count of
    changes (wallet.expiry conditions on it)."""
    return [
        CreditBalance.balance.add(amount),
        CreditBalance.changes.add(1),
        CreditBalance.currency.set(currency),
        CreditBalance.updated_at.set(now),
    ]


def grant_actions(deposit: str | None, expires_at: int | None) -> list[Any]:
    """What a new grant adds to the balance item: a deposit's id among those the grants' projection has
    still to fold (`newGrants`), and whether the account has had a grant that expires (`grantsExpire`,
    so the balance page reads the grants only for such accounts)."""
    actions: list[Any] = [] if deposit is None else [CreditBalance.new_grants.add({deposit})]
    if expires_at is not None:
        actions.append(CreditBalance.grants_expire.set(True))
    return actions


def guard_item(partition: str, guard_id: str) -> dict[str, Any]:
    """A guard as DynamoDB holds it; read only when a cancellation did not carry it (ALL_OLD)."""
    try:
        guard = CreditGuard.get(partition, guard_id, consistent_read=True)
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
        key_guard_id(actor, idempotency_key),
        fingerprint=fingerprint,
        transaction_id=transaction_id,
        amount=amount,
        created_at=created_at,
        expires_at=IDEMPOTENCY_KEY_LIFETIME,
    )


def key_guard_id(actor: str, idempotency_key: str) -> str:
    """An Idempotency-Key's guard, scoped to (caller, user, key): the user is the guard's partition, and
    two backends that pick the same key never meet. The caller is its role, not the session that signed."""
    try:
        caller = principal(actor)
    except InvalidPrincipalError:
        caller = actor
    return f"key#{caller}#{idempotency_key}"


def fingerprint(kind: str, amount: int, description: str | None, *more: object) -> str:
    """What makes two requests with one Idempotency-Key the same request."""
    return hashlib.sha256(json.dumps([kind, amount, description, *more]).encode()).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

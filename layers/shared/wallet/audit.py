"""The audit: prove that every balance is the sum of its rows.

Nothing writes a balance without its row (both are in one transaction), so a difference is a defect or
a hand edit, and a person must look. A balance that moves while it is being read is read again; the
audit never reports a change in flight as drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pynamodb.exceptions import PynamoDBException

from wallet import ledger
from wallet.errors import LedgerUnavailableError
from wallet.models import CreditBalance, CreditTransaction

# A user whose balance keeps moving is read this many times before the audit gives up on it for now.
SETTLE_ATTEMPTS = 4
# Stop with this much time left, so that the report is still written within the function's limit.
SAFETY_MARGIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Drift:
    user_id: str
    balance: int
    rows_total: int


@dataclass
class AuditReport:
    users: int = 0
    drifts: list[Drift] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    """Users whose balance moved on every read; the next audit checks them again."""
    finished: bool = True


def audit(seconds_left: Callable[[], float] = lambda: float("inf")) -> AuditReport:
    """Page over every balance and compare it with the sum of the user's rows."""
    report = AuditReport()
    try:
        for balance in CreditBalance.scan(consistent_read=True, page_size=100):
            if seconds_left() < SAFETY_MARGIN_SECONDS:
                report.finished = False
                break
            # A hot account's sub-balances are audited with its main item, not as users of their own.
            if ledger.is_sub_balance(balance.user_id):
                continue
            report.users += 1
            if balance.shards:
                _check(balance.user_id, ledger.account_total(balance.user_id), report)
            else:
                _check(balance.user_id, int(balance.balance), report)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the audit could not read the ledger") from exc
    return report


def _check(user_id: str, seen: int, report: AuditReport) -> None:
    """The user's rows against their balance, read before and after the rows: if it did not move in
    between, the rows are the ones it sums. A difference is confirmed by a second reading."""
    differences = 0
    for _ in range(SETTLE_ATTEMPTS):
        total = sum(
            int(row.amount)
            for partition in ledger.account_partitions(user_id)
            for row in CreditTransaction.query(partition, consistent_read=True)
        )
        after = ledger.account_total(user_id)
        if after == seen == total:
            return
        if after == seen:
            differences += 1
            if differences == 2:
                report.drifts.append(Drift(user_id, after, total))
                return
        seen = after
    report.unsettled.append(user_id)

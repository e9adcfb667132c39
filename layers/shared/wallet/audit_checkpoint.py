"""Where an unfinished audit (wallet.audit) stands: the balance scan's position and, for the user being
checked, the last row read, what the rows add up to so far, the grants they fold into and the balance
read before them; saved in the guard table under the reserved key `#audit`, and read back only when it is
one the audit can have written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from wallet import account
from wallet.grants import Grants
from wallet.models import LedgerModel
from wallet.settings import tables

# A user whose balance keeps moving is read this many times before the audit gives up on it for now.
SETTLE_ATTEMPTS = 4
# The guard table's partition of the audit's checkpoint: a user id never starts with "#".
AUDIT_KEY = "#audit"
CHECKPOINT = "checkpoint"
# The grants saved with a mid-user checkpoint, at most (an item holds 400 KB): beyond it, the checkpoint
# leaves them out and that user's rows are read from their start on resuming.
CHECKPOINT_GRANTS_MOST = 300_000

logger = Logger(child=True)


class AuditCheckpoint(LedgerModel):
    """Where an unfinished audit stands: the balance scan's position and, for the user being checked, the
    position in their rows, what those rows add up to so far, the grants they fold into, and the balance
    read before them."""

    class Meta:
        table_name = tables().guard_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId", default=AUDIT_KEY)
    guard_id = UnicodeAttribute(range_key=True, attr_name="guardId", default=CHECKPOINT)
    # The scan's LastEvaluatedKey and the last row read, as JSON: DynamoDB's own keys, handed back as is;
    # every partition of the account is read on from that row's transaction id.
    balances_after = UnicodeAttribute(attr_name="balancesAfter", null=True)
    audited_user = UnicodeAttribute(attr_name="auditedUser", null=True)
    balance_seen = NumberAttribute(attr_name="balanceSeen", null=True)
    rows_after = UnicodeAttribute(attr_name="rowsAfter", null=True)
    rows_total = NumberAttribute(attr_name="rowsTotal", null=True)
    # wallet.grants.Grants.to_json() of the rows up to `rowsAfter`; an earlier release wrote none.
    grants_folded = UnicodeAttribute(attr_name="grantsFolded", null=True)
    attempt = NumberAttribute(null=True)
    differences = NumberAttribute(null=True)
    started_at = UnicodeAttribute(attr_name="startedAt")
    updated_at = UnicodeAttribute(attr_name="updatedAt")


@dataclass
class UserCheck:
    """One user's check in progress: the balance read before the rows, the rows summed so far, the last
    row read (its partition and id) and the grants the rows fold into."""

    user_id: str
    seen: int
    rows_after: dict[str, Any] | None = None
    rows_total: int = 0
    attempt: int = 0
    differences: int = 0
    grants: Grants = field(default_factory=Grants)


@dataclass
class Position:
    balances_after: dict[str, Any] | None = None
    user: UserCheck | None = None
    started_at: str = field(default_factory=lambda: _now_iso())


def save(position: Position) -> None:
    user = position.user
    rows_after, rows_total, folded = None, 0, None
    if user is not None and user.rows_after is not None:
        folded = user.grants.to_json()
        if len(folded.encode()) <= CHECKPOINT_GRANTS_MOST:
            rows_after, rows_total = user.rows_after, user.rows_total
        else:
            # Too large to keep: on resuming, this user's rows (and their grants) start over.
            logger.warning("the audit's checkpoint leaves out a user's grants", extra={"bytes": len(folded)})
            folded = None
    AuditCheckpoint(
        balances_after=_json(position.balances_after),
        audited_user=user and user.user_id,
        balance_seen=user and user.seen,
        rows_after=user and _json(rows_after),
        rows_total=user and rows_total,
        grants_folded=folded,
        attempt=user and user.attempt,
        differences=user and user.differences,
        started_at=position.started_at,
        updated_at=_now_iso(),
    ).save()


def load() -> tuple[Position | None, bool]:
    """The saved position (None when there is none, or when it is not one this audit can have written:
    logged, and the audit starts over rather than trust it), and whether there is an item to clear."""
    item = AuditCheckpoint._get_connection().get_item(AUDIT_KEY, CHECKPOINT, consistent_read=True).get("Item")
    if item is None:
        return None, False
    try:
        return _position_of(item), True
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning(
            "the audit's checkpoint is not one it wrote: starting over", extra={"reason": type(exc).__name__}
        )
        return None, True


def _position_of(item: dict[str, Any]) -> Position:
    balances_after = _key(item.get("balancesAfter"), {"userId"})
    started_at = item["startedAt"]["S"]
    if "auditedUser" not in item:
        return Position(balances_after, None, started_at)
    user_id = item["auditedUser"]["S"]
    if balances_after != {"userId": {"S": user_id}}:
        raise ValueError("the user being checked is not where the scan stands")
    rows_after = _key(item.get("rowsAfter"), {"userId", "transactionId"})
    if rows_after is not None and rows_after["userId"]["S"] not in account.account_partitions(user_id):
        raise ValueError("the rows' position is in another user's rows")
    attempt, differences = _whole(item["attempt"]), _whole(item["differences"])
    if not (0 <= attempt < SETTLE_ATTEMPTS and 0 <= differences < 2):
        raise ValueError("attempt or differences out of range")
    rows_total = _whole(item["rowsTotal"])
    grants = Grants.from_json(item["grantsFolded"]["S"]) if "grantsFolded" in item else Grants()
    grants.total()  # Raises TypeError on lots that are not numbers.
    if rows_after is not None and "grantsFolded" not in item:
        # An earlier release's: its rows were summed a partition after another, with no grants. This
        # user's rows are read again from their start, in the order the grants fold in.
        rows_after, rows_total = None, 0
    check = UserCheck(
        user_id, _whole(item["balanceSeen"]), rows_after, rows_total, attempt, differences, grants
    )
    return Position(balances_after, check, started_at)


def _key(attribute: dict[str, str] | None, names: set[str]) -> dict[str, Any] | None:
    """A LastEvaluatedKey saved as JSON: exactly the table's key attributes, each a string."""
    if attribute is None:
        return None
    key = json.loads(attribute["S"])
    if not isinstance(key, dict) or set(key) != names:
        raise ValueError("not a key of the table")
    for value in key.values():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise ValueError("not a string key")
    return key


def _whole(attribute: dict[str, str]) -> int:
    return int(attribute["N"])


def _json(key: dict[str, Any] | None) -> str | None:
    return None if key is None else json.dumps(key, separators=(",", ":"), sort_keys=True)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

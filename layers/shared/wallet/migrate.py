"""The upgrade of items earlier releases wrote, once: `make migrate` locally, `{"task": "migrate"}` of the
reconcile function on AWS.

What it changes (every other shape an earlier release wrote is read right as it is):

- an active hold with a TTL (`expiresAt`, written at its creation before active holds had none) loses
  it, so DynamoDB never deletes it while its credits are held; one without `expiryBucket` gets it, so
  the minute's sweep finds it, and is expired now if its time is up (the sweep has passed its minute);
- an Idempotency-Key's guard from before keys were scoped to their caller (`key#<key>`) is copied to
  its caller's id (`key#<caller>#<key>`, the caller read from the row it made), so a retry across the
  upgrade is answered its first answer instead of spending again;
- auto top-up's daily count (`autoTopUpCount` charges since `autoTopUpWindow`) becomes the sliding
  list of charges (`autoTopUpCharges`): the first at the window's start, the others now, the latest
  they can have been, so the daily limit is never passed across the upgrade.
- an account that has had a grant that expires (`grantsExpire` on its balance) and is not in the grants'
  index (written before it was) is expired of what is due and indexed (wallet.grants_due), so the
  hourly grants sweep finds it without waiting for its next row.

Each change is one conditional write that is true only of the old shape, so a second run, two runs at
once, or a run beside live traffic changes nothing twice. It pages (the guard table, then the balance
table) and saves where it stands under the guard table's reserved key `#migrate` after every page and
when its time runs short; the next run resumes there, and a finished run clears it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.transactions import TransactWrite

from wallet import writes
from wallet.errors import LedgerUnavailableError
from wallet.models import CreditBalance, CreditGuard, CreditTransaction, LedgerModel
from wallet.principals import InvalidPrincipalError, principal
from wallet.settings import price_list, tables

MIGRATE_KEY = "#migrate"
CHECKPOINT = "checkpoint"
PAGE = 100
SAFETY_MARGIN_SECONDS = 10.0
# auto_top_up's sliding window; kept here so a migration does not load the auto top-up module.
DAY_SECONDS = 24 * 60 * 60
GUARDS, BALANCES = "guards", "balances"
HOLD_PREFIX, KEY_PREFIX, ACTIVE = "hold#", "key#", "active"


class MigrationCheckpoint(LedgerModel):
    """Where an unfinished migration stands: the table it pages and DynamoDB's LastEvaluatedKey there."""

    class Meta:
        table_name = tables().guard_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId", default=MIGRATE_KEY)
    guard_id = UnicodeAttribute(range_key=True, attr_name="guardId", default=CHECKPOINT)
    phase = UnicodeAttribute()
    after = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt")


@dataclass
class MigrationReport:
    holds_kept: int = 0
    """Active holds whose TTL was removed."""
    holds_indexed: int = 0
    """Active holds given the sweep's `expiryBucket`."""
    holds_expired: int = 0
    """Of those, holds past their time, expired by the migration (the sweep has passed their minute)."""
    keys_scoped: int = 0
    """Idempotency-Keys copied to their caller's id."""
    top_ups_converted: int = 0
    """Auto top-up daily counts turned into the list of charges."""
    grants_indexed: int = 0
    """Accounts with expiring grants put in the grants' index."""
    items: int = 0
    """Items read in this run."""
    finished: bool = True
    resumed: bool = False


class _OutOfTimeError(Exception):
    pass


def migrate(
    seconds_left: Callable[[], float] = lambda: float("inf"),
    *,
    now: Callable[[], float] | None = None,
    currency: str | None = None,
) -> MigrationReport:
    """Upgrade every item of an earlier release's shape, from the checkpoint of an unfinished run."""
    clock = now or time.time
    report = MigrationReport()
    try:
        phase, after = _load()
        report.resumed = phase is not None
        for table in (GUARDS, BALANCES):
            if phase not in (None, table):
                continue  # this run resumes past it
            phase = None
            connection = (CreditGuard if table == GUARDS else CreditBalance)._get_connection()
            while True:
                if seconds_left() < SAFETY_MARGIN_SECONDS:
                    _save(table, after)
                    raise _OutOfTimeError
                # pynamodb types the start key as a string; a LastEvaluatedKey (a dict) is passed on as is.
                page = connection.scan(
                    consistent_read=True,
                    limit=PAGE,
                    exclusive_start_key=after,  # type: ignore[arg-type]
                )
                for item in page.get("Items", []):
                    report.items += 1
                    if table == GUARDS:
                        _upgrade_guard(item, report, clock(), currency or price_list().currency)
                    else:
                        _index_grants(item, report, clock(), currency or price_list().currency)
                        _upgrade_balance(item, report, clock())
                after = page.get("LastEvaluatedKey")
                if after is None:
                    break
                _save(table, after)
        MigrationCheckpoint().delete()
    except _OutOfTimeError:
        report.finished = False
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the migration could not read or write the ledger") from exc
    return report


def _upgrade_guard(item: dict[str, Any], report: MigrationReport, moment: float, currency: str) -> None:
    user_id, guard_id = item["userId"]["S"], item["guardId"]["S"]
    if user_id.startswith("#"):
        return
    if guard_id.startswith(HOLD_PREFIX) and item.get("state", {}).get("S") == ACTIVE:
        _upgrade_hold(item, report, moment, currency)
    elif guard_id.startswith(KEY_PREFIX):
        _scope_key(item, report)


def _upgrade_hold(item: dict[str, Any], report: MigrationReport, moment: float, currency: str) -> None:
    from wallet.holds import expiry_bucket

    user_id, guard_id = item["userId"]["S"], item["guardId"]["S"]
    actions: list[Any] = []
    if "expiresAt" in item:
        actions.append(CreditGuard.expires_at.remove())
    if "expiryBucket" not in item:
        bucket = expiry_bucket(guard_id.removeprefix(HOLD_PREFIX), int(item["holdExpiresAt"]["N"]))
        actions.append(CreditGuard.expiry_bucket.set(bucket))
    if not actions:
        return

    def write(transaction: TransactWrite) -> None:
        # Only while it is still active: a hold settled meanwhile keeps the TTL its settlement set.
        transaction.update(
            CreditGuard(user_id, guard_id), actions=actions, condition=CreditGuard.state == ACTIVE
        )

    if writes.transact(write, "the migration could not upgrade a hold") is None:
        report.holds_kept += "expiresAt" in item
        report.holds_indexed += "expiryBucket" not in item
    if "expiryBucket" not in item and int(item["holdExpiresAt"]["N"]) <= moment:
        from wallet.holds import expire_hold

        # The sweep's checkpoint may be past its minute already: expired here, once, as the sweep would.
        hold_id = guard_id.removeprefix(HOLD_PREFIX)
        report.holds_expired += expire_hold(user_id, hold_id, currency=currency, now=lambda: moment)


def _scope_key(item: dict[str, Any], report: MigrationReport) -> None:
    """`key#<key>` to `key#<caller>#<key>`, the caller read from the row the key made."""
    user_id, guard_id = item["userId"]["S"], item["guardId"]["S"]
    transaction_id = item.get("transactionId", {}).get("S")
    if transaction_id is None:
        return
    rows = list(CreditTransaction.query(user_id, CreditTransaction.transaction_id == transaction_id, limit=1))
    if not rows or not rows[0].actor:
        return
    actor = rows[0].actor
    try:
        caller = principal(actor)
    except InvalidPrincipalError:
        caller = actor
    key = guard_id.removeprefix(KEY_PREFIX)
    if key.startswith(f"{caller}#"):
        return  # already scoped: `key#<caller>#<key>`
    scoped = CreditGuard(
        user_id,
        writes.key_guard_id(actor, key),
        fingerprint=item.get("fingerprint", {}).get("S"),
        transaction_id=transaction_id,
        amount=int(item["amount"]["N"]) if "amount" in item else None,
        created_at=item.get("createdAt", {}).get("S"),
    )
    scoped.expires_at = (
        datetime.fromtimestamp(int(item["expiresAt"]["N"]), UTC) if "expiresAt" in item else None
    )

    def write(transaction: TransactWrite) -> None:
        transaction.save(scoped, condition=CreditGuard.guard_id.does_not_exist())

    if writes.transact(write, "the migration could not scope an Idempotency-Key") is None:
        report.keys_scoped += 1


def _index_grants(item: dict[str, Any], report: MigrationReport, moment: float, currency: str) -> None:
    from wallet import account, grants_due

    user_id = item["userId"]["S"]
    if (
        not item.get("grantsExpire", {}).get("BOOL")
        or account.is_sub_balance(user_id)
        or user_id.startswith("#")
    ):
        return
    if grants_due.indexed(user_id)[1] is not None:
        return
    done = grants_due.expire_and_index(user_id, moment, currency)
    report.grants_indexed += done.counts is not None and done.next_expires_at is not None


def _upgrade_balance(item: dict[str, Any], report: MigrationReport, moment: float) -> None:
    if "autoTopUpCount" not in item and "autoTopUpWindow" not in item:
        return
    user_id = item["userId"]["S"]
    window = int(item.get("autoTopUpWindow", {}).get("N", 0))
    count = int(item.get("autoTopUpCount", {}).get("N", 0))
    charges: list[float] = []
    if count > 0 and moment - window < DAY_SECONDS:
        charges = [window, *[int(moment)] * (count - 1)]

    def write(transaction: TransactWrite) -> None:
        transaction.update(
            CreditBalance(user_id),
            actions=[
                CreditBalance.auto_top_up_charges.set(charges),
                CreditBalance.auto_top_up_count.remove(),
                CreditBalance.auto_top_up_window.remove(),
            ],
            # Only the old shape, so a charge recorded meanwhile in the new one is never overwritten.
            condition=CreditBalance.auto_top_up_charges.does_not_exist(),
        )

    if writes.transact(write, "the migration could not upgrade auto top-up's daily count") is None:
        report.top_ups_converted += 1


def _load() -> tuple[str | None, dict[str, Any] | None]:
    item = MigrationCheckpoint._get_connection().get_item(MIGRATE_KEY, CHECKPOINT, consistent_read=True)
    saved = item.get("Item")
    if saved is None or saved.get("phase", {}).get("S") not in (GUARDS, BALANCES):
        return None, None
    after = saved.get("after", {}).get("S")
    return saved["phase"]["S"], None if after is None else json.loads(after)


def _save(phase: str, after: dict[str, Any] | None) -> None:
    MigrationCheckpoint(
        phase=phase,
        after=None if after is None else json.dumps(after, separators=(",", ":"), sort_keys=True),
        updated_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    ).save()

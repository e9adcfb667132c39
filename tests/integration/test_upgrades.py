"""Items as earlier releases wrote them (their shapes taken from git history), run through today's code:
each is read right as it is, or upgraded once by `wallet.migrate` (`make migrate`, the reconcile
function's `{"task": "migrate"}`), which resumes from its checkpoint and changes nothing twice."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from ulid import ULID

from devstack.dynamodb import DynamoDBServer
from functions.reconcile.app import lambda_handler as reconcile
from tests.conftest import TABLE_NAMES
from tests.lambda_events import LambdaContext
from wallet import account, audit, auto_top_up, expiry, holds, ledger, migrate, projection, promotions
from wallet.models import CreditBalance, CreditGuard

SERVICE = "arn:aws:iam::123456789012:role/checkout-backend"
WEEK = 7 * 86_400
DAY = 86_400


def put(tables: DynamoDBServer, table: str, item: dict[str, Any]) -> None:
    tables.client().put_item(TableName=TABLE_NAMES[table], Item=item)


def raw_guard(user: str, guard_id: str) -> dict[str, Any]:
    return dict(CreditGuard._get_connection().get_item(user, guard_id, consistent_read=True).get("Item", {}))


def n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def balance_before_holds(tables: DynamoDBServer, user: str, amount: int) -> None:
    """The first release's balance (afc7ad2): no `held`; and its deposit row."""
    put(tables, "CreditBalanceTable", {"userId": s(user), "balance": n(amount), "currency": s("usd")})
    payment = str(ULID())
    put(
        tables,
        "CreditTransactionTable",
        {
            "userId": s(user),
            "transactionId": s(payment),
            "type": s("deposit"),
            "amount": n(amount),
            "source": s("stripe_payment"),
            "paymentId": s(payment),
            "createdAt": s(stamp(time.time())),
        },
    )


def hold_of_the_previous_release(
    tables: DynamoDBServer, user: str, amount: int, expires_at: int, *, bucket: bool = True
) -> str:
    """An active hold as holds.py wrote it before this release (13a71c8 to 6bfd86a): a TTL of its expiry
    plus 7 days from its creation, its balance item moved from available to held, its `hold` row."""
    hold_id = str(ULID())
    item = {
        "userId": s(user),
        "guardId": s(f"hold#{hold_id}"),
        "amount": n(amount),
        "state": s("active"),
        "actor": s(SERVICE),
        "holdExpiresAt": n(expires_at),
        "createdAt": s(stamp(time.time())),
        "expiresAt": n(expires_at + WEEK),
    }
    if bucket:
        item["expiryBucket"] = s(holds.expiry_bucket(hold_id, expires_at))
    put(tables, "CreditGuardTable", item)
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": s(user)},
        UpdateExpression="ADD balance :take, held :amount",
        ExpressionAttributeValues={":take": n(-amount), ":amount": n(amount)},
    )
    put(
        tables,
        "CreditTransactionTable",
        {
            "userId": s(user),
            "transactionId": s(hold_id),
            "type": s("hold"),
            "amount": n(0),
            "source": s("service"),
            "actor": s(SERVICE),
            "holdId": s(hold_id),
            "reserved": n(amount),
            "createdAt": s(stamp(time.time())),
        },
    )
    return hold_id


def spend_before_keys_were_scoped(tables: DynamoDBServer, user: str, amount: int, key: str) -> None:
    """A spend as ledger.py wrote it before d8b34a7: its guard `key#<key>`, with no caller in its id."""
    transaction_id = str(ULID())
    fingerprint = hashlib.sha256(json.dumps(["spend", -amount, None]).encode()).hexdigest()
    put(
        tables,
        "CreditGuardTable",
        {
            "userId": s(user),
            "guardId": s(f"key#{key}"),
            "fingerprint": s(fingerprint),
            "transactionId": s(transaction_id),
            "amount": n(-amount),
            "createdAt": s(stamp(time.time())),
            "expiresAt": n(int(time.time()) + WEEK),
        },
    )
    put(
        tables,
        "CreditTransactionTable",
        {
            "userId": s(user),
            "transactionId": s(transaction_id),
            "type": s("spend"),
            "amount": n(-amount),
            "source": s("service"),
            "actor": s(f"{SERVICE.replace(':role/', ':assumed-role/').replace('iam', 'sts')}/task-1"),
            "createdAt": s(stamp(time.time())),
        },
    )
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": s(user)},
        UpdateExpression="ADD balance :take",
        ExpressionAttributeValues={":take": n(-amount)},
    )


def spend(user: str, amount: int, key: str) -> ledger.Receipt:
    return ledger.spend(user, amount, idempotency_key=key, description=None, actor=SERVICE, currency="usd")


# --- Read right as they are ------------------------------------------------------------------------------


def test_a_balance_written_before_holds_reads_held_as_0_and_takes_a_hold(tables: DynamoDBServer) -> None:
    balance_before_holds(tables, "alice", 1000)

    assert account.balances("alice") == account.Balances(1000, 0, 1000)
    made = holds.create_hold(
        "alice", 300, expires_in=60, idempotency_key="h", description=None, actor=SERVICE, currency="usd"
    )
    assert made.balances == account.Balances(1000, 300, 700)
    report = audit.audit()
    assert (report.drifts, report.held_drifts) == ([], [])


# --- Upgraded once by the migration ----------------------------------------------------------------------


def test_an_active_hold_of_the_previous_release_loses_its_ttl_and_still_settles(
    tables: DynamoDBServer,
) -> None:
    balance_before_holds(tables, "alice", 1000)
    expires_at = int(time.time()) + 600
    active = hold_of_the_previous_release(tables, "alice", 300, expires_at)
    settled = hold_of_the_previous_release(tables, "alice", 200, expires_at)
    holds.release_hold("alice", settled, idempotency_key="r", actor=SERVICE, currency="usd")
    settled_ttl = raw_guard("alice", f"hold#{settled}")["expiresAt"]

    report = migrate.migrate()

    assert (report.holds_kept, report.holds_indexed, report.finished) == (1, 0, True)
    assert "expiresAt" not in raw_guard("alice", f"hold#{active}")
    # A settled hold keeps the TTL its settlement set.
    assert raw_guard("alice", f"hold#{settled}")["expiresAt"] == settled_ttl
    captured = holds.capture_hold("alice", active, 120, idempotency_key="c", actor=SERVICE, currency="usd")
    assert captured.balances == account.Balances(880, 0, 880)
    assert audit.audit().held_drifts == []


def test_an_unindexed_hold_past_its_swept_minute_is_expired_by_the_migration(
    tables: DynamoDBServer,
) -> None:
    balance_before_holds(tables, "alice", 1000)
    expires_at = int(time.time()) + 60
    hold_id = hold_of_the_previous_release(tables, "alice", 400, expires_at, bucket=False)
    later = expires_at + 120
    assert holds.expire_due(currency="usd", now=lambda: later).expired == 0  # the sweep cannot see it

    report = migrate.migrate(now=lambda: later)

    # Its minute is behind the sweep's checkpoint already: the migration expires it, once.
    assert (report.holds_kept, report.holds_indexed, report.holds_expired) == (1, 1, 1)
    assert raw_guard("alice", f"hold#{hold_id}")["state"] == s("expired")
    assert holds.expire_due(currency="usd", now=lambda: later).expired == 0
    assert account.balances("alice") == account.Balances(1000, 0, 1000)
    assert audit.audit().held_drifts == []


def test_an_unindexed_hold_not_yet_due_is_found_by_the_sweep_after_the_migration(
    tables: DynamoDBServer,
) -> None:
    balance_before_holds(tables, "alice", 1000)
    expires_at = int(time.time()) + 60
    hold_id = hold_of_the_previous_release(tables, "alice", 400, expires_at, bucket=False)

    report = migrate.migrate()

    assert (report.holds_indexed, report.holds_expired) == (1, 0)
    bucket = raw_guard("alice", f"hold#{hold_id}")["expiryBucket"]
    assert bucket == s(holds.expiry_bucket(hold_id, expires_at))
    assert holds.expire_due(currency="usd", now=lambda: expires_at + 120).expired == 1
    assert account.balances("alice") == account.Balances(1000, 0, 1000)


def test_a_key_used_before_keys_were_scoped_is_replayed_after_the_migration(tables: DynamoDBServer) -> None:
    balance_before_holds(tables, "alice", 1000)
    spend_before_keys_were_scoped(tables, "alice", 100, "order-7")

    report = migrate.migrate()
    retried = spend("alice", 100, "order-7")

    assert report.keys_scoped == 1
    assert retried.replayed
    assert (retried.amount, ledger.get_balance("alice")) == (-100, 900)
    # A second run finds the key scoped already.
    assert migrate.migrate().keys_scoped == 0


def test_without_the_migration_such_a_key_is_not_recognised(tables: DynamoDBServer) -> None:
    """What the README's upgrade notes warn of, shown: the migration is what makes the retry safe."""
    balance_before_holds(tables, "alice", 1000)
    spend_before_keys_were_scoped(tables, "alice", 100, "order-7")

    assert not spend("alice", 100, "order-7").replayed
    assert ledger.get_balance("alice") == 800


@pytest.mark.parametrize(("hours_ago", "expected"), [(2, 3), (25, 0)])
def test_auto_top_ups_daily_count_becomes_its_list_of_charges(
    tables: DynamoDBServer, hours_ago: int, expected: int
) -> None:
    """fb90bc3's fixed window (`autoTopUpCount` charges since `autoTopUpWindow`) as the sliding limit's
    list: a window still open keeps every charge in the 24 hours; one closed keeps none."""
    now = time.time()
    window = int(now) - hours_ago * 3600
    balance_before_holds(tables, "alice", 1000)
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": s("alice")},
        UpdateExpression="SET autoTopUp = :on, autoTopUpCount = :count, autoTopUpWindow = :window",
        ExpressionAttributeValues={":on": {"BOOL": True}, ":count": n(3), ":window": n(window)},
    )

    report = migrate.migrate(now=lambda: now)

    item = CreditBalance.get("alice", consistent_read=True)
    charges = list(item.auto_top_up_charges or [])
    assert report.top_ups_converted == 1
    assert (item.auto_top_up_count, item.auto_top_up_window) == (None, None)
    assert len([t for t in charges if now - t < DAY]) == expected
    if expected:
        assert min(charges) == window
        # Three charges in the 24 hours: a daily limit of 3 pauses until the first leaves them, no sooner.
        assert auto_top_up.paused_until(charges, now, 3) == window + DAY


def test_the_migration_stopped_for_time_resumes_and_ends_as_one_run_would(
    tables: DynamoDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate, "PAGE", 3)
    balance_before_holds(tables, "alice", 10_000)
    expires_at = int(time.time()) + 600
    made = [hold_of_the_previous_release(tables, "alice", 10 + k, expires_at) for k in range(7)]
    budget = iter([100.0] * 2 + [0.0] * 100)

    first = migrate.migrate(lambda: next(budget))
    assert not first.finished
    assert migrate.MigrationCheckpoint.count(migrate.MIGRATE_KEY) == 1
    second = migrate.migrate()

    assert second.resumed
    assert second.finished
    assert first.holds_kept + second.holds_kept == 7
    assert all("expiresAt" not in raw_guard("alice", f"hold#{h}") for h in made)
    assert migrate.MigrationCheckpoint.count(migrate.MIGRATE_KEY) == 0
    assert migrate.migrate().holds_kept == 0


def test_the_reconcile_function_runs_the_migration_on_its_task(tables: DynamoDBServer) -> None:
    balance_before_holds(tables, "alice", 1000)
    hold_of_the_previous_release(tables, "alice", 300, int(time.time()) + 600)

    result = reconcile({"task": "migrate"}, LambdaContext("reconcile"))

    assert (result["holds_kept"], result["finished"]) == (1, True)


def test_an_account_from_before_grants_is_one_paid_grant_that_never_expires_and_expiry_spares_it(
    tables: DynamoDBServer,
) -> None:
    # Given the first release's account (afc7ad2): a balance item with no change count and no new grants,
    # and a deposit of 1,000 whose price was not recorded
    balance_before_holds(tables, "alice", 1000)
    # When today's code gives it 200 promotional credits that expire in a day, and spends 150
    promotions.grant(
        "alice",
        200,
        reason="promo",
        expires_at=datetime.fromtimestamp(int(time.time() + DAY), UTC).isoformat(),
        idempotency_key="promo-1",
        actor=SERVICE,
        currency="usd",
    )
    ledger.spend("alice", 150, idempotency_key="spend-1", description=None, actor=SERVICE, currency="usd")
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS

    # Then the old deposit is a paid grant with no cost basis that never expires; the spend came from the
    # promotion, expiring soonest; and the expiry takes the promotion's other 50, never the old credits
    lots = sorted(
        (lot.kind, lot.credits, lot.paid, lot.expires_at is None, lot.left)
        for lot in projection.current("alice", time.time()).lots.values()
    )
    assert lots == [("free", 200, None, False, 50), ("paid", 1000, None, True, 1000)]
    assert expiry.expire("alice", later, "usd").credits == 50
    assert expiry.expire("alice", later, "usd").credits == 0
    assert account.get_balance("alice") == 1000


def test_an_expiring_grant_of_the_previous_release_is_indexed_by_the_migration_and_then_swept(
    tables: DynamoDBServer,
) -> None:
    from wallet import grants_due

    # Given a grant the previous release wrote (its row and `grantsExpire`, no index), and one without
    # any expiring grant.
    expires_at = int(time.time()) + DAY
    text = datetime.fromtimestamp(expires_at, UTC).isoformat()
    promotions.grant(
        "ivy", 300, reason="promo", expires_at=text, idempotency_key="g", actor=SERVICE, currency="usd"
    )
    ledger.add_credits("jon", 500, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    later = expires_at + projection.SETTLE_SECONDS + 60
    assert grants_due.expire_due(currency="usd", now=lambda: later).accounts == 0  # the sweep cannot see it

    report = migrate.migrate()
    again = migrate.migrate()

    assert (report.grants_indexed, again.grants_indexed) == (1, 0)
    assert grants_due.indexed("ivy")[1] == expires_at
    assert grants_due.indexed("jon") == (None, None)
    done = grants_due.expire_due(currency="usd", now=lambda: later)
    assert (done.accounts, done.credits) == (1, 300)
    assert account.get_balance("ivy") == 0


def test_an_account_from_before_grants_passes_the_audits_grants_check(tables: DynamoDBServer) -> None:
    # Given the first release's account (afc7ad2): its deposit of 1,000 with no price, no held
    balance_before_holds(tables, "alice", 1000)
    # and an active hold of the previous release (its `hold` row), then today's spend and promotion
    hold_of_the_previous_release(tables, "alice", 300, int(time.time()) + 600)
    ledger.spend("alice", 150, idempotency_key="spend-1", description=None, actor=SERVICE, currency="usd")
    promotions.grant(
        "alice",
        200,
        reason="promo",
        expires_at=None,
        idempotency_key="promo-1",
        actor=SERVICE,
        currency="usd",
    )

    report = audit.audit()

    # Then its rows, its grants (the old deposit a paid grant, 300 of it held) and its holds add up
    assert (report.users, report.drifts, report.grant_drifts, report.held_drifts) == (1, [], [], [])
    assert account.balances("alice") == account.Balances(1050, 300, 750)

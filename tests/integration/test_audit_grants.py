"""The audit folds each account's rows into grants in the pass that sums them, and names an account whose
grants do not add up to its balance and held: silent on clean accounts (grants, spends, holds, an expiry,
a hot account), and right across a stop and resume inside the account's rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from ulid import ULID

from devstack import audit as make_audit
from devstack.dynamodb import DynamoDBServer
from functions.reconcile.app import lambda_handler as reconcile
from tests.conftest import TABLE_NAMES
from tests.integration.test_audit import budget_of, checkpoint_item, emitted, in_runs
from tests.lambda_events import LambdaContext
from wallet import audit, expiry, holds, hot_accounts, ledger, projection, promotions
from wallet.models import CreditTransaction

SERVICE = "arn:aws:iam::000000000000:user/service"
DAY = 86_400


def deposit(user: str, amount: int, paid: int | None = None) -> None:
    ledger.add_credits(
        user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd", amount_paid=paid
    )


def spend(user: str, amount: int, key: str) -> None:
    ledger.spend(user, amount, idempotency_key=key, description=None, actor=SERVICE, currency="usd")


def promotion(user: str, credits: int, key: str, days: int | None = None) -> None:
    expires = None if days is None else datetime.fromtimestamp(int(time.time()) + days * DAY, UTC).isoformat()
    promotions.grant(
        user, credits, reason="promo", expires_at=expires, idempotency_key=key, actor=SERVICE, currency="usd"
    )


def hold(user: str, amount: int, key: str) -> str:
    made = holds.create_hold(
        user, amount, expires_in=600, idempotency_key=key, description=None, actor=SERVICE, currency="usd"
    )
    return made.hold.hold_id


def release(user: str, hold_id: str, key: str) -> None:
    holds.release_hold(user, hold_id, idempotency_key=key, actor=SERVICE, currency="usd")


def capture(user: str, hold_id: str, amount: int, key: str) -> None:
    holds.capture_hold(user, hold_id, amount, idempotency_key=key, actor=SERVICE, currency="usd")


def row_of_type(user: str, kind: str) -> CreditTransaction:
    (row,) = [row for row in CreditTransaction.query(user, consistent_read=True) if row.type == kind]
    return row


def edit_row_and_balance(tables: DynamoDBServer, user: str, kind: str, amount: int) -> None:
    """A hand edit that keeps the rows adding up: the `kind` row's amount set to `amount`, and the
    balance moved by as much."""
    row = row_of_type(user, kind)
    client = tables.client()
    client.update_item(
        TableName=TABLE_NAMES["CreditTransactionTable"],
        Key={"userId": {"S": user}, "transactionId": {"S": row.transaction_id}},
        UpdateExpression="SET amount = :a",
        ExpressionAttributeValues={":a": {"N": str(amount)}},
    )
    client.update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": user}},
        UpdateExpression="ADD balance :d",
        ExpressionAttributeValues={":d": {"N": str(amount - int(row.amount))}},
    )


def a_released_hold(user: str = "alice") -> None:
    deposit(user, 1000, paid=1000)
    release(user, hold(user, 300, "hold-1"), "release-1")


# -- What only the grants check finds ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hold_released", "hold"])
def test_a_hold_row_edited_to_move_credits_with_its_balance_is_found_by_the_grants_alone(
    tables: DynamoDBServer, kind: str
) -> None:
    # A hold's rows move nothing: its credits go from balance to held and back. Edited to take 100, with
    # the balance taking 100 too, the rows still add up (900) while the grants (1,000 deposited, the
    # hold's 300 returned) still own 1,000.
    a_released_hold()
    edit_row_and_balance(tables, "alice", kind, -100)

    report = audit.audit()

    assert report.drifts == []
    assert report.grant_drifts == [audit.GrantDrift("alice", grants=1000, balance=900)]
    assert (report.users, report.unsettled, report.finished) == (1, [], True)


def test_a_balance_that_is_not_the_sum_of_its_rows_is_reported_as_that_only(tables: DynamoDBServer) -> None:
    a_released_hold()
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": "alice"}},
        UpdateExpression="ADD balance :d",
        ExpressionAttributeValues={":d": {"N": "-40"}},
    )

    report = audit.audit()

    assert (report.drifts, report.grant_drifts) == ([audit.Drift("alice", 960, 1000)], [])


def test_the_daily_audit_counts_a_grant_drift_in_ledger_drift(
    tables: DynamoDBServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a_released_hold()
    edit_row_and_balance(tables, "alice", "hold_released", -100)
    capsys.readouterr()

    result = reconcile({"task": "audit"}, LambdaContext("reconcile"))

    assert result["grant_drifts"] == [{"user_id": "alice", "grants": 1000, "balance": 900}]
    assert emitted(capsys.readouterr().out)["LedgerDrift"] == [1.0]


def test_make_audit_prints_a_grant_drift_and_exits_1(
    tables: DynamoDBServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a_released_hold()
    edit_row_and_balance(tables, "alice", "hold", -100)

    assert make_audit.run() == 1
    assert "  alice: balance and held 900, its grants add up to 1000" in capsys.readouterr().out


# -- Clean accounts pass --------------------------------------------------------------------------------


def test_an_account_with_grants_spends_holds_and_an_expiry_passes(tables: DynamoDBServer) -> None:
    deposit("alice", 1000, paid=1000)
    promotion("alice", 200, "promo-1", days=1)
    promotion("alice", 50, "promo-2")
    spend("alice", 120, "spend-1")
    captured = hold("alice", 300, "hold-1")
    capture("alice", captured, 180, "capture-1")
    release("alice", hold("alice", 100, "hold-2"), "release-2")
    hold("alice", 70, "hold-3")  # still active: its credits are held
    ledger.adjust("alice", -30, idempotency_key="adjust-1", reason="test", actor=SERVICE, currency="usd")
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS
    # The promotion's 200 went first (soonest expiry) to the spend and the capture: none left to expire.
    # A second promotion that expires is left whole, and expires.
    promotion("alice", 40, "promo-3", days=1)
    assert expiry.expire("alice", later, "usd").credits == 40

    report = audit.audit()

    assert (report.drifts, report.grant_drifts, report.held_drifts, report.unsettled) == ([], [], [], [])
    # deposit, 3 grants, spend, 3 holds, capture, release, adjustment, expired
    assert (report.users, report.rows) == (1, 12)


def test_a_hot_account_passes_with_its_partitions_merged(tables: DynamoDBServer) -> None:
    deposit("alice", 1000, paid=900)
    promotion("alice", 100, "promo-1", days=30)
    hot_accounts.make_hot("alice", 4, currency="usd")
    for n in range(12):
        spend("alice", 9, f"order-{n}")
    deposit("alice", 500)
    release("alice", hold("alice", 200, "hold-1"), "release-1")
    for n in range(12, 20):
        spend("alice", 9, f"order-{n}")

    report = audit.audit()

    partitions = hot_accounts.account_partitions("alice")
    written = sorted(row.transaction_id for key in partitions for row in CreditTransaction.query(key))
    # One read of every partition, merged into the order the grants fold in.
    assert [item["transactionId"]["S"] for item in audit._rows("alice", None)] == written
    assert len(partitions) == 5
    assert len({key for key in partitions if CreditTransaction.count(key)}) > 2
    assert (report.users, report.drifts, report.grant_drifts, report.unsettled) == (1, [], [], [])


# -- A stop inside an account's rows ----------------------------------------------------------------------


def write(tables: DynamoDBServer, user: str, rows: list[dict[str, Any]]) -> None:
    """Rows as the ledger writes them, in this order, and the balance they add up to."""
    client = tables.client()
    start = time.time() - 3600
    for n, row in enumerate(rows):
        # A millisecond apart: the rows' ids are in the order written.
        item = {
            "userId": {"S": user},
            "transactionId": {"S": str(ULID.from_timestamp(start + n / 1000))},
            "source": {"S": "service"},
            "createdAt": {"S": "2026-12-01T00:00:00.000Z"},
        } | {name: {"N" if isinstance(value, int) else "S": str(value)} for name, value in row.items()}
        client.put_item(TableName=TABLE_NAMES["CreditTransactionTable"], Item=item)
    client.put_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Item={
            "userId": {"S": user},
            "balance": {"N": str(sum(int(row["amount"]) for row in rows))},
            "currency": {"S": "usd"},
        },
    )


@pytest.fixture
def long_account(tables: DynamoDBServer, monkeypatch: pytest.MonkeyPatch) -> DynamoDBServer:
    """A few short accounts and one of 40 rows, whose released hold row took 25 with its balance: rows
    2,000 - 37 x 10 - 25 = 1,605, grants 1,630. Pages of 7 rows, so a stop falls inside its rows, one
    between the hold's row (the 21st) and its release."""
    monkeypatch.setattr(audit, "ROWS_PAGE", 7)
    monkeypatch.setattr(audit, "BALANCES_PAGE", 2)
    for n in range(3):
        write(tables, f"user-{n}", [{"type": "deposit", "amount": 100}, {"type": "spend", "amount": -30}])
    spend_row = {"type": "spend", "amount": -10}
    hold_rows = [
        {"type": "hold", "amount": 0, "holdId": "h1", "reserved": 300},
        {"type": "hold_released", "amount": -25, "holdId": "h1", "reserved": 300},
    ]
    write(
        tables,
        "long",
        [{"type": "deposit", "amount": 2000}, *[spend_row] * 19, *hold_rows, *[spend_row] * 18],
    )
    return tables


EXPECTED = [audit.GrantDrift("long", grants=1630, balance=1605)]


@pytest.mark.parametrize("calls", [3, 5])
def test_a_grant_drift_is_found_as_well_across_stops_inside_the_accounts_rows(
    long_account: DynamoDBServer, calls: int
) -> None:
    uninterrupted = audit.audit()

    reports, left = in_runs(calls)

    assert (uninterrupted.grant_drifts, uninterrupted.drifts) == (EXPECTED, [])
    assert [drift for report in reports for drift in report.grant_drifts] == EXPECTED
    assert [drift for report in reports for drift in report.drifts] == []
    # Each row read as often as in one run: the grants were carried in the checkpoint, not refolded.
    assert sum(report.rows for report in reports) == uninterrupted.rows == 6 + 2 * 40
    assert any(item.get("auditedUser") == {"S": "long"} and "grantsFolded" in item for item in left)


def test_a_checkpoint_of_the_previous_release_inside_the_rows_starts_that_users_rows_over(
    long_account: DynamoDBServer,
) -> None:
    checked = 0
    while True:
        stopped = audit.audit(budget_of(3))
        assert stopped.finished is False, "no run stopped inside the long account's rows"
        checked += stopped.users
        saved = checkpoint_item()
        assert saved is not None
        if saved.get("auditedUser") == {"S": "long"} and "rowsAfter" in saved:
            break
    # As the previous release left it: a position and a sum, no grants.
    del saved["grantsFolded"]
    long_account.client().put_item(TableName=TABLE_NAMES["CreditGuardTable"], Item=saved)

    resumed = audit.audit()

    assert (resumed.resumed, resumed.finished, resumed.grant_drifts, resumed.drifts) == (
        True,
        True,
        EXPECTED,
        [],
    )
    # The long account's 40 rows from their start, twice to confirm the difference, and the rows of the
    # short accounts not checked before the stop.
    assert resumed.rows == 2 * 40 + 2 * (3 - checked)

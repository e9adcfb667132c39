"""The audit proves every balance is the sum of its rows: silent on a clean ledger, even one changing
while it reads, and naming each user whose balance was made to differ."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from ulid import ULID

from devstack.dynamodb import DynamoDBServer
from functions.reconcile.app import lambda_handler as reconcile
from tests.conftest import TABLE_NAMES
from tests.lambda_events import LambdaContext
from wallet import audit, ledger
from wallet.errors import InsufficientCreditsError

SERVICE = "arn:aws:iam::000000000000:user/service"


def deposit(user: str, amount: int) -> None:
    ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")


def test_a_clean_ledger_has_no_drift(tables: DynamoDBServer) -> None:
    for n in range(5):
        deposit(f"user-{n}", 1000 * (n + 1))
        ledger.spend(f"user-{n}", 500, idempotency_key="k", description=None, actor=SERVICE, currency="usd")
    ledger.adjust("user-0", -900, idempotency_key="a", reason="test", actor=SERVICE, currency="usd")

    report = audit.audit()

    assert (report.users, report.drifts, report.unsettled, report.finished) == (5, [], [], True)


def test_a_balance_edited_by_hand_is_found_and_named(tables: DynamoDBServer) -> None:
    deposit("alice", 1000)
    deposit("bob", 2000)
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": "bob"}},
        UpdateExpression="ADD balance :extra",
        ExpressionAttributeValues={":extra": {"N": "50"}},
    )

    report = audit.audit()

    assert report.drifts == [audit.Drift("bob", 2050, 2000)]


def test_a_row_written_without_its_balance_is_found(tables: DynamoDBServer) -> None:
    deposit("alice", 1000)
    tables.client().put_item(
        TableName=TABLE_NAMES["CreditTransactionTable"],
        Item={
            "userId": {"S": "alice"},
            "transactionId": {"S": str(ULID())},
            "type": {"S": "spend"},
            "amount": {"N": "-300"},
            "source": {"S": "service"},
            "createdAt": {"S": "2026-11-30T00:00:00.000Z"},
        },
    )

    assert audit.audit().drifts == [audit.Drift("alice", 1000, 700)]


def test_balances_changing_during_the_audit_are_not_reported_as_drift(tables: DynamoDBServer) -> None:
    users = [f"user-{n}" for n in range(4)]
    for user in users:
        deposit(user, 100_000)
    stop = threading.Event()

    def spend_all_the_time() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(InsufficientCreditsError):
                ledger.spend(
                    users[n % 4], 7, idempotency_key=f"k{n}", description=None, actor=SERVICE, currency="usd"
                )

    spenders = [threading.Thread(target=spend_all_the_time) for _ in range(2)]
    for spender in spenders:
        spender.start()
    try:
        reports = [audit.audit() for _ in range(3)]
    finally:
        stop.set()
        for spender in spenders:
            spender.join()

    assert all(report.drifts == [] for report in reports)
    assert audit.audit().drifts == []


def emitted(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            return dict(json.loads(line))
    return {}


def test_the_daily_audit_emits_ledger_drift_for_the_alarm(
    tables: DynamoDBServer, capsys: pytest.CaptureFixture[str]
) -> None:
    deposit("alice", 1000)
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": "alice"}},
        UpdateExpression="SET balance = :b",
        ExpressionAttributeValues={":b": {"N": "1"}},
    )
    capsys.readouterr()

    result = reconcile({"task": "audit"}, LambdaContext("reconcile"))

    assert result["drifts"] == [{"user_id": "alice", "balance": 1, "rows_total": 1000}]
    assert emitted(capsys.readouterr().out)["LedgerDrift"] == [1.0]


# -- A long ledger over several runs: the checkpoint --


def write_rows(tables: DynamoDBServer, user: str, amounts: list[int]) -> None:
    """Rows and their balance, written as the ledger would leave them, without a transaction each."""
    client = tables.client()
    rows = [
        {
            "PutRequest": {
                "Item": {
                    "userId": {"S": user},
                    "transactionId": {"S": str(ULID())},
                    "type": {"S": "adjustment"},
                    "amount": {"N": str(amount)},
                    "source": {"S": "service"},
                    "createdAt": {"S": "2026-12-01T00:00:00.000Z"},
                }
            }
        }
        for amount in amounts
    ]
    for start in range(0, len(rows), 25):
        client.batch_write_item(
            RequestItems={TABLE_NAMES["CreditTransactionTable"]: rows[start : start + 25]}
        )
    client.put_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Item={"userId": {"S": user}, "balance": {"N": str(sum(amounts))}, "currency": {"S": "usd"}},
    )


def hand_edit(tables: DynamoDBServer, user: str, extra: int) -> None:
    tables.client().update_item(
        TableName=TABLE_NAMES["CreditBalanceTable"],
        Key={"userId": {"S": user}},
        UpdateExpression="ADD balance :extra",
        ExpressionAttributeValues={":extra": {"N": str(extra)}},
    )


def budget_of(calls: int) -> Callable[[], float]:
    """A run's time, as the audit asks for it: plenty for `calls` questions, then none left."""
    asked = itertools.count(1)
    return lambda: float("inf") if next(asked) <= calls else 0.0


@pytest.fixture
def long_ledger(tables: DynamoDBServer, monkeypatch: pytest.MonkeyPatch) -> DynamoDBServer:
    """Users of a few rows around one of many, with pages small enough for that one to span several."""
    monkeypatch.setattr(audit, "ROWS_PAGE", 7)
    monkeypatch.setattr(audit, "BALANCES_PAGE", 2)
    for n in range(5):
        write_rows(tables, f"user-{n}", [100, -30, 5 * n])
    write_rows(tables, "long", [n % 13 - 4 for n in range(120)])
    return tables


def in_runs(calls: int) -> tuple[list[audit.AuditReport], list[dict[str, Any]]]:
    """Audit run after run, each with time for `calls` questions, until one finishes: the reports and
    the checkpoints each unfinished run left."""
    reports: list[audit.AuditReport] = [audit.audit(budget_of(calls))]
    left: list[dict[str, Any]] = []
    while not reports[-1].finished:
        assert len(reports) < 500, "the audit makes no progress from its checkpoint"
        saved = checkpoint_item()
        assert saved is not None, "an unfinished run left no checkpoint"
        left.append(saved)
        reports.append(audit.audit(budget_of(calls)))
    return reports, left


def checkpoint_item() -> dict[str, Any] | None:
    from wallet.models import connection

    return (
        connection()
        .get_item(TABLE_NAMES["CreditGuardTable"], audit.AUDIT_KEY, audit.CHECKPOINT, consistent_read=True)
        .get("Item")
    )


def whole(reports: list[audit.AuditReport]) -> tuple[int, int, list[audit.Drift], list[str]]:
    """What the runs of one audit found together: users, rows read, drifts and unsettled users."""
    return (
        sum(report.users for report in reports),
        sum(report.rows for report in reports),
        [drift for report in reports for drift in report.drifts],
        [user for report in reports for user in report.unsettled],
    )


@pytest.mark.parametrize("calls", [3, 5, 11])
def test_an_audit_resumed_run_after_run_finds_what_one_uninterrupted_run_finds(
    long_ledger: DynamoDBServer, calls: int
) -> None:
    hand_edit(long_ledger, "long", 9)
    hand_edit(long_ledger, "user-3", -1)
    uninterrupted = audit.audit()

    reports, left = in_runs(calls)

    assert sorted(uninterrupted.drifts, key=str) == [
        audit.Drift("long", 234, 225),
        audit.Drift("user-3", 84, 85),
    ]
    # Every row once, and the drifted users' rows once more to confirm the difference.
    assert (uninterrupted.users, uninterrupted.unsettled, uninterrupted.rows) == (6, [], 135 + 3 + 120)
    assert whole(reports) == whole([uninterrupted])
    assert len(reports) > 1
    assert all(report.resumed for report in reports[1:])
    assert not reports[0].resumed
    # Some run stopped inside the long user's rows, past their first page.
    assert any(item.get("auditedUser") == {"S": "long"} and "rowsAfter" in item for item in left)
    assert checkpoint_item() is None


def stopped_inside_the_long_users_rows() -> tuple[list[audit.AuditReport], dict[str, Any]]:
    """Short runs until one stops past the first page of the long user's rows: their reports, and the
    checkpoint it left."""
    reports = []
    while True:
        assert len(reports) < 100, "no run stopped inside the long user's rows"
        reports.append(audit.audit(budget_of(3)))
        saved = checkpoint_item()
        assert saved is not None, "the audit finished before the long user"
        if saved.get("auditedUser") == {"S": "long"} and "rowsAfter" in saved:
            return reports, saved


def test_a_balance_that_moved_while_the_audit_was_stopped_is_read_again_not_reported(
    long_ledger: DynamoDBServer,
) -> None:
    stopped, _ = stopped_inside_the_long_users_rows()

    deposit("long", 500)
    ledger.spend("long", 20, idempotency_key="k", description=None, actor=SERVICE, currency="usd")
    resumed = audit.audit()

    assert (resumed.resumed, resumed.finished, resumed.drifts, resumed.unsettled) == (True, True, [], [])
    assert sum(report.users for report in stopped) + resumed.users == 6


def test_a_difference_found_before_a_stop_is_still_reported_after_it(long_ledger: DynamoDBServer) -> None:
    hand_edit(long_ledger, "long", -5)
    stopped, _ = stopped_inside_the_long_users_rows()

    reports, _ = in_runs(5)

    assert whole(stopped + reports) == (6, 135 + 120, [audit.Drift("long", 220, 225)], [])


def test_a_finished_audit_clears_its_checkpoint(
    long_ledger: DynamoDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[dict[str, Any] | None] = []
    save = audit._save

    def save_and_look(position: Any) -> None:
        save(position)
        saved.append(checkpoint_item())

    monkeypatch.setattr(audit, "_save", save_and_look)

    report = audit.audit(checkpoint_every=10)

    assert (report.finished, report.rows, report.drifts) == (True, 135, [])
    assert len(saved) >= 5
    assert all(item is not None for item in saved)
    assert checkpoint_item() is None


def test_a_checkpoint_saved_between_users_resumes_after_the_last_user_checked(tables: DynamoDBServer) -> None:
    users = {f"user-{n}" for n in range(3)}
    for user in users:
        write_rows(tables, user, [40, 2])
    hand_edit(tables, "user-1", 1)

    first = audit.audit(budget_of(1))
    saved = checkpoint_item()
    second = audit.audit()

    assert saved is not None
    assert "auditedUser" not in saved, saved
    assert json.loads(saved["balancesAfter"]["S"])["userId"]["S"] in users
    assert (first.users, second.users, second.resumed, second.finished) == (1, 2, True, True)
    assert first.drifts + second.drifts == [audit.Drift("user-1", 43, 42)]


GOOD = {
    "userId": {"S": "#audit"},
    "guardId": {"S": "checkpoint"},
    "balancesAfter": {"S": '{"userId":{"S":"long"}}'},
    "auditedUser": {"S": "long"},
    "balanceSeen": {"N": "0"},
    "rowsAfter": {"S": '{"transactionId":{"S":"01"},"userId":{"S":"long"}}'},
    "rowsTotal": {"N": "0"},
    "attempt": {"N": "0"},
    "differences": {"N": "0"},
    "startedAt": {"S": "2026-12-04T00:00:00.000Z"},
    "updatedAt": {"S": "2026-12-04T00:00:00.000Z"},
}
FOREIGN = {
    "not JSON": {"rowsAfter": {"S": "{not json"}},
    "another table's key": {"balancesAfter": {"S": '{"id":{"S":"long"}}'}},
    "a number key": {"balancesAfter": {"S": '{"userId":{"N":"1"}}'}},
    "another user's rows": {"rowsAfter": {"S": '{"transactionId":{"S":"01"},"userId":{"S":"user-1"}}'}},
    "a user not where the scan is": {"auditedUser": {"S": "user-2"}},
    "a sum written as text": {"rowsTotal": {"S": "12"}},
    "an attempt out of range": {"attempt": {"N": str(audit.SETTLE_ATTEMPTS)}},
    "a confirmed difference left unreported": {"differences": {"N": "2"}},
    "no start": {"startedAt": None},
    "no sum": {"rowsTotal": None},
    "grants not JSON": {"grantsFolded": {"S": "{not json"}},
    "grants of another shape": {
        "grantsFolded": {"S": '{"lots":[{"credits":1}],"debt":[],"holds":{},"books":{}}'}
    },
    "a grant's credits as text": {
        "grantsFolded": {
            "S": '{"lots":[{"grant_id":"g","kind":"paid","credits":1,"paid":null,"expires_at":null,'
            '"at_ms":0,"left":"1"}],"debt":[],"holds":{},"books":{}}'
        }
    },
}


def test_a_well_formed_checkpoint_is_resumed(long_ledger: DynamoDBServer) -> None:
    long_ledger.client().put_item(TableName=TABLE_NAMES["CreditGuardTable"], Item=GOOD)

    report = audit.audit()

    assert (report.resumed, report.finished, report.drifts, report.unsettled) == (True, True, [], [])
    assert checkpoint_item() is None


@pytest.mark.parametrize("change", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_checkpoint_the_audit_cannot_have_written_is_logged_and_the_audit_starts_over(
    long_ledger: DynamoDBServer, change: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    item = {name: value for name, value in (GOOD | change).items() if value is not None}
    long_ledger.client().put_item(TableName=TABLE_NAMES["CreditGuardTable"], Item=item)
    hand_edit(long_ledger, "user-4", 3)

    report = audit.audit()

    assert (report.resumed, report.finished, report.users) == (False, True, 6)
    assert report.drifts == [audit.Drift("user-4", 93, 90)]
    assert "checkpoint is not one it wrote" in caplog.text
    assert checkpoint_item() is None


def test_the_daily_audit_stopped_for_time_resumes_on_the_next_run(long_ledger: DynamoDBServer) -> None:
    short = dataclasses.replace(
        LambdaContext("reconcile"), remaining_ms=int(audit.SAFETY_MARGIN_SECONDS * 1000) - 1
    )

    stopped = reconcile({"task": "audit"}, short)
    left = checkpoint_item()
    resumed = reconcile({"task": "audit"}, LambdaContext("reconcile"))

    assert (stopped["finished"], stopped["users"], left is not None) == (False, 0, True)
    assert (resumed["resumed"], resumed["finished"], resumed["users"]) == (True, True, 6)
    assert checkpoint_item() is None


# -- Holds: `held` against the active holds, and holds the sweep has not reached --

HOUR = 3600


def test_held_is_checked_against_the_active_holds_and_a_difference_is_named(tables: DynamoDBServer) -> None:
    from wallet import holds

    deposit("alice", 1000)
    deposit("bob", 1000)
    for user, amount in (("alice", 300), ("alice", 200), ("bob", 100)):
        holds.create_hold(
            user,
            amount,
            expires_in=600,
            idempotency_key=f"h{amount}",
            description=None,
            actor=SERVICE,
            currency="usd",
        )
    assert (audit.audit().held_drifts, audit.audit().overdue_holds) == ([], 0)
    # A hold deleted behind the ledger's back (as DynamoDB's TTL did to active holds): `balance + held`
    # still sums the rows, only `held` against the holds shows it.
    [gone] = [g for g in holds_of("alice") if int(g["amount"]["N"]) == 200]
    tables.client().delete_item(
        TableName=TABLE_NAMES["CreditGuardTable"], Key={"userId": gone["userId"], "guardId": gone["guardId"]}
    )

    report = audit.audit()

    assert report.drifts == []
    assert report.held_drifts == [audit.HeldDrift("alice", 500, 300)]


def holds_of(user: str) -> list[dict[str, Any]]:
    from wallet.models import CreditGuard

    page = CreditGuard._get_connection().query(user, consistent_read=True)
    return [item for item in page["Items"] if item["guardId"]["S"].startswith("hold#")]


def test_active_holds_more_than_an_hour_past_their_time_are_counted_for_the_alarm(
    tables: DynamoDBServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from wallet import holds

    deposit("alice", 1000)
    made = [
        holds.create_hold(
            "alice",
            100,
            expires_in=60,
            idempotency_key=f"h{n}",
            description=None,
            actor=SERVICE,
            currency="usd",
        ).hold
        for n in range(3)
    ]
    holds.release_hold("alice", made[2].hold_id, idempotency_key="r", actor=SERVICE, currency="usd")
    expiry = made[0].expires_at

    # Past their time by an hour exactly: not yet overdue; by an hour and a second: both active ones are.
    assert audit.audit(now=lambda: expiry + HOUR).overdue_holds == 0
    assert audit.audit(now=lambda: expiry + HOUR + 1).overdue_holds == 2
    holds.expire_due(currency="usd", now=lambda: expiry + HOUR + 1)
    assert audit.audit(now=lambda: expiry + HOUR + 1).overdue_holds == 0


def test_the_daily_audit_emits_holds_overdue_for_the_alarm(
    tables: DynamoDBServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wallet import holds

    deposit("alice", 1000)
    made = holds.create_hold(
        "alice", 100, expires_in=1, idempotency_key="h", description=None, actor=SERVICE, currency="usd"
    ).hold
    monkeypatch.setattr(audit.time, "time", lambda: made.expires_at + HOUR + 5)
    capsys.readouterr()

    result = reconcile({"task": "audit"}, LambdaContext("reconcile"))

    assert result["overdue_holds"] == 1
    figures = emitted(capsys.readouterr().out)
    assert (figures["HoldsOverdue"], figures["LedgerDrift"]) == ([1.0], [0.0])

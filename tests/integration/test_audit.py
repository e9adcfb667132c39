"""The audit proves every balance is the sum of its rows: silent on a clean ledger, even one changing
while it reads, and naming each user whose balance was made to differ."""

from __future__ import annotations

import contextlib
import json
import threading
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

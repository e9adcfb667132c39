"""Hot accounts against the local stack's DynamoDB: spends spread over sub-balances stay exact under
concurrency and conflicts, a key spends once, a 402 only when the account's total is short, the history
and the audit see every partition, and only an operator makes an account hot, within the bounds."""

from __future__ import annotations

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from ulid import ULID

from devstack.dynamodb import DynamoDBServer
from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import account, audit, holds, hot_accounts, ledger, settings
from wallet.errors import InsufficientCreditsError, LedgerUnavailableError
from wallet.models import CreditBalance, CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
SERVICE = "arn:aws:iam::123456789012:user/api-service"
OTHER = "arn:aws:iam::123456789012:role/somebody-else"


def deposit(user: str, amount: int) -> None:
    ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")


def spend(user: str, amount: int, key: str, description: str | None = None) -> ledger.Receipt:
    return ledger.spend(
        user, amount, idempotency_key=key, description=description, actor=SERVICE, currency="usd"
    )


def put_shards(user: str, body: Any, signer: str = SERVICE) -> HttpResponse:
    # The adjustment's sample event, sent as API Gateway sends the shards route's.
    event = api_event(
        "POST",
        "/api/users/{userId}/adjustments",
        path_parameters={"userId": user},
        body=body if isinstance(body, str) else json.dumps(body),
    )
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "PUT"
    event["resource"] = event["requestContext"]["resourcePath"] = "/api/users/{userId}/shards"
    event["path"] = event["requestContext"]["path"] = event["path"].replace("/adjustments", "/shards")
    event["requestContext"]["identity"]["userArn"] = signer
    return invoke(spend_handler, event)


def rows_total(user: str) -> int:
    return sum(
        int(row.amount)
        for partition in hot_accounts.account_partitions(user)
        for row in CreditTransaction.query(partition, consistent_read=True)
    )


def stored_items(user: str) -> list[int]:
    keys = hot_accounts.account_partitions(user)
    return [int(item.balance) for item in CreditBalance.batch_get(keys, consistent_read=True)]


# --- the operator's route ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [2, 32])
def test_an_operator_makes_an_account_hot_within_the_bounds_and_again_changes_nothing(shards: int) -> None:
    first = put_shards("alice", {"shards": shards})
    again = put_shards("alice", {"shards": shards})

    assert (first.status, first.body) == (200, {"userId": "alice", "shards": shards})
    assert (again.status, again.body) == (200, {"userId": "alice", "shards": shards})
    assert int(CreditBalance.get("alice", consistent_read=True).shards) == shards


@pytest.mark.parametrize("shards", [1, 33, 0, -4, "8", 8.0, True, None])
def test_shards_outside_2_to_32_or_not_whole_are_400_and_change_nothing(shards: Any) -> None:
    response = put_shards("alice", {"shards": shards})

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_shards")
    assert "2 to 32" in response.body["error"]["message"]
    assert hot_accounts.hotness("alice").shards == 0


def test_another_number_for_a_hot_account_is_409_and_the_first_stays() -> None:
    put_shards("alice", {"shards": 4})

    response = put_shards("alice", {"shards": 8})

    assert (response.status, response.body["error"]["code"]) == (409, "shards_already_set")
    assert int(CreditBalance.get("alice", consistent_read=True).shards) == 4


def test_only_an_operator_may_make_an_account_hot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERATOR_ARNS", OTHER)
    settings.operators.cache_clear()
    try:
        response = put_shards("alice", {"shards": 4})
    finally:
        settings.operators.cache_clear()

    assert (response.status, response.body["error"]["code"]) == (403, "caller_not_allowed")
    assert response.body["error"]["message"].endswith("it is not listed in OperatorArns.")
    assert hot_accounts.hotness("alice").shards == 0


# --- spends ---------------------------------------------------------------------------------------------


def test_a_hot_spend_lands_on_its_sub_balance_and_the_balance_is_the_whole_account() -> None:
    deposit("alice", 10_000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    hot_accounts.forget()  # as a fresh process: the refused main-item spend finds it hot

    receipt = spend("alice", 250, "order-1")

    shard = hot_accounts.shard_key("alice", hot_accounts.shard_of(SERVICE, "order-1", 4))
    [row] = list(CreditTransaction.query(shard, consistent_read=True))
    assert (row.transaction_id, int(row.amount), row.type) == (receipt.transaction_id, -250, "spend")
    assert receipt.balance == ledger.get_balance("alice") == 9750
    assert sum(stored_items("alice")) == rows_total("alice") == 9750


def test_a_key_replayed_on_a_hot_account_answers_its_first_answer_once() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 8, currency="usd")
    first = spend("alice", 100, "order-1")
    hot_accounts.forget()

    again = spend("alice", 100, "order-1")

    assert (again.transaction_id, again.replayed) == (first.transaction_id, True)
    assert ledger.get_balance("alice") == rows_total("alice") == 900
    with pytest.raises(Exception, match="Idempotency-Key"):
        spend("alice", 101, "order-1")


def test_a_key_spent_before_the_account_became_hot_is_replayed_not_spent_again() -> None:
    deposit("alice", 1000)
    first = spend("alice", 100, "order-1")
    hot_accounts.make_hot("alice", 8, currency="usd")  # this process now knows it hot: no main-item try

    again = spend("alice", 100, "order-1")

    assert (again.transaction_id, again.replayed) == (first.transaction_id, True)
    assert ledger.get_balance("alice") == rows_total("alice") == 900


def test_no_402_while_the_total_covers_the_spend_wherever_the_credits_sit() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 8, currency="usd")
    for n in range(20):  # spreads the credits over the sub-balances by refills
        spend("alice", 10, f"small-{n}")

    whole = spend("alice", 800, "everything-left")

    assert whole.balance == 0
    with pytest.raises(InsufficientCreditsError) as refused:
        spend("alice", 1, "one-more")
    assert refused.value.balance == 0
    assert min(stored_items("alice")) >= 0
    assert rows_total("alice") == 0


def test_exact_under_concurrency_and_conflicts_with_deposits_and_an_adjustment(
    tables: DynamoDBServer,
) -> None:
    users = {"hot-a": 8, "hot-b": 3, "cold-c": None}
    for user, shards in users.items():
        deposit(user, 2000)
        if shards:
            hot_accounts.make_hot(user, shards, currency="usd")
    chance = random.Random(20261204)
    work: list[tuple[str, str, int, int]] = []
    for n in range(600):
        user = chance.choice(list(users))
        kind = chance.choices(["spend", "deposit"], weights=[9, 1])[0]
        work.append((kind, user, chance.randint(1, 40) if kind == "spend" else 1000, n))
    work.insert(300, ("adjust", "hot-a", -1500, 600))

    def run(item: tuple[str, str, int, int]) -> tuple[str, str, int, int]:
        kind, user, amount, n = item
        payment_id = str(ULID())
        # A caller retries a 500 with the same key (or payment), as the contract asks.
        for _ in range(30):
            try:
                if kind == "spend":
                    spend(user, amount, f"k-{n}")
                elif kind == "deposit":
                    ledger.add_credits(
                        user, amount, source="stripe_payment", payment_id=payment_id, currency="usd"
                    )
                else:
                    ledger.adjust(
                        user, amount, idempotency_key=f"k-{n}", reason="fraud", actor=SERVICE, currency="usd"
                    )
            except InsufficientCreditsError:
                return kind, user, amount, 402
            except LedgerUnavailableError:
                continue
            return kind, user, amount, 201
        return kind, user, amount, 500

    tables.conflicts.enable(0.001)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            outcomes = list(pool.map(run, work))
    finally:
        tables.conflicts.disable()

    assert tables.conflicts.counts["conflicts"] > 0, "the burst met no conflict: the model was not exercised"
    for user in users:
        moved = sum(
            -amount if kind == "spend" else amount
            for kind, who, amount, status in outcomes
            if who == user and status == 201
        )
        assert ledger.get_balance(user) == rows_total(user) == 2000 + moved, user
        assert min(stored_items(user)) >= 0 or user == "hot-a", user
    assert set(Counter(status for *_, status in outcomes)) <= {201, 402}
    report = audit.audit()
    assert (report.users, report.drifts, report.unsettled) == (3, [], [])


# --- what reads the account ------------------------------------------------------------------------------


def test_the_history_merges_every_partition_newest_first_and_its_cursor_pages_through_all() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    for n in range(9):
        spend("alice", 5, f"order-{n}")
    deposit("alice", 1000)
    everything = sorted(
        (
            row.transaction_id
            for key in hot_accounts.account_partitions("alice")
            for row in CreditTransaction.query(key)
        ),
        reverse=True,
    )

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = ledger.statement("alice", 3, cursor).page
        seen += [transaction.id for transaction in page.transactions]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert len(everything) == 11
    assert seen == everything


def test_the_audit_sees_a_hot_account_whole_and_a_sub_balance_edited_by_hand() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    for n in range(6):
        spend("alice", 7, f"order-{n}")

    clean = audit.audit()
    shard = next(key for key in hot_accounts.account_partitions("alice")[1:] if CreditBalance.count(key))
    CreditBalance(shard).update(actions=[CreditBalance.balance.add(5)])
    edited = audit.audit()

    assert (clean.users, clean.drifts) == (1, [])
    assert [(drift.user_id, drift.balance, drift.rows_total) for drift in edited.drifts] == [
        ("alice", 963, 958)
    ]


# --- holds on a hot account ----------------------------------------------------------------------------


def hold(user: str, amount: int, key: str) -> holds.Held:
    return holds.create_hold(
        user, amount, expires_in=600, idempotency_key=key, description=None, actor=SERVICE, currency="usd"
    )


def test_a_hold_on_a_hot_account_takes_what_its_sub_balances_hold_before_it_is_refused() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 8, currency="usd")
    for n in range(20):  # refills leave most of the credits in the sub-balances, not on the main item
        spend("alice", 10, f"small-{n}")
    assert int(CreditBalance.get("alice", consistent_read=True).balance) < 700

    made = hold("alice", 700, "reserve-1")

    assert (made.balances.balance, made.balances.held, made.balances.available) == (800, 700, 100)
    assert min(stored_items("alice")) >= 0
    assert account.account_total("alice") == rows_total("alice") == 800
    with pytest.raises(InsufficientCreditsError) as refused:
        hold("alice", 101, "reserve-2")
    assert (refused.value.available, refused.value.balance) == (100, 800)
    assert account.account_total("alice") == rows_total("alice") == 800


def test_the_audit_stopped_inside_a_hot_accounts_sub_balance_rows_resumes_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deposit("alice", 10_000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    for n in range(40):
        spend("alice", 3, f"order-{n}")
    monkeypatch.setattr(audit, "ROWS_PAGE", 5)
    clock = iter([float("inf")] * 3 + [0.0])
    stopped = audit.audit(lambda: next(clock, float("inf")), checkpoint_every=1)
    saved = audit.AuditCheckpoint.get(audit.AUDIT_KEY, audit.CHECKPOINT, consistent_read=True)

    resumed = audit.audit()

    assert stopped.finished is False
    assert hot_accounts.is_shard(json.loads(saved.rows_after or "{}")["userId"]["S"])
    assert (resumed.resumed, resumed.finished, resumed.drifts, resumed.unsettled) == (True, True, [], [])
    assert stopped.rows + resumed.rows == 41


# --- a claw-back's debt, covered even when the covering step fails once; the 402's balance ----------------


def test_a_hot_accounts_402_carries_the_balance_with_what_is_held() -> None:
    deposit("alice", 1000)
    hot_accounts.make_hot("alice", 4, currency="usd")
    spend("alice", 100, "spread")
    hold("alice", 900, "all-the-rest")

    with pytest.raises(InsufficientCreditsError) as refused:
        spend("alice", 1, "one-more")
    refused_route = invoke(
        spend_handler,
        api_event(
            "POST", "/api/users/{userId}/spend", path_parameters={"userId": "alice"}, body='{"amount": 1}'
        ),
    )

    # As a plain account answers: balance = available + held (900 held, nothing available).
    assert (refused.value.available, refused.value.balance) == (0, 900)
    assert refused_route.status == 402
    assert (refused_route.body["error"]["available"], refused_route.body["error"]["balance"]) == (0, 900)


def main_and_subs(user: str) -> tuple[int, list[int]]:
    """The main item's balance, and each sub-balance's in order."""
    main, *subs = [
        int(CreditBalance.get(key, consistent_read=True).balance)
        for key in hot_accounts.account_partitions(user)
    ]
    return main, subs


def failing_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Makes the first move between an account's items fail as DynamoDB's outage would; counts calls."""
    calls: list[int] = []
    move = hot_accounts._move

    def flaky(source: str, target: str, credits: int, currency: str) -> bool:
        calls.append(credits)
        if len(calls) == 1:
            raise LedgerUnavailableError("the ledger could not move credits within the account")
        return move(source, target, credits, currency)

    monkeypatch.setattr(hot_accounts, "_move", flaky)
    return calls


def spread(user: str, shards: int) -> None:
    """Spends that refill each sub-balance with a share of the main item."""
    hot_accounts.make_hot(user, shards, currency="usd")
    for n in range(12):
        spend(user, 1, f"spread-{n}")
    assert sum(main_and_subs(user)[1]) > 0


def test_a_claw_backs_debt_is_covered_by_the_redelivery_when_its_covering_step_failed(
    stripe_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_webhook_reversals import charge, paid_deposit, send

    session = paid_deposit(stripe_emulator, "alice", 1000)
    spread("alice", 4)
    left = 1000 - 12
    calls = failing_once(monkeypatch)

    first = send(stripe_emulator, "charge.refunded", charge(session, refunded=1000))
    main, subs = main_and_subs("alice")
    assert first == 500
    # The claw-back committed; its debt is not covered yet.
    assert sum(subs) > 0
    assert main < 0

    again = send(stripe_emulator, "charge.refunded", charge(session, refunded=1000))

    main, subs = main_and_subs("alice")
    assert again == 200
    assert subs == [0] * 4
    assert main == left - 1000
    assert rows_total("alice") == left - 1000
    assert len(calls) > 1
    with pytest.raises(InsufficientCreditsError):
        spend("alice", 1, "after-the-debt")
    assert audit.audit().drifts == []


def test_an_adjustments_debt_is_covered_by_the_retry_of_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    deposit("alice", 1000)
    spread("alice", 4)
    failing_once(monkeypatch)

    def take() -> ledger.Receipt:
        return ledger.adjust(
            "alice",
            -1000,
            idempotency_key="fraud",
            reason="chargeback by hand",
            actor=SERVICE,
            currency="usd",
        )

    with pytest.raises(LedgerUnavailableError):
        take()
    assert main_and_subs("alice")[0] < 0

    retried = take()

    main, subs = main_and_subs("alice")
    assert retried.replayed
    assert (main, subs) == (-12, [0] * 4)
    assert rows_total("alice") == -12

"""The grants' schedule: the projector folds an account's rows and indexes its next expiry from the
stream's batches, and the sweep expires the accounts the index finds due, once."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.project_grants import app
from functions.reconcile.app import lambda_handler as reconcile
from tests.lambda_events import LambdaContext
from wallet import account, grants_due, ledger, projection, promotions
from wallet.errors import LedgerUnavailableError
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
OPERATOR = "arn:aws:iam::123456789012:user/operator"
DAY = 86_400


def give(user: str, credits: int, days: float | None, key: str) -> int | None:
    expires = None if days is None else int(time.time() + days * DAY)
    text = None if expires is None else datetime.fromtimestamp(expires, UTC).isoformat()
    promotions.grant(
        user, credits, reason="promo", expires_at=text, idempotency_key=key, actor=OPERATOR, currency="usd"
    )
    return expires


def records(*users: str) -> list[dict[str, Any]]:
    """The stream's INSERT records of the users' rows, as Lambda delivers them."""
    found = []
    for user in users:
        for row in CreditTransaction.query(user, consistent_read=True):
            found.append(
                {
                    "eventName": "INSERT",
                    "dynamodb": {
                        "Keys": {"userId": {"S": user}, "transactionId": {"S": row.transaction_id}},
                        "NewImage": row.serialize(),
                        "SequenceNumber": f"{len(found) + 1:021d}",
                    },
                }
            )
    return found


def project(records: list[dict[str, Any]], at: float, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(app, "clock", lambda: at)
    result = app.stream_handler({"Records": records}, LambdaContext("project-grants"))
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def expired_rows(user: str) -> list[int]:
    return sorted(
        -int(r.amount) for r in CreditTransaction.query(user, consistent_read=True) if r.type == "expired"
    )


def test_the_projector_folds_settled_rows_and_indexes_a_grant_written_a_moment_ago(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a grant that expires in 3 days, written now (not settled for 15 minutes).
    expires = give("alice", 300, 3, "g1")
    assert expires is not None

    # When the projector sees its row now, then again once it settled.
    assert project(records("alice"), time.time(), monkeypatch) == []
    unsettled = projection.stored("alice")
    indexed = grants_due.indexed("alice")
    assert project(records("alice"), time.time() + projection.SETTLE_SECONDS + 60, monkeypatch) == []

    # Then the fresh grant was indexed at once, in its day's bucket, and folded once settled.
    assert unsettled.watermark is None
    day = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d")
    assert indexed[1] == expires
    assert (indexed[0] or "").startswith(day + "#")
    settled = projection.stored("alice")
    assert settled.watermark is not None
    assert [lot.left for lot in settled.grants.lots.values()] == [300]
    assert grants_due.indexed("alice") == indexed


def test_a_sub_balance_row_is_its_user_s_and_an_index_is_only_brought_forward() -> None:
    assert grants_due.owner("alice#s3") == "alice"
    assert grants_due.owner("alice") == "alice"
    now = time.time()
    assert grants_due.bring_forward("bob", int(now) + 5 * DAY, now)
    assert not grants_due.bring_forward("bob", int(now) + 9 * DAY, now)
    assert grants_due.bring_forward("bob", int(now) + 2 * DAY, now)
    assert grants_due.indexed("bob")[1] == int(now) + 2 * DAY


def test_one_account_that_fails_has_only_its_records_sent_back(monkeypatch: pytest.MonkeyPatch) -> None:
    give("carol", 100, 3, "g1")
    give("dave", 100, 3, "g1")
    give("dave", 50, None, "g2")
    real = grants_due.follow

    def follow(user: str, *args: Any) -> projection.Stored:
        if user == "dave":
            raise LedgerUnavailableError("the ledger could not read the account's rows")
        return real(user, *args)

    monkeypatch.setattr(grants_due, "follow", follow)
    batch = records("carol", "dave")

    failed = project(batch, time.time() + projection.SETTLE_SECONDS + 60, monkeypatch)

    assert failed == [r["dynamodb"]["SequenceNumber"] for r in batch[1:]]
    assert len(failed) == 2
    assert projection.stored("carol").watermark is not None
    assert projection.stored("dave").watermark is None


def test_the_sweep_expires_an_account_due_once_and_leaves_one_not_yet_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given erin: 400 expiring in 1 day (150 of it spent), 200 in 10 days; fay: 100 in 5 days.
    give("erin", 400, 1, "g1")
    later_expiry = give("erin", 200, 10, "g2")
    ledger.spend("erin", 150, idempotency_key="s", description=None, actor=OPERATOR, currency="usd")
    fay_expiry = give("fay", 100, 5, "g1")
    assert project(records("erin", "fay"), time.time(), monkeypatch) == []
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS + 60

    # When the sweep runs two days later, twice.
    first = grants_due.expire_due(currency="usd", now=lambda: later)
    second = grants_due.expire_due(currency="usd", now=lambda: later)

    # Then erin's first grant's 250 left once, her next expiry is the second grant's, fay is untouched.
    assert (first.accounts, first.credits, first.rows, first.failed) == (1, 250, 1, 0)
    assert (second.credits, second.rows, second.failed) == (0, 0, 0)
    assert expired_rows("erin") == [250]
    assert account.get_balance("erin") == 200
    assert grants_due.indexed("erin")[1] == later_expiry
    assert expired_rows("fay") == []
    assert grants_due.indexed("fay")[1] == fay_expiry


def test_an_account_with_nothing_left_to_expire_leaves_the_index_and_the_checkpoint_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    give("gus", 100, 1, "g1")
    give("gus", 30, None, "g2")
    assert project(records("gus"), time.time(), monkeypatch) == []
    # Noon, three days on: past the end of yesterday by more than SETTLE_SECONDS whatever the hour now.
    later = (time.time() + 3 * DAY) // DAY * DAY + DAY / 2

    done = grants_due.expire_due(currency="usd", now=lambda: later)

    assert (done.accounts, done.credits) == (1, 100)
    assert grants_due.indexed("gus") == (None, None)
    assert account.get_balance("gus") == 30
    # Every day before yesterday (later's) is swept: the first run starts FIRST_RUN_DAYS back.
    yesterday = datetime.fromtimestamp(later - DAY, UTC).strftime("%Y-%m-%d")
    assert done.swept_until == yesterday


def test_the_reconcile_function_runs_the_grants_sweep() -> None:
    result = reconcile({"task": "grants"}, LambdaContext("reconcile"))

    assert (result["accounts"], result["failed"], result["finished"]) == (0, 0, True)


def test_a_grant_due_whose_credits_are_held_stays_indexed_at_today_till_the_hold_settles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wallet import holds

    expires = give("hal", 300, 1, "g1")
    holds.create_hold(
        "hal", 300, expires_in=3600, idempotency_key="h", description=None, actor=OPERATOR, currency="usd"
    )
    assert project(records("hal"), time.time(), monkeypatch) == []
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS + 60

    done = grants_due.expire_due(currency="usd", now=lambda: later)

    # Nothing of it may leave while held; it is found again by every run (moved to today's bucket, this
    # run may meet it there once more) until the hold settles.
    assert (done.credits, done.rows, done.failed) == (0, 0, 0)
    assert done.accounts >= 1
    bucket, next_expiry = grants_due.indexed("hal")
    assert next_expiry == expires
    assert (bucket or "").startswith(datetime.fromtimestamp(later, UTC).strftime("%Y-%m-%d") + "#")


@pytest.mark.parametrize("raced", [5, 9])
def test_a_hot_account_raced_by_a_spend_before_its_credits_are_gathered_expires_all_that_is_due(
    monkeypatch: pytest.MonkeyPatch, raced: int
) -> None:
    """The expiry read 10 due; a spend then took more from the sub-balances, so the account no longer
    holds 10 to gather: what is due after the spend still leaves in the one call."""
    from wallet import expiry, hot_accounts

    hot_accounts.make_hot("hot", 2, currency="usd")
    give("hot", 40, 1, "g")
    for n in range(3):
        ledger.spend("hot", 10, idempotency_key=f"s{n}", description=None, actor=OPERATOR, currency="usd")
    real = projection.current
    spent: list[int] = []

    def spend_after_the_read(user_id: str, now_s: float) -> Any:
        grants = real(user_id, now_s)
        if not spent:
            spent.append(raced)
            ledger.spend(
                "hot", raced, idempotency_key="race", description=None, actor=OPERATOR, currency="usd"
            )
        return grants

    monkeypatch.setattr(projection, "current", spend_after_the_read)
    done = expiry.expire("hot", time.time() + 2 * DAY + projection.SETTLE_SECONDS, "usd")

    # 40 given, 30 + `raced` spent from it (the soonest-expiring grant): the rest is due, all of it.
    assert (done.credits, account.account_total("hot")) == (10 - raced, 0)

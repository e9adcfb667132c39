"""What the balance page reads of grants: the credits that expire in the next 30 days, and the history's
`grants` and `expired` kinds; and an expiry that writes its `expired` row once however often it runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from ulid import ULID

from functions.get_balance.app import lambda_handler
from tests.lambda_events import api_event, invoke
from wallet import account, expiry, ledger, projection, promotions
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
OPERATOR = "arn:aws:iam::123456789012:user/operator"
DAY = 86_400


def give(user: str, credits: int, days: float | None, key: str) -> str:
    text = None if days is None else datetime.fromtimestamp(int(time.time() + days * DAY), UTC).isoformat()
    receipt = promotions.grant(
        user, credits, reason="promo", expires_at=text, idempotency_key=key, actor=OPERATOR, currency="usd"
    )
    return receipt.transaction_id


def statement(user: str, **query: str) -> dict[str, Any]:
    response = invoke(lambda_handler, api_event("GET", "/api/balance", user=user, query=query or None))
    assert response.status == 200, response.body
    return dict(response.body)


def test_the_balance_names_what_expires_in_the_next_30_days_and_nothing_later() -> None:
    give("alice", 500, 10, "soon")
    give("alice", 300, 40, "later")
    give("alice", 200, None, "never")
    ledger.add_credits("alice", 1000, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    # 120 spent: from the grant expiring soonest (the rule, docs/ARCHITECTURE.md "Grants"): 500 - 120.
    ledger.spend("alice", 120, idempotency_key="s1", description=None, actor=OPERATOR, currency="usd")

    body = statement("alice")

    [line] = body["expiring"]
    assert (line["credits"], line["kind"]) == (380, "free")
    assert abs(datetime.fromisoformat(line["expiresAt"]).timestamp() - (time.time() + 10 * DAY)) < 120


def test_later_pages_and_accounts_with_nothing_expiring_name_nothing() -> None:
    ledger.add_credits("bob", 1000, source="stripe_payment", payment_id=str(ULID()), currency="usd")

    assert statement("bob")["expiring"] == []


def test_the_history_shows_grants_and_expired_rows_by_kind() -> None:
    grant_id = give("carol", 50, 1, "g")
    CreditTransaction(
        "carol", str(ULID()), type="expired", amount=-50, source="expiry", grant_id=grant_id,
        created_at="2030-01-01T00:00:00.000Z",
    ).save()  # fmt: skip

    assert [t["type"] for t in statement("carol", kind="grants")["transactions"]] == ["grant"]
    assert [t["type"] for t in statement("carol", kind="expired")["transactions"]] == ["expired"]


def test_an_expiry_takes_what_is_left_once_however_often_it_runs() -> None:
    give("dave", 400, 1, "g1")
    give("dave", 100, None, "g2")
    ledger.spend("dave", 150, idempotency_key="s", description=None, actor=OPERATOR, currency="usd")
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS

    first = expiry.expire("dave", later, "usd")
    again = expiry.expire("dave", later, "usd")

    # 150 came from the expiring grant (soonest first): 250 of it left to expire, the 100 stays.
    assert (first.credits, first.rows, again.credits) == (250, 1, 0)
    assert account.get_balance("dave") == 100
    expired = [row for row in CreditTransaction.query("dave") if row.type == "expired"]
    assert [int(row.amount) for row in expired] == [-250]


def test_an_expiry_never_takes_held_credits_nor_makes_a_debt() -> None:
    from wallet import holds

    give("erin", 300, 1, "g1")
    holds.create_hold(
        "erin", 200, expires_in=3600, idempotency_key="h", description=None, actor=OPERATOR, currency="usd"
    )
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS

    done = expiry.expire("erin", later, "usd")

    assert done.credits == 100
    balances = account.balances("erin")
    assert (balances.available, balances.held) == (0, 200)


def test_an_expiry_that_lost_a_race_is_refused_and_tried_again_on_a_fresh_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    give("fred", 100, 1, "g1")
    give("fred", 200, None, "g2")
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS
    real = projection.current
    raced: list[bool] = []

    def read_then_spend(user_id: str, now_s: float) -> Any:
        grants = real(user_id, now_s)
        if not raced:
            raced.append(True)
            # Committed between the expiry's read and its write; at its instant the grant had not yet
            # expired, so it drew on it first (soonest-expiring): 60 of it is left to expire, not 100.
            ledger.spend("fred", 40, idempotency_key="s", description=None, actor=OPERATOR, currency="usd")
        return grants

    monkeypatch.setattr(projection, "current", read_then_spend)

    done = expiry.expire("fred", later, "usd")

    assert done.stale >= 1
    assert done.credits == 60
    assert account.get_balance("fred") == 200


def test_paid_credits_expire_when_the_setting_says_and_never_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wallet import settings

    ledger.add_credits("gina", 1000, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    monkeypatch.setenv("PAID_CREDITS_EXPIRE_DAYS", "30")
    settings.paid_credits_expire_days.cache_clear()
    try:
        ledger.add_credits("gina", 500, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    finally:
        settings.paid_credits_expire_days.cache_clear()

    expiries = sorted(
        (int(row.amount), row.grant_expires_at)
        for row in CreditTransaction.query("gina", consistent_read=True)
    )
    assert expiries[1] == (1000, None)
    assert expiries[0][0] == 500
    assert abs(float(expiries[0][1] or 0) - (time.time() + 30 * DAY)) < 120
    [line] = statement("gina")["expiring"]
    assert (line["credits"], line["kind"]) == (500, "paid")


def test_sixty_grants_due_expire_in_one_call_on_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 60 grants that expire tomorrow, 10 + k credits each, and one that never does.
    grants = {give("hana", 10 + k, 1, f"g{k}"): 10 + k for k in range(60)}
    give("hana", 7, None, "keep")
    later = time.time() + 2 * DAY + projection.SETTLE_SECONDS
    reads: list[str] = []
    real = projection.current
    monkeypatch.setattr(projection, "current", lambda user, now: reads.append(user) or real(user, now))

    # When one expiry runs.
    done = expiry.expire("hana", later, "usd")

    # Then every grant's remainder left in its own row, in three transactions on a single read.
    assert (done.credits, done.rows, done.stale, len(reads)) == (sum(grants.values()), 60, 0, 1)
    expired = {
        row.grant_id: -int(row.amount)
        for row in CreditTransaction.query("hana", consistent_read=True)
        if row.type == "expired"
    }
    assert expired == grants
    assert account.get_balance("hana") == 7
    assert done.next_expires_at is None
    assert done.counts == {"hana": 61 + 3}
    assert expiry.expire("hana", later, "usd").rows == 0

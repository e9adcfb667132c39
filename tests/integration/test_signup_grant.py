"""The sign-up grant: a new user's first visit to the balance page gives SIGNUP_CREDITS once, maybe
expiring, however many first visits race; users with history and the setting at 0 get nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from ulid import ULID

from functions.get_balance.app import lambda_handler
from tests.lambda_events import api_event, invoke
from wallet import ledger, settings
from wallet.models import CreditGuard, CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


@pytest.fixture
def signup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIGNUP_CREDITS", "300")
    monkeypatch.setenv("SIGNUP_CREDITS_EXPIRE_DAYS", "14")
    settings.signup_credits.cache_clear()
    settings.signup_credits_expire_days.cache_clear()
    yield
    settings.signup_credits.cache_clear()
    settings.signup_credits_expire_days.cache_clear()


def visit(user: str) -> dict[str, Any]:
    response = invoke(lambda_handler, api_event("GET", "/api/balance", user=user))
    assert response.status == 200, response.body
    return dict(response.body)


def rows(user: str) -> list[CreditTransaction]:
    return list(CreditTransaction.query(user, consistent_read=True))


@pytest.mark.usefixtures("signup")
def test_a_new_users_first_visit_gives_the_sign_up_credits_once_with_their_expiry() -> None:
    first = visit("newcomer")
    again = visit("newcomer")

    assert (first["balance"], again["balance"]) == (300, 300)
    [row] = rows("newcomer")
    assert (row.type, int(row.amount), row.source) == ("grant", 300, "signup")
    assert abs(float(row.grant_expires_at or 0) - (time.time() + 14 * 86_400)) < 120
    [line] = first["expiring"]
    assert (line["credits"], line["kind"]) == (300, "free")
    assert abs(datetime.fromisoformat(line["expiresAt"]).timestamp() - (time.time() + 14 * 86_400)) < 120
    assert [guard.guard_id for guard in CreditGuard.query("newcomer", consistent_read=True)] == ["signup"]


@pytest.mark.usefixtures("signup")
def test_first_visits_that_race_give_it_once() -> None:
    start = threading.Barrier(6)

    def go() -> None:
        start.wait()
        visit("racer")

    threads = [threading.Thread(target=go) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [int(row.amount) for row in rows("racer")] == [300]
    assert visit("racer")["balance"] == 300


@pytest.mark.usefixtures("signup")
def test_a_user_with_history_gets_nothing() -> None:
    ledger.add_credits("veteran", 1000, source="stripe_payment", payment_id=str(ULID()), currency="usd")

    assert visit("veteran")["balance"] == 1000
    assert len(rows("veteran")) == 1


def test_no_sign_up_credits_by_default() -> None:
    assert visit("plain")["balance"] == 0
    assert rows("plain") == []

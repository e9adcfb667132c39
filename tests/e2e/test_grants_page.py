"""The balance card names the credits that expire in the next 30 days ("$5.00 of promotional credits
expire on 12 Jan 2027"), the history labels free and expired credits, and axe finds no violation."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage
from tests.e2e.test_accessibility import assert_no_violations
from tests.e2e.test_history import DEVSTACK_SETTINGS, StackLedger, stack_ledger
from wallet import expiry, projection, promotions

__all__ = ["DEVSTACK_SETTINGS", "stack_ledger"]  # the fixtures these tests share with the history's

OPERATOR = "arn:aws:iam::123456789012:user/operator"
DAY = 86_400


def give(user: str, credits: int, days: float, key: str) -> datetime:
    moment = datetime.fromtimestamp(int(time.time() + days * DAY), UTC)
    promotions.grant(
        user, credits, reason="Launch offer", expires_at=moment.isoformat(), idempotency_key=key,
        actor=OPERATOR, currency="usd",
    )  # fmt: skip
    return moment


def test_credits_expiring_soon_are_named_and_expired_ones_labelled(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given a paid top-up, 5.00 of promotional credits expiring in 10 days, 2.00 in 60 days (not named),
    # and 1.00 that expired and was swept
    stack_ledger.deposit(user, 1000)
    soon = give(user, 500, 10, "soon")
    give(user, 200, 60, "later")
    give(user, 100, 0.5, "gone")
    assert expiry.expire(user, time.time() + DAY + projection.SETTLE_SECONDS, "usd").credits == 100

    # When the page is loaded again
    page.reload()

    # Then the card names what expires soon, on the day the reader's locale writes
    credits.expect_balance("$17.00", rows=5)
    day = page.evaluate(
        "iso => new Intl.DateTimeFormat(undefined, {dateStyle: 'medium'}).format(new Date(iso))",
        soon.isoformat(),
    )
    expect(page.get_by_test_id("expiring")).to_have_text(f"$5.00 of promotional credits expire on {day}")
    # And the history says which rows were free credits and which expired
    expect(page.locator("#history-rows .type-label").first).to_have_text("Credits expired")
    expect(page.locator("#history-rows .type-detail").first).to_have_text("Not used before they expired")
    expect(page.locator("#history-rows .type-label").nth(1)).to_have_text("Free credits")
    credits.screenshot("30-credits-expiring-and-expired")
    assert_no_violations(page, "credits expiring soon, expired and free credits in the history")

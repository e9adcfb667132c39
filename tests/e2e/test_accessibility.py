"""axe-core (the engine behind Lighthouse's accessibility audit) finds no violation in any state of the
page: signed out, a history of every row type, a negative balance, a balance with a hold beside what is
left to spend and every row a hold writes, and the auto top-up card with an error showing beside its
field, stopped with its reason, and paused."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CreditsPage
from tests.e2e.test_auto_top_up_card import outcome, with_saved_card
from tests.e2e.test_history import DEVSTACK_SETTINGS, StackLedger, stack_ledger

__all__ = ["DEVSTACK_SETTINGS", "stack_ledger"]  # the fixtures these tests share with the history's

AXE = Axe()


def assert_no_violations(page: Page, state: str) -> None:
    results = AXE.run(page)
    assert results.violations_count == 0, f"{state}:\n{results.generate_report()}"


def test_signed_out(credits: CreditsPage) -> None:
    credits.open()

    assert_no_violations(credits.page, "signed out")


def test_a_history_of_every_row_type_and_a_negative_balance(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    payment = stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 800, "Batch of 80 renders")
    stack_ledger.adjust(user, 100, "Goodwill")
    inquiry = {"object": "dispute", "id": "dp_a11y", "amount": 1000}
    stack_ledger.stripe_says(
        "charge.dispute.created", payment, inquiry | {"status": "warning_needs_response"}
    )
    stack_ledger.stripe_says("charge.dispute.closed", payment, inquiry | {"status": "warning_closed"})
    stack_ledger.refund(payment, 1000, paid=1000)

    page.reload()

    credits.expect_balance("\u2212$7.00", rows=6)
    assert_no_violations(page, "history of every row type, negative balance")


def test_a_balance_with_a_hold_and_a_history_of_every_hold_row(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 5000)
    captured = stack_ledger.hold(user, 500, "Render job 7")
    stack_ledger.capture(user, captured, 500, 300, "Render job 7")
    released = stack_ledger.hold(user, 200, "Render job 8")
    stack_ledger.release(user, released, 200, "Render job 8")
    expired = stack_ledger.hold(user, 100, "Render job 9")
    stack_ledger.release(user, expired, 100, "Render job 9", expired=True)
    stack_ledger.hold(user, 400, "Render job 10")

    page.reload()

    # Each hold is one row; those that used nothing show under the reservations filter
    credits.expect_balance("$47.00", rows=3)
    expect(page.get_by_test_id("balance-available")).to_have_text("$43.00 available")
    assert_no_violations(page, "a balance with a hold, and its history folded")
    page.get_by_label("Show").select_option("holds")
    expect(credits.rows).to_have_count(4)
    assert_no_violations(page, "a balance with a hold, and every hold under the reservations filter")


def test_the_auto_top_up_card_with_an_error_beside_its_field(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    page.reload()
    expect(page.get_by_test_id("saved-card")).to_be_visible()
    assert_no_violations(page, "auto top-up card with a saved card")

    page.get_by_label("Turn on auto top-up").check()
    page.get_by_label("When the balance falls below ($)").fill("")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.get_by_test_id("auto-top-up-threshold-error")).to_be_visible()

    assert_no_violations(page, "auto top-up card with an error showing")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("failed", "Your VISA card ending 4242 was declined: insufficient funds. Save another card."),
        ("limit_reached", "Auto top-up charged your card 3 times in 24 hours and paused."),
    ],
)
def test_the_auto_top_up_card_stopped_or_paused_with_its_reason(
    credits: CreditsPage, stack_ledger: StackLedger, status: str, reason: str
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    outcome(user, status, reason, enabled=status == "limit_reached")

    page.reload()

    expect(page.get_by_text(reason)).to_be_visible()
    assert_no_violations(page, f"auto top-up card, {status}")

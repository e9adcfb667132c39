"""The low balance email card in a real browser, checked by axe-core in each state: off by default, an
amount out of bounds shown beside its field (nothing saved), turned on to the address the sign-in
verified, then the email itself in the stack's mail sink once the balance dips below, and turned off."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CreditsPage
from tests.e2e.test_history import DEVSTACK_SETTINGS, StackLedger, stack_ledger
from tests.integration.test_devstack import call, settle

__all__ = ["DEVSTACK_SETTINGS", "stack_ledger"]
AXE = Axe()


def assert_no_violations(page: Page, state: str) -> None:
    results = AXE.run(page)
    assert results.violations_count == 0, f"{state}:\n{results.generate_report()}"


def mail(credits: CreditsPage) -> list[dict[str, Any]]:
    settle(credits.stack)
    status, body = call("GET", f"{credits.stack.url}/local/mail")
    assert status == 200, body
    return list(body["mail"])


def test_turn_it_on_get_one_email_when_the_balance_dips_then_turn_it_off(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    address = f"{user}@users.credits.test"
    status = page.get_by_test_id("low-balance-email-status")
    enabled = page.get_by_label("Email me when my balance is low")
    amount = page.get_by_label("Email me below this balance ($)")
    save = page.get_by_role("button", name="Save low balance email")

    # Off by default
    expect(status).to_have_text("Off.")
    expect(enabled).not_to_be_checked()
    assert_no_violations(page, "the low balance email, off")

    # An amount past the bound is said beside the field, and nothing is saved
    enabled.check()
    amount.fill("1000000.01")
    save.click()
    expect(page.get_by_test_id("low-balance-email-threshold-error")).to_have_text(
        "Enter an amount from $0.01 to $1,000,000.00."
    )
    expect(amount).to_have_attribute("aria-invalid", "")
    assert_no_violations(page, "the low balance email, an amount out of bounds")
    page.reload()
    expect(status).to_have_text("Off.")

    # Turned on at $5.00, to the sign-in's address
    enabled.check()
    amount.fill("5")
    save.click()
    message = page.get_by_test_id("low-balance-email-message")
    expect(message).to_have_text("Saved: the low balance email is on.")
    expect(status).to_have_text(f"On: we email {address} once each time your balance falls below $5.00.")
    assert_no_violations(page, "the low balance email, on")

    # When the balance goes from $10.00 to $4.00, one email says so, with the page's link
    stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 600, "Batch of 60 renders")
    [sent] = [m for m in mail(credits) if address in m["to"]]
    assert "Your balance is 400 credits, below the 500" in sent["text"]
    assert f"{credits.stack.url}/dashboard/credits/" in sent["text"]

    # And turned off, the form says so
    enabled.uncheck()
    save.click()
    expect(message).to_have_text("Saved: the low balance email is off.")
    expect(status).to_have_text("Off.")

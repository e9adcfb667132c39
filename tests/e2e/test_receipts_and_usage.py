"""A top-up's receipt and invoice, the last 30 days as a chart with its table and sentence, and the CSV
export, on the page, with InvoicesEnabled on: each reached by keyboard and checked by axe-core."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage
from tests.e2e.test_accessibility import assert_no_violations
from tests.e2e.test_history import DEVSTACK_SETTINGS as LEDGER_SETTINGS
from tests.e2e.test_history import StackLedger, stack_ledger

__all__ = ["stack_ledger"]  # the fixture these tests share with the history's

DEVSTACK_SETTINGS = LEDGER_SETTINGS | {"INVOICES_ENABLED": "true"}


def test_a_top_up_links_its_receipt_and_its_invoice(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    credits.buy("$10")
    credits.checkout("Pay")
    credits.expect_balance("$10.00", rows=1)

    # The top-up's row offers its receipt; asking for it shows Stripe's links, the first one focused
    page.get_by_role("button", name=re.compile(r"^Get receipt for the top-up of")).click()
    receipt = page.get_by_role("link", name=re.compile(r"^Receipt for the top-up of"))
    invoice = page.get_by_role("link", name=re.compile(r"^Invoice for the top-up of"))
    pdf = page.get_by_role("link", name=re.compile(r"^Invoice PDF for the top-up of"))
    expect(receipt).to_be_focused()
    expect(invoice).to_be_visible()
    expect(pdf).to_have_attribute("href", re.compile(r"/invoices/in_\w+/pdf$"))
    assert_no_violations(page, "a top-up with its receipt and invoice links")

    # The receipt opens from the keyboard: Stripe's page for the charge (the emulator's)
    page.keyboard.press("Enter")
    page.wait_for_url("**/receipts/ch_*")
    expect(page.get_by_text("10.00 USD").first).to_be_visible()
    page.go_back()
    page.wait_for_url("**/dashboard/credits/**")

    # And the invoice's page, paid, with its PDF
    page.get_by_role("button", name=re.compile(r"^Get receipt for the top-up of")).click()
    page.get_by_role("link", name=re.compile(r"^Invoice for the top-up of")).click()
    page.wait_for_url("**/invoices/in_*")
    expect(page.get_by_role("cell", name="paid")).to_be_visible()
    expect(page.get_by_role("link", name="Download the invoice (PDF)")).to_be_visible()


def test_the_last_30_days_as_a_chart_a_sentence_and_a_table(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 5000)
    stack_ledger.spend(user, 1250, "Renders")
    stack_ledger.spend(user, 250, "Renders")

    page.reload()
    credits.expect_balance("$35.00", rows=3)

    # The picture is named by its sentence; the bars and the top-up's mark are drawn
    summary = page.get_by_test_id("usage-summary")
    today = datetime.now(UTC)
    # en-US, as the page's reader is: "Dec 7"
    label = f"{today:%b} {today.day}"
    expect(summary).to_have_text(
        f"$15.00 used over the last 30 days, the most on {label} ($15.00); 1 top-up."
    )
    chart = page.get_by_role("img", name=re.compile(r"^\$15\.00 used over the last 30 days"))
    expect(chart).to_be_visible()
    expect(page.locator("#usage-chart rect.usage-bar")).to_have_count(1)
    expect(page.locator("#usage-chart path.usage-topup")).to_have_count(1)

    # The numbers, as a table, open from the keyboard
    page.get_by_text("Show the numbers as a table").focus()
    page.keyboard.press("Enter")
    rows = page.locator("#usage-rows tr")
    expect(rows).to_have_count(30)
    expect(rows.last).to_have_text(re.compile(rf"^{label}\s*\$15\.00\s*\$50\.00 \(1\)$"))
    expect(rows.first).to_have_text(re.compile(r"\$0\.00\s*—$"))
    assert_no_violations(page, "the last 30 days, chart and table open")


def test_the_history_exports_as_csv_for_a_chosen_range(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 300, "=cmd|' /C calc'!A0")
    page.reload()
    credits.expect_balance("$7.00", rows=2)
    today = datetime.now(UTC).date()

    # A range the API would refuse is said beside the form, and nothing is asked
    page.get_by_label("From").fill(str(today))
    page.get_by_label("To (included)").fill(str(today - timedelta(days=1)))
    page.get_by_role("button", name="Download CSV").click()
    expect(page.get_by_test_id("export-message")).to_have_text("The last day must not be before the first.")

    # The file the API makes, for the chosen days
    page.get_by_label("To (included)").fill(str(today))
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download CSV").click()
    download = downloading.value
    assert download.suggested_filename == f"credits-{today}-to-{today}.csv"
    rows = list(csv.reader(io.StringIO(download.path().read_text(encoding="utf-8"), newline="")))
    assert rows[0] == [
        "date",
        "transaction_id",
        "type",
        "source",
        "description",
        "credits",
        "value_usd",
        "paid_usd",
        "payment_id",
    ]
    assert [(row[2], row[4], row[5], row[6]) for row in rows[1:]] == [
        ("deposit", "", "1000", "10.00"),
        ("spend", "'=cmd|' /C calc'!A0", "-300", "-3.00"),
    ]
    expect(page.get_by_test_id("export-message")).to_have_text(f"Downloaded credits-{today}-to-{today}.csv.")
    assert_no_violations(page, "the export form, after a download")

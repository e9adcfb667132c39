"""Any amount, tax added on top and a promotion code, in a real browser: the customer pays what Checkout
shows, and the balance grows by the amount chosen. The totals expected are worked by hand from Stripe's
rule (tax on the discounted subtotal, added on top for an exclusive price) at the emulator's 10% test
rate, rounded half up to the cent."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage

DEVSTACK_SETTINGS = {"TAX_ENABLED": "true", "TAX_BEHAVIOR": "exclusive", "PROMOTION_CODES_ENABLED": "true"}


def total_due(credits: CreditsPage) -> str:
    return credits.page.locator(".total strong").inner_text()


def test_an_other_amount_with_a_code_and_tax_on_top_credits_the_amount_chosen(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    expect(page.get_by_text("From $5.00 to $1,000.00.")).to_be_visible()

    page.get_by_label("Other amount").fill("12.34")
    page.get_by_role("button", name="Pay this amount").click()
    page.wait_for_url("**/checkout/cs_*")
    # 1234 + 10% (123.4 -> 123) = 1357
    assert total_due(credits) == "13.57 USD"
    page.get_by_label("Promotion code").fill("save20")
    page.get_by_role("button", name="Apply").click()
    # 20% off 1234 is 246.8 -> 247; 10% of the 987 left is 98.7 -> 99; 987 + 99 = 1086
    expect(page.locator(".total strong")).to_have_text("10.86 USD")
    expect(page.get_by_role("list", name="Totals")).to_contain_text("\u22122.47 USD")
    credits.screenshot("20-checkout-code-and-tax")
    credits.checkout("Pay")

    credits.expect_balance("$12.34", rows=1)
    expect(credits.status).to_have_text("Payment complete — $12.34 added to your balance.")


def test_a_pack_with_a_code_off_and_tax_on_top_credits_the_pack(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()

    credits.buy("$50")
    # 5000 + 10% = 5500
    assert total_due(credits) == "55.00 USD"
    page.get_by_label("Promotion code").fill("NOSUCHCODE")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("This code is invalid")
    assert total_due(credits) == "55.00 USD"
    page.get_by_label("Promotion code").fill("FIVEOFF")
    page.get_by_role("button", name="Apply").click()
    # 5000 - 500 = 4500, + 10% = 4950
    expect(page.locator(".total strong")).to_have_text("49.50 USD")
    credits.checkout("Pay")

    credits.expect_balance("$50.00", rows=1)


def test_an_other_amount_out_of_bounds_is_refused_on_the_page(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()

    for typed in ("4.99", "1000.01", "12.345", "ten"):
        page.get_by_label("Other amount").fill(typed)
        page.get_by_role("button", name="Pay this amount").click()
        expect(page.get_by_text("Enter an amount from $5.00 to $1,000.00.")).to_be_visible()
        expect(page.get_by_label("Other amount")).to_have_attribute("aria-invalid", "")

    assert "/checkout/" not in page.url
    credits.expect_balance("$0.00", rows=0)

"""Tax inside the price, in a real browser: Checkout shows the tax the price holds, the customer pays the
price, and the balance grows by the pack. At the emulator's 10% test rate, 10% inside $50.00 is
5000 x 10 / 110 = 454.5, rounded half up to $4.55 (Stripe: "the amount your buyer pays never changes")."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage

DEVSTACK_SETTINGS = {"TAX_ENABLED": "true", "TAX_BEHAVIOR": "inclusive"}


def test_tax_inside_the_price_is_shown_and_the_pack_is_credited(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()

    credits.buy("$50")
    expect(page.get_by_role("list", name="Totals")).to_contain_text("Tax included 4.55 USD")
    expect(page.locator(".total strong")).to_have_text("50.00 USD")
    expect(page.get_by_label("Promotion code")).to_have_count(0)
    credits.checkout("Pay")

    credits.expect_balance("$50.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $50.00 added to your balance.")

"""A price list with a bonus pack: the page shows what the pack adds, and the balance grows by that much."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage

DEVSTACK_SETTINGS = {"CREDIT_PACKS": "1000,5000:5500,10000"}


def test_bonus_pack_shows_and_adds_its_credits(credits: CreditsPage) -> None:
    credits.open()
    credits.sign_in()
    expect(credits.pack("$50")).to_have_text("$50 Adds $55.00 +$5.00 bonus")
    expect(credits.pack("$10")).to_have_text("$10 Adds $10.00")
    credits.screenshot("13-bonus-pack")

    credits.buy("$50")
    credits.checkout("Pay")
    credits.expect_balance("$55.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $55.00 added to your balance.")
    expect(credits.rows.first).to_contain_text("+$55.00")

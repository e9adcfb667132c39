"""The auto top-up card in a real browser: no card, a saved card, on, failed with its reason, paused at the
daily limit, and removing the card. The saved card and the trigger's outcomes are written into the
running stack's balance item by `wallet.auto_top_up` itself, as the webhook and the trigger write them."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import CreditsPage
from tests.e2e.test_history import DEVSTACK_SETTINGS, StackLedger, stack_ledger
from wallet import auto_top_up
from wallet.models import CreditBalance
from wallet.payments import ChargeFailure, SavedCard

DECLINED = auto_top_up.failure_reason(
    ChargeFailure("card_declined", "generic_decline", final=True), auto_top_up.Card("visa", "4242", 12, 2034)
)

__all__ = ["DEVSTACK_SETTINGS", "stack_ledger"]


def outcome(user: str, status: str, reason: str) -> None:
    """What the trigger or the webhook leaves on the balance item when auto top-up stops itself."""
    CreditBalance(user).update(
        actions=[
            CreditBalance.auto_top_up.set(False),
            CreditBalance.auto_top_up_status.set(status),
            CreditBalance.auto_top_up_reason.set(reason),
        ]
    )


def test_the_card_shows_every_state_and_a_removed_card_turns_it_off(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    status, reason, saved = (
        page.get_by_test_id(name) for name in ("auto-top-up-status", "auto-top-up-reason", "saved-card")
    )
    credits.open()
    user = credits.sign_in()

    # Without a card it is off and cannot be turned on
    expect(status).to_have_text("Off")
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    expect(page.get_by_label("Turn on auto top-up")).to_be_disabled()

    # Given a balance above the threshold and a card saved on Stripe
    stack_ledger.deposit(user, 2000)
    customer = auto_top_up.customer_of(user, lambda _: f"cus_{user}")
    auto_top_up.save_card(SavedCard("pm_e2e_visa", customer, "visa", "4242", 12, 2034))
    page.reload()
    expect(saved).to_have_text("VISA •••• 4242, expires 12/2034")

    # When the user turns it on below $5 with the $10 pack
    page.get_by_label("Turn on auto top-up").check()
    page.get_by_label("When the balance falls below ($)").fill("5")
    page.get_by_label("Add this pack").select_option("1000")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(status).to_have_text("On")
    expect(credits.status).to_have_text("Auto top-up saved.")
    credits.screenshot("20-auto-top-up-on")

    # A declined payment turns it off with the reason the user can act on
    outcome(user, "failed", DECLINED)
    page.reload()
    expect(status).to_have_text("Off — the last automatic payment failed")
    expect(reason).to_have_text(DECLINED)
    credits.screenshot("21-auto-top-up-failed")

    # The daily limit pauses it, saying so
    outcome(user, "limit_reached", auto_top_up.limit_reason(3, 2_000_000_000))
    page.reload()
    expect(status).to_have_text("Paused — daily limit reached")
    expect(reason).to_contain_text("3 times in 24 hours")

    # Removing the card turns it off
    page.get_by_role("button", name="Remove card").click()
    expect(credits.status).to_have_text("Card removed; auto top-up is off.")
    expect(status).to_have_text("Off")
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    expect(page.get_by_label("Turn on auto top-up")).to_be_disabled()
    expect(reason).to_be_hidden()

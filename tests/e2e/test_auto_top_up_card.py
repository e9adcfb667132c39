"""The auto top-up card in a real browser: no card, a saved card, on, failed with its reason, paused at the
daily limit, and removing the card. The saved card and the trigger's outcomes are written into the
running stack's balance item by `wallet.auto_top_up` itself, as the webhook and the trigger write them."""

from __future__ import annotations

import re

from playwright.sync_api import Route, expect

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
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text("Auto top-up saved.")
    expect(page.get_by_test_id("auto-top-up-message")).to_be_in_viewport()
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
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text("Card removed; auto top-up is off.")
    expect(status).to_have_text("Off")
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    expect(page.get_by_label("Turn on auto top-up")).to_be_disabled()
    expect(reason).to_be_hidden()


# Sums the page's unexpected layout shifts (Chromium's layout-shift entries) into window.layoutShift.
LAYOUT_SHIFTS = """
window.layoutShift = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.layoutShift += entry.value;
}).observe({ type: "layout-shift", buffered: true });
"""


def with_saved_card(user: str, stack_ledger: StackLedger) -> None:
    stack_ledger.deposit(user, 2000)
    customer = auto_top_up.customer_of(user, lambda _: f"cus_{user}")
    auto_top_up.save_card(SavedCard("pm_e2e_visa", customer, "visa", "4242", 12, 2034))


def test_an_empty_threshold_is_refused_beside_its_field_and_nothing_is_saved(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    page.reload()
    expect(page.get_by_test_id("saved-card")).to_have_text("VISA •••• 4242, expires 12/2034")

    # Its fields look like the page's other fields, not the browser's defaults
    styles = page.evaluate(
        """() => ["#user-name", "#auto-top-up-threshold", "#auto-top-up-pack"].map((selector) => {
          const style = getComputedStyle(document.querySelector(selector));
          const { borderTopColor, borderRadius, minHeight, fontSize, appearance } = style;
          return [borderTopColor, borderRadius, minHeight, fontSize, appearance];
        })"""
    )
    assert styles[1][:4] == styles[0][:4] == styles[2][:4], styles
    assert styles[2][4] == "none", "the pack select keeps the browser's own look"
    checkbox = page.evaluate("getComputedStyle(document.getElementById('auto-top-up-enabled')).accentColor")
    assert checkbox == "rgb(29, 78, 216)", checkbox

    # When the user turns it on with no threshold and presses Save
    page.get_by_label("Turn on auto top-up").check()
    threshold = page.get_by_label("When the balance falls below ($)")
    threshold.fill("")
    page.get_by_role("button", name="Save auto top-up").click()

    # Then the error is beside the field, in view, tied to it, and nothing was saved
    error = page.get_by_test_id("auto-top-up-threshold-error")
    expect(error).to_have_text("Enter a threshold, such as 5 for $5.00.")
    expect(error).to_be_in_viewport()
    expect(threshold).to_be_focused()
    expect(threshold).to_have_attribute("aria-invalid", "")
    expect(threshold).to_have_accessible_description("Enter a threshold, such as 5 for $5.00.")
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text("")
    expect(credits.status).to_have_text("")
    assert auto_top_up.view(user).enabled is False
    assert auto_top_up.view(user).threshold is None
    credits.screenshot("22-auto-top-up-threshold-error")

    # A threshold past the bound is refused the same way
    threshold.fill("90071992547410")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(error).to_have_text("Enter a threshold of at most $90,071,992,547,409.91.")

    # Typing again clears the error, and a threshold in dollars and cents is saved as minor units
    threshold.fill("7.5")
    expect(error).to_be_hidden()
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text("Auto top-up saved.")
    assert auto_top_up.view(user).threshold == 750
    page.reload()
    expect(threshold).to_have_value("7.50")


def test_back_from_saving_a_card_the_card_confirms_it_once_and_the_address_forgets_it(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given Stripe saved the card and sent the user back, as the card setup page does
    with_saved_card(user, stack_ledger)
    page.goto("/dashboard/credits/?card=saved")

    # Then the auto top-up card says so, and the address no longer carries it
    message = page.get_by_test_id("auto-top-up-message")
    expect(message).to_have_text("Card saved: auto top-up can be turned on.")
    expect(page).to_have_url(re.compile(r"/dashboard/credits/$"))
    credits.screenshot("23-auto-top-up-card-saved")

    # and a reload says nothing more
    page.reload()
    expect(page.get_by_test_id("auto-top-up-status")).to_have_text("Off")
    expect(message).to_have_text("")


def test_the_card_holds_its_place_while_it_loads(credits: CreditsPage, stack_ledger: StackLedger) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)

    # When the page loads again and its history shows while the auto top-up settings are still on their way
    held: list[Route] = []
    page.route("**/api/auto-top-up", lambda route: held.append(route))
    page.add_init_script(LAYOUT_SHIFTS)
    page.reload()
    expect(credits.rows).to_have_count(1)
    expect(page.get_by_test_id("auto-top-up-status")).to_have_text("Loading…")
    assert len(held) == 1
    held[0].continue_()
    expect(page.get_by_test_id("saved-card")).to_have_text("VISA •••• 4242, expires 12/2034")

    # Then nothing below it moved when it filled in
    shift = page.evaluate("window.layoutShift")
    assert shift < 0.01, f"layout shift {shift}"

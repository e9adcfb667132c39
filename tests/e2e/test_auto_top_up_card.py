"""The auto top-up card in a real browser: no card, a saved card, on, failed with its reason, paused at the
daily limit until a time shown in the reader's clock, a card detached at Stripe, the threshold bounded by
the chosen pack, and removing the card. The saved card and the trigger's outcomes are written into the
running stack's balance item by `wallet.auto_top_up` itself, as the webhook and the trigger write them,
or made for real through the Stripe emulator and the stack's webhook."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import stripe
from playwright.sync_api import Browser, Route, expect

from devstack.stripe_emulator import DEFAULT_API_KEY
from tests.devstack_process import DevStackProcess
from tests.e2e.conftest import SCREENSHOTS, CreditsPage, credits_page
from tests.e2e.test_history import DEVSTACK_SETTINGS, StackLedger, stack_ledger
from tests.waiting import wait_until
from wallet import auto_top_up
from wallet.models import CreditBalance
from wallet.payments import ChargeFailure, SavedCard

DECLINED = auto_top_up.failure_reason(
    ChargeFailure("card_declined", "generic_decline", final=True), auto_top_up.Card("visa", "4242", 12, 2034)
)

__all__ = ["DEVSTACK_SETTINGS", "stack_ledger"]
SAVED_ON = "Saved: auto top-up is on."
ON_SUMMARY = (
    "When your balance falls below $5.00, we charge $10 to VISA \u2022\u2022\u2022\u2022 4242, once per dip."
)


def outcome(user: str, status: str, reason: str, *, enabled: bool = False) -> None:
    """What the trigger or the webhook leaves on the balance item when auto top-up stops or pauses itself."""
    CreditBalance(user).update(
        actions=[
            CreditBalance.auto_top_up.set(enabled),
            CreditBalance.auto_top_up_status.set(status),
            CreditBalance.auto_top_up_reason.set(reason),
        ]
    )


def shoot(credits: CreditsPage, name: str) -> None:
    """The auto top-up card as a reader sees it, wide and narrow (test-results/screenshots)."""
    page = credits.page
    card = page.locator("#auto-top-up")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        expect(card).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        card.screenshot(path=SCREENSHOTS / f"auto-top-up-{name}-{width}px.png", animations="disabled")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_card_shows_every_state_and_a_removed_card_turns_it_off(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    status, reason, saved, summary, message = (
        page.get_by_test_id(name)
        for name in (
            "auto-top-up-status",
            "auto-top-up-reason",
            "saved-card",
            "auto-top-up-summary",
            "auto-top-up-message",
        )
    )
    enabled, threshold = (
        page.get_by_label("Turn on auto top-up"),
        page.get_by_label("When the balance falls below ($)"),
    )
    save = page.get_by_role("button", name="Save auto top-up")
    credits.open()
    user = credits.sign_in()

    # Without a card it is off, and nothing in its form can be changed or saved
    expect(status).to_have_text("Off")
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    for control in (enabled, threshold, page.get_by_label("Add this pack"), save):
        expect(control).to_be_disabled()
    expect(summary).to_be_hidden()
    shoot(credits, "1-no-card")

    # Given a balance above the threshold and a card saved on Stripe, it is off until turned on
    stack_ledger.deposit(user, 2000)
    customer = auto_top_up.customer_of(user, lambda _: f"cus_{user}")
    auto_top_up.save_card(SavedCard("pm_e2e_visa", customer, "visa", "4242", 12, 2034))
    page.reload()
    expect(saved).to_have_text("VISA •••• 4242, expires 12/2034")
    expect(status).to_have_text("Off")
    expect(enabled).to_be_enabled()
    shoot(credits, "2-card-saved-off")

    # A threshold of 0 is refused beside the field: a spend never takes the balance below it
    enabled.check()
    threshold.fill("0")
    save.click()
    expect(page.get_by_test_id("auto-top-up-threshold-error")).to_have_text(
        "Enter a threshold of at least $0.01: spending stops at $0.00."
    )
    assert auto_top_up.view(user).enabled is False
    shoot(credits, "3-threshold-0-refused")

    # When the user turns it on below $5 with the $10 pack, it says in a sentence what will happen
    threshold.fill("5")
    page.get_by_label("Add this pack").select_option("1000")
    save.click()
    expect(status).to_have_text("On")
    expect(message).to_have_text(SAVED_ON)
    expect(message).to_be_in_viewport()
    expect(summary).to_have_text(ON_SUMMARY)
    credits.screenshot("20-auto-top-up-on")
    shoot(credits, "4-on")

    # Saved off again, it says so, and no sentence promises a charge
    enabled.uncheck()
    save.click()
    expect(status).to_have_text("Off")
    expect(message).to_have_text("Saved: auto top-up is off.")
    expect(summary).to_be_hidden()
    enabled.check()
    save.click()
    expect(status).to_have_text("On")

    # A declined payment turns it off with the reason the user can act on
    outcome(user, "failed", DECLINED)
    page.reload()
    expect(status).to_have_text("Off — stopped, see why below")
    expect(reason).to_have_text(DECLINED)
    expect(summary).to_be_hidden()
    credits.screenshot("21-auto-top-up-failed")
    shoot(credits, "5-failed")

    # The daily limit pauses it, saying so
    # (without a time to resume, the status still says why)
    outcome(user, "limit_reached", auto_top_up.limit_reason(3, 2_000_000_000), enabled=True)
    page.reload()
    expect(status).to_have_text("Paused — daily limit reached")
    expect(reason).to_contain_text("3 times in 24 hours")
    expect(enabled).to_be_checked()
    shoot(credits, "6-paused")

    # Removing the card turns it off
    page.get_by_role("button", name="Remove card").click()
    expect(message).to_have_text("Card removed; auto top-up is off.")
    expect(status).to_have_text("Off")
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    expect(enabled).to_be_disabled()
    expect(save).to_be_disabled()
    expect(reason).to_be_hidden()
    shoot(credits, "7-card-removed")


def test_replacing_the_card_while_it_is_on_says_the_new_card_is_charged(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given auto top-up on with a saved card
    with_saved_card(user, stack_ledger)
    auto_top_up.configure(user, enabled=True, threshold=500, amount=1000)

    # When Stripe's setup page sends the user back with another card saved
    customer = auto_top_up.customer_of(user, lambda _: f"cus_{user}")
    auto_top_up.save_card(SavedCard("pm_e2e_mastercard", customer, "mastercard", "4444", 1, 2035))
    page.goto("/dashboard/credits/?card=saved")

    # Then the card says it is the one charged from now on, not that auto top-up "can be turned on"
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text(
        "Card saved: auto top-up now charges this card."
    )
    expect(page.get_by_test_id("auto-top-up-summary")).to_have_text(
        "When your balance falls below $5.00, we charge $10 to MASTERCARD "
        "\u2022\u2022\u2022\u2022 4444, once per dip."
    )
    shoot(credits, "8-card-replaced-while-on")


def test_the_card_fills_in_when_the_balance_cannot_be_read(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    auto_top_up.configure(user, enabled=True, threshold=500, amount=1000)

    # When the balance request fails but the auto top-up settings are read
    credits.expect_failing("/api/balance")
    page.route(
        "**/api/balance*",
        lambda route: route.fulfill(status=500, json={"error": {"code": "x", "message": "x"}}),
    )
    page.reload()

    # Then the page says the balance failed, and the card shows its own state with its buttons usable
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_test_id("auto-top-up-status")).to_have_text("On")
    expect(page.get_by_role("button", name="Save auto top-up")).to_be_enabled()
    expect(page.get_by_role("button", name="Use another card")).to_be_enabled()
    # and the balance it could not read is a light placeholder, not a heavy bar that reads as a value
    expect(credits.balance).to_have_text("\u2014")
    expect(credits.balance).to_have_css("font-weight", "300")
    shoot(credits, "9-balance-unreadable")
    credits.screenshot("balance-unreadable")


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
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text(SAVED_ON)
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
    expect(message).to_have_text("Card saved: turn auto top-up on below.")
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


# A reader whose clock is not UTC, nor a whole number of hours from it, in a locale that writes 24-hour time.
KOLKATA = ZoneInfo("Asia/Kolkata")
DAY_SECONDS = 24 * 60 * 60


@pytest.fixture
def credits_in_kolkata(
    browser: Browser, devstack: DevStackProcess, request: pytest.FixtureRequest
) -> Iterator[CreditsPage]:
    yield from credits_page(browser, devstack, request, locale="en-GB", timezone_id="Asia/Kolkata")


def charged(user: str, *times: float) -> None:
    """Charges Stripe made for auto top-up at `times`, as the trigger records them on the balance item."""
    CreditBalance(user).update(actions=[CreditBalance.auto_top_up_charges.set(list(times))])


def test_paused_at_the_daily_limit_it_stays_on_and_says_until_when_in_the_readers_time(
    credits_in_kolkata: CreditsPage, stack_ledger: StackLedger
) -> None:
    credits = credits_in_kolkata
    page = credits.page
    status, reason = page.get_by_test_id("auto-top-up-status"), page.get_by_test_id("auto-top-up-reason")
    enabled = page.get_by_label("Turn on auto top-up")
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    # Given the daily limit of 3 charges was reached in the last hour
    now = time.time()
    charged(user, now - 3600, now - 1800, now - 60)
    resumes_at = math.ceil(now - 3600 + DAY_SECONDS)
    page.reload()
    expect(page.get_by_test_id("saved-card")).to_have_text("VISA •••• 4242, expires 12/2034")

    # When the user turns auto top-up on
    enabled.check()
    page.get_by_label("When the balance falls below ($)").fill("5")
    page.get_by_label("Add this pack").select_option("1000")
    page.get_by_role("button", name="Save auto top-up").click()

    # Then it is on but paused, until the minute the oldest charge is 24 hours old, in the reader's time
    local = datetime.fromtimestamp(math.ceil(resumes_at / 60) * 60, UTC).astimezone(KOLKATA)
    until = f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"
    expect(status).to_have_text(f"Paused until {until}")
    expect(reason).to_have_text(auto_top_up.limit_reason(3, resumes_at))
    expect(enabled).to_be_checked()
    saved = auto_top_up.view(user)
    assert (saved.enabled, saved.status, saved.resumes_at) == (
        True,
        auto_top_up.Status.LIMIT_REACHED,
        resumes_at,
    )
    background = reason.evaluate("element => getComputedStyle(element).backgroundColor")
    assert background == "rgb(255, 250, 235)", f"a pause is a warning, not {background}"
    credits.screenshot("24-auto-top-up-paused-until")

    # and a reload says the same
    page.reload()
    expect(status).to_have_text(f"Paused until {until}")
    expect(enabled).to_be_checked()


def test_a_card_detached_at_stripe_shows_as_no_card_with_the_reason_as_an_error(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    status, reason = page.get_by_test_id("auto-top-up-status"), page.get_by_test_id("auto-top-up-reason")
    saved = page.get_by_test_id("saved-card")
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 2000)

    # Given a card saved on Stripe's setup page and auto top-up turned on with it
    page.get_by_role("button", name="Save a card").click()
    page.wait_for_url("**/checkout/cs_*")
    emulator = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    credits.checkout("Save Visa •••• 4242")
    # Stripe tells the webhook of the saved card in its own time (payment_method.attached)
    wait_until(lambda: auto_top_up.view(user).card is not None, "the card saved by payment_method.attached")
    page.reload()
    expect(saved).to_contain_text("VISA •••• 4242")
    page.get_by_label("Turn on auto top-up").check()
    page.get_by_label("When the balance falls below ($)").fill("5")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(status).to_have_text("On")

    # When the card is detached at Stripe, as from the Dashboard
    card = CreditBalance.get(user, consistent_read=True).payment_method_id
    assert card, "the saved card's id"
    stripe.StripeClient(DEFAULT_API_KEY, base_addresses={"api": emulator}).v1.payment_methods.detach(card)
    wait_until(
        lambda: auto_top_up.view(user).status is auto_top_up.Status.FAILED,
        "auto top-up stopped by the card's payment_method.detached",
    )
    page.reload()

    # Then the page shows no card, and auto top-up off with the reason, as an error
    expect(saved).to_have_text("No card saved. Save one to turn auto top-up on.")
    expect(status).to_have_text("Off — stopped, see why below")
    expect(reason).to_have_text(str(auto_top_up.view(user).reason))
    expect(reason).to_contain_text("VISA ending 4242 is no longer on file")
    expect(page.get_by_label("Turn on auto top-up")).to_be_disabled()
    colours = reason.evaluate(
        "element => [getComputedStyle(element).backgroundColor, getComputedStyle(element).borderLeftColor]"
    )
    assert colours == ["rgb(254, 243, 242)", "rgb(196, 50, 10)"], f"a failure is an error, not {colours}"
    credits.screenshot("25-auto-top-up-card-detached")


def test_the_threshold_goes_up_to_the_chosen_packs_credits(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    page.reload()
    expect(page.get_by_test_id("saved-card")).to_have_text("VISA •••• 4242, expires 12/2034")
    threshold = page.get_by_label("When the balance falls below ($)")
    pack = page.get_by_label("Add this pack")
    error = page.get_by_test_id("auto-top-up-threshold-error")
    save = page.get_by_role("button", name="Save auto top-up")

    # The field's maximum follows the pack chosen
    for amount, most in (("1000", "10"), ("5000", "50"), ("10000", "100"), ("1000", "10")):
        pack.select_option(amount)
        expect(threshold).to_have_attribute("max", most)

    # A cent above the $10 pack's credits is refused beside the field, naming the range; nothing is saved
    page.get_by_label("Turn on auto top-up").check()
    threshold.fill("10.01")
    save.click()
    expect(error).to_have_text("Choose a threshold from $0.01 to $10 for the $10 pack, or a larger pack.")
    expect(threshold).to_have_attribute("aria-invalid", "")
    expect(threshold).to_be_focused()
    assert auto_top_up.view(user).threshold is None
    credits.screenshot("26-auto-top-up-threshold-above-pack")

    # Choosing a larger pack clears the error, and the threshold is saved with it
    pack.select_option("5000")
    expect(error).to_be_hidden()
    expect(threshold).not_to_have_attribute("aria-invalid", "")
    save.click()
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text(SAVED_ON)
    assert (auto_top_up.view(user).threshold, auto_top_up.view(user).amount) == (1001, 5000)

    # The largest pack offers no larger one
    pack.select_option("10000")
    threshold.fill("100.01")
    save.click()
    expect(error).to_have_text("Choose a threshold from $0.01 to $100 for the $100 pack.")

    # and exactly the pack's credits is allowed
    pack.select_option("1000")
    threshold.fill("10")
    save.click()
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text(SAVED_ON)
    assert (auto_top_up.view(user).threshold, auto_top_up.view(user).amount) == (1000, 1000)


def test_the_servers_refusal_of_a_threshold_is_shown_beside_the_field(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    with_saved_card(user, stack_ledger)
    page.reload()
    expect(page.get_by_test_id("saved-card")).to_have_text("VISA •••• 4242, expires 12/2034")
    threshold = page.get_by_label("When the balance falls below ($)")
    error = page.get_by_test_id("auto-top-up-threshold-error")

    # Given a save that reaches the server with a threshold above its pack (as from a page whose packs
    # changed since it loaded), which the server refuses with 400 invalid_amount
    def above_the_pack(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        sent = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps(sent | {"threshold": 1500}))

    page.route("**/api/auto-top-up", above_the_pack)
    credits.expect_failing("/api/auto-top-up")
    page.get_by_label("Turn on auto top-up").check()
    threshold.fill("8")
    page.get_by_label("Add this pack").select_option("1000")
    with page.expect_response(lambda response: response.request.method == "PUT") as answer:
        page.get_by_role("button", name="Save auto top-up").click()
    assert answer.value.status == 400
    refusal = answer.value.json()["error"]
    assert refusal["code"] == "invalid_amount", refusal

    # Then its message is beside the field, tied to it, and not in the page's banner; nothing was saved
    expect(error).to_have_text(refusal["message"])
    expect(error).to_contain_text("choose a pack of 5000 or 10000")
    expect(threshold).to_have_attribute("aria-invalid", "")
    expect(threshold).to_have_accessible_description(refusal["message"])
    expect(threshold).to_have_value("8")
    expect(credits.status).to_have_text("")
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text("")
    assert auto_top_up.view(user).enabled is False
    credits.screenshot("27-auto-top-up-threshold-refused-by-server")

    # And once the request is sent as typed, it is saved
    page.unroute("**/api/auto-top-up")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.get_by_test_id("auto-top-up-message")).to_have_text(SAVED_ON)
    expect(error).to_be_hidden()
    assert auto_top_up.view(user).threshold == 800

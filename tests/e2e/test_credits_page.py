"""The credits page in a real browser: sign in, top up through the Checkout emulator, and every failure a
user can meet on the way, against the whole local stack."""

from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import Request, Route, expect

from tests.e2e.conftest import CREDIT_TIMEOUT_MS, CreditsPage, wait_in_page

# Long enough that the page shows a "Pay later" payment waiting for the bank before it settles, loaded too.
DEVSTACK_SETTINGS = {"STRIPE_EMULATOR_SETTLE_SECONDS": "8"}
PAGE_URL = re.compile(r"/dashboard/credits/$")
PROVIDER_DOWN = "The payment provider could not be reached. Nothing was charged; try again."
# The policy the deployed site can send: nothing inline, nothing from another origin.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def test_top_ups_add_to_the_balance_and_history(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    credits.screenshot("01-sign-in")
    credits.sign_in()
    credits.expect_balance("$0.00", rows=0)
    expect(page.get_by_text("No transactions yet")).to_be_visible()
    expect(credits.packs).to_have_text(
        [re.compile(rf"^{re.escape(label)} ") for label in ("$10", "$50", "$100")]
    )
    credits.screenshot("02-new-account")

    credits.buy("$50")
    credits.screenshot("03-checkout-emulator")
    credits.checkout("Pay")
    credits.expect_balance("$50.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $50.00 added to your balance.")
    expect(credits.rows.first).to_contain_text("Top-up")
    expect(credits.rows.first).to_contain_text("+$50.00")
    expect(page).to_have_url(PAGE_URL)
    credits.screenshot("04-credited")

    credits.buy("$10")
    credits.checkout("Pay")
    credits.expect_balance("$60.00", rows=2)
    expect(credits.rows).to_contain_text(["+$10.00", "+$50.00"])
    expect(page).to_have_url(PAGE_URL)
    credits.screenshot("05-second-top-up")


def test_an_old_success_link_says_the_payment_is_already_in_the_balance(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    credits.buy("$50")
    with page.expect_request("**/api/checkout/cs_*") as asked:
        credits.checkout("Pay")
    credits.expect_balance("$50.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $50.00 added to your balance.")
    session_id = asked.value.url.rsplit("/", 1)[-1]

    # When the same return address is opened again, as from the browser's history or a bookmark
    page.goto(f"/dashboard/credits/?checkout=success&session_id={session_id}")

    # Then it says what is true: the payment is in the balance already, and nothing more was added
    expect(credits.status).to_have_text(
        "$50.00 from this payment is already in your balance; nothing more was added."
    )
    credits.expect_balance("$50.00", rows=1)
    expect(page).to_have_url(PAGE_URL)
    credits.screenshot("13-old-success-link")


def test_cancelled_checkout_changes_nothing(credits: CreditsPage) -> None:
    credits.open()
    credits.sign_in()
    credits.buy("$100")
    credits.checkout("Cancel")
    expect(credits.status).to_have_text("Checkout cancelled — no charge was made.")
    credits.expect_balance("$0.00", rows=0)
    expect(credits.packs).to_have_count(3)
    for button in credits.packs.all():
        expect(button).to_be_enabled()
    expect(credits.page).to_have_url(PAGE_URL)
    credits.screenshot("06-cancelled")


def test_pay_later_waits_for_the_bank_then_credits(credits: CreditsPage) -> None:
    credits.open()
    credits.sign_in()
    credits.buy("$100")
    credits.checkout("Pay later")
    expect(credits.status).to_contain_text("waiting for your bank to confirm it")
    expect(credits.balance).to_have_text("$0.00")
    credits.screenshot("07-pay-later-pending")
    credits.expect_balance("$100.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $100.00 added to your balance.")
    expect(credits.page).to_have_url(PAGE_URL)
    # A bank debit is no card payment: the row says only where it was paid
    expect(credits.page.locator("#history-rows .type-detail")).to_have_text(["Paid at checkout"])


def test_payment_provider_down_shows_its_message_and_buttons_work_again(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    credits.expect_failing("/api/checkout")
    body = json.dumps({"error": {"code": "stripe_unavailable", "message": PROVIDER_DOWN}})
    page.route(
        "**/api/checkout", lambda route: route.fulfill(status=502, body=body, content_type="application/json")
    )

    credits.pack("$50").click()
    expect(credits.status).to_have_text(PROVIDER_DOWN)
    for button in credits.packs.all():
        expect(button).to_be_enabled()
    expect(credits.pack("$50")).to_be_focused()
    expect(credits.balance).to_have_text("$0.00")
    credits.screenshot("08-provider-down")

    page.unroute("**/api/checkout")
    credits.buy("$50")


def test_network_failure_offers_retry(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    credits.expect_failing("/api/checkout")
    page.route("**/api/checkout", lambda route: route.abort("internetdisconnected"))

    credits.pack("$10").click()
    expect(credits.status).to_have_text(
        "We couldn\u2019t reach the server. Check your connection, then try again."
    )
    retry = page.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    for button in credits.packs.all():
        expect(button).to_be_enabled()
    credits.screenshot("09-network-failure")

    page.unroute("**/api/checkout")
    retry.click()
    page.wait_for_url("**/checkout/cs_*")
    credits.checkout("Pay")
    credits.expect_balance("$10.00", rows=1)


def test_network_failure_after_paying_offers_retry(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    credits.buy("$50")
    credits.expect_failing("/api/checkout/")
    page.route("**/api/checkout/cs_*", lambda route: route.abort("internetdisconnected"))
    credits.checkout("Pay")
    expect(credits.status).to_contain_text("Your payment is safe, but we couldn\u2019t reach the server")
    expect(page).to_have_url(re.compile(r"checkout=success"))
    credits.screenshot("12-offline-after-paying")

    page.unroute("**/api/checkout/cs_*")
    page.get_by_role("button", name="Retry").click()
    credits.expect_balance("$50.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $50.00 added to your balance.")
    expect(page).to_have_url(PAGE_URL)


def test_double_click_opens_one_checkout(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and "/api/checkout" in r.url else None)

    credits.pack("$10").dblclick()
    page.wait_for_url("**/checkout/cs_*")
    assert len(posts) == 1


def test_packs_are_disabled_while_checkout_opens_and_enabled_after_going_back(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    held: list[Route] = []
    page.route("**/api/checkout", lambda route: held.append(route))

    credits.pack("$50").click()
    expect(credits.status).to_have_text("Opening secure checkout…")
    for button in credits.packs.all():
        expect(button).to_be_disabled()
    # What a back/forward-cache restore fires; Playwright turns that cache off in the browsers it drives.
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    for button in credits.packs.all():
        expect(button).to_be_enabled()
    expect(credits.status).to_have_text("")

    wait_in_page(page, lambda: bool(held), "the page's checkout request, held")
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_url("**/checkout/cs_*")

    page.go_back()
    expect(page).to_have_url(PAGE_URL)
    expect(credits.packs).to_have_count(3)
    for button in credits.packs.all():
        expect(button).to_be_enabled()
    expect(credits.status).to_have_text("")


def test_ended_session_returns_to_sign_in(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    credits.sign_in()
    # Every card has loaded with the good token (the auto top-up card's settings come last).
    page.wait_for_load_state("networkidle")
    credits.expect_failing("/api/checkout")
    # A token the API no longer accepts, as after its signing key changed.
    page.evaluate(
        """() => {
            const session = JSON.parse(sessionStorage.getItem("credits.session"));
            session.token += "x";
            sessionStorage.setItem("credits.session", JSON.stringify(session));
        }"""
    )

    credits.pack("$10").click()
    expect(credits.status).to_have_text("Your session has ended — sign in again.")
    expect(page.get_by_label("User name")).to_be_focused()
    credits.screenshot("10-session-ended")
    credits.sign_in()
    credits.expect_balance("$0.00", rows=0)


def test_small_screen(credits: CreditsPage) -> None:
    page = credits.page
    page.set_viewport_size({"width": 360, "height": 780})
    credits.open()
    credits.sign_in()
    credits.buy("$50")
    credits.checkout("Pay")
    credits.expect_balance("$50.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $50.00 added to your balance.")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 360, "the page scrolls sideways at 360 px"
    credits.screenshot("11-small-screen-360px")


def test_load_more_history(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    for _ in range(2):
        credits.buy("$10")
        credits.checkout("Pay")
        expect(credits.status).to_contain_text("added to your balance", timeout=CREDIT_TIMEOUT_MS)

    # One transaction per page, so that two deposits need "Load more" once.
    def one_per_page(route: Route) -> None:
        route.continue_(url=route.request.url.replace("limit=20", "limit=1"))

    page.route(re.compile(r"/api/balance\?"), one_per_page)
    page.reload()
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()
    credits.expect_balance("$20.00", rows=1)
    load_more = page.get_by_role("button", name="Load more")
    load_more.click()
    expect(credits.rows).to_have_count(2)
    expect(load_more).to_be_hidden()


def test_keyboard_only_top_up(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    expect(page.get_by_label("User name")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type(f"e2e-keys-{uuid.uuid4().hex[:8]}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Credits", level=1)).to_be_focused()
    expect(credits.balance).to_have_text("$0.00")
    expect(credits.packs).to_have_count(3)

    page.keyboard.press("Tab")
    expect(credits.pack("$10")).to_be_focused()
    page.keyboard.press("Tab")
    expect(credits.pack("$50")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/checkout/cs_*")
    credits.checkout("Pay")
    credits.expect_balance("$50.00", rows=1)


READS_COUNTED = """() => {
  window.bodiesRead = 0;
  const read = Response.prototype.json;
  Response.prototype.json = function () {
    return read.call(this).finally(() => { window.bodiesRead += 1; });
  };
}"""


def test_signing_out_before_the_price_list_arrives_is_still_news_not_a_session_that_ended(
    credits: CreditsPage,
) -> None:
    # Given the price list held back, as a busy network may, until the user has signed out
    page = credits.page
    held: list[Route] = []
    page.route(re.compile(r"/api/packs$"), lambda route: held.append(route))
    credits.open()
    user = credits.sign_in()
    wait_in_page(page, lambda: bool(held), "the price list's request")
    # Each body the page reads is counted once read, before the code that awaited it goes on.
    page.evaluate(READS_COUNTED)

    # When they sign out, and only then does the price list come
    page.get_by_role("button", name="Sign out").click()
    expect(credits.status).to_have_text("You\u2019ve signed out.")
    reads = page.evaluate("window.bodiesRead")
    held[0].continue_()
    page.unroute(re.compile(r"/api/packs$"))
    # (a poll is a task of its own: by the time it sees the count, what the read set going has run)
    page.wait_for_function("(reads) => window.bodiesRead > reads", arg=reads)

    # Then what was loading for the session that is gone says nothing: no request without a token, no
    # "session ended" over the sign-out the user asked for
    expect(page.locator("#notice")).to_have_attribute("data-tone", "info")
    expect(credits.status).to_have_text("You\u2019ve signed out.")
    expect(page.get_by_text(f"Signed in as {user}")).to_be_hidden()


def test_sign_out_forgets_the_session(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    page.get_by_role("button", name="Sign out").click()
    expect(credits.status).to_have_text("You\u2019ve signed out.")
    # What the user asked for is news, not a warning
    expect(page.locator("#notice")).to_have_attribute("data-tone", "info")
    expect(page.get_by_label("User name")).to_be_focused()
    expect(page.get_by_label("User name")).to_have_value("")
    expect(page.get_by_text(f"Signed in as {user}")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.context.cookies() == []
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # and the sign-in says which names it takes
    expect(page.get_by_label("User name")).to_have_accessible_description(
        re.compile(r"up to 64 letters, digits or the characters _ \. @ -")
    )
    page.get_by_label("User name").fill("J\u00fcrgen")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-name-error")).to_have_text(
        "Use up to 64 letters, digits or the characters _ . @ -"
    )


def test_works_under_a_strict_content_security_policy(credits: CreditsPage) -> None:
    page = credits.page

    def with_policy(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.route(re.compile(r"/dashboard/credits/(\?.*)?$"), with_policy)
    credits.open()
    credits.sign_in()
    credits.buy("$10")
    credits.checkout("Pay")
    credits.expect_balance("$10.00", rows=1)
    expect(credits.status).to_have_text("Payment complete — $10.00 added to your balance.")
    # Routes see only the first request of a redirect chain: load the page afresh, under the policy.
    page.reload()
    credits.expect_balance("$10.00", rows=1)

    # The policy really is in force: an inline script is refused (after the flow, so none was refused before).
    credits.expect_console_error("Executing inline script violates the following Content Security Policy")
    inline_ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true";
            document.head.append(script);
            return window.inlineRan === true;
        }"""
    )
    assert not inline_ran

"""Real-browser tests of the credits page: Debian's Chromium, headless, against `python -m devstack`."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Locator, Page, expect, sync_playwright

from tests.devstack_process import ROOT, DevStackProcess
from tests.waiting import CHECK_EVERY_SECONDS, WAIT_SECONDS

SCREENSHOTS = ROOT / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Chromium's own line for a request that failed; tests that break a request on purpose expect it.
FAILED_RESOURCE = "Failed to load resource"
# Every wait in the browser, a payment's credit included: generous, as a loaded machine is slow, not wrong.
WAIT_MS = int(WAIT_SECONDS * 1000)
CREDIT_TIMEOUT_MS = WAIT_MS
expect.set_options(timeout=WAIT_MS)


def wait_in_page(page: Page, condition: Callable[[], bool], awaited: str) -> None:
    """Wait for `condition`, letting Playwright dispatch the page's events (routes, requests) meanwhile."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {WAIT_SECONDS:g} s for {awaited}")
        page.wait_for_timeout(CHECK_EVERY_SECONDS * 1000)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium): the browser tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run them")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def devstack(request: pytest.FixtureRequest) -> Iterator[DevStackProcess]:
    """One dev stack per test module; a module may set DEVSTACK_SETTINGS to change its environment."""
    with DevStackProcess(getattr(request.module, "DEVSTACK_SETTINGS", None)) as stack:
        yield stack


class CreditsPage:
    """The credits page in one fresh browser context, and the console errors of every page it loads."""

    def __init__(self, page: Page, stack: DevStackProcess) -> None:
        self.page = page
        self.stack = stack
        self.console_errors: list[str] = []
        self.failing_paths: list[str] = []
        self.expected_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed_path = urlsplit(message.location.get("url", "")).path
        if message.text.startswith(FAILED_RESOURCE) and failed_path.startswith(tuple(self.failing_paths)):
            return
        if message.text.startswith(tuple(self.expected_errors)):
            return
        self.console_errors.append(f"{message.text} ({message.location.get('url')}, page {self.page.url})")

    def expect_failing(self, path: str) -> None:
        """Requests under `path` fail on purpose: Chromium's console line for them is not the page's error."""
        self.failing_paths.append(path)

    def expect_console_error(self, start: str) -> None:
        """From now on, a console error starting with `start` is one the test provokes on purpose."""
        self.expected_errors.append(start)

    # --- the page -----------------------------------------------------------------------------------------

    def open(self) -> None:
        self.page.goto("/dashboard/credits/")

    def sign_in(self, user: str | None = None) -> str:
        user = user or f"e2e-{uuid.uuid4().hex[:12]}"
        self.page.get_by_label("User name").fill(user)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_text(f"Signed in as {user}")).to_be_visible()
        expect(self.balance).not_to_have_text("—")
        return user

    @property
    def balance(self) -> Locator:
        return self.page.get_by_test_id("balance")

    @property
    def status(self) -> Locator:
        return self.page.get_by_role("status")

    @property
    def rows(self) -> Locator:
        return self.page.locator("#history-rows tr")

    @property
    def packs(self) -> Locator:
        return self.page.locator("#packs button")

    def pack(self, label: str) -> Locator:
        return self.page.get_by_role("button", name=re.compile(rf"^{re.escape(label)}\s"))

    def buy(self, label: str) -> None:
        """Click a pack and land on the Checkout page it opens."""
        self.pack(label).click()
        self.page.wait_for_url("**/checkout/cs_*")
        expect(self.page.get_by_text("emulator", exact=False).first).to_be_visible()

    def checkout(self, button: str) -> None:
        """On the Checkout emulator's page: press Pay, Pay later or Cancel; land back on the credits page."""
        self.page.get_by_role("button", name=button, exact=True).click()
        self.page.wait_for_url("**/dashboard/credits/**")

    def expect_balance(self, text: str, rows: int) -> None:
        expect(self.balance).to_have_text(text, timeout=CREDIT_TIMEOUT_MS)
        expect(self.rows).to_have_count(rows)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True, animations="disabled")
        return path


@pytest.fixture
def credits(
    browser: Browser, devstack: DevStackProcess, request: pytest.FixtureRequest
) -> Iterator[CreditsPage]:
    yield from credits_page(browser, devstack, request, locale="en-US", timezone_id="UTC")


def credits_page(
    browser: Browser,
    devstack: DevStackProcess,
    request: pytest.FixtureRequest,
    *,
    locale: str,
    timezone_id: str,
) -> Iterator[CreditsPage]:
    """The credits page for a reader of `locale` in `timezone_id`, checked for console errors at the end."""
    context = browser.new_context(
        base_url=devstack.url,
        viewport={"width": 1280, "height": 900},
        locale=locale,
        timezone_id=timezone_id,
    )
    context.set_default_timeout(WAIT_MS)
    credits = CreditsPage(context.new_page(), devstack)
    yield credits
    if request.node.stash.get(CALL_FAILED, False):
        try:
            print("screenshot:", credits.screenshot(f"failed-{request.node.name}"))
        except Error as exc:
            print("no screenshot:", exc)
        print("dev stack output:\n" + devstack.log()[-5000:])
    context.close()
    assert credits.console_errors == [], "errors in the browser console"

"""The history and the balance once the ledger holds more than top-ups: spends, holds, adjustments,
refunds and chargebacks, each with its label, its sign and its reason, a balance with what holds reserve
beside what is left to spend, and a negative balance that says why.

The rows are written into the running stack's ledger by `wallet.ledger` itself, in this process, the way
the webhook and the service routes write them there; a hold's rows and its balance update are written as
the hold routes write them, in one transaction."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Route, expect
from pynamodb.transactions import TransactWrite
from ulid import ULID

from tests.devstack_process import DevStackProcess
from tests.e2e.conftest import SCREENSHOTS, CreditsPage
from wallet import holds, ledger, models, settings, stripe_events
from wallet.amounts import MAX_AMOUNT
from wallet.outcomes import Result
from wallet.payments import Event

# The stack names its tables as this process's models were named when first imported: see `stack_ledger`.
DEVSTACK_SETTINGS = {
    "CREDIT_BALANCE_TABLE": settings.tables().balance_table,
    "CREDIT_TRANSACTION_TABLE": settings.tables().transaction_table,
    "CREDIT_GUARD_TABLE": settings.tables().guard_table,
}
SERVICE = "arn:aws:iam::000000000000:user/service"
OPERATOR = "arn:aws:iam::000000000000:user/operator"
NEGATIVE_BALANCE = "A refund took back credits you had already used; top up to continue."


@dataclass(frozen=True)
class StackLedger:
    """Balance changes for a user of the running stack, through the ledger's own functions."""

    def deposit(self, user: str, amount: int) -> str:
        """A paid top-up of `amount`; its PaymentIntent id, for refunds and disputes."""
        payment_intent = f"pi_{uuid.uuid4().hex}"
        ledger.add_credits(
            user,
            amount,
            source="stripe_payment",
            payment_id=str(ULID()),
            currency="usd",
            stripe_payment_intent_id=payment_intent,
            amount_paid=amount,
        )
        return payment_intent

    def spend(self, user: str, amount: int, description: str | None) -> None:
        ledger.spend(
            user,
            amount,
            idempotency_key=str(uuid.uuid4()),
            description=description,
            actor=SERVICE,
            currency="usd",
        )

    def adjust(self, user: str, amount: int, reason: str) -> None:
        ledger.adjust(
            user, amount, idempotency_key=str(uuid.uuid4()), reason=reason, actor=OPERATOR, currency="usd"
        )

    def metered_hold(self, user: str, amount: int, description: str, *, used: int | None) -> str:
        """A hold made and settled by the hold routes' own functions: captured for `used`, released when
        `used` is 0, left active when None."""
        key = str(uuid.uuid4())
        made = holds.create_hold(
            user,
            amount,
            expires_in=3600,
            idempotency_key=key,
            description=description,
            actor=SERVICE,
            currency="usd",
        )
        hold_id = made.hold.hold_id
        if used:
            holds.capture_hold(user, hold_id, used, idempotency_key=key + "-c", actor=SERVICE, currency="usd")
        elif used == 0:
            holds.release_hold(user, hold_id, idempotency_key=key + "-r", actor=SERVICE, currency="usd")
        return hold_id

    def refund(self, payment_intent: str, refunded: int, paid: int) -> None:
        charge = {"object": "charge", "id": "ch_1", "amount": paid, "amount_refunded": refunded}
        self.stripe_says("charge.refunded", payment_intent, charge)

    def dispute(self, payment_intent: str, disputed: int, paid: int, status: str = "needs_response") -> None:
        dispute = {"object": "dispute", "id": f"dp_{payment_intent}", "amount": disputed, "status": status}
        self.stripe_says("charge.dispute.created", payment_intent, dispute)

    def dispute_won(self, payment_intent: str, disputed: int) -> None:
        dispute = {"object": "dispute", "id": f"dp_{payment_intent}", "amount": disputed, "status": "won"}
        self.stripe_says("charge.dispute.closed", payment_intent, dispute)

    def hold(self, user: str, amount: int, description: str) -> str:
        """A hold of `amount`, as the hold routes write it: a row of 0 that names it and what it reserves,
        and `amount` moved from the balance to `held` on condition that the balance covers it."""
        hold_id = str(ULID())
        self._hold_row(user, "hold", 0, hold_id, amount, description, available=-amount, held=amount)
        return hold_id

    def capture(self, user: str, hold_id: str, reserved: int, amount: int, description: str) -> None:
        """A capture: a spend of `amount` that names its hold; the rest of the hold is available again."""
        self._hold_row(
            user,
            "spend",
            -amount,
            hold_id,
            reserved,
            description,
            available=reserved - amount,
            held=-reserved,
        )

    def release(
        self, user: str, hold_id: str, reserved: int, description: str, *, expired: bool = False
    ) -> None:
        """A release by the service, or an expiry by no one: a row of 0, and the whole hold available."""
        kind = "hold_expired" if expired else "hold_released"
        self._hold_row(
            user,
            kind,
            0,
            hold_id,
            reserved,
            description,
            available=reserved,
            held=-reserved,
            by_service=not expired,
        )

    @staticmethod
    def _hold_row(
        user: str,
        kind: str,
        amount: int,
        hold_id: str,
        reserved: int,
        description: str,
        *,
        available: int,
        held: int,
        by_service: bool = True,
    ) -> None:
        row = models.CreditTransaction(
            user,
            str(ULID()),
            type=kind,
            amount=amount,
            source="service" if by_service else "expiry",
            description=description,
            actor=SERVICE if by_service else None,
            hold_id=hold_id,
            reserved=reserved,
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        balance = models.CreditBalance
        covered = balance.balance >= -available if available < 0 else None
        with TransactWrite(connection=models.connection()) as transaction:
            transaction.save(row, condition=models.CreditTransaction.transaction_id.does_not_exist())
            transaction.update(
                balance(user),
                actions=[balance.balance.add(available), balance.held.add(held)],
                condition=covered,
            )

    def stripe_says(self, kind: str, payment_intent: str, data: dict[str, object]) -> None:
        """The event, as the webhook acts on it once its signature checked out."""
        data = data | {"currency": "usd", "payment_intent": payment_intent}
        outcome = stripe_events.act_on(Event(f"evt_{uuid.uuid4().hex}", kind, False, data))
        assert outcome.result in (Result.CLAWED_BACK, Result.RESTORED), outcome


@pytest.fixture
def stack_ledger(devstack: DevStackProcess) -> Iterator[StackLedger]:
    """This process's ledger pointed at the stack's DynamoDB for one test, then back where it was.

    Table names are read once per process (the models take theirs when first imported), so the stack
    was started with this process's names; only the endpoint and the credentials change here, and the
    cached connection is dropped on the way in and out."""
    environment = json.loads(devstack.run_file.read_text(encoding="utf-8"))["environment"]
    tables = settings.tables()
    assert (
        environment["CREDIT_BALANCE_TABLE"],
        environment["CREDIT_TRANSACTION_TABLE"],
        environment["CREDIT_GUARD_TABLE"],
    ) == (tables.balance_table, tables.transaction_table, tables.guard_table)
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    models.connection.cache_clear()
    try:
        yield StackLedger()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        models.connection.cache_clear()


def test_every_row_type_shows_its_label_sign_and_reason(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given a top-up, a spend, adjustments up and down, a chargeback won back, and a partial refund
    payment = stack_ledger.deposit(user, 5000)
    stack_ledger.spend(user, 1250, "Report export #4711")
    stack_ledger.adjust(user, 300, "Goodwill for the outage on 3 May")
    stack_ledger.adjust(user, -100, "Duplicate goodwill")
    stack_ledger.dispute(payment, 1000, paid=5000)
    stack_ledger.dispute_won(payment, 1000)
    stack_ledger.refund(payment, 2000, paid=5000)
    stack_ledger.spend(user, 50, None)

    # When the page is loaded again
    page.reload()

    # Then every row says what it was, why, and which way it moved the balance
    credits.expect_balance("$19.00", rows=8)
    labels = page.locator("#history-rows .type-label")
    expect(labels).to_have_text(
        [
            "Spent",
            "Refunded",
            "Chargeback won: credits returned",
            "Chargeback",
            "Adjustment",
            "Adjustment",
            "Spent",
            "Top-up",
        ]
    )
    # and where it came from, with a spend's description or an adjustment's reason
    expect(page.locator("#history-rows .type-detail")).to_have_text(
        [
            "By the service",
            "Refund by the merchant",
            "From the cardholder\u2019s bank",
            "From the cardholder\u2019s bank",
            "By an operator: Duplicate goodwill",
            "By an operator: Goodwill for the outage on 3 May",
            "By the service: Report export #4711",
            "Paid at checkout",
        ]
    )
    amounts = page.locator("#history-rows td.amount")
    expect(amounts).to_have_text(
        [
            "\u2212$0.50",
            "\u2212$20.00",
            "+$10.00",
            "\u2212$10.00",
            "\u2212$1.00",
            "+$3.00",
            "\u2212$12.50",
            "+$50.00",
        ]
    )
    for index in (2, 5, 7):
        expect(amounts.nth(index)).to_have_class(re.compile(r"\bis-credit\b"))
    for index in (0, 1, 3, 4, 6):
        expect(amounts.nth(index)).to_have_class(re.compile(r"\bis-debit\b"))
    expect(page.get_by_text(NEGATIVE_BALANCE)).to_be_hidden()
    credits.screenshot("14-history-every-row-type")

    page.set_viewport_size({"width": 360, "height": 780})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "the page scrolls sideways"
    credits.screenshot("15-history-every-row-type-360px")


def test_auto_top_ups_and_the_newer_row_types_each_have_a_label_and_a_source(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given an auto top-up and a card payment, then a bank inquiry that closed and a refund that failed
    ledger.add_credits(user, 1000, source="auto_top_up", payment_id=str(ULID()), currency="usd")
    payment = stack_ledger.deposit(user, 1000)
    inquiry = {"object": "dispute", "id": "dp_inquiry", "amount": 400}
    stack_ledger.stripe_says(
        "charge.dispute.created", payment, inquiry | {"status": "warning_needs_response"}
    )
    stack_ledger.stripe_says("charge.dispute.closed", payment, inquiry | {"status": "warning_closed"})
    refund = {"object": "refund", "id": "re_returned", "amount": 300}
    stack_ledger.stripe_says("refund.created", payment, refund | {"status": "succeeded"})
    stack_ledger.stripe_says("refund.failed", payment, refund | {"status": "failed"})

    # When the page is loaded again
    page.reload()

    # Then each says what it was and where it came from
    credits.expect_balance("$20.00", rows=6)
    expect(page.locator("#history-rows .type-label")).to_have_text(
        [
            "Refund failed: credits returned",
            "Refunded",
            "Bank inquiry closed: credits returned",
            "Bank inquiry: credits held",
            "Top-up",
            "Top-up",
        ]
    )
    expect(page.locator("#history-rows .type-detail")).to_have_text(
        [
            "Refund by the merchant",
            "Refund by the merchant",
            "From the cardholder\u2019s bank",
            "From the cardholder\u2019s bank",
            "Paid at checkout",
            "Auto top-up",
        ]
    )
    expect(page.locator("#history-rows td.amount")).to_have_text(
        ["+$3.00", "\u2212$3.00", "+$4.00", "\u2212$4.00", "+$10.00", "+$10.00"]
    )
    credits.screenshot("19-history-auto-top-up-and-bank-rows")


def test_a_hold_shows_what_it_reserves_and_what_is_left_to_spend(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given $50 topped up, and $5 of it reserved by a hold for usage in progress
    stack_ledger.deposit(user, 5000)
    stack_ledger.hold(user, 500, "Render job 7")

    # When the page is loaded again
    page.reload()

    # Then the balance is still all the user's, with what is reserved and what is available beneath it
    credits.expect_balance("$50.00", rows=2)
    expect(page.get_by_test_id("balance-held")).to_have_text("$5.00 reserved by usage in progress")
    expect(page.get_by_test_id("balance-available")).to_have_text("$45.00 available")
    expect(page.get_by_text("Available to spend now.")).to_be_hidden()
    # and the hold's row says what it reserved, moving nothing
    expect(page.locator("#history-rows .type-label")).to_have_text(["Reserved for usage: $5.00", "Top-up"])
    expect(page.locator("#history-rows .type-detail")).to_have_text(
        ["By the service: Render job 7", "Paid at checkout"]
    )
    expect(page.locator("#history-rows td.amount")).to_have_text(["$0.00", "+$50.00"])
    expect(page.locator("#history-rows td.amount").first).to_have_class(re.compile(r"\bis-zero\b"))
    expect(page.locator("#history-rows td.amount").first).not_to_have_class(re.compile(r"is-(credit|debit)"))
    credits.screenshot("20-balance-with-a-hold")

    page.set_viewport_size({"width": 360, "height": 780})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "the page scrolls sideways"
    credits.screenshot("21-balance-with-a-hold-360px")


def test_a_hold_captured_released_or_expired_says_so_and_leaves_nothing_reserved(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given three holds: one captured in part, one released, one that expired
    stack_ledger.deposit(user, 5000)
    captured = stack_ledger.hold(user, 500, "Render job 7")
    stack_ledger.capture(user, captured, 500, 300, "Render job 7")
    released = stack_ledger.hold(user, 200, "Render job 8")
    stack_ledger.release(user, released, 200, "Render job 8")
    expired = stack_ledger.hold(user, 100, "Render job 9")
    stack_ledger.release(user, expired, 100, "Render job 9", expired=True)

    # When the page is loaded again
    page.reload()

    # Then only the capture moved the balance, nothing is reserved any more, and each hold is one row:
    # the capture says what was reserved and what was used; the holds that used nothing are not shown
    credits.expect_balance("$47.00", rows=2)
    expect(page.get_by_test_id("balance-held")).to_be_hidden()
    expect(page.get_by_text("Available to spend now.")).to_be_visible()
    expect(page.locator("#history-rows .type-label")).to_have_text(
        ["Usage: $3.00 of $5.00 reserved", "Top-up"]
    )
    expect(page.locator("#history-rows .type-detail")).to_have_text(
        ["By the service: Render job 7", "Paid at checkout"]
    )
    expect(page.locator("#history-rows td.amount")).to_have_text(["\u2212$3.00", "+$50.00"])

    # Under the reservations filter, every hold shows, each once, those that used nothing included
    page.get_by_label("Show").select_option("holds")
    expect(page.locator("#history-rows .type-label")).to_have_text(
        [
            "Reserved $1.00: expired unused",
            "Reserved $2.00: released unused",
            "Usage: $3.00 of $5.00 reserved",
        ]
    )
    expect(page.locator("#history-rows .type-detail")).to_have_text(
        ["Not used in time: Render job 9", "By the service: Render job 8", "By the service: Render job 7"]
    )
    expect(page.locator("#history-rows td.amount")).to_have_text(["$0.00", "$0.00", "\u2212$3.00"])
    credits.screenshot("22-history-of-holds")


def test_a_balance_at_the_bound_fits_its_card_and_the_page(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given the largest balance any route allows
    stack_ledger.adjust(user, MAX_AMOUNT, "The largest balance there can be")

    # When the page is loaded again, it shows it exactly, to the cent
    page.reload()
    credits.expect_balance("$90,071,992,547,409.91", rows=1)
    expect(page.locator("#history-rows td.amount")).to_have_text(["+$90,071,992,547,409.91"])

    # and neither the card nor the page grows sideways, wide or narrow
    for width in (1280, 760, 360):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (
            f"scrolls sideways at {width}px"
        )
        overflow = page.evaluate(
            "(() => { const b = document.getElementById('balance');"
            " const card = b.closest('.card').getBoundingClientRect(); const r = b.getBoundingClientRect();"
            " return Math.max(0, r.right - card.right, b.scrollWidth - b.clientWidth); })()"
        )
        assert overflow == 0, f"the balance overflows its card at {width}px"
        credits.screenshot(f"19-long-balance-{width}px")


def test_the_balance_card_ends_where_its_content_does(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 1000)
    page.reload()
    credits.expect_balance("$10.00", rows=1)

    # Beside the taller Add credits card it is as tall, leaving no grey gap, and its last line sits at its
    # foot; on a narrow screen, stacked, it is as tall as what it holds
    for width, beside in ((1280, True), (390, False)):
        page.set_viewport_size({"width": width, "height": 900})
        boxes = page.evaluate(
            """() => {
              const card = document.getElementById("balance").closest(".card");
              const topUp = document.getElementById("topup-heading").closest(".card");
              const last = [...card.children].filter((child) => !child.hidden).at(-1);
              const [c, t, l] = [card, topUp, last].map((node) => node.getBoundingClientRect());
              return { top: c.top - t.top, bottom: c.bottom - t.bottom, below: c.bottom - l.bottom };
            }"""
        )
        if beside:
            assert (boxes["top"], boxes["bottom"]) == (0, 0), f"a grey gap beside the balance card: {boxes}"
        assert boxes["below"] <= 30, f"{boxes['below']}px of empty card below the last line at {width}px"
        credits.screenshot(f"balance-card-{width}px")


def test_a_row_type_the_page_does_not_know_still_shows_signed(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    stack_ledger.deposit(user, 1000)

    # Given the API answers with a row type newer than the page, with and without a description
    def with_new_types(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        newer = {"source": "promotion", "paymentId": None, "createdAt": "2026-05-04T10:00:00.000Z"}
        body["transactions"][:0] = [
            newer | {"id": str(ULID()), "type": "cashback", "amount": 250, "description": "Spring offer"},
            newer | {"id": str(ULID()), "type": "expiry", "amount": -75, "description": None},
        ]
        route.fulfill(response=response, json=body)

    page.route(re.compile(r"/api/balance\?"), with_new_types)
    page.reload()

    # Then they show under a generic name, with their sign and description
    credits.expect_balance("$10.00", rows=3)
    expect(page.locator("#history-rows .type-label")).to_have_text(
        ["Balance change", "Balance change", "Top-up"]
    )
    expect(page.locator("#history-rows td.type").first).to_contain_text("Spring offer")
    expect(page.locator("#history-rows td.amount")).to_have_text(["+$2.50", "\u2212$0.75", "+$10.00"])


def test_negative_balance_is_explained_until_a_top_up_covers_it(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given $8 of a $10 top-up spent, then the whole payment refunded
    payment = stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 800, "Batch of 80 renders")
    stack_ledger.refund(payment, 1000, paid=1000)

    # When the page is loaded again
    page.reload()

    # Then the balance is negative and the page says why and what to do
    credits.expect_balance("\u2212$8.00", rows=3)
    notice = page.get_by_text(NEGATIVE_BALANCE)
    expect(notice).to_be_visible()
    expect(page.get_by_text("Available to spend now.")).to_be_hidden()
    expect(page.locator("#history-rows .type-label")).to_have_text(["Refunded", "Spent", "Top-up"])
    expect(page.locator("#history-rows td.type").nth(1)).to_contain_text("Batch of 80 renders")
    expect(page.locator("#history-rows td.amount")).to_have_text(["\u2212$10.00", "\u2212$8.00", "+$10.00"])
    credits.screenshot("16-negative-balance")
    page.set_viewport_size({"width": 360, "height": 780})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "the page scrolls sideways"
    credits.screenshot("17-negative-balance-360px")
    page.set_viewport_size({"width": 1280, "height": 900})

    # When a top-up covers it, the explanation goes
    credits.buy("$10")
    credits.checkout("Pay")
    credits.expect_balance("$2.00", rows=4)
    expect(notice).to_be_hidden()
    expect(page.get_by_text("Available to spend now.")).to_be_visible()


def test_zero_balance_needs_no_explanation(credits: CreditsPage, stack_ledger: StackLedger) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    credits.expect_balance("$0.00", rows=0)
    expect(page.get_by_text(NEGATIVE_BALANCE)).to_be_hidden()

    # Given a top-up spent to the last cent
    stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 1000, "Everything")
    page.reload()

    # Then the balance is zero, with no notice
    credits.expect_balance("$0.00", rows=2)
    expect(page.get_by_text(NEGATIVE_BALANCE)).to_be_hidden()
    expect(page.get_by_text("Available to spend now.")).to_be_visible()
    expect(page.locator("#history-rows td.amount")).to_have_text(["\u2212$10.00", "+$10.00"])
    credits.screenshot("18-zero-balance")


def shoot_both(credits: CreditsPage, name: str) -> None:
    """The whole page, wide and narrow (test-results/screenshots)."""
    page = credits.page
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (
            f"scrolls sideways at {width}px"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}-{width}px.png", full_page=True, animations="disabled")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_history_of_100_hold_rows_is_one_row_per_hold_a_page_at_a_time(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given $100 and 50 holds of $1.00 (100 rows in the ledger): every 5th released unused, the rest
    # capturing 10 cents more each time, then one hold still active
    stack_ledger.deposit(user, 10000)
    used = []
    for number in range(50):
        cents = 0 if number % 5 == 4 else 10 + number
        stack_ledger.metered_hold(user, 100, f"Job {number}", used=cents)
        if cents:
            used.append((number, cents))
    stack_ledger.metered_hold(user, 200, "Job 50", used=None)
    spent = sum(cents for _, cents in used)

    page.reload()

    # Then the first page is 20 rows to read: the active hold, then the newest 19 usages, each one row
    credits.expect_balance(f"${(10000 - spent) / 100:.2f}", rows=20)
    labels = page.locator("#history-rows .type-label")
    expected = ["Reserved for usage: $2.00"] + [
        f"Usage: ${cents / 100:.2f} of $1.00 reserved" for _, cents in used[::-1]
    ]
    expect(labels).to_have_text(expected[:20])
    shoot_both(credits, "history-100-hold-rows")

    # and "Load more", twice, brings the other 22 rows: the rest of the usages and the top-up, no hold twice
    page.get_by_role("button", name="Load more").click()
    expect(credits.rows).to_have_count(40)
    page.get_by_role("button", name="Load more").click()
    expect(credits.rows).to_have_count(42)
    expect(labels).to_have_text([*expected, "Top-up"])
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # Under the reservations filter, the 10 released holds show too: 51 holds, 20 a page
    page.get_by_label("Show").select_option("holds")
    expect(credits.rows).to_have_count(20)
    expect(labels.nth(1)).to_have_text("Reserved $1.00: released unused")
    shoot_both(credits, "history-100-hold-rows-reservations")
    page.get_by_role("button", name="Load more").click()
    expect(credits.rows).to_have_count(40)
    page.get_by_role("button", name="Load more").click()
    expect(credits.rows).to_have_count(51)

    # and the top-ups filter shows only the top-up
    page.get_by_label("Show").select_option("topups")
    expect(labels).to_have_text(["Top-up"])
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_label("Show").select_option("adjustments")
    expect(page.get_by_text("No adjustments.")).to_be_visible()
    expect(credits.rows).to_have_count(0)


def test_a_long_description_leaves_the_date_on_one_line_and_a_minus_stays_with_its_number(
    credits: CreditsPage, stack_ledger: StackLedger
) -> None:
    page = credits.page
    credits.open()
    user = credits.sign_in()
    # Given a spend with a long description, and a debt of over a million dollars
    stack_ledger.deposit(user, 1000)
    stack_ledger.spend(user, 100, "Monthly usage for the analytics workspace " * 6)
    stack_ledger.adjust(user, -123_456_789_00, "A correction large enough to wrap")
    page.reload()
    credits.expect_balance("\u2212$123,456,780.00", rows=3)

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        # Then each date is on one line, its time under it: two lines, not four
        lines = page.evaluate(
            """() => [...document.querySelectorAll("#history-rows .date-day")].map((day) => {
              const range = document.createRange();
              range.selectNodeContents(day);
              return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
            })"""
        )
        assert lines == [1, 1, 1], f"a date wraps at {width}px: {lines}"
        # and a negative amount, balance or row, keeps its minus on the line of its first digits
        apart = page.evaluate(
            """() => [document.getElementById("balance"),
                      ...document.querySelectorAll("#history-rows td.amount")]
              .filter((node) => node.textContent.startsWith("\u2212"))
              .map((node) => {
                const range = document.createRange();
                range.setStart(node.firstChild, 0);
                range.setEnd(node.firstChild, 3);
                return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
              })"""
        )
        # the balance, the adjustment's row and the spend's
        assert len(apart) == 3
        assert set(apart) == {1}, f"a minus wraps away from its number at {width}px: {apart}"
    shoot_both(credits, "history-long-description")

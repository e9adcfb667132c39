"""The month's books (wallet.books) of one account, worked by hand: deferred revenue, revenue recognised,
breakage and reversals; the month a row counts in; and the period a report may be asked for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wallet import books, grants
from wallet.errors import InvalidPeriodError
from wallet.grants import Grants, Row


def at(month: int, day: int, hour: int = 12, second: int = 0) -> int:
    return int(datetime(2027, month, day, hour, 0, second, tzinfo=UTC).timestamp() * 1000)


def mar_1() -> int:
    return int(datetime(2027, 3, 1, tzinfo=UTC).timestamp())


# A paid grant that never expires (A: 1,000 credits for $10.00), a free one (B: 200, expiring 10 Feb) and a
# paid one that expires (D: 300 credits for $1.50, expiring 1 Mar), then spends, a refund and an expiry.
ROWS = [
    Row("01", "deposit", 1000, at(1, 5), paid=1000, payment_id="01"),
    Row("02", "grant", 200, at(1, 6), expires_at=int(datetime(2027, 2, 10, tzinfo=UTC).timestamp())),
    Row("03", "deposit", 300, at(1, 10), paid=150, expires_at=mar_1(), payment_id="03"),
    # B (soonest expiry) gives 200, then D 100: 100 of D's 300 credits cost 50 cents.
    Row("04", "spend", -300, at(1, 20)),
    # From its own payment's grant: 400 of A, 400 cents.
    Row("05", "refund", -400, at(2, 3), payment_id="01"),
    # D again (it expires before A): 100 credits, 50 cents.
    Row("06", "spend", -100, at(2, 15)),
    # D's last 100 credits expire: 50 cents of breakage.
    Row("07", "expired", -100, at(3, 2), grant_id="03"),
    Row("08", "spend", -50, at(3, 5)),
]


def folded() -> Grants:
    return grants.fold(ROWS)


def numbers(line: books.Line) -> dict[str, int]:
    return {name: getattr(line, name) for name in books.NUMBERS}


def test_january_defers_what_was_bought_less_what_was_used() -> None:
    assert numbers(books.line(folded(), "2027-01", "usd")) == {
        "opening_deferred": 0,
        "purchases": 1150,
        "recognised": 50,
        "breakage": 0,
        "reversals": 0,
        "closing_deferred": 1100,
        "opening_paid_credits": 0,
        "paid_credits_in": 1300,
        "paid_credits_used": 100,
        "paid_credits_expired": 0,
        "paid_credits_reversed": 0,
        "closing_paid_credits": 1200,
        "opening_free_credits": 0,
        "free_credits_in": 200,
        "free_credits_used": 200,
        "free_credits_expired": 0,
        "free_credits_reversed": 0,
        "closing_free_credits": 0,
    }


def test_february_reverses_the_refund_and_recognises_the_spend() -> None:
    line = books.line(folded(), "2027-02", "usd")

    assert (line.opening_deferred, line.recognised, line.reversals, line.closing_deferred) == (
        1100,
        50,
        400,
        650,
    )
    assert (line.paid_credits_used, line.paid_credits_reversed, line.closing_paid_credits) == (100, 400, 700)
    assert line.unbalanced() == []


def test_march_books_the_expiry_as_breakage() -> None:
    line = books.line(folded(), "2027-03", "usd")

    assert (line.opening_deferred, line.recognised, line.breakage, line.closing_deferred) == (
        650,
        50,
        50,
        550,
    )
    assert (line.paid_credits_expired, line.closing_paid_credits) == (100, 550)


def test_a_month_without_rows_opens_and_closes_with_the_same_figures() -> None:
    april = books.line(folded(), "2027-04", "usd")
    december = books.line(folded(), "2026-12", "usd")

    assert (april.opening_deferred, april.closing_deferred, april.purchases) == (550, 550, 0)
    assert not april.idle()
    assert december.idle()


def test_a_line_that_does_not_add_up_says_which_account() -> None:
    line = books.line(folded(), "2027-02", "usd")
    line.closing_free_credits += 1
    line.recognised += 1

    assert line.unbalanced() == ["deferred", "free_credits"]


def test_a_row_stamped_before_the_month_the_books_are_in_counts_in_that_month() -> None:
    """A row's createdAt may precede the one before it (each is stamped just before its own commit), and
    a late deposit's is its commit: the books never reopen a month they closed."""
    rows = [
        Row("01", "deposit", 100, at(1, 31, 23), paid=100, payment_id="01"),
        Row("02", "spend", -10, at(2, 1, 0, 1)),
        Row("03", "spend", -20, at(1, 31, 23, 59)),
    ]
    done = grants.fold(rows)
    january, february = books.line(done, "2027-01", "usd"), books.line(done, "2027-02", "usd")

    assert (january.recognised, january.closing_deferred) == (0, 100)
    assert (february.recognised, february.closing_deferred) == (30, 70)
    assert january.unbalanced() == february.unbalanced() == []


NOW = datetime(2027, 2, 14, 9, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "text", ["", "2027-1", "2027-13", "2027-00", "27-01", "2027-01-01", "2027/01", " 2027-01"]
)
def test_a_malformed_period_is_refused(text: str) -> None:
    with pytest.raises(InvalidPeriodError, match="YYYY-MM"):
        books.parse_period(text, NOW)


def test_a_month_not_yet_begun_is_refused_and_the_current_one_is_month_to_date() -> None:
    with pytest.raises(InvalidPeriodError, match="future"):
        books.parse_period("2027-03", NOW)

    assert books.parse_period("2027-02", NOW) == "2027-02"
    assert books.parse_period("2026-12", NOW) == "2026-12"
    assert not books.complete("2027-02", NOW)


def test_a_month_is_complete_fifteen_minutes_after_its_end() -> None:
    end = datetime(2027, 2, 1, tzinfo=UTC).timestamp()

    assert not books.complete("2027-01", end + 899)
    assert books.complete("2027-01", end + 900)
    assert books.complete("2026-12", end)
    # December's end is the next year's first second.
    assert not books.complete("2026-12", datetime(2027, 1, 1, 0, 14, tzinfo=UTC).timestamp())


def test_the_stored_form_keeps_the_month_and_an_earlier_form_is_not_read_as_this_one() -> None:
    done = folded()
    again = Grants.from_json(done.to_json())

    assert again.month == "2027-03"
    assert books.line(again, "2027-02", "usd") == books.line(done, "2027-02", "usd")
    # The first release's form (no month, no format): its books lack the months' closing figures.
    earlier = '{"lots":[],"debt":[],"holds":{},"books":{"2027-01":{"paid_credits_in":5}}}'
    assert not Grants.current_form(earlier)
    assert Grants.current_form(done.to_json())
    assert Grants.current_form(None)


def test_a_user_id_a_spreadsheet_would_run_is_written_as_text() -> None:
    import csv
    import io

    from devstack.report import CsvOut

    stream = io.StringIO()
    out = CsvOut(stream, "2027-01")
    out.account(books.Line("usd", "=HYPERLINK(1)", purchases=5))
    out.account(books.Line("usd", "plain"))

    rows = list(csv.reader(io.StringIO(stream.getvalue())))
    assert [r[2] for r in rows[1:]] == ["'=HYPERLINK(1)", "plain"]
    assert rows[1][rows[0].index("purchases")] == "5"

"""GET /api/balance/export (the history as CSV) and GET /api/balance/daily (the chart's days), through the
get_balance handler against moto's DynamoDB."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from ulid import ULID

from functions.get_balance.app import lambda_handler
from tests.lambda_events import LambdaContext, api_event
from wallet import activity, hot_accounts, models

pytestmark = pytest.mark.usefixtures("tables")


def row(
    user: str,
    moment: datetime,
    kind: str,
    amount: int,
    *,
    description: str | None = None,
    opened: datetime | None = None,
    paid: int | None = None,
    partition: str | None = None,
) -> str:
    """A ledger row credited at `moment`; a deposit's id is made when its checkout `opened`."""
    transaction_id = str(ULID.from_datetime(opened or moment))
    models.CreditTransaction(
        partition or user,
        transaction_id,
        type=kind,
        amount=amount,
        source="stripe_payment" if kind == "deposit" else "service",
        payment_id=transaction_id if kind == "deposit" else None,
        amount_paid=paid,
        description=description,
        created_at=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    ).save()
    return transaction_id


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


def export(user: str | None = "alice", **query: str) -> dict[str, Any]:
    return lambda_handler(api_event("GET", "/api/balance/export", user=user, query=query), LambdaContext())


def error_of(result: dict[str, Any]) -> tuple[int, str]:
    return result["statusCode"], json.loads(result["body"])["error"]["code"]


def test_the_export_is_rfc_4180_csv_of_the_range_oldest_first_with_formulas_defused() -> None:
    # Given rows before, in and after the range, one with a comma, a quote and a leading "=" in its text
    row("alice", at("2026-03-31", "23:59:59"), "spend", -1, description="before")
    paid = row("alice", at("2026-04-01", "00:00:00"), "deposit", 1100, paid=1000)
    spend = row("alice", at("2026-04-02"), "spend", -250, description='=HYPERLINK("x"), a "quote"')
    plus = row("alice", at("2026-04-02", "13:00:00"), "spend", -5, description="+1 more, @you")
    row("alice", at("2026-04-03"), "spend", -1, description="after")
    row("bob", at("2026-04-02"), "spend", -7, description="bob's")

    # When alice exports 1 to 2 April
    result = export(**{"from": "2026-04-01", "to": "2026-04-02"})

    # Then the CSV holds her three rows of those days, written as RFC 4180 says, text cells defused
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        result["headers"]["Content-Disposition"]
        == 'attachment; filename="credits-2026-04-01-to-2026-04-02.csv"'
    )
    assert result["body"] == (
        "date,transaction_id,type,source,description,credits,value_usd,paid_usd,payment_id\r\n"
        f"2026-04-01T00:00:00.000Z,{paid},deposit,stripe_payment,,1100,11.00,10.00,{paid}\r\n"
        f'2026-04-02T12:00:00.000Z,{spend},spend,service,"\'=HYPERLINK(""x""), a ""quote""",-250,-2.50,,\r\n'
        f'2026-04-02T13:00:00.000Z,{plus},spend,service,"\'+1 more, @you",-5,-0.05,,\r\n'
    )
    # And a CSV reader reads the cells back as written
    cells = list(csv.reader(io.StringIO(result["body"])))
    assert cells[2][4] == '\'=HYPERLINK("x"), a "quote"'


def test_a_deposit_is_on_the_day_it_was_credited_not_the_day_its_checkout_opened() -> None:
    # Given a bank debit opened on 25 March and credited on 2 April, and one opened and credited on 2 April
    # but long before the range's end
    late = row("alice", at("2026-04-02"), "deposit", 1000, opened=at("2026-03-25"), paid=1000)
    # And a deposit opened in the range but credited after it
    row("alice", at("2026-04-05"), "deposit", 500, opened=at("2026-04-02", "18:00:00"), paid=500)

    result = export(**{"from": "2026-04-02", "to": "2026-04-02"})

    lines = result["body"].split("\r\n")
    assert [line.split(",")[1] for line in lines[1:-1]] == [late]


def test_a_hot_account_exports_the_rows_of_every_sub_balance_in_time_order() -> None:
    # Given a hot account whose spends sit on its sub-balances
    models.CreditBalance("alice", balance=0, shards=2, sharded_at=1).save()
    hot_accounts.forget()
    first = row("alice", at("2026-04-01", "10:00:00"), "spend", -1, partition="alice#s1")
    second = row("alice", at("2026-04-01", "11:00:00"), "spend", -2, partition="alice#s0")
    third = row("alice", at("2026-04-01", "12:00:00"), "deposit", 3)

    result = export(**{"from": "2026-04-01", "to": "2026-04-01"})

    lines = result["body"].split("\r\n")
    assert [line.split(",")[1] for line in lines[1:-1]] == [first, second, third]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"from": "2026-04-01"},
        {"to": "2026-04-01"},
        {"from": "2026-4-1", "to": "2026-04-01"},
        {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "01/04/2026", "to": "2026-04-01"},
        {"from": "2026-04-02", "to": "2026-04-01"},
        {"from": "2019-12-31", "to": "2020-01-01"},
        {"from": "2026-04-01", "to": "2026-04-01,2026-04-02"},
        {"from": "2026-04-01\n", "to": "2026-04-02"},
    ],
)
def test_a_range_that_is_not_two_dates_in_order_within_the_bounds_is_a_400(query: dict[str, str]) -> None:
    assert error_of(export(**query)) == (400, "invalid_range")


def test_the_range_is_at_most_366_days_and_ends_by_tomorrow() -> None:
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    year_ago = tomorrow - timedelta(days=365)

    assert export(**{"from": str(year_ago), "to": str(tomorrow)})["statusCode"] == 200
    assert error_of(export(**{"from": str(year_ago - timedelta(days=1)), "to": str(tomorrow)})) == (
        400,
        "invalid_range",
    )
    assert error_of(export(**{"from": str(today), "to": str(tomorrow + timedelta(days=1))})) == (
        400,
        "invalid_range",
    )
    assert date(2020, 1, 1) == activity.EARLIEST
    assert export(**{"from": "2020-01-01", "to": "2020-12-31"})["statusCode"] == 200


def test_the_export_needs_a_signed_in_user() -> None:
    assert error_of(export(user=None, **{"from": "2026-04-01", "to": "2026-04-01"})) == (401, "unauthorized")


def test_an_export_past_the_size_limit_is_a_413_naming_the_days_that_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given rows on three days, and a limit that the first two days' rows fit in but not the third's
    for day in ("2026-04-01", "2026-04-02", "2026-04-03"):
        row("alice", at(day), "spend", -1, description="x" * 40)
    header_and_two_days = len(export(**{"from": "2026-04-01", "to": "2026-04-02"})["body"])
    monkeypatch.setattr(activity, "MAX_CSV_BYTES", header_and_two_days + 10)

    result = export(**{"from": "2026-04-01", "to": "2026-04-03"})

    assert result["statusCode"] == 413
    assert json.loads(result["body"])["error"]["code"] == "export_too_large"
    assert json.loads(result["body"])["error"]["fitsThrough"] == "2026-04-02"


def test_the_size_counts_what_json_escaping_adds_to_the_response() -> None:
    # A quote costs two bytes in the JSON payload, a non-ASCII character six.
    assert activity.payload_size('"') == 2
    assert activity.payload_size("é") == 6
    assert activity.payload_size("\r\n") == 4


def daily(user: str | None = "alice") -> dict[str, Any]:
    result = lambda_handler(api_event("GET", "/api/balance/daily", user=user), LambdaContext())
    assert result["statusCode"] == 200, result["body"]
    body: dict[str, Any] = json.loads(result["body"])
    return body


def test_the_chart_counts_the_last_30_days_use_and_top_ups_by_day() -> None:
    today = datetime.now(UTC).date()
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    # Given spends today, two days ago and 30 days ago (out of the window), and a top-up two days ago
    row("alice", noon - timedelta(hours=1), "spend", -100)
    row("alice", noon - timedelta(hours=2), "spend", -50)
    row("alice", noon - timedelta(days=2), "spend", -7)
    row("alice", noon - timedelta(days=2), "deposit", 1000, paid=1000)
    row("alice", noon - timedelta(days=30), "spend", -9999)
    row("alice", noon - timedelta(days=1), "refund", -300)
    row("bob", noon, "spend", -1)

    days = daily()["days"]

    assert len(days) == 30
    assert days[-1] == {"date": str(today), "used": 150, "toppedUp": 0, "topUps": 0}
    assert days[-3] == {"date": str(today - timedelta(days=2)), "used": 7, "toppedUp": 1000, "topUps": 1}
    assert days[-2] == {"date": str(today - timedelta(days=1)), "used": 0, "toppedUp": 0, "topUps": 0}
    assert days[0]["date"] == str(today - timedelta(days=29))
    assert sum(day["used"] for day in days) == 157


def test_days_past_the_rows_read_are_not_counted_rather_than_counted_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = datetime.now(UTC).date()
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    for days_ago in (0, 1, 1, 2):
        row("alice", noon - timedelta(days=days_ago), "spend", -1)
    monkeypatch.setattr(activity, "MAX_CHART_ROWS", 2)

    days = daily()["days"]

    assert days[-1]["used"] == 1
    assert days[-2]["used"] is None
    assert days[0]["used"] is None

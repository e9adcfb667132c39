"""The month's books over every account (wallet.books): `make report` and GET /api/books/{period}, against
rows written into the tables as the ledger writes them, in past months. Every expected figure is worked
by hand from the rows below, at each grant's price per credit."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from devstack import report as make_report
from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import books, projection
from wallet.grants import Grants
from wallet.models import CreditBalance, CreditGuard, CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def row(user: str, when: datetime, kind: str, amount: int, **fields: Any) -> str:
    row_id = fields.pop("row_id", None) or str(ULID.from_timestamp(when.timestamp()))
    fields.setdefault("source", {"deposit": "stripe_payment", "refund": "stripe_refund"}.get(kind, "api"))
    CreditTransaction(user, row_id, type=kind, amount=amount, created_at=when.isoformat(), **fields).save()
    return row_id


def rows(user: str) -> list[CreditTransaction]:
    return list(CreditTransaction.query(user, consistent_read=True))


def balance(user: str, amount: int, currency: str) -> None:
    CreditBalance(user, balance=amount, currency=currency).save()


def accounts() -> None:
    # alice (usd): 1,000 credits for $10.00 in October; 300 used in October, 200 in November.
    paid = str(ULID.from_timestamp(at(10, 3).timestamp()))
    row("alice", at(10, 3), "deposit", 1000, amount_paid=1000, payment_id=paid, row_id=paid)
    row("alice", at(10, 20), "spend", -300)
    row("alice", at(11, 5), "spend", -200)
    balance("alice", 500, "usd")
    # bob (eur): 500 credits for €4.50 in October; 100 refunded in November (90 cents of it).
    paid = str(ULID.from_timestamp(at(10, 10).timestamp()))
    row("bob", at(10, 10), "deposit", 500, amount_paid=450, payment_id=paid, row_id=paid)
    row("bob", at(11, 2), "refund", -100, payment_id=paid)
    balance("bob", 400, "eur")
    # carol (usd): 50 free credits in November.
    row("carol", at(11, 10), "grant", 50, source="promotion", description="welcome")
    balance("carol", 50, "usd")
    # dave: an account with nothing yet.
    balance("dave", 0, "usd")


NOW = datetime(2026, 12, 7, tzinfo=UTC).timestamp()


def figures(line: books.Line) -> tuple[int, ...]:
    return (
        line.opening_deferred,
        line.purchases,
        line.recognised,
        line.breakage,
        line.reversals,
        line.closing_deferred,
    )


def test_october_and_november_by_account_and_by_currency() -> None:
    accounts()
    lines: list[books.Line] = []

    october = books.report("2026-10", NOW, default_currency="usd", write=lines.append)

    assert {line.user_id: figures(line) for line in lines} == {
        "alice": (0, 1000, 300, 0, 0, 700),
        "bob": (0, 450, 0, 0, 0, 450),
    }
    assert (october.accounts, october.complete, october.balanced()) == (4, True, True)
    assert figures(october.totals["usd"]) == (0, 1000, 300, 0, 0, 700)
    assert figures(october.totals["eur"]) == (0, 450, 0, 0, 0, 450)

    lines.clear()
    november = books.report("2026-11", NOW, default_currency="usd", write=lines.append)

    by_user = {line.user_id: line for line in lines}
    assert figures(by_user["alice"]) == (700, 0, 200, 0, 0, 500)
    assert figures(by_user["bob"]) == (450, 0, 0, 0, 90, 360)
    assert (by_user["bob"].paid_credits_reversed, by_user["bob"].closing_paid_credits) == (100, 400)
    assert (by_user["carol"].free_credits_in, by_user["carol"].closing_free_credits) == (50, 50)
    assert figures(november.totals["usd"]) == (700, 0, 200, 0, 0, 500)
    assert november.balanced()


def test_december_is_month_to_date_and_a_later_month_is_refused() -> None:
    accounts()

    december = books.report("2026-12", NOW, default_currency="usd")

    assert not december.complete
    assert figures(december.totals["usd"]) == (500, 0, 0, 0, 0, 500)
    with pytest.raises(ValueError, match="future"):
        books.parse_period("2027-01", NOW)


def test_a_stored_projection_whose_books_were_altered_is_listed_as_not_adding_up() -> None:
    accounts()
    projection.project("alice", NOW)
    stored = CreditGuard.get("alice", projection.PROJECTION)
    state = json.loads(stored.state or "")
    state["books"]["2026-10"]["money_used"] += 1
    stored.update(actions=[CreditGuard.state.set(json.dumps(state))])

    october = books.report("2026-10", NOW, default_currency="usd")

    assert [(line.user_id, line.unbalanced()) for line in october.unbalanced] == [("alice", ["deferred"])]
    assert not october.balanced()


def test_a_projection_stored_by_the_previous_release_is_folded_again_and_reports_right() -> None:
    """The first release's stored form had no month and no closing figures: its books cannot say what a
    month opened with. It is folded again from the rows, under its version, not read."""
    accounts()
    earlier = (
        '{"lots":[],"debt":[],"holds":{},"books":{"2026-10":{"paid_credits_in":1000,"paid_money_in":1000}}}'
    )
    CreditGuard("alice", projection.PROJECTION, state=earlier, transaction_id="01Z", version=3).save()

    after = projection.project("alice", NOW)

    assert Grants.current_form(CreditGuard.get("alice", projection.PROJECTION).state)
    assert (after.version, after.watermark) == (4, str(max(r.transaction_id for r in rows("alice"))))
    assert figures(books.line(after.grants, "2026-11", "usd")) == (700, 0, 200, 0, 0, 500)


def books_page(period: str, query: dict[str, str] | None = None, arn: str | None = None) -> HttpResponse:
    event = api_event("GET", "/api/books/{period}", path_parameters={"period": period}, query=query)
    if arn is not None:
        event["requestContext"]["identity"]["userArn"] = arn
    return invoke(spend_handler, event)


def test_the_route_pages_through_every_account_once_and_its_pages_add_up_to_the_month() -> None:
    accounts()
    whole = books.report("2026-11", NOW, default_currency="usd")
    seen: list[str] = []
    totals: dict[str, int] = {}
    cursor: str | None = None
    for _ in range(10):
        answer = books_page("2026-11", {"limit": "1", **({"cursor": cursor} if cursor else {})})
        assert answer.status == 200, answer.body
        assert (answer.body["balanced"], answer.body["complete"]) == (True, True)
        seen += [line["userId"] for line in answer.body["accounts"]]
        for total in answer.body["totals"]:
            key = total["currency"]
            totals[key] = totals.get(key, 0) + total["closingDeferred"]
        cursor = answer.body["nextCursor"]
        if cursor is None:
            break

    assert sorted(seen) == ["alice", "bob", "carol"]
    assert totals == {currency: line.closing_deferred for currency, line in whole.totals.items()}


@pytest.mark.parametrize(
    ("period", "query", "code"),
    [
        ("2026-13", None, "invalid_period"),
        ("2026-1", None, "invalid_period"),
        ("november", None, "invalid_period"),
        ("2099-01", None, "invalid_period"),
        ("2026-11", {"limit": "0"}, "invalid_page"),
        ("2026-11", {"limit": "101"}, "invalid_page"),
        ("2026-11", {"limit": "ten"}, "invalid_page"),
        ("2026-11", {"cursor": "not-a-cursor"}, "invalid_page"),
        ("2026-11", {"cursor": "x" * 1501}, "invalid_page"),
    ],
)
def test_a_bad_period_limit_or_cursor_is_a_400(period: str, query: dict[str, str] | None, code: str) -> None:
    answer = books_page(period, query)

    assert (answer.status, answer.body["error"]["code"]) == (400, code)


def test_the_largest_page_is_taken() -> None:
    accounts()

    answer = books_page("2026-11", {"limit": "100"})

    assert (answer.status, answer.body["nextCursor"]) == (200, None)
    assert answer.body["accountsRead"] == 4


def test_only_an_operator_reads_the_books() -> None:
    answer = books_page("2026-11", arn="arn:aws:iam::123456789012:role/someone-else")

    assert answer.status == 403


def test_make_report_writes_csv_and_json_that_read_back(tmp_path: Path) -> None:
    accounts()
    as_csv, as_json = tmp_path / "books.csv", tmp_path / "books.json"

    assert make_report.run("2026-11", "csv", str(as_csv)) == 0
    assert make_report.run("2026-11", "json", str(as_json)) == 0

    with as_csv.open(newline="", encoding="utf-8") as stream:
        table = list(csv.DictReader(stream))
    assert {(r["account"], r["currency"]): int(r["closing_deferred"]) for r in table} == {
        ("alice", "usd"): 500,
        ("bob", "eur"): 360,
        ("carol", "usd"): 0,
        ("total", "eur"): 360,
        ("total", "usd"): 500,
    }
    assert as_csv.read_bytes().count(b"\r\n") == len(table) + 1
    loaded = json.loads(as_json.read_text(encoding="utf-8"))
    assert sorted(line["userId"] for line in loaded["accounts"]) == ["alice", "bob", "carol"]
    assert [(t["currency"], t["reversals"]) for t in loaded["totals"]] == [("eur", 90), ("usd", 0)]
    assert (loaded["balanced"], loaded["complete"], loaded["accountsRead"]) == (True, True, 4)


def test_make_report_refuses_a_bad_period_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_report.run("2026-13", "csv", None) == 2
    assert "YYYY-MM" in capsys.readouterr().err

"""Where the credits went: the history of a date range as CSV, and the last days' use per day for the page's
chart. Both read the user's rows by their ids (ULIDs: the first 48 bits are the moment, so a day's rows are
one key range of a Query), lazily a page at a time, and place each row on the day of its `createdAt`.

A deposit's id is its payment id, made when its checkout opened (or its auto top-up began), so a payment
credited later has an id older than its day: each read also looks `CREDITED_WITHIN` back for deposits,
filtered by DynamoDB to those credited in the range. Days are UTC days.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any

from pynamodb.exceptions import PynamoDBException
from ulid import ULID

from wallet import hot_accounts, ledger
from wallet.errors import ExportTooLargeError, InvalidRangeError, LedgerUnavailableError
from wallet.models import CreditTransaction

# Checkout Sessions expire within 24 hours, but a bank debit paid on one settles days later (Stripe's
# "delayed notification payment methods"); two weeks covers them. A later deposit is on its session's day.
CREDITED_WITHIN = timedelta(days=14)
# Ranges the export takes: a calendar year at most, from the year the product began.
MAX_EXPORT_DAYS = 366
EARLIEST = date(2020, 1, 1)
# Lambda's synchronous response is at most 6 MB (the whole JSON payload, so the body as JSON-escaped):
# the CSV stops well short, leaving room for the headers and the payload's own keys.
MAX_CSV_BYTES = 5_000_000
# The chart: this many days, and at most this many rows read for them (newest first; older days are
# then reported as not counted rather than counted short).
CHART_DAYS = 30
MAX_CHART_ROWS = 20_000
# A Query's page: DynamoDB returns at most 1 MB a page whatever this asks.
PAGE_SIZE = 500
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Cells a spreadsheet would read as a formula (OWASP, "CSV Injection"): = + - @, and tab or carriage return
# before one. Text cells starting so get a leading apostrophe; numbers this code writes itself are left as
# numbers, or a debit of -250 would become text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("date", "transaction_id", "type", "source", "description", "credits")


@dataclass(frozen=True, slots=True)
class Export:
    body: str
    filename: str
    rows: int


@dataclass(frozen=True, slots=True)
class Day:
    day: str
    used: int | None
    """Credits spent that day (captured holds included); None when not counted (MAX_CHART_ROWS)."""
    topped_up: int | None
    top_ups: int | None


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`from` and `to`, both YYYY-MM-DD, inclusive: at most MAX_EXPORT_DAYS days, not before EARLIEST nor
    after tomorrow (a day already begun somewhere)."""
    latest = today + timedelta(days=1)
    days = []
    for name, value in (("from", start), ("to", end)):
        if value is None or not DATE.fullmatch(value):
            raise InvalidRangeError(f"{name} must be a date written YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidRangeError(f"{name} is not a calendar date: {value}") from None
        if not EARLIEST <= day <= latest:
            raise InvalidRangeError(f"{name} must be from {EARLIEST} to {latest}")
        days.append(day)
    first, last = days
    if last < first:
        raise InvalidRangeError("to must not be before from")
    if (last - first).days + 1 > MAX_EXPORT_DAYS:
        raise InvalidRangeError(f"a range is at most {MAX_EXPORT_DAYS} days; export a year at a time")
    return first, last


def export(user_id: str, first: date, last: date, currency: str) -> Export:
    """The user's rows credited from `first` to `last` (UTC days, inclusive) as RFC 4180 CSV, oldest first.
    Raises ExportTooLargeError, naming the last whole day that fit, past MAX_CSV_BYTES."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled, fields quoted if needed
    # Credits are minor units of the currency at face value: `value` is that in the currency, `paid` what a
    # deposit's customer paid.
    writer.writerow((*COLUMNS, f"value_{currency}", f"paid_{currency}", "payment_id"))
    size = payload_size(out.getvalue())
    rows = 0
    for row in _rows(user_id, _start(first), _start(last + timedelta(days=1)), reverse=False):
        mark = out.tell()
        writer.writerow(_cells(row))
        size += payload_size(out.getvalue()[mark:])
        if size > MAX_CSV_BYTES:
            # Rows are in time order: every day before this row's was written whole.
            before = date.fromisoformat(row.created_at[:10]) - timedelta(days=1)
            raise ExportTooLargeError(MAX_CSV_BYTES, before if before >= first else None)
        rows += 1
    return Export(out.getvalue(), f"credits-{first}-to-{last}.csv", rows)


def daily(user_id: str, today: date, days: int = CHART_DAYS) -> list[Day]:
    """Credits used and topped up on each of the last `days` UTC days, oldest first; days older than the
    last row read are None when MAX_CHART_ROWS ran out."""
    first = today - timedelta(days=days - 1)
    used: dict[str, int] = {}
    topped_up: dict[str, int] = {}
    top_ups: dict[str, int] = {}
    counted_from = first.isoformat()
    for read, row in enumerate(_rows(user_id, _start(first), _start(today + timedelta(days=1)), True), 1):
        day = row.created_at[:10]
        if read > MAX_CHART_ROWS:
            # Rows of this day may remain unread: only the days after it are whole.
            counted_from = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
            break
        if row.type == ledger.SPEND:
            used[day] = used.get(day, 0) - int(row.amount)
        elif row.type == ledger.DEPOSIT:
            topped_up[day] = topped_up.get(day, 0) + int(row.amount)
            top_ups[day] = top_ups.get(day, 0) + 1
    chart = []
    for offset in range(days):
        day = (first + timedelta(days=offset)).isoformat()
        counted = day >= counted_from
        chart.append(
            Day(
                day,
                used.get(day, 0) if counted else None,
                topped_up.get(day, 0) if counted else None,
                top_ups.get(day, 0) if counted else None,
            )
        )
    return chart


def _rows(user_id: str, start: datetime, end: datetime, reverse: bool) -> Iterator[CreditTransaction]:
    """The account's rows credited in [start, end), in id order (newest first when `reverse`)."""
    # One read of the balance item, unless this process knows the account is hot already.
    partitions = hot_accounts.account_partitions(user_id)
    low, high = _iso(start), _iso(end)
    # A row's id is made a moment before its createdAt: a minute's margin past the end, filtered.
    in_range = (CreditTransaction.created_at >= low) & (CreditTransaction.created_at < high)
    late_deposits = in_range & (CreditTransaction.type == ledger.DEPOSIT)

    def one(partition: str) -> Iterator[CreditTransaction]:
        ranges = [
            (_first_id(start - CREDITED_WITHIN), _last_id(start), late_deposits),
            (_first_id(start), _last_id(end + timedelta(minutes=1)), in_range),
        ]
        queries = (
            CreditTransaction.query(
                partition,
                CreditTransaction.transaction_id.between(first_id, last_id),
                filter_condition=condition,
                scan_index_forward=not reverse,
                page_size=PAGE_SIZE,
            )
            for first_id, last_id, condition in (reversed(ranges) if reverse else ranges)
        )
        return chain.from_iterable(queries)

    merged = heapq.merge(*(one(p) for p in partitions), key=lambda row: row.transaction_id, reverse=reverse)
    try:
        yield from merged
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the history") from exc


def _cells(row: CreditTransaction) -> list[Any]:
    credits = int(row.amount)
    paid = "" if row.type != ledger.DEPOSIT or row.amount_paid is None else _money(int(row.amount_paid))
    return [
        _text(row.created_at),
        _text(row.transaction_id),
        _text(row.type),
        _text(row.source),
        _text(row.description or ""),
        credits,
        _money(credits),
        paid,
        _text(row.payment_id or ""),
    ]


def _text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def _money(minor: int) -> str:
    """Minor units as a decimal of the currency's two-decimal unit (every currency CURRENCY takes is)."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def payload_size(text: str) -> int:
    """What the text costs in Lambda's JSON response payload (ASCII escapes, as json.dumps writes)."""
    return len(json.dumps(text)) - 2


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _first_id(moment: datetime) -> str:
    return str(ULID.from_bytes(_millis(moment).to_bytes(6, "big") + bytes(10)))


def _last_id(moment: datetime) -> str:
    """The greatest id made before `moment`."""
    return str(ULID.from_bytes((_millis(moment) - 1).to_bytes(6, "big") + b"\xff" * 10))


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)

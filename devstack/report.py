"""`make report PERIOD=2027-01 [FORMAT=csv|json] [OUT=path]`: the month's books of the running local
stack (or of the tables the environment names, as `make audit` does), per account and per currency.

Each account's line is written as it is made, so the report's memory is one account's grants however
many accounts and rows there are. The totals come last: one line per currency (`account` = `total`) in
CSV, `totals` in JSON. Exit 0 when every line adds up (opening + in - out = closing), 1 when one does
not (they are listed under `unbalanced`, and on standard error), 2 for a malformed or future period.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from devstack import run_file

FORMATS = ("csv", "json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make report", description="The month's books, per account.")
    parser.add_argument("--period", default="", help="the month, YYYY-MM (make report PERIOD=...)")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", default=None, help="a file to write; standard output without it")
    options = parser.parse_args(argv)
    return run_file.run_command(lambda: run(options.period, options.format, options.out), "report")


def run(period: str, form: str, out: str | None) -> int:
    from wallet import books, settings
    from wallet.errors import InvalidPeriodError

    now = time.time()
    try:
        books.parse_period(period, now)
    except InvalidPeriodError as exc:
        print(f"Cannot report: {exc} (PERIOD={period or 'unset'}).", file=sys.stderr)
        return 2
    currency = settings.price_list().currency
    with Path(out).open("w", encoding="utf-8", newline="") if out else nullcontext(sys.stdout) as stream:
        writer = CsvOut(stream, period) if form == "csv" else JsonOut(stream, period)
        report = books.report(period, now, default_currency=currency, write=writer.account)
        writer.finish(report)
    for line in report.unbalanced:
        print(
            f"  {line.user_id} ({line.currency}) does not add up: {', '.join(line.unbalanced())}",
            file=sys.stderr,
        )
    if not report.complete:
        print(f"{period} is not over yet (or ended under 15 minutes ago): month to date.", file=sys.stderr)
    return 0 if report.balanced() else 1


class CsvOut:
    """RFC 4180 (the csv module's default dialect, CRLF line ends): a header, the accounts, the totals."""

    def __init__(self, stream: IO[str], period: str) -> None:
        from wallet.books import NUMBERS

        self.period, self.numbers = period, NUMBERS
        self.writer = csv.writer(stream)
        self.writer.writerow(["period", "currency", "account", *NUMBERS])

    def account(self, line: Any) -> None:
        self._row(line.currency, line.user_id, line)

    def finish(self, report: Any) -> None:
        for currency, total in sorted(report.totals.items()):
            self._row(currency, "total", total)

    def _row(self, currency: str, name: str, line: Any) -> None:
        # A user id is the caller's text: one starting with = + - @ would be a formula in a spreadsheet.
        safe = f"'{name}" if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name
        self.writer.writerow([self.period, currency, safe, *(getattr(line, n) for n in self.numbers)])


class JsonOut:
    """One JSON object, written as it goes: `accounts` first, then `totals`, `unbalanced` and the rest."""

    def __init__(self, stream: IO[str], period: str) -> None:
        self.stream, self.first = stream, True
        stream.write('{"period": ' + json.dumps(period) + ', "accounts": [')

    def account(self, line: Any) -> None:
        self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps(line.to_dict()))
        self.first = False

    def finish(self, report: Any) -> None:
        rest = {
            "totals": [report.totals[currency].to_dict() for currency in sorted(report.totals)],
            "unbalanced": [line.to_dict() for line in report.unbalanced],
            "accountsRead": report.accounts,
            "complete": report.complete,
            "balanced": report.balanced(),
        }
        self.stream.write("\n], " + json.dumps(rest)[1:] + "\n")


if __name__ == "__main__":
    sys.exit(main())

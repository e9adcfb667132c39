"""The month's books (wallet.books) over 10^6 rows: its pace, and its peak memory against 10^4 rows.

The rows are 1,000 accounts' 1,000 rows each (against 10 accounts' for 10^4), spread over twelve months:
a deposit of 400 credits at a price, then four spends of 100, so every grant is used up and each month
books purchases and revenue recognised. No account has a stored projection, so the report folds every
row (`projection.current`): the most it can be asked to read. The report keeps one account's grants and
the totals, so its peak memory must not grow with the number of accounts.

The ledger is moto's DynamoDB server in a process of its own, with the rows put into its tables directly
and its Queries on the keys answered in key order, as `bench/audit.py` explains; the projection's Query
names a key range (`BETWEEN`), answered the same way here, and a Query's items are written as the JSON
they are (`bench/grants.py`: moto's own serializer takes milliseconds a row). The report runs unchanged,
over HTTP through botocore and pynamodb, as `make report` runs it.

`make bench-books` runs it: `PYTHONPATH=layers/shared:. .venv/bin/python -m bench.books`.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from bench import audit as audit_bench
from bench import environment
from bench.report import Report, Row

SECTION = "The month's books"
ROWS_PER_ACCOUNT = 1_000
SMALL, LARGE = 10, 1_000
MONTHS = 12
FIRST_MONTH = datetime(2026, 1, 1, tzinfo=UTC)
PERIOD = "2026-06"
# Peak memory over 1,000 accounts against 10: flat, with room for the allocator's noise.
MEMORY_BUDGET = 1.25


def main() -> int:
    rows = measure()
    if "--json" in sys.argv:
        print(json.dumps([asdict(row) for row in rows]))
    else:
        print(Report(rows).table())
    return 1 if any(row.holds is False for row in rows) else 0


def run() -> list[Row]:
    """For `make bench`: the measures, from a process of their own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.books", "--json"],
        cwd=environment.ROOT,
        env=os.environ | {"PYTHONPATH": f"{environment.ROOT / 'layers/shared'}:{environment.ROOT}"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"bench.books ended with {done.returncode}: {done.stderr[-2000:]}")
    return [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]


def measure() -> list[Row]:
    environment.apply()
    context = multiprocessing.get_context("spawn")
    commands, server_end = context.Pipe()
    server = context.Process(target=_serve, args=(server_end,), name="bench-books-dynamodb", daemon=True)
    server.start()
    try:
        if not commands.poll(audit_bench.SERVER_START_SECONDS):
            raise RuntimeError("moto's DynamoDB did not start")
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = commands.recv()
        # The first report makes the client and loads botocore's model: not a cost of the rows.
        _report_of(commands, 1)
        small = _report_of(commands, SMALL)
        large = _report_of(commands, LARGE)
    finally:
        commands.send(("stop",))
        server.join(30)
        if server.is_alive():
            server.kill()
    return _rows(small, large)


def _report_of(commands: Connection, accounts: int) -> dict[str, Any]:
    from wallet import books

    commands.send(("ledger", accounts))
    load_seconds: float = commands.recv()
    now = datetime(2027, 1, 15, tzinfo=UTC).timestamp()
    written = 0

    def write(_: books.Line) -> None:
        nonlocal written
        written += 1

    tracemalloc.start()
    try:
        started = time.perf_counter()
        found = books.report(PERIOD, now, default_currency="usd", write=write)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = found.totals["usd"]
    # A month's worth of each account's rows: 1,000 / 12 of them, a fifth deposits of 400 at 4 cents
    # a credit, the rest spends of 100.
    if (found.accounts, written, found.balanced()) != (accounts, accounts, True) or total.purchases <= 0:
        raise RuntimeError(f"the report over {accounts} accounts found {found}")
    return {
        "accounts": accounts,
        "rows": accounts * ROWS_PER_ACCOUNT,
        "load_seconds": load_seconds,
        "seconds": seconds,
        "peak": peak,
        "purchases": total.purchases,
        "recognised": total.recognised,
    }


def _rows(small: dict[str, Any], large: dict[str, Any]) -> list[Row]:
    ratio = large["peak"] / small["peak"]
    rows = [
        Row(
            SECTION,
            f"{run['rows']:,} rows ({run['accounts']:,} accounts of {ROWS_PER_ACCOUNT:,}), no projection "
            f"stored: {PERIOD}'s books",
            f"{run['rows'] / run['seconds']:,.0f} rows/s ({run['seconds']:.1f} s); every line adds up",
            f"written into moto in {run['load_seconds']:.1f} s",
        )
        for run in (small, large)
    ]
    rows.append(
        Row(
            SECTION,
            f"Peak memory of the report (tracemalloc), {large['rows']:,} rows against {small['rows']:,}",
            f"{_mib(large['peak'])} against {_mib(small['peak'])}",
            f"{large['rows'] // small['rows']}x the rows",
            f"{ratio:.2f}",
            f"<= {MEMORY_BUDGET:.2f}",
            holds=ratio <= MEMORY_BUDGET,
        )
    )
    return rows


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


# -- The DynamoDB process --


def _serve(commands: Connection) -> None:
    """moto's DynamoDB server, with the template's tables, until told to stop; on ("ledger", accounts)
    it replaces the tables' items with that many accounts' rows and answers how long that took."""
    import logging

    from devstack.dynamodb import DynamoDBServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from bench.grants import queries_answered_as_json

    audit_bench._answer_key_queries_in_key_order()
    _answer_key_ranges_in_key_order()
    with queries_answered_as_json(), DynamoDBServer() as server:
        server.create_tables(environment.TABLES)
        commands.send(server.endpoint_url)
        while True:
            message = commands.recv()
            if message[0] == "stop":
                return
            started = time.perf_counter()
            _write_accounts(message[1])
            commands.send(time.perf_counter() - started)


def _write_accounts(accounts: int) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from ulid import ULID

    def value(kind: str, text: str) -> DynamoType:
        return DynamoType({kind: text})

    transactions = audit_bench._table(environment.TABLES["CreditTransactionTable"])
    balances = audit_bench._table(environment.TABLES["CreditBalanceTable"])
    transactions.items.clear()
    balances.items.clear()
    span_ms = MONTHS * 30 * 86_400_000
    first_ms = int(FIRST_MONTH.timestamp() * 1000)
    for number in range(accounts):
        owner = value("S", f"bench-books-{number:05d}")
        partition = transactions.items[owner]
        for n in range(ROWS_PER_ACCOUNT):
            at_ms = first_ms + n * span_ms // ROWS_PER_ACCOUNT
            transaction_id = value("S", str(ULID.from_timestamp(at_ms / 1000)))
            stamp = datetime.fromtimestamp(at_ms / 1000, UTC).isoformat()
            common = {"userId": owner, "source": value("S", "service"), "createdAt": value("S", stamp)}
            if n % 5 == 0:
                kind = {
                    "type": value("S", "deposit"),
                    "amount": value("N", "400"),
                    "amountPaid": value("N", "1600"),
                }
            else:
                kind = {"type": value("S", "spend"), "amount": value("N", "-100")}
            row = Item.__new__(Item)
            row.hash_key, row.range_key = owner, transaction_id
            row.attrs = LimitedSizeDict(common | kind, transactionId=transaction_id)
            partition[transaction_id] = row
        balances.put_item({"userId": owner.to_json(), "balance": {"N": "0"}, "currency": {"S": "usd"}})


def _answer_key_ranges_in_key_order() -> None:
    """A Query on the keys with a range of the sort key (`BETWEEN`), answered from the partition in key
    order; anything else goes to the Query `bench/audit.py` installed."""
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

    keyed = Table.query

    def query(self: Table, hash_key: Any, range_comparison: str | None, range_objs: list[Any], limit: int,
              exclusive_start_key: dict[str, Any] | None, scan_index_forward: bool,
              projection_expressions: list[list[str]] | None, index_name: str | None = None,
              consistent_read: bool = False, filter_expression: Any = None,
              **conditions: Any) -> Any:  # fmt: skip
        ranges = conditions.get("range_key_conditions") or []
        if range_comparison == "BETWEEN":
            bounds = list(range_objs)
        elif len(ranges) == 1 and ranges[0][1] == "BETWEEN":
            bounds = list(ranges[0][2])
        else:
            bounds = []
        if not bounds or index_name or scan_index_forward is False or projection_expressions:
            return keyed(
                self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression, **conditions,
            )  # fmt: skip
        partition = self.items.get(hash_key, {})
        keys = sorted(key.value for key in partition)
        by_key = {key.value: item for key, item in partition.items()}
        low, high = bounds[0].value, bounds[1].value
        start = exclusive_start_key[self.range_key_attr]["S"] if exclusive_start_key else None
        first = bisect.bisect_right(keys, start) if start else bisect.bisect_left(keys, low)
        page: list[Any] = []
        size, last_key = 0, None
        for key in keys[first:]:
            if key > high:
                break
            item = by_key[key]
            size += item.size()
            if (limit and len(page) == limit) or size > RESULT_SIZE_LIMIT:
                last_key = self._get_last_evaluated_key(page[-1], None)
                break
            page.append(item)
        scanned = len(page)
        if filter_expression is not None:
            page = [item for item in page if filter_expression.expr(item)]
        return page, scanned, last_key

    Table.query = query  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())

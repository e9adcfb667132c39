"""The audit of one user's 10^6 rows, summed and folded into grants: its pace, its peak memory against
10^4 rows, and a stop and resume.

The ledger is served by moto's DynamoDB server in a process of its own, so that the auditing process
holds nothing but the audit and its memory is the audit's. Two things of moto's would measure moto, not
the audit, and are replaced there:

- Writing: moto takes ~125 us per item through its own item constructor (it re-sizes the whole item on
  every attribute it sets), ~2 min for 10^6 even without HTTP. The rows are put into moto's tables
  directly as moto's own `Item`s, with the values they share shared.
- Querying: moto sorts the whole table on every Query, then walks it to the start key: one 1,000-row
  page of a 100,000-row partition takes about 1 s, so 10^6 rows would take hours. A Query on the table's
  keys alone (what the audit asks) is answered from the partition kept in key order, with DynamoDB's
  page limits (`Limit`, 1 MB) and `LastEvaluatedKey`; any other Query goes to moto's own code.

The audit runs unchanged, over HTTP through botocore and pynamodb, as `make audit` runs it.

`make bench-audit` runs this part alone: `PYTHONPATH=layers/shared:. .venv/bin/python -m bench.audit`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import environment
from bench.report import Report, Row

if TYPE_CHECKING:
    from wallet.audit import AuditReport

SECTION = "The audit of one user's rows"
USER = "bench-audit"
SMALL, LARGE = 10_000, 1_000_000
# Peak memory on 10^6 rows over that on 10^4: flat, with room for the allocator's noise.
MEMORY_BUDGET = 1.25
SERVER_START_SECONDS = 120.0


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
        [sys.executable, "-m", "bench.audit", "--json"],
        cwd=environment.ROOT,
        env=os.environ | {"PYTHONPATH": f"{environment.ROOT / 'layers/shared'}:{environment.ROOT}"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"bench.audit ended with {done.returncode}: {done.stderr[-2000:]}")
    return [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]


def measure() -> list[Row]:
    environment.apply()
    context = multiprocessing.get_context("spawn")
    commands, server_end = context.Pipe()
    server = context.Process(target=_serve, args=(server_end,), name="bench-audit-dynamodb", daemon=True)
    server.start()
    try:
        if not commands.poll(SERVER_START_SECONDS):
            raise RuntimeError("moto's DynamoDB did not start")
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = commands.recv()
        from wallet import audit

        # The first audit makes the client and loads botocore's model: not a cost of the rows.
        _ledger(commands, 10)
        audit.audit()
        small = _audit_of(commands, SMALL)
        large = _audit_of(commands, LARGE)
    finally:
        commands.send(("stop",))
        server.join(30)
        if server.is_alive():
            server.kill()
    return _rows(small, large)


def _audit_of(commands: Connection, rows: int) -> dict[str, Any]:
    """One uninterrupted audit, timed; then one stopped halfway through the rows and resumed, traced."""
    from wallet import audit

    load_seconds = _ledger(commands, rows)
    started = time.perf_counter()
    whole = audit.audit()
    seconds = time.perf_counter() - started
    found = (whole.users, whole.rows, whole.drifts, whole.grant_drifts, whole.unsettled, whole.finished)
    if found != (1, rows, [], [], [], True):
        raise RuntimeError(f"the audit of {rows} rows found {whole}")
    tracemalloc.start()
    try:
        stopped = audit.audit(_time_for(rows // audit.ROWS_PAGE // 2))
        stopped_at = stopped.rows
        resumed = audit.audit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "rows": rows,
        "load_seconds": load_seconds,
        "seconds": seconds,
        "peak": peak,
        "high_water": _high_water_bytes(),
        "stopped_at": stopped_at,
        "stopped": not stopped.finished and resumed.resumed and resumed.finished,
        "equal": _whole([stopped, resumed]) == _whole([whole]),
    }


def _rows(small: dict[str, Any], large: dict[str, Any]) -> list[Row]:
    ratio = large["peak"] / small["peak"]
    rows = [
        Row(
            SECTION,
            f"{run['rows']:,} rows of one user and their balance, audited",
            f"{run['rows'] / run['seconds']:,.0f} rows/s ({run['seconds']:.1f} s)",
            f"written into moto in {run['load_seconds']:.1f} s",
        )
        for run in (small, large)
    ]
    rows.append(
        Row(
            SECTION,
            f"Peak memory of the audit (tracemalloc), {large['rows']:,} rows against {small['rows']:,}",
            f"{_mib(large['peak'])} against {_mib(small['peak'])}; VmHWM of the process "
            f"{_mib(large['high_water'])} after {_mib(small['high_water'])}",
            f"{large['rows'] // small['rows']}x the rows",
            f"{ratio:.2f}",
            f"<= {MEMORY_BUDGET:.2f}",
            holds=ratio <= MEMORY_BUDGET,
        )
    )
    rows += [
        Row(
            SECTION,
            f"Stopped after {run['stopped_at']:,} of {run['rows']:,} rows, resumed from the checkpoint",
            "same users, rows and drifts as one uninterrupted run"
            if run["equal"]
            else "DIFFERS from one run",
            budget="equal, resumed from the checkpoint",
            holds=run["equal"] and run["stopped"],
        )
        for run in (small, large)
    ]
    return rows


def _time_for(calls: int) -> Callable[[], float]:
    """A run's time, as the audit asks for it: plenty for `calls` questions, then none left."""
    asked = itertools.count(1)
    return lambda: float("inf") if next(asked) <= calls else 0.0


def _whole(reports: list[AuditReport]) -> tuple[int, int, list[Any], list[Any], list[str]]:
    return (
        sum(report.users for report in reports),
        sum(report.rows for report in reports),
        [drift for report in reports for drift in report.drifts],
        [drift for report in reports for drift in report.grant_drifts],
        [user for report in reports for user in report.unsettled],
    )


def _ledger(commands: Connection, rows: int) -> float:
    commands.send(("ledger", USER, rows))
    seconds: float = commands.recv()
    return seconds


def _high_water_bytes() -> int:
    """The process's peak resident memory so far (Linux's VmHWM)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


# -- The DynamoDB process --


def _serve(commands: Connection) -> None:
    """moto's DynamoDB server, with the template's tables, until told to stop; on ("ledger", user, rows)
    it replaces the user's rows and balance with `rows` rows and answers how long that took."""
    import logging

    from devstack.dynamodb import DynamoDBServer

    # A line per request on stderr would bury the results.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _answer_key_queries_in_key_order()
    with DynamoDBServer() as server:
        server.create_tables(environment.TABLES)
        commands.send(server.endpoint_url)
        while True:
            message = commands.recv()
            if message[0] == "stop":
                return
            _, user, rows = message
            started = time.perf_counter()
            _write_ledger(user, rows)
            commands.send(time.perf_counter() - started)


def _table(name: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][environment.SETTINGS["AWS_REGION"]].get_table(name)


def _write_ledger(user: str, rows: int) -> None:
    """`rows` rows (an operator's 400 free credits in five, spends of 100 in between) and the balance they
    add up to. The audit folds them into grants: each grant is used up by the next four spends and dropped,
    so the account holds one grant at a time. (Paid deposits all of one instant would each be kept 180
    days for a refund, and the fold's cost per row grows with the grants kept: wallet.grants.)"""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from ulid import ULID

    def value(kind: str, text: str) -> DynamoType:
        return DynamoType({kind: text})

    owner = value("S", user)
    shared = {
        "userId": owner,
        "source": value("S", "service"),
        "currency": value("S", "usd"),
        "createdAt": value("S", "2026-12-01T00:00:00.000Z"),
    }
    grant = shared | {"type": value("S", "adjustment"), "amount": value("N", "400")}
    spend = shared | {"type": value("S", "spend"), "amount": value("N", "-100")}
    transactions = _table(environment.TABLES["CreditTransactionTable"])
    transactions.items.pop(owner, None)
    partition = transactions.items[owner]
    for n in range(rows):
        transaction_id = value("S", str(ULID()))
        row = Item.__new__(Item)
        row.hash_key, row.range_key = owner, transaction_id
        # LimitedSizeDict's constructor takes the items as they are: no per-attribute re-sizing.
        row.attrs = LimitedSizeDict(grant if n % 5 == 0 else spend, transactionId=transaction_id)
        partition[transaction_id] = row
    total = sum(400 if n % 5 == 0 else -100 for n in range(rows))
    _table(environment.TABLES["CreditBalanceTable"]).put_item(
        {"userId": {"S": user}, "balance": {"N": str(total)}, "currency": {"S": "usd"}}
    )


def _answer_key_queries_in_key_order() -> None:
    """A Query on the table's keys alone, answered from the partition in key order (see the module)."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

    moto_query = Table.query
    in_order: dict[int, tuple[int, list[str], dict[str, Item]]] = {}

    def query(
        self: Table,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        limit: int,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        index_name: str | None = None,
        consistent_read: bool = False,
        filter_expression: Any = None,
        **conditions: Any,
    ) -> tuple[list[Item], int, dict[str, Any] | None]:
        on_keys_alone = (
            self.range_key_attr is not None
            and not (index_name or range_comparison or conditions.get("range_key_conditions"))
            and scan_index_forward is not False
            and set(conditions) <= {"hash_key_conditions", "range_key_conditions"}
            and all(len(path) == 1 for path in projection_expressions or [])
        )
        if not on_keys_alone:
            return moto_query(  # type: ignore[no-any-return]
                self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression, **conditions,
            )  # fmt: skip
        partition = self.items.get(hash_key, {})
        cached = in_order.get(id(partition))
        if cached is None or cached[0] != len(partition):
            by_key = {key.value: item for key, item in partition.items()}
            cached = in_order[id(partition)] = (len(partition), sorted(by_key), by_key)
        _, keys, by_key = cached
        start = exclusive_start_key
        first = bisect.bisect_right(keys, start[self.range_key_attr]["S"]) if start else 0
        page: list[Item] = []
        size = 0
        last_key = None
        for key in keys[first : first + limit + 1] if limit else keys[first:]:
            item = by_key[key]
            size += item.size()
            if len(page) == limit or size > RESULT_SIZE_LIMIT:
                last_key = self._get_last_evaluated_key(page[-1], None)
                break
            page.append(item)
        scanned = len(page)
        # As DynamoDB does: the filter applies to the page read, after its limits.
        if filter_expression is not None:
            page = [item for item in page if filter_expression.expr(item)]
        if projection_expressions:
            names = {path[0] for path in projection_expressions}
            page = [_projected(item, names) for item in page]
        return page, scanned, last_key

    Table.query = query  # type: ignore[method-assign]


def _projected(item: Any, names: set[str]) -> Any:
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

    projected = Item.__new__(Item)
    projected.hash_key, projected.range_key = item.hash_key, item.range_key
    projected.attrs = LimitedSizeDict({name: item.attrs[name] for name in names if name in item.attrs})
    return projected


if __name__ == "__main__":
    sys.exit(main())

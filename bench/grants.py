"""`make bench-grants`: what grants cost a spend, and whether their projection keeps up with a hot account.

1. A spend beside today's: grants added one action to the spend's one UpdateItem (`ADD changes 1`,
   wallet.writes.balance_actions). The spend handler as it is and the same handler with that action left
   out run interleaved on the same moto server: DynamoDB calls per spend (must be equal) and the ratio of
   their p50 and p99 latencies.
2. The projection of a hot account: N debits spread over its sub-balances' partitions (written directly
   in batches, as 1,000 debits a second would have written them, after one deposit), folded by
   `projection.project` until caught up: rows folded per second against 1,000 debits a second, the pure
   fold's rate, and the Query pages it took, so the figure can be mapped to DynamoDB's 1 MB pages.

moto's DynamoDB server runs in this process on a thread (bench.local.Servers), reached over HTTP through
botocore and pynamodb, as the other benches reach it: its per-call cost is moto's, not DynamoDB's.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ulid import ULID

from bench import environment
from bench.hot_account import _transactions_back_up_their_items
from bench.local import Servers, median, percentile
from bench.report import Row, within
from bench.roundtrips import DynamoDBCalls

SECTION = "Grants (a spend beside today's; the projection of a hot account; expiry of many grants)"
SERVER = "moto's DynamoDB server in this process, over HTTP"
# Rounds, and spends of each variant per round: p99 of 800 spends each.
SPEND_ROUNDS = 8
SPENDS_PER_ROUND = 100
WARM_UP = 20
# What "unchanged" allows a spend as it is over the spend without the count: the handler's own time
# (moto's answers left out), the median of each pair's ratio (the two run back to back, so what else
# loads the machine meets both), to two decimals. End to end is shown beside it: moto takes longer to
# apply one more update action (about 1 ms of its 13 here), which is moto's cost, not DynamoDB's.
OWN_BUDGET = 1.05
ROWS = 20_000
SHARDS = 8
TARGET_PER_SECOND = 1000
CALLER = "arn:aws:iam::123456789012:user/api-service"
PAGE_BYTES = 1024 * 1024
WITHOUT = "without ADD changes 1"
# What the spend path (wallet.account) builds its balance update with.
BALANCE_ACTIONS = "balance_actions"
# A strongly consistent Query costs one read unit per 4 KB of the items it reads, summed over its page.
READ_UNIT_BYTES = 4096


# -- 1. A spend beside today's ------------------------------------------------------------------------


def without_changes(amount: int, currency: str, now: str) -> list[Any]:
    """wallet.writes.balance_actions as it was before grants: every action but `ADD changes 1`."""
    from wallet import writes
    from wallet.models import CreditBalance

    name = CreditBalance.changes.attr_name
    return [
        action for action in writes.balance_actions(amount, currency, now) if action.values[0].path != [name]
    ]


@contextmanager
def before_grants() -> Iterator[None]:
    """The spend path writes its balance without the change count while inside."""
    from wallet import account

    today = getattr(account, BALANCE_ACTIONS)
    setattr(account, BALANCE_ACTIONS, without_changes)
    try:
        yield
    finally:
        setattr(account, BALANCE_ACTIONS, today)


@dataclass(slots=True)
class Variant:
    """One spend's figures, each spend in turn: its time, its time with moto's answers left out, and its
    DynamoDB calls."""

    ms: list[float] = field(default_factory=list)
    own_ms: list[float] = field(default_factory=list)
    calls: set[tuple[str, ...]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Spends:
    today: Variant
    before: Variant
    """The same handler with `ADD changes 1` left out (before_grants)."""
    counted: int
    """The balance item's `changes` over the run: one per spend as it is, none for the others."""
    per_round: int

    def round_ratios(self) -> list[float]:
        """Each round's p50 as it is over its p50 without the count."""
        bounds = range(0, len(self.today.ms), self.per_round)
        return [
            median(self.today.ms[n : n + self.per_round]) / median(self.before.ms[n : n + self.per_round])
            for n in bounds
        ]


def spends(servers: Servers, rounds: int = SPEND_ROUNDS, per_round: int = SPENDS_PER_ROUND) -> Spends:
    from functions.spend.app import lambda_handler as spend
    from tests.lambda_events import api_event, invoke
    from wallet import ledger
    from wallet.models import CreditBalance

    # moto deep-copies every table a transaction touches, so each spend would cost more than the last.
    _transactions_back_up_their_items()
    servers.fresh()
    user = "bench-grants-spender"
    ledger.add_credits(user, 10_000_000, source="stripe_payment", payment_id=str(ULID()), currency="usd")

    def event(key: str) -> dict[str, Any]:
        spend_event = api_event(
            "POST",
            "/api/users/{userId}/spend",
            path_parameters={"userId": user},
            body=json.dumps({"amount": 1}),
        )
        spend_event["headers"]["idempotency-key"] = key
        return spend_event

    calls = DynamoDBCalls()
    today, before = Variant(), Variant()

    def one(key: str, record: Variant | None) -> None:
        ready = event(key)
        calls.operations.clear()
        answering = server.seconds
        started = time.perf_counter()
        response = invoke(spend, ready)
        elapsed = time.perf_counter() - started
        if response.status != 201:
            raise RuntimeError(f"a spend answered {response.status}: {response.body}")
        if record is not None:
            record.ms.append(elapsed * 1000)
            record.own_ms.append((elapsed - (server.seconds - answering)) * 1000)
            record.calls.add(tuple(calls.operations))

    def spend_today(key: str, record: Variant | None = None) -> None:
        one(key, record)

    def spend_before(key: str, record: Variant | None = None) -> None:
        with before_grants():
            one(key, record)

    try:
        with server_time() as server:
            for n in range(WARM_UP):
                spend_today(f"warm-today-{n}")
                spend_before(f"warm-before-{n}")
            start = int(CreditBalance.get(user, consistent_read=True).changes or 0)
            for n in range(rounds * per_round):
                pair: list[tuple[Callable[[str, Variant], None], str, Variant]] = [
                    (spend_today, f"today-{n}", today),
                    (spend_before, f"before-{n}", before),
                ]
                # Alternating which goes first, so drift and caching favour neither.
                for call, key, record in pair if n % 2 == 0 else reversed(pair):
                    call(key, record)
            counted = int(CreditBalance.get(user, consistent_read=True).changes or 0) - start
    finally:
        calls.close()
    return Spends(today, before, counted, per_round)


def spend_rows(result: Spends) -> list[Row]:
    today, before = result.today, result.before
    p50 = median(today.ms) / median(before.ms)
    p99 = percentile(today.ms, 0.99) / percentile(before.ms, 0.99)
    own = paired(today.own_ms, before.own_ms)
    rounds = result.round_ratios()
    count = len(today.ms)
    return [
        Row(
            SECTION,
            f"Service: a spend, DynamoDB calls ({count:,} of each, interleaved)",
            f"as it is: {_calls(today)}",
            f"{WITHOUT}: {_calls(before)}",
            budget="equal, one set each; changes counted once per spend as it is",
            holds=today.calls == before.calls and len(today.calls) == 1 and result.counted == count,
        ),
        Row(
            SECTION,
            "Service: a spend, p50 latency",
            f"{median(today.ms):.2f} ms",
            f"{WITHOUT}: {median(before.ms):.2f} ms",
            f"{p50:.2f}x (each pair's {paired(today.ms, before.ms):.2f}x; rounds {min(rounds):.2f}-"
            f"{max(rounds):.2f}, {len(rounds)} of {result.per_round})",
        ),
        Row(
            SECTION,
            "Service: a spend, p99 latency",
            f"{percentile(today.ms, 0.99):.2f} ms",
            f"{WITHOUT}: {percentile(before.ms, 0.99):.2f} ms",
            f"{p99:.2f}x",
        ),
        Row(
            SECTION,
            "Service: a spend, the handler's own time (moto's answers left out), each pair's ratio",
            f"p50 {median(today.own_ms):.2f} ms",
            f"{WITHOUT}: p50 {median(before.own_ms):.2f} ms",
            f"{own:.2f}x (p50s {median(today.own_ms) / median(before.own_ms):.2f}x)",
            f"<= {OWN_BUDGET:.2f}x",
            within(own, OWN_BUDGET),
        ),
    ]


def paired(today: list[float], before: list[float]) -> float:
    """The median of each pair's ratio: a spend as it is over the spend without the count next to it."""
    return median([one / other for one, other in zip(today, before, strict=True)])


def _calls(variant: Variant) -> str:
    return " | ".join(", ".join(calls) for calls in sorted(variant.calls))


# -- 2. The projection of a hot account ---------------------------------------------------------------


class Pages(DynamoDBCalls):
    """Every Query answer on the functions' clients while open: its items, kept to be sized afterwards
    (sizing them as they come would add to the time measured)."""

    EVENT = "after-call.dynamodb"

    def __init__(self) -> None:
        self.pages: list[list[dict[str, Any]]] = []
        super().__init__()

    def _count(self, model: Any, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        self.operations.append(model.name)
        if model.name == "Query" and parsed:
            self.pages.append(parsed.get("Items", []))

    @property
    def items(self) -> int:
        return sum(len(page) for page in self.pages)

    @property
    def largest(self) -> int:
        return max((len(page) for page in self.pages), default=0)

    def bytes(self) -> int:
        return sum(item_bytes(item) for page in self.pages for item in page)


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name in UTF-8 and its value."""
    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def value_bytes(value: dict[str, Any]) -> int:
    """A value's size as DynamoDB's guide gives it: strings in UTF-8, a number a byte per two significant
    digits plus one, binary its bytes, a boolean or null one, a list or map 3 plus a byte per element."""
    [(kind, data)] = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return number_bytes(str(data))
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_bytes({kind[0]: member}) for member in data)
    if kind == "L":
        return 3 + sum(1 + value_bytes(member) for member in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_bytes(member) for name, member in data.items())
    raise ValueError(f"not a DynamoDB value: {value}")


def number_bytes(text: str) -> int:
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


@dataclass(frozen=True, slots=True)
class Projection:
    rows: int
    seconds: float
    calls: int
    queries: int
    items_read: int
    largest_page: int
    bytes_read: int
    server_seconds: float
    """Of `seconds`, the time moto's server spent answering (serializing each item is most of it)."""
    fold_seconds: float
    total: int
    expected_total: int
    load_seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def own_per_second(self) -> float:
        """Rows folded a second by the projection's own work: its process's time with moto's answers left
        out (botocore's parsing, pynamodb's items, the fold, its reads and writes' own cost)."""
        return self.rows / (self.seconds - self.server_seconds)

    @property
    def fold_per_second(self) -> float:
        return self.rows / self.fold_seconds

    @property
    def row_bytes(self) -> float:
        return self.bytes_read / self.items_read

    @property
    def rows_per_page(self) -> float:
        return self.items_read / self.queries

    @property
    def read_per_folded(self) -> float:
        return self.items_read / self.rows

    @property
    def dynamodb_page_rows(self) -> int:
        """How many of these rows one 1 MB Query page holds on DynamoDB."""
        return int(PAGE_BYTES // self.row_bytes)


def projection_of_hot_account(servers: Servers, rows: int = ROWS, shards: int = SHARDS) -> Projection:
    with queries_answered_as_json():
        return _projection_of_hot_account(servers, rows, shards)


def _projection_of_hot_account(servers: Servers, rows: int, shards: int) -> Projection:
    from wallet import grants, hot_accounts, ledger, projection
    from wallet.models import CreditTransaction
    from wallet.writes import SPEND

    servers.fresh()
    user = "bench-grants-hot"
    funds = rows + 1000
    ledger.add_credits(user, funds, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    hot_accounts.make_hot(user, shards, currency="usd")

    # 1,000 debits a second from just after the deposit, each in the sub-balance its key would name.
    started = time.perf_counter()
    first_s = time.time() + 1
    last_id = ""
    with CreditTransaction.batch_write() as batch:
        for n in range(rows):
            at_s = first_s + n / TARGET_PER_SECOND
            transaction_id = str(ULID.from_timestamp(at_s))
            last_id = max(last_id, transaction_id)
            batch.save(
                CreditTransaction(
                    hot_accounts.shard_key(user, n % shards),
                    transaction_id,
                    type=SPEND,
                    amount=-1,
                    source="service",
                    actor=CALLER,
                    created_at=_iso(at_s),
                )
            )
    load_seconds = time.perf_counter() - started
    # Every row settled: now is well past the last one.
    now_s = first_s + rows / TARGET_PER_SECOND + projection.SETTLE_SECONDS + 60

    pages = Pages()
    calls = 0
    try:
        with server_time() as server:
            started = time.perf_counter()
            stored = projection.stored(user)
            while stored.watermark != last_id:
                if calls > rows // projection.BATCH_ROWS + 2:
                    raise RuntimeError(f"the projection stopped at {stored.watermark}, not {last_id}")
                stored = projection.project(user, now_s)
                calls += 1
            seconds = time.perf_counter() - started
    finally:
        pages.close()

    # The pure fold over the same rows as Row objects, read (untimed) from the table.
    folded = [projection.row_of(item) for item in projection.rows_after(user, None, None)]
    if len(folded) != rows + 1:
        raise RuntimeError(f"{len(folded)} rows read back, not {rows + 1}")
    started = time.perf_counter()
    pure = grants.fold(folded)
    fold_seconds = time.perf_counter() - started
    if pure.total() != stored.grants.total():
        raise RuntimeError(f"the pure fold's total {pure.total()} is not the projection's")
    return Projection(
        rows=rows,
        seconds=seconds,
        calls=calls,
        queries=len(pages.pages),
        items_read=pages.items,
        largest_page=pages.largest,
        bytes_read=pages.bytes(),
        server_seconds=server.seconds,
        fold_seconds=fold_seconds,
        total=stored.grants.total(),
        expected_total=funds - rows,
        load_seconds=load_seconds,
    )


class ServerTime:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.by_action: dict[str, float] = {}
        """The same time by DynamoDB action (`TransactWriteItems`, `Query`, ...)."""


@contextmanager
def server_time() -> Iterator[ServerTime]:
    """While inside, the time moto's DynamoDB server (devstack.dynamodb) spends answering, summed."""
    from devstack.dynamodb import SerializedApp

    spent = ServerTime()
    moto_call = SerializedApp.__call__

    def timed(
        self: SerializedApp, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        started = time.perf_counter()
        try:
            return moto_call(self, environ, start_response)
        finally:
            took = time.perf_counter() - started
            spent.seconds += took
            action = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
            spent.by_action[action] = spent.by_action.get(action, 0.0) + took

    SerializedApp.__call__ = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        SerializedApp.__call__ = moto_call  # type: ignore[method-assign]


@contextmanager
def queries_answered_as_json() -> Iterator[None]:
    """While inside, moto writes a Query's items as JSON, and the rest of its answer as it would.

    moto serializes an answer by walking botocore's shape for every value (about 2 ms a row of these
    here, most of the projection's time, and past botocore's read timeout for a page of 2,500 rows).
    A Query's items are DynamoDB JSON already: the same answer, written directly. An answer with binary
    values goes through moto's own serializer, which base64-encodes them."""
    from moto.core.responses import ActionContext
    from moto.dynamodb.responses import DynamoResult

    moto_execute = DynamoResult.execute_result

    def execute_result(self: DynamoResult, context: ActionContext) -> Any:
        result = self.result
        if context.operation_model.name != "Query" or not isinstance(result, dict) or "Items" not in result:
            return moto_execute(self, context)
        status, headers, body = moto_execute(DynamoResult({**result, "Items": []}), context)
        answer = json.loads(body)
        answer["Items"] = result["Items"]
        try:
            return status, headers, json.dumps(answer)
        except TypeError:  # bytes
            return moto_execute(self, context)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        DynamoResult.execute_result = moto_execute  # type: ignore[method-assign]


def _iso(at_s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def projection_rows(result: Projection, shards: int = SHARDS) -> list[Row]:
    own = result.own_per_second / TARGET_PER_SECOND
    return [
        Row(
            SECTION,
            f"Projection of a hot account ({shards} sub-balances): {result.rows:,} debits at 1,000/s and a "
            f"deposit, project() until caught up; its own time (moto's answers left out)",
            f"{result.own_per_second:,.0f} rows folded/s ({result.seconds - result.server_seconds:.1f} s, "
            f"{result.calls} calls); grants total {result.total:,}",
            f"{TARGET_PER_SECOND:,} debits/s",
            f"{own:.2f}x",
            f">= 1.00x; total = deposit - debits ({result.expected_total:,})",
            round(own, 2) >= 1 and result.total == result.expected_total,
        ),
        Row(
            SECTION,
            f"  ... end to end against {SERVER}",
            f"{result.per_second:,.0f} rows folded/s ({result.seconds:.1f} s, of which moto answering "
            f"{result.server_seconds:.1f} s)",
            f"{TARGET_PER_SECOND:,} debits/s",
            f"{result.per_second / TARGET_PER_SECOND:.2f}x",
        ),
        Row(
            SECTION,
            "  ... the pure fold (grants.fold over Row objects)",
            f"{result.fold_per_second:,.0f} rows/s ({result.fold_seconds:.2f} s)",
            f"{TARGET_PER_SECOND:,} debits/s",
            f"{result.fold_per_second / TARGET_PER_SECOND:,.0f}x",
        ),
        Row(
            SECTION,
            "  ... its Query pages",
            f"{result.queries} queries, {result.items_read:,} items read ({result.read_per_folded:.2f} a row "
            f"folded), {result.rows_per_page:,.0f} rows a page (largest {result.largest_page:,}); "
            f"{1000 * result.queries / result.rows:.2f} queries per 1,000 rows folded",
            f"DynamoDB: rows of {result.row_bytes:.0f} B, {result.dynamodb_page_rows:,} to a 1 MB page; "
            f"{result.bytes_read / READ_UNIT_BYTES / result.rows * 1000:,.1f} RCU (consistent) "
            "per 1,000 rows folded",
        ),
        Row(
            SECTION,
            "  ... writing the rows (batch writes, not timed above)",
            f"{result.rows / result.load_seconds:,.0f} rows/s into moto ({result.load_seconds:.1f} s)",
        ),
    ]


# -- 3. Expiry of 10^5 grants in one run --------------------------------------------------------------

GRANTS = 100_000
# A grant that never expires, beside the ones that do: what the account holds after the expiry.
KEPT = 7


def grant_credits(n: int) -> int:
    """The n-th expiring grant's credits: 1 to 5 in turn, so each batch's sum is not just its length."""
    return 1 + n % 5


def expected_credits(grants: int) -> int:
    """What the expiring grants hold together, summed per whole round of 1..5 and the rest."""
    rounds, rest = divmod(grants, 5)
    return rounds * 15 + rest * (rest + 1) // 2


def transactions_for(grants: int, per_transaction: int) -> int:
    """TransactWriteItems an expiry of `grants` whole grants takes: a row each, `per_transaction` a call."""
    return -(-grants // per_transaction)


@dataclass(frozen=True, slots=True)
class Expiry:
    grants: int
    credits: int
    """What the one call expired."""
    rows: int
    """The `expired` rows it said it wrote."""
    expired_rows: int
    """The `expired` rows in the table afterwards."""
    grants_expired: int
    """The expiring grants that have exactly one `expired` row for all their credits."""
    transactions: int
    queries: int
    items_read: int
    seconds: float
    server_seconds: float
    transact_seconds: float
    """Of `server_seconds`, moto applying the TransactWriteItems."""
    balance: int
    again_rows: int
    """What a second call wrote."""
    stale: int
    load_seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def own_seconds(self) -> float:
        return self.seconds - self.server_seconds

    @property
    def own_per_second(self) -> float:
        return self.rows / self.own_seconds

    @property
    def transact_ms(self) -> float:
        return 1000 * self.transact_seconds / self.transactions

    @property
    def exact(self) -> bool:
        """Every grant expired once, whole, in the transactions its rows need; the grant that never
        expires is what is left; a second call writes nothing."""
        from wallet.expiry import ROWS_PER_TRANSACTION

        return (
            self.credits == expected_credits(self.grants)
            and self.rows == self.expired_rows == self.grants_expired == self.grants
            and self.transactions == transactions_for(self.grants, ROWS_PER_TRANSACTION)
            and self.balance == KEPT
            and self.again_rows == 0
        )


def expiry_of_many_grants(servers: Servers, grants: int = GRANTS) -> Expiry:
    from moto.dynamodb.models.table import Table

    from bench import audit, books

    _transactions_back_up_their_items()
    servers.fresh()
    moto_query = Table.query
    # moto filters and sorts the whole partition for every Query page: here a page is read from the
    # partition in key order (bench/audit.py, bench/books.py), its items written as JSON.
    audit._answer_key_queries_in_key_order()
    books._answer_key_ranges_in_key_order()
    try:
        with queries_answered_as_json():
            return _expiry_of_many_grants(grants)
    finally:
        Table.query = moto_query  # type: ignore[method-assign]


def _expiry_of_many_grants(grants: int) -> Expiry:
    from wallet import expiry
    from wallet.models import CreditBalance
    from wallet.writes import EXPIRED

    user = "bench-grants-expiring"
    now_s = time.time()
    started = time.perf_counter()
    partition, grant_ids = _write_grants(user, grants, now_s)
    load_seconds = time.perf_counter() - started

    pages = Pages()
    try:
        with server_time() as server:
            started = time.perf_counter()
            done = expiry.expire(user, now_s, "usd")
            seconds = time.perf_counter() - started
    finally:
        pages.close()
    again = expiry.expire(user, time.time(), "usd")

    taken: dict[str, list[int]] = {}
    for item in partition.values():
        if item.attrs["type"].value == EXPIRED:
            taken.setdefault(item.attrs["grantId"].value, []).append(-int(item.attrs["amount"].value))
    whole = sum(1 for n, grant_id in enumerate(grant_ids) if taken.get(grant_id) == [grant_credits(n)])
    balance = CreditBalance.get(user, consistent_read=True)
    return Expiry(
        grants=grants,
        credits=done.credits,
        rows=done.rows,
        expired_rows=sum(len(parts) for parts in taken.values()),
        grants_expired=whole,
        transactions=pages.operations.count("TransactWriteItems"),
        queries=len(pages.pages),
        items_read=pages.items,
        seconds=seconds,
        server_seconds=server.seconds,
        transact_seconds=server.by_action.get("TransactWriteItems", 0.0),
        balance=int(balance.balance),
        again_rows=again.rows,
        stale=done.stale,
        load_seconds=load_seconds,
    )


def _write_grants(user: str, grants: int, now_s: float) -> tuple[dict[Any, Any], list[str]]:
    """`grants` promotional grants made over the last 30 days, each expired a day ago, and one that never
    expires, put straight into moto's transaction table; the balance item holds their sum, with a change
    counted for each. The partition and the expiring grants' ids, in order."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    from bench import audit
    from wallet.writes import GRANT

    def value(kind: str, text: str) -> DynamoType:
        return DynamoType({kind: text})

    owner = value("S", user)
    transactions = audit._table(environment.TABLES["CreditTransactionTable"])
    partition = transactions.items[owner]
    first_s = now_s - 30 * 86_400
    expired_at = value("N", str(int(now_s) - 86_400))
    shared = {"userId": owner, "type": value("S", GRANT), "source": value("S", "promotion")}
    grant_ids = []
    for n in range(grants + 1):
        at_s = first_s + n * (29 * 86_400) / (grants + 1)
        transaction_id = value("S", str(ULID.from_timestamp(at_s)))
        attrs = shared | {"createdAt": value("S", _iso(at_s))}
        if n < grants:
            attrs |= {"amount": value("N", str(grant_credits(n))), "grantExpiresAt": expired_at}
            grant_ids.append(transaction_id.value)
        else:
            attrs["amount"] = value("N", str(KEPT))
        row = Item.__new__(Item)
        row.hash_key, row.range_key = owner, transaction_id
        row.attrs = LimitedSizeDict(attrs, transactionId=transaction_id)
        partition[transaction_id] = row
    audit._table(environment.TABLES["CreditBalanceTable"]).put_item(
        {
            "userId": {"S": user},
            "balance": {"N": str(expected_credits(grants) + KEPT)},
            "currency": {"S": "usd"},
            "changes": {"N": str(grants + 1)},
            "grantsExpire": {"BOOL": True},
        }
    )
    return partition, grant_ids


def expiry_rows(result: Expiry) -> list[Row]:
    from wallet.expiry import ROWS_PER_TRANSACTION

    other = result.server_seconds - result.transact_seconds
    return [
        Row(
            SECTION,
            f"Expiry of {result.grants:,} grants in one run: one account's grants past their expiry and "
            "one that never expires, expiry.expire once",
            f"{result.grants_expired:,} grants expired ({result.credits:,} credits), {result.rows:,} rows in "
            f"{result.transactions:,} transactions, {result.seconds:.1f} s: {result.per_second:,.0f} rows/s; "
            f"balance after {result.balance:,}, a second call wrote {result.again_rows}",
            f"{ROWS_PER_TRANSACTION} rows a transaction; {result.stale} refused",
            budget=f"each grant expired once, whole; balance = the grant kept ({KEPT}); second call writes 0",
            holds=result.exact,
        ),
        Row(
            SECTION,
            "  ... its own time (moto's answers left out), and moto's",
            f"own {result.own_seconds:.1f} s ({result.own_per_second:,.0f} rows/s); moto "
            f"{result.server_seconds:.1f} s: TransactWriteItems {result.transact_seconds:.1f} s "
            f"({result.transact_ms:.1f} ms each), the rest {other:.1f} s",
            f"{result.queries} queries read {result.items_read:,} items",
        ),
        Row(
            SECTION,
            "  ... writing the grants into moto's table directly (not timed above)",
            f"{result.grants + 1:,} rows in {result.load_seconds:.1f} s",
        ),
    ]


def rows(servers: Servers, debits: int = ROWS, grants: int = GRANTS) -> list[Row]:
    return (
        spend_rows(spends(servers))
        + projection_rows(projection_of_hot_account(servers, debits))
        + expiry_rows(expiry_of_many_grants(servers, grants))
    )


def main() -> int:
    import logging
    import warnings

    from bench import environment
    from bench.local import quiet_stdout
    from bench.report import Report

    sys.dont_write_bytecode = True
    environment.apply()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for name in ("werkzeug", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # `python -m bench.grants 5000 20000`: fewer debits and grants, for a quick look; `python -m
    # bench.grants expiry 20000`: the expiry alone.
    arguments = sys.argv[1:]
    alone = arguments[:1] == ["expiry"]
    if alone:
        arguments = arguments[1:]
    grants = int(arguments[-1]) if alone and arguments else GRANTS
    debits = int(arguments[0]) if arguments and not alone else ROWS
    if not alone and len(arguments) > 1:
        grants = int(arguments[1])
    started = time.perf_counter()
    with Servers() as servers, quiet_stdout():
        found = (
            expiry_rows(expiry_of_many_grants(servers, grants)) if alone else rows(servers, debits, grants)
        )
    print(f"DynamoDB: {SERVER} (moto's per-call cost, not DynamoDB's)\n")
    print(Report(found).table())
    print(f"\n{len(found)} measures in {time.perf_counter() - started:.0f} s")
    return 0 if all(row.holds is not False for row in found) else 1


if __name__ == "__main__":
    sys.exit(main())

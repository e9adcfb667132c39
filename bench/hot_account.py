"""`make bench-hot`: a burst of debits on ONE account from 64 workers through the ledger, against moto's
DynamoDB with DynamoDB's transaction conflicts modelled, once plain and once hot; both must end exact."""

from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ulid import ULID

from bench.local import Servers
from bench.report import Row

SECTION = "Hot account"
DEBITS = 5000
WORKERS = 64
SHARDS = 8
AMOUNT = 1
CALLER = "arn:aws:iam::000000000000:role/bench-backend"
# DynamoDB writes a transaction's two phases in milliseconds; moto in far less. Items stay held this long.
HOLD_SECONDS = 0.002
CALLER_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Burst:
    design: str
    seconds: float
    answers: Counter[object]
    stored: int
    rows: int
    contention: dict[str, int]
    server_conflicts: int
    hottest_units: int

    debits: int

    @property
    def funds(self) -> int:
        """Well funded: enough for 90% of the burst, so its last tenth must be refused (402), exactly."""
        return funds_for(self.debits)

    @property
    def exact(self) -> bool:
        spent = self.answers[201] * AMOUNT
        return (
            self.answers[201] + self.answers[402] == self.debits
            and spent == self.funds
            and self.stored == self.rows == self.funds - spent
        )


def funds_for(debits: int) -> int:
    return debits * AMOUNT * 9 // 10


def burst(servers: Servers, shards: int | None, debits: int) -> Burst:
    from wallet import account, hot_accounts, ledger, writes
    from wallet.errors import InsufficientCreditsError, LedgerUnavailableError
    from wallet.models import CreditBalance, CreditTransaction

    servers.fresh()
    hot_accounts.forget()
    user = f"bench-{'hot' if shards else 'plain'}"
    funds = funds_for(debits)
    ledger.add_credits(user, funds, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    if shards:
        hot_accounts.make_hot(user, shards, currency="usd")
    servers.dynamodb.conflicts.enable(HOLD_SECONDS)
    writes.contention.reset()

    def debit(n: int) -> object:
        # The caller retries a 500 (conflicts outlasted the ledger's retries) with the same key, as asked.
        for attempt in range(CALLER_ATTEMPTS):
            try:
                ledger.spend(
                    user, AMOUNT, idempotency_key=f"debit-{n}", description=None, actor=CALLER, currency="usd"
                )
            except InsufficientCreditsError:
                return 402
            except LedgerUnavailableError:
                if attempt:
                    writes.contention.add("caller_retries")
                writes.contention.add("answered_500")
                continue
            return 201
        return 500

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        answers = Counter(pool.map(debit, range(debits)))
    seconds = time.perf_counter() - started
    servers.dynamodb.conflicts.disable()
    partitions = account.account_partitions(user)
    stored = sum(int(item.balance) for item in CreditBalance.batch_get(partitions, consistent_read=True))
    rows = sum(
        int(row.amount) for key in partitions for row in CreditTransaction.query(key, consistent_read=True)
    )
    units = servers.dynamodb.conflicts.write_units
    hottest = max((count for (table, _), count in units.items() if "balance" in table), default=0)
    return Burst(
        f"hot, {shards} sub-balances" if shards else "plain",
        seconds,
        answers,
        stored,
        rows,
        writes.contention.counts(),
        servers.dynamodb.conflicts.counts["conflicts"],
        hottest,
        debits,
    )


def rows(servers: Servers, debits: int = DEBITS) -> list[Row]:
    _transactions_back_up_their_items()
    plain, hot = burst(servers, None, debits), burst(servers, SHARDS, debits)
    found = []
    for result in (plain, hot):
        spent = result.answers[201]
        per_debit = result.hottest_units / spent if spent else 0.0
        ceiling = 1000 / per_debit if per_debit else 0.0
        counts = result.contention
        found.append(
            Row(
                SECTION,
                f"{debits:,} debits of {AMOUNT} on one account of {result.funds:,}, {WORKERS} workers: "
                f"{result.design}",
                f"{spent:,} spent, {result.answers[402]:,} refused (402), unanswered "
                f"{_others(result.answers)}; stored {result.stored:,} = rows {result.rows:,}; "
                f"{debits / result.seconds:.0f} debits/s in moto here (not an AWS figure); conflicts "
                f"{result.server_conflicts:,}, ledger "
                f"retries {counts.get('retries', 0):,}, 500s retried by the caller "
                f"{counts.get('answered_500', 0):,}, refills {counts.get('refills', 0):,}, gathers "
                f"{counts.get('gathers', 0):,}; hottest balance item {per_debit:.2f} WCU a debit: at most "
                f"{ceiling:,.0f} debits/s on AWS",
                budget="exact: every debit 201 or 402, stored == rows, none overdrawn",
                holds=result.exact,
            )
        )
    ratio = plain.seconds / hot.seconds
    found.append(
        Row(
            SECTION,
            "  ... hot over plain",
            f"throughput x{ratio:.2f} here (moto serializes every request); conflicts "
            f"{plain.server_conflicts:,} plain vs {hot.server_conflicts:,} hot",
        )
    )
    return found


def _others(answers: Counter[object]) -> str:
    rest = {key: count for key, count in answers.items() if key not in (201, 402)}
    return str(rest or 0)


def _transactions_back_up_their_items() -> None:
    """moto backs a transaction up by deep-copying every table it touches, so each write costs more as the
    ledger grows (5,000 debits would take far longer than the burst). Here a transaction backs up only the
    items it names and puts them back if it is cancelled: moto's conditions and all-or-nothing are kept."""
    import copy

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    moto_transact = DynamoDBBackend.transact_write_items
    if getattr(moto_transact, "backs_up_items", False):
        return

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            for request in entry.values():
                table = self.tables.get(request.get("TableName"))
                source = request.get("Item") or request.get("Key") or {}
                if table is None or table.hash_key_attr not in source:
                    continue  # moto's own checks refuse it before anything is written
                hash_key = DynamoType(source[table.hash_key_attr])
                if table.range_key_attr is None:
                    saved.append((table, hash_key, None, True, copy.deepcopy(table.items.get(hash_key))))
                elif table.range_key_attr in source:
                    range_key = DynamoType(source[table.range_key_attr])
                    partition = table.items.get(hash_key)
                    item = None if partition is None else partition.get(range_key)
                    saved.append((table, hash_key, range_key, partition is not None, copy.deepcopy(item)))
        # moto's own backup and rollback then hand back the same table: the items saved here are the backup.
        Table.__deepcopy__ = lambda table, memo: table  # type: ignore[attr-defined]
        try:
            moto_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, had_partition, item in reversed(saved):
                _put_back(table, hash_key, range_key, had_partition, item)
            raise
        finally:
            del Table.__deepcopy__  # type: ignore[attr-defined]

    transact_write_items.backs_up_items = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _put_back(table: Any, hash_key: Any, range_key: Any, had_partition: bool, item: Any) -> None:
    """`item` (None: absent) put back where it was in moto's `table`."""
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    partition = table.items.setdefault(hash_key, {})
    if item is None:
        partition.pop(range_key, None)
        if not had_partition and not partition:
            del table.items[hash_key]
    else:
        partition[range_key] = item


def main() -> int:
    import logging

    from bench import environment

    environment.apply()
    logging.basicConfig(level=logging.WARNING)
    for name in ("werkzeug", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # `python -m bench.hot_account 600`: a shorter burst, for a quick look.
    debits = int(sys.argv[1]) if len(sys.argv) > 1 else DEBITS
    with Servers() as servers:
        found = rows(servers, debits)
    for row in found:
        print(
            f"{row.measure}\n    {row.result}"
            + ("" if row.holds is None else f"  [{'holds' if row.holds else 'MISSED'}]")
        )
    return 0 if all(row.holds is not False for row in found) else 1


if __name__ == "__main__":
    sys.exit(main())

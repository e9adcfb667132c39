"""The history a person reads: the ledger's rows, newest first, with a hold folded into one row.

A hold writes two rows: its own (`hold`, 0 credits, what it reserved) and the one that settled it (a
`spend` of what was used, or a `hold_released` / `hold_expired` of 0), each naming the hold and what it
reserved. The settling row says both what was reserved and what was used, so it stands for the hold; the
hold's own row shows only while the hold is active. A hold that used nothing (released or expired) moves
no credits and shows only under the `holds` kind. Folding happens here, not in the page, so a page of
`limit` rows is `limit` rows a person reads, whatever the account's metered usage left between them.

The cursor is the ledger's own (the id of the last row read), so cursors from before folding still work.
The page's GET /api/balance and the service API's GET /api/users/{userId}/transactions both answer
`answer`, so they page alike (the same `limit`, `cursor` and `kind`) and a parameter added here serves both.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException

from wallet import account, holds, hot_accounts, ledger, projection, settings, writes
from wallet.errors import InvalidPageError, LedgerUnavailableError
from wallet.holds import ACTIVE, HOLD_PREFIX, MAX_EXPIRES_IN_SECONDS
from wallet.models import CreditGuard, CreditTransaction

# What each kind shows; the default (no kind) is every row a person reads: all but unused holds.
KINDS: dict[str, frozenset[str]] = {
    "topups": frozenset({ledger.DEPOSIT}),
    "usage": frozenset({ledger.SPEND, ledger.HOLD}),
    "refunds": frozenset(
        {
            ledger.REFUND,
            ledger.REFUND_FAILED,
            ledger.INQUIRY,
            ledger.INQUIRY_CLOSED,
            ledger.DISPUTE,
            ledger.DISPUTE_WON,
        }
    ),
    "adjustments": frozenset({ledger.ADJUSTMENT}),
    # Free credits given (promotions, sign-up), and what was left of a grant when it expired.
    "grants": frozenset({writes.GRANT}),
    "expired": frozenset({writes.EXPIRED}),
    "holds": frozenset({ledger.HOLD, ledger.HOLD_RELEASED, ledger.HOLD_EXPIRED, ledger.SPEND}),
}
UNUSED_HOLDS = frozenset({ledger.HOLD_RELEASED, ledger.HOLD_EXPIRED})
# The balance page's expiry line: credits that expire within this many days (docs/ARCHITECTURE.md, "Grants").
EXPIRING_WITHIN_DAYS = 30
# One request reads at most this many rows looking for a page: past it, a shorter page and a cursor.
MAX_ROWS_READ = 1000
# Rows asked of DynamoDB per Query: a page and as many again, so folded rows seldom cost a second Query.
READ_AHEAD = 2

Clock = Callable[[], float]
QueryValue = Callable[[str], str | None]
"""A request's query string parameter by name: the resolver's `current_event.get_query_string_value`."""

# OpenAPI only: what the routes answer, documented without validating anything at run time.
STATEMENT = {
    "type": "object",
    "required": ["userId", "currency", "balance", "held", "available", "transactions", "nextCursor"],
    "additionalProperties": False,
    "properties": {
        "userId": {"type": "string"},
        "currency": {"type": "string", "description": "ISO 4217, lower case"},
        "balance": {
            "type": "integer",
            "description": "In minor units of the currency; below zero when a refund took back spent credits",
        },
        "held": {"type": "integer", "description": "What active holds keep of the balance"},
        "available": {"type": "integer", "description": "What may be spent now: the balance less `held`"},
        "transactions": {
            "type": "array",
            "description": "Newest first; a hold is one row: its settling row (what it reserved and what "
            "was used), or while active its own; a hold that used nothing shows only with `kind=holds`",
            "items": {
                "type": "object",
                "required": ["id", "type", "amount", "source", "paymentId", "description", "createdAt"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string", "enum": list(ledger.ROW_TYPES)},
                    "amount": {"type": "integer", "description": "Signed: what the row did to the balance"},
                    "source": {"type": "string"},
                    "paymentId": {
                        "type": ["string", "null"],
                        "description": "A deposit's payment; for a refund or dispute, the deposit reversed",
                    },
                    "description": {
                        "type": ["string", "null"],
                        "description": "A spend's description, an adjustment's reason",
                    },
                    "createdAt": {"type": "string", "format": "date-time"},
                    "holdId": {"type": "string", "description": "A hold's rows: the hold"},
                    "reserved": {"type": "integer", "description": "A hold's rows: what the hold held"},
                },
            },
        },
        "nextCursor": {
            "type": ["string", "null"],
            "description": "Pass as `cursor` (with the same `kind`) for the next page; a page may be short "
            "of `limit` when many rows of other kinds lie between, and null only at the end",
        },
        "expiring": {
            "type": "array",
            "description": "On the first page: grants with credits that expire in the next 30 days, "
            "soonest first",
            "items": {
                "type": "object",
                "required": ["credits", "kind", "expiresAt"],
                "additionalProperties": False,
                "properties": {
                    "credits": {
                        "type": "integer",
                        "description": "What is left of the grant (held included)",
                    },
                    "kind": {"type": "string", "enum": ["free", "paid"]},
                    "expiresAt": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}
PAGE_ERROR = (
    "`limit` is not 1 to 100, `cursor` is not one this API returned, or `kind` is not one of "
    + ", ".join(KINDS)
)


def answer(user: str, query: QueryValue) -> dict[str, Any]:
    """`user`'s balance and the page of history the query's `limit`, `cursor` and `kind` ask for."""
    read = statement(user, _limit(query("limit")), query("cursor"), query("kind"))
    return {
        "userId": user,
        "currency": settings.price_list().currency,
        "balance": read.balance,
        "held": read.held,
        "available": read.available,
        "transactions": [
            {
                "id": t.id,
                "type": t.type,
                "amount": t.amount,
                "source": t.source,
                "paymentId": t.payment_id,
                "description": t.description,
                "createdAt": t.created_at,
            }
            | ({"holdId": t.hold_id, "reserved": t.reserved} if t.hold_id else {})
            for t in read.page.transactions
        ],
        "nextCursor": read.page.next_cursor,
        # Only accounts that have had an expiring grant pay the reads (the balance item says which).
        "expiring": expiring(user, time.time()) if read.grants_expire and not query("cursor") else [],
    }


def expiring(user: str, now_s: float) -> list[dict[str, Any]]:
    """The grants with credits left that expire in the next EXPIRING_WITHIN_DAYS days, soonest first: the
    page's "$5.00 of promotional credits expire on 12 Jan 2027". Empty when the account's rows past its
    stored projection are more than one request reads (the projector catches up within minutes)."""
    grants = projection.glance(user, MAX_ROWS_READ)
    if grants is None:
        return []
    return [
        {"credits": lot.left + lot.held, "kind": lot.kind, "expiresAt": holds.iso(lot.expires_at or 0)}
        for lot in grants.expiring(now_s, EXPIRING_WITHIN_DAYS * 86_400)
    ]


def _limit(raw: str | None) -> int:
    if raw is None:
        return ledger.DEFAULT_PAGE_SIZE
    # ASCII digits, and few of them: int() refuses "²" and anything over 4300 digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(ledger.MAX_PAGE_SIZE)):
        raise InvalidPageError(f"limit must be a whole number from 1 to {ledger.MAX_PAGE_SIZE}")
    return int(raw)


def statement(
    user_id: str,
    limit: int = ledger.DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    kind: str | None = None,
    now: Clock = time.time,
) -> ledger.Statement:
    """The balance and one page of the folded history, of one kind (see KINDS) or of every kind."""
    if kind is not None and kind not in KINDS:
        raise InvalidPageError(f"kind must be one of {', '.join(KINDS)}, or left out for every kind")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= ledger.MAX_PAGE_SIZE:
        raise InvalidPageError(f"limit must be a whole number from 1 to {ledger.MAX_PAGE_SIZE}")
    after = None if cursor is None else ledger.decode_cursor(cursor)
    balances = account.balances(user_id)
    hot = hot_accounts.known(user_id)
    partitions = hot_accounts.account_partitions(user_id, hot.shards) if hot else [user_id]
    try:
        page = _page(user_id, limit, after, partitions, kind, now())
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the history") from exc
    return ledger.Statement(balances.balance, page, balances.held, balances.available, balances.grants_expire)


def _page(
    user_id: str, limit: int, after: str | None, partitions: list[str], kind: str | None, moment: float
) -> ledger.Page:
    types = KINDS.get(kind or "")
    # A hold older than the longest a hold may last has ended by its time, whatever rows say so yet.
    oldest_active = datetime.fromtimestamp(moment, UTC) - timedelta(seconds=MAX_EXPIRES_IN_SECONDS)
    settled: set[str] = set()
    shown: list[CreditTransaction] = []
    # Hold rows whose hold may be active: on the first page, every newer row was read here, so a hold
    # with no settling row read is active; further on, its settling row may be on an earlier page.
    unsure: list[CreditTransaction] = []
    last_read: str | None = None
    exhausted = True

    def fold() -> None:
        if unsure:
            ended = _ended(user_id, [row.hold_id for row in unsure if row.hold_id], moment)
            settled.update(ended)
            unsure.clear()
        shown[:] = [row for row in shown if not (row.type == ledger.HOLD and row.hold_id in settled)]

    rows = _newest_first(partitions, after, min(ledger.MAX_PAGE_SIZE, READ_AHEAD * (limit + 1)))
    for read, row in enumerate(rows, start=1):
        last_read = row.transaction_id
        if row.hold_id and row.type != ledger.HOLD:
            settled.add(row.hold_id)
        if _shown(row, kind, types, settled, oldest_active):
            shown.append(row)
            if row.type == ledger.HOLD and after is not None:
                unsure.append(row)
        if len(shown) > limit:
            fold()
            if len(shown) > limit:
                exhausted = False
                break
        if read >= MAX_ROWS_READ:
            fold()
            exhausted = False
            break
    else:
        fold()
    if len(shown) > limit:
        page = shown[:limit]
        return ledger.Page(
            [ledger.transaction_of(row) for row in page], ledger.encode_cursor(page[-1].transaction_id)
        )
    # Out of rows to read for now: the next page starts after the last row read, not the last shown.
    next_cursor = None if exhausted or last_read is None else ledger.encode_cursor(last_read)
    return ledger.Page([ledger.transaction_of(row) for row in shown], next_cursor)


def _shown(
    row: CreditTransaction,
    kind: str | None,
    types: frozenset[str] | None,
    settled: set[str],
    oldest: datetime,
) -> bool:
    if types is not None and row.type not in types:
        return False
    if row.type in UNUSED_HOLDS:
        return kind == "holds"
    if row.type == ledger.SPEND and kind == "holds":
        return row.hold_id is not None
    if row.type == ledger.HOLD:
        return row.hold_id not in settled and _made(row) > oldest
    return True


def _made(row: CreditTransaction) -> datetime:
    try:
        return datetime.fromisoformat(row.created_at)
    except (TypeError, ValueError):
        # A row whose moment does not parse is read as new: its hold is asked after rather than hidden.
        return datetime.max.replace(tzinfo=UTC)


def _ended(user_id: str, hold_ids: list[str], moment: float) -> set[str]:
    """Which of these holds are not active: settled, past their time, or gone (kept 7 days after)."""
    active: set[str] = set()
    for guard in CreditGuard.batch_get([(user_id, HOLD_PREFIX + hold_id) for hold_id in hold_ids]):
        if guard.state == ACTIVE and guard.hold_expires_at is not None and guard.hold_expires_at > moment:
            active.add(guard.guard_id.removeprefix(HOLD_PREFIX))
    return set(hold_ids) - active


def _newest_first(partitions: list[str], after: str | None, page_size: int) -> Iterator[CreditTransaction]:
    """Every row of the account after `after`, newest first, read lazily a Query at a time; a hot
    account's partitions merged (ids are ULIDs: time-ordered)."""

    def one(partition: str) -> Iterator[CreditTransaction]:
        start = None if after is None else {"userId": {"S": partition}, "transactionId": {"S": after}}
        return iter(
            CreditTransaction.query(
                partition, scan_index_forward=False, last_evaluated_key=start, page_size=page_size
            )
        )

    if len(partitions) == 1:
        return one(partitions[0])
    return heapq.merge(*(one(p) for p in partitions), key=lambda row: row.transaction_id, reverse=True)

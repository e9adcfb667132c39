"""A user's balance and one page of its history, read off a request's query and answered in one shape:
the page's GET /api/balance and the service API's GET /api/users/{userId}/transactions both call this,
so they page alike (the same `limit` bounds and `cursor`) and any query parameter added here serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wallet import ledger, settings
from wallet.errors import InvalidPageError

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
            "description": "Newest first",
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
        "nextCursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page"},
    },
}
PAGE_ERROR = "`limit` is not 1 to 100, or `cursor` is not one this API returned"


def statement(user: str, query: QueryValue) -> dict[str, Any]:
    """`user`'s balance and the page of history the query's `limit` and `cursor` ask for."""
    read = ledger.statement(user, _limit(query("limit")), query("cursor"))
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
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return ledger.DEFAULT_PAGE_SIZE
    # ASCII digits, and few of them: int() refuses "²" and anything over 4300 digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(ledger.MAX_PAGE_SIZE)):
        raise InvalidPageError(f"limit must be a whole number from 1 to {ledger.MAX_PAGE_SIZE}")
    return int(raw)

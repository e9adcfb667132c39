"""GET /api/balance: the signed-in user's balance and history. GET /api/packs: the price list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import history, ledger, settings, snapstart
from wallet.errors import InvalidPageError
from wallet.http import documented_error, resolver, user_id
from wallet.packs import label

logger = Logger()
tracer = Tracer()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger)

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
    },
}
PRICE_LIST = {
    "type": "object",
    "required": ["currency", "packs"],
    "additionalProperties": False,
    "properties": {
        "currency": {"type": "string"},
        "packs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["amount", "credits", "label"],
                "additionalProperties": False,
                "properties": {
                    "amount": {"type": "integer", "description": "The price in minor units"},
                    "credits": {"type": "integer", "description": "What it adds to the balance"},
                    "label": {"type": "string", "description": "The price for a button, such as $10"},
                },
            },
        },
    },
}


@app.get(
    "/api/balance",
    summary="The balance and a page of its history",
    tags=["Balance"],
    security=[{"bearerAuth": []}],
    responses={
        200: {"description": "The statement", "content": {"application/json": {"schema": STATEMENT}}},
        400: documented_error(
            "`limit` is not 1 to 100, `cursor` is not one this API returned, or `kind` is not one of "
            + ", ".join(history.KINDS)
        ),
        500: documented_error("The ledger could not be reached; try again"),
    },
)
@tracer.capture_method
def balance() -> dict[str, Any]:
    user = user_id(app)
    query = app.current_event.get_query_string_value
    statement = history.statement(user, _limit(), query("cursor"), query("kind"))
    return {
        "userId": user,
        "currency": settings.price_list().currency,
        "balance": statement.balance,
        "held": statement.held,
        "available": statement.available,
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
            for t in statement.page.transactions
        ],
        "nextCursor": statement.page.next_cursor,
    }


@app.get(
    "/api/packs",
    summary="The price list",
    tags=["Balance"],
    responses={
        200: {"description": "The packs on sale", "content": {"application/json": {"schema": PRICE_LIST}}}
    },
)
def packs() -> dict[str, Any]:
    prices = settings.price_list()
    return {
        "currency": prices.currency,
        "packs": [asdict(pack) | {"label": label(pack.amount, prices.currency)} for pack in prices.packs],
    }


def _limit() -> int:
    raw = app.current_event.get_query_string_value("limit")
    if raw is None:
        return ledger.DEFAULT_PAGE_SIZE
    # ASCII digits, and few of them: int() refuses "²" and anything over 4300 digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(ledger.MAX_PAGE_SIZE)):
        raise InvalidPageError(f"limit must be a whole number from 1 to {ledger.MAX_PAGE_SIZE}")
    return int(raw)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""GET /api/balance: the signed-in user's balance and history. GET /api/packs: the price list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import ledger, settings
from wallet.errors import InvalidPageError
from wallet.http import resolver, user_id
from wallet.packs import label

logger = Logger()
tracer = Tracer()
app = resolver()


@app.get("/api/balance")
@tracer.capture_method
def balance() -> dict[str, Any]:
    user = user_id(app)
    statement = ledger.statement(user, _limit(), app.current_event.get_query_string_value("cursor"))
    return {
        "userId": user,
        "currency": settings.price_list().currency,
        "balance": statement.balance,
        "transactions": [
            {
                "id": t.id,
                "type": t.type,
                "amount": t.amount,
                "source": t.source,
                "paymentId": t.payment_id,
                "createdAt": t.created_at,
            }
            for t in statement.page.transactions
        ],
        "nextCursor": statement.page.next_cursor,
    }


@app.get("/api/packs")
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
    if not raw.isdigit():
        raise InvalidPageError(f"limit must be a whole number from 1 to {ledger.MAX_PAGE_SIZE}")
    return int(raw)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

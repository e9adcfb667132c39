"""GET /api/balance: the signed-in user's balance and history. GET /api/packs: the price list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import history, promotions, settings, snapstart
from wallet.http import documented_error, resolver, user_id
from wallet.packs import label

logger = Logger()
tracer = Tracer()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger)

# OpenAPI only: what the routes answer, documented without validating anything at run time.
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
        200: {"description": "The statement", "content": {"application/json": {"schema": history.STATEMENT}}},
        400: documented_error(history.PAGE_ERROR),
        500: documented_error("The ledger could not be reached; try again"),
    },
)
@tracer.capture_method
def balance() -> dict[str, Any]:
    user, query = user_id(app), app.current_event.get_query_string_value
    body = history.answer(user, query)
    if _first_visit(body, query) and promotions.welcome(
        user, settings.signup_credits(), settings.signup_credits_expire_days(), settings.price_list().currency
    ):
        logger.info("signup grant", extra={"userId": user, "credits": settings.signup_credits()})
        body = history.answer(user, query)
    return body


def _first_visit(body: dict[str, Any], query: history.QueryValue) -> bool:
    """A user with no rows at all (first page, every kind, nothing owned): where the sign-up grant is
    given, once (its guard), at no read more than the page's own."""
    return (
        settings.signup_credits() > 0
        and query("cursor") is None
        and query("kind") is None
        and not body["transactions"]
        and body["balance"] == 0
        and body["held"] == 0
    )


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

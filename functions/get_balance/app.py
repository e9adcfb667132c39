"""GET /api/balance: the signed-in user's balance and history. GET /api/packs: the price list."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import activity, history, promotions, settings, snapstart
from wallet.http import documented_error, resolver, user_id
from wallet.packs import label

logger = Logger()
tracer = Tracer()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger)

# OpenAPI only: what the routes answer, documented without validating anything at run time.
PRICE_LIST = {
    "type": "object",
    "required": ["currency", "packs", "custom"],
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
        "custom": {
            "type": "object",
            "required": ["min", "max"],
            "additionalProperties": False,
            "description": "Any whole amount from min to max may be bought too, at the packs' base rate",
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
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


DAILY = {
    "type": "object",
    "required": ["currency", "days"],
    "additionalProperties": False,
    "properties": {
        "currency": {"type": "string"},
        "days": {
            "type": "array",
            "description": f"The last {activity.CHART_DAYS} UTC days, oldest first, today last",
            "items": {
                "type": "object",
                "required": ["date", "used", "toppedUp", "topUps"],
                "additionalProperties": False,
                "properties": {
                    "date": {"type": "string", "format": "date"},
                    "used": {
                        "type": ["integer", "null"],
                        "description": "Credits spent that day; null when the day was not counted "
                        f"(more than {activity.MAX_CHART_ROWS:,} rows in the period)",
                    },
                    "toppedUp": {"type": ["integer", "null"], "description": "Credits deposited that day"},
                    "topUps": {"type": ["integer", "null"], "description": "How many deposits"},
                },
            },
        },
    },
}


@app.get(
    "/api/balance/daily",
    summary="Credits used and topped up per day, for the last 30 days",
    tags=["Balance"],
    security=[{"bearerAuth": []}],
    responses={
        200: {"description": "One entry a day", "content": {"application/json": {"schema": DAILY}}},
        500: documented_error("The ledger could not be reached; try again"),
    },
)
@tracer.capture_method
def daily() -> dict[str, Any]:
    days = activity.daily(user_id(app), datetime.now(UTC).date())
    return {
        "currency": settings.price_list().currency,
        "days": [{"date": d.day, "used": d.used, "toppedUp": d.topped_up, "topUps": d.top_ups} for d in days],
    }


@app.get(
    "/api/balance/export",
    summary="The history of a date range as CSV",
    description=f"`from` and `to` (YYYY-MM-DD, UTC days, inclusive), at most {activity.MAX_EXPORT_DAYS} "
    f"days; a CSV (RFC 4180) of every row credited in them, oldest first, at most "
    f"{activity.MAX_CSV_BYTES:,} bytes (413 past it: export a shorter range).",
    tags=["Balance"],
    security=[{"bearerAuth": []}],
    responses={
        200: {"description": "The CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}},
        400: documented_error("`from` or `to` is not a date, out of bounds or out of order"),
        413: documented_error("The range holds more than one answer can: export a shorter one"),
        500: documented_error("The ledger could not be reached; try again"),
    },
)
# Not wrapped by tracer.capture_method: the OpenAPI builder resolves the return annotation in the wrapper's
# module, where Response is unknown (the handler's own trace still covers it).
def export() -> Response[str]:
    user = user_id(app)
    query = app.current_event.get_query_string_value
    first, last = activity.parse_range(query("from"), query("to"), datetime.now(UTC).date())
    made = activity.export(user, first, last, settings.price_list().currency)
    return Response(
        status_code=HTTPStatus.OK,
        content_type="text/csv; charset=utf-8",
        body=made.body,
        headers={
            "Content-Disposition": f'attachment; filename="{made.filename}"',
            "Cache-Control": "no-store",
        },
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
        "custom": {"min": prices.custom_min, "max": prices.custom_max},
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

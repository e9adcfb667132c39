"""The service routes, for the backend that sells the credits (AWS_IAM: SigV4-signed):
POST /api/users/{userId}/spend, GET /api/users/{userId}/balance, POST /api/users/{userId}/adjustments,
and an operator's PUT /api/users/{userId}/shards, which makes one account hot (wallet.hot_accounts).

Spends come only from the roles ServiceCallerArns lists, adjustments only from OperatorArns', balances
from either: the service API's resource policy says so, and each route checks again before it writes.

Every change carries an Idempotency-Key: the same key and body answer the first answer again with
`Idempotent-Replayed: true`, the same key with another body is 409, and a spend never overdraws (402).
"""

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import hot_accounts, ledger, settings, snapstart
from wallet.http import (
    InvalidBodyError,
    allowed_caller,
    documented_error,
    idempotency_key,
    json_object,
    path_user_id,
    service_resolver,
)

MAX_TEXT = 500

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = service_resolver()
snapstart.register(snapstart.prime_ledger)

# OpenAPI only: what the routes answer, documented without validating anything at run time.
SIGV4: list[dict[str, list[str]]] = [{"sigv4": []}]
RECEIPT = {
    "type": "object",
    "required": ["transactionId", "userId", "amount", "balance", "currency"],
    "additionalProperties": False,
    "properties": {
        "transactionId": {"type": "string", "description": "The row's ULID"},
        "userId": {"type": "string"},
        "amount": {"type": "integer", "description": "As requested, in minor units"},
        "balance": {"type": "integer", "description": "The balance when answered, in minor units"},
        "currency": {"type": "string"},
    },
}
BALANCE = {
    "type": "object",
    "required": ["userId", "currency", "balance"],
    "additionalProperties": False,
    "properties": {
        "userId": {"type": "string"},
        "currency": {"type": "string"},
        "balance": {"type": "integer"},
    },
}
# The path arrives decoded: a user id with " # / ? \ or ` in it leaves no route to match.
NO_ROUTE = documented_error('No route takes this path: a user id with any of " # / ? \\ ` in it')
CHANGE_ERRORS = {
    400: documented_error("A bad body, user id or Idempotency-Key; nothing changed"),
    403: documented_error("Not signed with AWS credentials, or by a principal not listed for this route"),
    404: NO_ROUTE,
    409: documented_error("This Idempotency-Key was used with another body"),
    500: documented_error("The ledger could not be reached; retry with the same Idempotency-Key"),
}


@app.post(
    "/api/users/<user_id>/spend",
    summary="Spend a user's credits",
    description="Takes `amount` from the balance once per `Idempotency-Key` header, never below zero.",
    tags=["Service"],
    security=SIGV4,
    responses={
        201: {"description": "Spent", "content": {"application/json": {"schema": RECEIPT}}},
        402: documented_error("The balance does not cover it; the error carries `balance`"),
        **CHANGE_ERRORS,
    },
)
@tracer.capture_method
def spend(user_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.service_callers(), "ServiceCallerArns")
    user, key = _user(user_id), idempotency_key(app)
    body = _fields(json_object(app), required={"amount"}, optional={"description"})
    receipt = ledger.spend(
        user,
        body["amount"],
        idempotency_key=key,
        description=_text(body, "description", required=False),
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not receipt.replayed:
        metrics.add_metric(name="CreditsSpent", unit=MetricUnit.Count, value=1)
    logger.info("spend", extra=_log_fields(receipt, actor))
    return _answer(receipt, -receipt.amount)


@app.post(
    "/api/users/<user_id>/adjustments",
    summary="Adjust a user's balance",
    description="An operator's correction, up or down, with a reason, once per `Idempotency-Key` header; "
    "it may leave a negative balance.",
    tags=["Service"],
    security=SIGV4,
    responses={
        201: {"description": "Adjusted", "content": {"application/json": {"schema": RECEIPT}}},
        **CHANGE_ERRORS,
    },
)
@tracer.capture_method
def adjust(user_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.operators(), "OperatorArns")
    user, key = _user(user_id), idempotency_key(app)
    body = _fields(json_object(app), required={"amount", "reason"}, optional=set())
    receipt = ledger.adjust(
        user,
        body["amount"],
        idempotency_key=key,
        reason=_text(body, "reason", required=True) or "",
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not receipt.replayed:
        metrics.add_metric(name="CreditsAdjusted", unit=MetricUnit.Count, value=1)
    logger.info("adjustment", extra=_log_fields(receipt, actor))
    return _answer(receipt, receipt.amount)


SHARDS = {
    "type": "object",
    "required": ["userId", "shards"],
    "additionalProperties": False,
    "properties": {"userId": {"type": "string"}, "shards": {"type": "integer"}},
}


@app.put(
    "/api/users/<user_id>/shards",
    summary="Make an account hot",
    description=f"Spreads the account's spends over `shards` sub-balances ({hot_accounts.MIN_SHARDS} to "
    f"{hot_accounts.MAX_SHARDS}), so that one account takes more debits a second than one item can. "
    "Idempotent; the number is set once and never changed or turned off.",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "The account is hot", "content": {"application/json": {"schema": SHARDS}}},
        400: documented_error("A bad body or user id, or shards outside the bounds"),
        403: documented_error("Not signed with AWS credentials, or by a principal not in OperatorArns"),
        404: NO_ROUTE,
        409: documented_error("The account is already hot with another number of sub-balances"),
        500: documented_error("The ledger could not be reached; nothing changed, retry"),
    },
)
@tracer.capture_method
def shards(user_id: str) -> dict[str, Any]:
    actor = allowed_caller(app, settings.operators(), "OperatorArns")
    user = _user(user_id)
    body = _fields(json_object(app), required={"shards"}, optional=set())
    count = hot_accounts.make_hot(user, body["shards"], currency=settings.price_list().currency)
    logger.info("hot account", extra={"user_id": user, "shards": count, "actor": actor})
    return {"userId": user, "shards": count}


@app.get(
    "/api/users/<user_id>/balance",
    summary="A user's balance",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "The balance", "content": {"application/json": {"schema": BALANCE}}},
        400: documented_error("A malformed user id"),
        403: documented_error("Not signed with AWS credentials, or by a principal listed for neither route"),
        404: NO_ROUTE,
    },
)
@tracer.capture_method
def balance(user_id: str) -> dict[str, Any]:
    readers = settings.service_callers() | settings.operators()
    allowed_caller(app, readers, "ServiceCallerArns or OperatorArns")
    user = _user(user_id)
    return {"userId": user, "currency": settings.price_list().currency, "balance": ledger.get_balance(user)}


def _user(captured: str) -> str:
    """The user id the path names. A REST API hands its path parameters to the function decoded once, but
    its `path`, where the resolver captured `captured`, as it was sent; so the decoded one is read."""
    return path_user_id((app.current_event.path_parameters or {}).get("userId", captured))


def _fields(body: dict[str, Any], *, required: set[str], optional: set[str]) -> dict[str, Any]:
    missing, unknown = required - body.keys(), body.keys() - required - optional
    if missing:
        raise InvalidBodyError(f"The body needs {', '.join(sorted(missing))}.")
    if unknown:
        raise InvalidBodyError(f"The body has fields this route does not take: {', '.join(sorted(unknown))}.")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidBodyError(f"{name} must be text of 1 to {MAX_TEXT} characters.")
    return value.strip()


def _answer(receipt: ledger.Receipt, amount: int) -> Response[str]:
    body = {
        "transactionId": receipt.transaction_id,
        "userId": receipt.user_id,
        "amount": amount,
        "balance": receipt.balance,
        "currency": settings.price_list().currency,
    }
    headers = {"Idempotent-Replayed": "true"} if receipt.replayed else None
    return Response(
        status_code=HTTPStatus.CREATED,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def _log_fields(receipt: ledger.Receipt, actor: str) -> dict[str, Any]:
    return {
        "user_id": receipt.user_id,
        "transaction_id": receipt.transaction_id,
        "amount": receipt.amount,
        "replayed": receipt.replayed,
        "actor": actor,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""The service routes, for the backend that sells the credits (AWS_IAM: SigV4-signed):
POST /api/users/{userId}/spend, GET /api/users/{userId}/balance and .../transactions,
POST /api/users/{userId}/adjustments and .../grants (free credits, maybe expiring), and holds for
metered usage: POST /api/users/{userId}/holds,
.../holds/{holdId}/capture and .../release;
and an operator's PUT /api/users/{userId}/shards, which makes one account hot (wallet.hot_accounts).

Spends and holds come only from the roles ServiceCallerArns lists, adjustments only from OperatorArns',
balances and histories from either: the service API's resource policy says so, and each route checks
again before it writes.

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

from wallet import (
    account,
    alerts,
    books,
    history,
    holds,
    hot_accounts,
    ledger,
    promotions,
    settings,
    snapstart,
)
from wallet.errors import InvalidAmountError
from wallet.http import (
    InvalidBodyError,
    allowed_caller,
    documented_error,
    idempotency_key,
    json_object,
    path_user_id,
    service_resolver,
    text_field,
)

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
    "required": ["userId", "currency", "balance", "held", "available"],
    "additionalProperties": False,
    "properties": {
        "userId": {"type": "string"},
        "currency": {"type": "string"},
        "balance": {"type": "integer", "description": "What the user owns: the sum of their rows"},
        "held": {"type": "integer", "description": "What active holds keep of it"},
        "available": {"type": "integer", "description": "What may be spent or held now"},
    },
}
HOLD = {
    "type": "object",
    "required": ["holdId", "amount", "balance", "available", "expiresAt"],
    "additionalProperties": False,
    "properties": {
        "holdId": {"type": "string", "description": "The hold's ULID"},
        "amount": {"type": "integer", "description": "Held, in minor units"},
        "balance": {"type": "integer", "description": "The user's balance, holds included"},
        "available": {"type": "integer", "description": "What may be spent or held now"},
        "expiresAt": {"type": "string", "format": "date-time", "description": "When it is released"},
    },
}
CAPTURE = {
    "type": "object",
    "required": [
        "transactionId",
        "holdId",
        "userId",
        "amount",
        "released",
        "balance",
        "available",
        "currency",
    ],
    "additionalProperties": False,
    "properties": {
        "transactionId": {"type": "string", "description": "The spend row's ULID"},
        "holdId": {"type": "string"},
        "userId": {"type": "string"},
        "amount": {"type": "integer", "description": "Captured: spent"},
        "released": {"type": "integer", "description": "The rest of the hold, available again"},
        "balance": {"type": "integer"},
        "available": {"type": "integer"},
        "currency": {"type": "string"},
    },
}
RELEASE = {
    "type": "object",
    "required": ["holdId", "userId", "released", "balance", "available", "currency"],
    "additionalProperties": False,
    "properties": {
        "holdId": {"type": "string"},
        "userId": {"type": "string"},
        "released": {"type": "integer", "description": "All of the hold, available again"},
        "balance": {"type": "integer"},
        "available": {"type": "integer"},
        "currency": {"type": "string"},
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
SETTLE_ERRORS = CHANGE_ERRORS | {
    404: documented_error("No such hold for this user (or no route: a malformed user id)"),
    409: documented_error(
        "The hold is captured, released or expired (`hold_not_active`, with `hold` and its `state`), "
        "or this Idempotency-Key was used with another body"
    ),
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
        description=text_field(body, "description", required=False),
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not receipt.replayed:
        metrics.add_metric(name="CreditsSpent", unit=MetricUnit.Count, value=1)
    logger.info("spend", extra=_log_fields(receipt, actor))
    return _answer(receipt, -receipt.amount)


@app.post(
    "/api/users/<user_id>/holds",
    summary="Hold some of a user's credits",
    description="Reserves `amount` of the available balance for `expiresInSeconds` (1 to 86400) once per "
    "`Idempotency-Key` header; then capture what was used, or release it. At its time it is released.",
    tags=["Service"],
    security=SIGV4,
    responses={
        201: {"description": "Held", "content": {"application/json": {"schema": HOLD}}},
        402: documented_error("The available balance does not cover it; the error carries `available`"),
        **CHANGE_ERRORS,
    },
)
@tracer.capture_method
def hold(user_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.service_callers(), "ServiceCallerArns")
    user, key = _user(user_id), idempotency_key(app)
    body = _fields(json_object(app), required={"amount"}, optional={"expiresInSeconds", "description"})
    if "expiresInSeconds" not in body:
        raise InvalidBodyError(
            f"The body needs expiresInSeconds, 1 to {holds.MAX_EXPIRES_IN_SECONDS}: it has no default, as "
            "only the caller knows how long its work may run before the hold should give the credits back."
        )
    try:
        expires_in = holds.check_expires_in(body["expiresInSeconds"])
    except ValueError as exc:
        raise InvalidBodyError(str(exc)) from exc
    made = holds.create_hold(
        user,
        body["amount"],
        expires_in=expires_in,
        idempotency_key=key,
        description=text_field(body, "description", required=False),
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not made.replayed:
        metrics.add_metric(name="CreditsHeld", unit=MetricUnit.Count, value=1)
    logger.info(
        "hold",
        extra={
            "user_id": user,
            "hold_id": made.hold.hold_id,
            "amount": made.hold.amount,
            "replayed": made.replayed,
            "actor": actor,
        },
    )
    answer = {
        "holdId": made.hold.hold_id,
        "amount": made.hold.amount,
        "balance": made.balances.balance,
        "available": made.balances.available,
        "expiresAt": holds.iso(made.hold.expires_at),
    }
    return _json(HTTPStatus.CREATED, answer, made.replayed)


@app.post(
    "/api/users/<user_id>/holds/<hold_id>/capture",
    summary="Capture a hold",
    description="Spends `amount` (1 to what the hold holds) and releases the rest, once per "
    "`Idempotency-Key` header. To spend nothing, release the hold.",
    tags=["Service"],
    security=SIGV4,
    responses={
        201: {"description": "Captured", "content": {"application/json": {"schema": CAPTURE}}},
        **SETTLE_ERRORS,
    },
)
@tracer.capture_method
def capture(user_id: str, hold_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.service_callers(), "ServiceCallerArns")
    user, key = _user(user_id), idempotency_key(app)
    body = _fields(json_object(app), required={"amount"}, optional=set())
    if type(body["amount"]) is int and body["amount"] == 0:
        raise InvalidAmountError("amount must be at least 1: to spend nothing of a hold, release it")
    settled = holds.capture_hold(
        user,
        _hold_id(hold_id),
        body["amount"],
        idempotency_key=key,
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not settled.replayed:
        metrics.add_metric(name="CreditsSpent", unit=MetricUnit.Count, value=1)
    logger.info("capture", extra=_settled_fields(settled, actor))
    answer = {
        "transactionId": settled.transaction_id,
        "holdId": settled.hold.hold_id,
        "userId": user,
        "amount": settled.captured,
        "released": settled.released,
        "balance": settled.balances.balance,
        "available": settled.balances.available,
        "currency": settings.price_list().currency,
    }
    return _json(HTTPStatus.CREATED, answer, settled.replayed)


@app.post(
    "/api/users/<user_id>/holds/<hold_id>/release",
    summary="Release a hold",
    description="Gives all of the hold back to the available balance, once per `Idempotency-Key` header.",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "Released", "content": {"application/json": {"schema": RELEASE}}},
        **SETTLE_ERRORS,
    },
)
@tracer.capture_method
def release(user_id: str, hold_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.service_callers(), "ServiceCallerArns")
    user, key = _user(user_id), idempotency_key(app)
    _fields(json_object(app), required=set(), optional=set())
    settled = holds.release_hold(
        user, _hold_id(hold_id), idempotency_key=key, actor=actor, currency=settings.price_list().currency
    )
    logger.info("release", extra=_settled_fields(settled, actor))
    answer = {
        "holdId": settled.hold.hold_id,
        "userId": user,
        "released": settled.released,
        "balance": settled.balances.balance,
        "available": settled.balances.available,
        "currency": settings.price_list().currency,
    }
    return _json(HTTPStatus.OK, answer, settled.replayed)


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
        reason=text_field(body, "reason", required=True) or "",
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not receipt.replayed:
        metrics.add_metric(name="CreditsAdjusted", unit=MetricUnit.Count, value=1)
    logger.info("adjustment", extra=_log_fields(receipt, actor))
    return _answer(receipt, receipt.amount)


@app.post(
    "/api/users/<user_id>/grants",
    summary="Give a user free credits",
    description="An operator's promotional grant: `credits` (1 to 1,000,000), a `reason`, and optionally "
    "`expiresAt` (ISO 8601 with its zone, after now, at most 1,095 days ahead), once per `Idempotency-Key` "
    "header. What is left of it at its expiry leaves the balance as an `expired` row.",
    tags=["Service"],
    security=SIGV4,
    responses={
        201: {"description": "Granted", "content": {"application/json": {"schema": RECEIPT}}},
        **CHANGE_ERRORS,
    },
)
@tracer.capture_method
def grant(user_id: str) -> Response[str]:
    actor = allowed_caller(app, settings.operators(), "OperatorArns")
    user, key = _user(user_id), idempotency_key(app)
    body = _fields(json_object(app), required={"credits", "reason"}, optional={"expiresAt"})
    receipt = promotions.grant(
        user,
        body["credits"],
        reason=text_field(body, "reason", required=True) or "",
        expires_at=body.get("expiresAt"),
        idempotency_key=key,
        actor=actor,
        currency=settings.price_list().currency,
    )
    if not receipt.replayed:
        metrics.add_metric(name="CreditsGranted", unit=MetricUnit.Count, value=1)
    logger.info("grant", extra=_log_fields(receipt, actor))
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


ALERTS = {
    "type": "object",
    "required": ["userId", "lowBalanceThreshold"],
    "additionalProperties": False,
    "properties": {"userId": {"type": "string"}, "lowBalanceThreshold": {"type": ["integer", "null"]}},
}


@app.put(
    "/api/users/<user_id>/alerts",
    summary="Set a user's low balance threshold",
    description="The wallet's `balance.low` event goes out once per dip of the user's available balance "
    f"below `lowBalanceThreshold` credits (0 to {settings.MAX_LOW_BALANCE_THRESHOLD:,}; 0: never for this "
    "user; null: the stack's LowBalanceThreshold). Setting it again is harmless.",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "Saved", "content": {"application/json": {"schema": ALERTS}}},
        400: documented_error(
            "A bad body or user id, or a threshold that is not a whole number within bounds"
        ),
        403: documented_error("Not signed with AWS credentials, or by a principal not in ServiceCallerArns"),
        404: NO_ROUTE,
        500: documented_error("The ledger could not be reached; retry"),
    },
)
@tracer.capture_method
def set_alerts(user_id: str) -> dict[str, Any]:
    actor = allowed_caller(app, settings.service_callers(), "ServiceCallerArns")
    user = _user(user_id)
    body = _fields(json_object(app), required={"lowBalanceThreshold"}, optional=set())
    saved = alerts.set_low_balance_threshold(user, body["lowBalanceThreshold"])
    logger.info("low balance threshold", extra={"user_id": user, "threshold": saved, "actor": actor})
    return {"userId": user, "lowBalanceThreshold": saved}


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
    now = account.balances(user)
    return {
        "userId": user,
        "currency": settings.price_list().currency,
        "balance": now.balance,
        "held": now.held,
        "available": now.available,
    }


@app.get(
    "/api/users/<user_id>/transactions",
    summary="A user's balance and a page of its history",
    description="Paged as the credits page's GET /api/balance is: the same `limit`, `cursor` and answer.",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "The statement", "content": {"application/json": {"schema": history.STATEMENT}}},
        400: documented_error(f"A malformed user id, or {history.PAGE_ERROR}"),
        403: documented_error("Not signed with AWS credentials, or by a principal listed for neither route"),
        404: NO_ROUTE,
        500: documented_error("The ledger could not be reached; try again"),
    },
)
@tracer.capture_method
def transactions(user_id: str) -> dict[str, Any]:
    readers = settings.service_callers() | settings.operators()
    allowed_caller(app, readers, "ServiceCallerArns or OperatorArns")
    return history.answer(_user(user_id), app.current_event.get_query_string_value)


BOOKS_LINE = {
    "type": "object",
    "description": "One account's month, or a currency's total (`userId` null); money in minor units",
    "properties": {
        "currency": {"type": "string"},
        "userId": {"type": ["string", "null"]},
        **{name: {"type": "integer"} for name in books.FIGURES},
    },
}
BOOKS = {
    "type": "object",
    "required": ["period", "complete", "balanced", "accounts", "totals", "unbalanced", "nextCursor"],
    "properties": {
        "period": {"type": "string", "description": "YYYY-MM"},
        "complete": {"type": "boolean", "description": "False for a month not over 15 minutes ago"},
        "balanced": {"type": "boolean", "description": "Every line's opening + in - out = closing"},
        "accounts": {"type": "array", "items": BOOKS_LINE, "description": "Accounts with figures"},
        "accountsRead": {"type": "integer"},
        "totals": {"type": "array", "items": BOOKS_LINE, "description": "This page's, by currency"},
        "unbalanced": {"type": "array", "items": BOOKS_LINE},
        "nextCursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page"},
    },
}


@app.get(
    "/api/books/<period>",
    summary="A month's books: deferred revenue, recognised, breakage, reversals",
    description="Per account and per currency, a page of accounts at a time (`limit` 1 to "
    f"{books.MAX_PAGE}, default {books.DEFAULT_PAGE}; `cursor` from the last page): "
    "opening deferred revenue, purchases, revenue recognised, breakage, refunds and disputes, closing "
    "deferred revenue, and the same in credits for paid and free grants. Totals are the page's: a "
    "caller adds the pages up, as `make report` does.",
    tags=["Service"],
    security=SIGV4,
    responses={
        200: {"description": "The page of the books", "content": {"application/json": {"schema": BOOKS}}},
        400: documented_error("A period that is not YYYY-MM or has not begun, or a bad `limit` or `cursor`"),
        403: documented_error("Not signed with AWS credentials, or by a principal not in OperatorArns"),
        404: NO_ROUTE,
        500: documented_error("The ledger could not be reached; try again"),
    },
)
@tracer.capture_method
def month_books(period: str) -> dict[str, Any]:
    allowed_caller(app, settings.operators(), "OperatorArns")
    return books.page(period, app.current_event.get_query_string_value, settings.price_list().currency)


def _user(captured: str) -> str:
    """The user id the path names. A REST API hands its path parameters to the function decoded once, but
    its `path`, where the resolver captured `captured`, as it was sent; so the decoded one is read."""
    return path_user_id((app.current_event.path_parameters or {}).get("userId", captured))


def _hold_id(captured: str) -> str:
    """The hold id the path names, decoded as the user id is."""
    return (app.current_event.path_parameters or {}).get("holdId", captured)


def _fields(body: dict[str, Any], *, required: set[str], optional: set[str]) -> dict[str, Any]:
    missing, unknown = required - body.keys(), body.keys() - required - optional
    if missing:
        raise InvalidBodyError(f"The body needs {', '.join(sorted(missing))}.")
    if unknown:
        raise InvalidBodyError(f"The body has fields this route does not take: {', '.join(sorted(unknown))}.")
    return body


def _answer(receipt: ledger.Receipt, amount: int) -> Response[str]:
    body = {
        "transactionId": receipt.transaction_id,
        "userId": receipt.user_id,
        "amount": amount,
        "balance": receipt.balance,
        "currency": settings.price_list().currency,
    }
    return _json(HTTPStatus.CREATED, body, receipt.replayed)


def _json(status: HTTPStatus, body: dict[str, Any], replayed: bool) -> Response[str]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def _settled_fields(settled: holds.Settled, actor: str) -> dict[str, Any]:
    return {
        "user_id": settled.hold.user_id,
        "hold_id": settled.hold.hold_id,
        "captured": settled.captured,
        "released": settled.released,
        "replayed": settled.replayed,
        "actor": actor,
    }


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

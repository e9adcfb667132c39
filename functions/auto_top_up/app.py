"""Auto top-up. `lambda_handler`: the signed-in user's settings and saved card (JWT):
GET/PUT /api/auto-top-up, POST/DELETE /api/payment-method. `stream_handler`: the trigger, fed by the
DynamoDB stream of CreditBalance; a record that fails is reported back alone (partial batch response),
so Lambda retries it and nothing after it is lost or charged twice.
"""

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Only the card routes and a record that charges or detaches take wallet.payments (and with it the Stripe
# SDK), only saving a card takes wallet.rate_limits: each is imported where it is used, and under
# SnapStart prime_stripe loads wallet.payments before the snapshot.
from wallet import auto_top_up, email_alerts, settings, snapstart
from wallet.auto_top_up import AutoTopUp, Decision
from wallet.errors import EmailAlertsOffError, PaymentsUnavailableError, TooManyCardSetupsError
from wallet.http import InvalidBodyError, documented_error, json_object, resolver, user_id

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger, snapstart.prime_stripe, snapstart.prime_secrets)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
SETTINGS = {
    "type": "object",
    "required": ["enabled", "threshold", "amount", "paymentMethod", "status", "reason", "resumesAt"],
    "properties": {
        "enabled": {"type": "boolean"},
        "threshold": {"type": ["integer", "null"], "description": "Top up when the balance falls below it"},
        "amount": {"type": ["integer", "null"], "description": "The pack's price in minor units"},
        "paymentMethod": {"type": ["object", "null"], "description": "brand, last4, expMonth, expYear"},
        "status": {"enum": ["on", "off", "failed", "limit_reached"]},
        "reason": {"type": ["string", "null"], "description": "Why it is off or paused, for the user"},
        "resumesAt": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "While paused at the daily limit (limit_reached): when it may charge again",
        },
    },
}
# One metric for each thing the trigger can do with a change: every outcome is counted.
METRIC_BY_DECISION = {
    Decision.CHARGED: "AutoTopUpsCharged",
    Decision.DECLINED: "AutoTopUpFailures",
    Decision.GAVE_UP: "AutoTopUpsGivenUp",
    Decision.LIMIT_REACHED: "AutoTopUpLimitsReached",
    Decision.PAUSED: "AutoTopUpsPaused",
    Decision.IN_PROGRESS: "AutoTopUpsInProgress",
    Decision.ABOVE_THRESHOLD: "AutoTopUpsNotNeeded",
    Decision.NOT_ENABLED: "AutoTopUpsNotEnabled",
}


@app.get(
    "/api/auto-top-up",
    summary="The user's auto top-up",
    tags=["Auto top-up"],
    security=BEARER,
    responses={200: {"description": "The settings", "content": {"application/json": {"schema": SETTINGS}}}},
)
@tracer.capture_method
def get_settings() -> dict[str, Any]:
    return _body(auto_top_up.view(user_id(app)))


@app.put(
    "/api/auto-top-up",
    summary="Turn auto top-up on or off",
    tags=["Auto top-up"],
    security=BEARER,
    responses={
        200: {"description": "Saved", "content": {"application/json": {"schema": SETTINGS}}},
        400: documented_error(
            "amount is not a pack's price, or threshold is not a whole number from 1 to the pack's credits"
        ),
        409: documented_error("No saved card to charge: no_payment_method"),
    },
)
@tracer.capture_method
def put_settings() -> dict[str, Any]:
    user = user_id(app)
    body = json_object(app)
    if set(body) != {"enabled", "threshold", "amount"} or not isinstance(body["enabled"], bool):
        raise InvalidBodyError('The body must be {"enabled": true|false, "threshold": 500, "amount": 1000}.')
    saved = auto_top_up.configure(
        user, enabled=body["enabled"], threshold=body["threshold"], amount=body["amount"]
    )
    logger.info("auto top-up set", extra={"user_id": user, "enabled": saved.enabled})
    return _body(saved)


LOW_BALANCE_EMAIL = {
    "type": "object",
    "required": ["available", "enabled", "threshold", "email"],
    "properties": {
        "available": {"type": "boolean", "description": "Whether this site sends email at all"},
        "enabled": {"type": "boolean"},
        "threshold": {"type": ["integer", "null"], "description": "Email when the balance falls below it"},
        "email": {"type": ["string", "null"], "description": "Where it goes: the sign-in's address"},
    },
}
# RFC 5321's limit on a path (an address as SMTP carries it).
MAX_EMAIL = 254


@app.get(
    "/api/low-balance-email",
    summary="The user's low balance email",
    tags=["Low balance email"],
    security=BEARER,
    responses={
        200: {"description": "The setting", "content": {"application/json": {"schema": LOW_BALANCE_EMAIL}}}
    },
)
@tracer.capture_method
def get_low_balance_email() -> dict[str, Any]:
    return _email_body(email_alerts.view(user_id(app)))


@app.put(
    "/api/low-balance-email",
    summary="Turn the low balance email on or off",
    tags=["Low balance email"],
    security=BEARER,
    responses={
        200: {"description": "Saved", "content": {"application/json": {"schema": LOW_BALANCE_EMAIL}}},
        400: documented_error(
            f"threshold is not a whole number of credits from {email_alerts.MIN_THRESHOLD} to "
            f"{email_alerts.MAX_THRESHOLD}, or a bad body"
        ),
        409: documented_error(
            "This site sends no email (email_alerts_off), or the sign-in has no verified email"
        ),
    },
)
@tracer.capture_method
def put_low_balance_email() -> dict[str, Any]:
    user = user_id(app)
    body = json_object(app)
    if set(body) != {"enabled", "threshold"}:
        raise InvalidBodyError('The body must be {"enabled": true|false, "threshold": 500}.')
    if settings.alert_sender() is None:
        raise EmailAlertsOffError("no sender")
    saved = email_alerts.configure(
        user, enabled=body["enabled"], threshold=body["threshold"], email=_verified_email()
    )
    logger.info("low balance email set", extra={"user_id": user, "enabled": saved.enabled})
    return _email_body(saved)


def _verified_email() -> str | None:
    """The address the sign-in provider verified (the token's `email` with `email_verified` true)."""
    claims = app.current_event.request_context.authorizer.jwt_claim
    email, verified = claims.get("email"), str(claims.get("email_verified", "")).lower()
    if (
        not isinstance(email, str)
        or verified != "true"
        or not 3 <= len(email) <= MAX_EMAIL
        or "@" not in email
    ):
        return None
    return email


def _email_body(saved: email_alerts.EmailAlert) -> dict[str, Any]:
    return {
        "available": settings.alert_sender() is not None,
        "enabled": saved.enabled,
        "threshold": saved.threshold,
        "email": saved.email,
    }


@app.post(
    "/api/payment-method",
    status_code=HTTPStatus.CREATED,
    summary="Save a card without paying",
    tags=["Auto top-up"],
    security=BEARER,
    responses={
        201: {"description": "A setup-mode Checkout Session's URL; send the user there"},
        429: documented_error("This user set up too many cards this hour"),
        502: documented_error("Stripe could not be reached"),
    },
)
@tracer.capture_method
def add_payment_method() -> dict[str, str]:
    from wallet import payments, rate_limits

    user = user_id(app)
    rate_limits.count(user, "card-setups", rate_limits.CARD_SETUPS_PER_HOUR, TooManyCardSetupsError)
    customer = auto_top_up.customer_of(user, payments.create_customer)
    url = payments.create_card_setup_session(
        customer, user, settings.price_list().currency, settings.site_url()
    )
    return {"url": url}


@app.delete(
    "/api/payment-method",
    summary="Remove the saved card; auto top-up turns off",
    tags=["Auto top-up"],
    security=BEARER,
    responses={
        204: {"description": "Removed", "content": {}},
        502: documented_error("Stripe could not be reached"),
    },
)
@tracer.capture_method
def remove_payment_method() -> Response[str]:
    from wallet import payments

    auto_top_up.remove_card(user_id(app), payments.detach_payment_method)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


def _body(saved: AutoTopUp) -> dict[str, Any]:
    card = saved.card
    return {
        "enabled": saved.enabled,
        "threshold": saved.threshold,
        "amount": saved.amount,
        "paymentMethod": None
        if card is None
        else {"brand": card.brand, "last4": card.last4, "expMonth": card.exp_month, "expYear": card.exp_year},
        "status": saved.status.value,
        "reason": saved.reason,
        "resumesAt": None
        if saved.resumes_at is None
        else datetime.fromtimestamp(saved.resumes_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    """One committed change of a balance item. Every Stripe failure is settled here (a charge, a final
    decline, or passing failures tried until they give up), so the record is consumed; only DynamoDB
    failing raises, sending it back to be delivered again (and, past the retries, to the queue)."""
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image:
        return
    user = str(image["userId"])
    if image.get("cardsToDetach"):
        _detach_replaced_cards(user)
    if not auto_top_up.may_need_top_up(image):
        return  # off, above the threshold, paused, or this dip's charge is made: no read needed
    decision = auto_top_up.top_up_if_low(user)
    metrics.add_metric(name=METRIC_BY_DECISION[decision], unit=MetricUnit.Count, value=1)
    logger.info("auto top-up", extra={"user_id": user, "decision": decision.value})


def _detach_replaced_cards(user: str) -> None:
    """Cards a newer one replaced are detached at Stripe; one Stripe cannot detach now waits for the
    next change of the balance item, never holding up this record."""
    from wallet import payments

    try:
        detached = auto_top_up.detach_replaced_cards(user, payments.detach_payment_method)
    except PaymentsUnavailableError:
        logger.warning("replaced cards not detached yet", extra={"user_id": user})
        metrics.add_metric(name="ReplacedCardsNotDetached", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="ReplacedCardsDetached", unit=MetricUnit.Count, value=detached)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def stream_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

"""POST /api/webhooks/stripe: verify Stripe's signature, then act on the event as its owner in
`wallet.stripe_events` says: credit paid Checkout Sessions exactly once, take back what refunds and
disputes reverse, give it back when they are undone. `eventbridge_handler`: the same events delivered by
Amazon EventBridge from Stripe's partner event source, acted on through the same table.

Answers 200 for everything it has dealt with, including what it deliberately does not credit (a retry
could not change that), 400 for what is not a signed Stripe event, and 500 when the ledger failed, so
that Stripe delivers again.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import settings, snapstart
from wallet.errors import InvalidEventError
from wallet.http import documented_error, raw_body, resolver
from wallet.outcomes import Result, WebhookOutcome
from wallet.payments import API_VERSION
from wallet.stripe_events import handle_eventbridge, handle_webhook

# Stripe events are a few kilobytes; anything far larger is not one, and is refused before any HMAC.
MAX_EVENT_BYTES = 256 * 1024

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger, snapstart.prime_secrets)

METRIC_BY_RESULT = {
    Result.CREDITED: "CreditsDeposited",
    Result.ALREADY_CREDITED: "DuplicateDeliveries",
    Result.REJECTED: "RejectedFulfilments",
    Result.CLAWED_BACK: "CreditsClawedBack",
    Result.RESTORED: "CreditsRestored",
    Result.AUTO_TOP_UP_FAILED: "AutoTopUpFailures",
    Result.CARD_SAVED: "CardsSaved",
    Result.CARD_GONE: "CardsDetachedAtStripe",
    Result.UNKNOWN_STATUS: "UnknownStatuses",
    # A refund or dispute of a charge with no deposit here: counted, not alarmed (another integration's).
    Result.NOT_OURS: "EventsNotOurs",
}


@app.post(
    "/api/webhooks/stripe",
    summary="Receive a Stripe event",
    description="Stripe's webhook: paid Checkout Sessions are credited once, however often they arrive.",
    tags=["Stripe"],
    responses={
        200: {
            "description": "Handled, including what it deliberately does not credit: Stripe stops retrying",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["received"],
                        "additionalProperties": False,
                        "properties": {"received": {"const": True}},
                    }
                }
            },
        },
        400: documented_error("Not a Stripe event signed with this endpoint's secret"),
        500: documented_error("The ledger could not be reached; Stripe delivers again"),
    },
)
@tracer.capture_method
def stripe_webhook() -> dict[str, Any]:
    payload = raw_body(app)
    if len(payload) > MAX_EVENT_BYTES:
        metrics.add_metric(name="BadSignatures", unit=MetricUnit.Count, value=1)
        raise InvalidEventError(f"The body is larger than {MAX_EVENT_BYTES} bytes: not a Stripe event.")
    try:
        handled = handle_webhook(payload, app.current_event.headers.get("stripe-signature"))
    except InvalidEventError:
        metrics.add_metric(name="BadSignatures", unit=MetricUnit.Count, value=1)
        logger.warning("webhook refused: not a signed Stripe event")
        raise
    record(handled)
    return {"received": True}


def record(handled: WebhookOutcome) -> None:
    """Log and count what an event did, whichever door it came through."""
    logger.set_correlation_id(handled.event_id)
    if handled.api_version != API_VERSION:
        # Counted at each delivery, so a graph shows when it stops; logged once a process, not per event.
        metrics.add_metric(name="EventApiVersionMismatches", unit=MetricUnit.Count, value=1)
        _warn_of_api_version(handled.api_version)
    outcome = handled.outcome
    fields = {
        "event_type": handled.event_type,
        "result": outcome.result.value,
        "session_id": outcome.session_id,
        "payment_id": outcome.payment_id,
        "user_id": outcome.user_id,
        "credits": outcome.credits,
        "row_type": outcome.row_type,
    }
    if outcome.result in METRIC_BY_RESULT:
        metrics.add_metric(name=METRIC_BY_RESULT[outcome.result], unit=MetricUnit.Count, value=1)
    if outcome.needs_response:
        # Once per dispute and stage that needs an answer, whether or not it took credits.
        metrics.add_metric(name="DisputesOpened", unit=MetricUnit.Count, value=1)
    if outcome.result is Result.UNKNOWN_STATUS:
        logger.warning(
            "status not in the pinned API: nothing changed", extra=fields | {"reason": outcome.reason}
        )
    elif outcome.result is Result.REJECTED:
        reversal = handled.event_type.startswith(("charge.", "refund."))
        message = (
            "refund or dispute rejected: nothing changed"
            if reversal
            else "paid checkout session not credited"
        )
        logger.error(message, extra=fields | {"reason": outcome.reason})
    else:
        logger.info("webhook handled", extra=fields)


@cache
def _warn_of_api_version(received: str | None) -> None:
    """Once per process and version: the event is still acted on, its fields read as the pinned version
    has them; the fix is the endpoint's API version at Stripe, not the code."""
    logger.warning(
        "webhook event rendered in another Stripe API version than the pinned one: set the webhook "
        "endpoint's API version to the pinned one",
        # Powertools leaves out a field whose value is None: an event that names no version says "none".
        extra={"event_api_version": received or "none", "pinned_api_version": API_VERSION},
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The partner event bus's rule invokes this asynchronously with EventBridge's envelope. An event not from
# the configured source, or not a Stripe event of a type the table names, is logged, counted and dropped
# by returning: no retry could make it valid, and raising would only retry it into the dead-letter queue.
# A ledger failure raises, so Lambda retries the event and then parks it in the dead-letter queue.
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def eventbridge_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        handled = handle_eventbridge(event, settings.stripe_event_source())
    except InvalidEventError as refused:
        metrics.add_metric(name="UnknownEventBridgeEvents", unit=MetricUnit.Count, value=1)
        # The envelope's id and source, never its detail: a stray event is not ours to log whole.
        logger.warning(
            "EventBridge event dropped: not a Stripe event of a known type from the partner source",
            extra={
                "eventbridge_id": str(event.get("id")),
                "source": str(event.get("source")),
                "reason": str(refused),
            },
        )
        return {"dropped": True}
    record(handled)
    return {"received": True}

"""POST /api/checkout opens a Checkout Session; GET /api/checkout/{sessionId} sees it through to credits."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import checkout
from wallet.fulfilment import Result
from wallet.http import json_object, resolver, user_id

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = resolver()


@app.post("/api/checkout")
@tracer.capture_method
def start_checkout() -> tuple[dict[str, Any], HTTPStatus]:
    new = checkout.start_checkout(user_id(app), json_object(app).get("amount"))
    logger.info(
        "checkout session created", extra={"session_id": new.session_id, "payment_id": new.payment_id}
    )
    return {"sessionId": new.session_id, "url": new.url, "paymentId": new.payment_id}, HTTPStatus.CREATED


@app.get("/api/checkout/<session_id>")
@tracer.capture_method
def complete_checkout(session_id: str) -> dict[str, Any]:
    status = checkout.complete_checkout(user_id(app), session_id)
    if status.result is Result.CREDITED:
        metrics.add_metric(name="CreditsDeposited", unit=MetricUnit.Count, value=1)
    elif status.result is Result.REJECTED:
        metrics.add_metric(name="RejectedFulfilments", unit=MetricUnit.Count, value=1)
        logger.error("paid checkout session not credited", extra={"session_id": session_id})
    return {
        "status": status.status,
        "paymentStatus": status.payment_status,
        "credited": status.credited,
        "amount": status.credits,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

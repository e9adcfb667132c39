"""POST /api/checkout opens a Checkout Session; GET /api/checkout/{sessionId} sees it through to credits."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import checkout, snapstart
from wallet.http import MAX_BODY_BYTES, InvalidBodyError, documented_error, json_object, resolver, user_id

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = resolver(through_the_site=True)
snapstart.register(snapstart.prime_ledger, snapstart.prime_stripe, snapstart.prime_secrets)

# OpenAPI only: what the routes answer, documented without validating anything at run time.
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
NEW_CHECKOUT = {
    "type": "object",
    "required": ["sessionId", "url", "paymentId"],
    "additionalProperties": False,
    "properties": {
        "sessionId": {"type": "string", "description": "The Checkout Session's id, cs_..."},
        "url": {
            "type": "string",
            "format": "uri",
            "description": "Stripe Checkout's page; send the user there",
        },
        "paymentId": {"type": "string", "description": "The payment's ULID; the deposit's id once credited"},
    },
}
CHECKOUT_STATUS = {
    "type": "object",
    "required": ["status", "paymentStatus", "credited", "amount"],
    "additionalProperties": False,
    "properties": {
        "status": {"type": ["string", "null"], "description": "Stripe's: open, complete or expired"},
        "paymentStatus": {"type": ["string", "null"], "description": "Stripe's: paid, unpaid, ..."},
        "credited": {"type": "boolean", "description": "Whether the credits are on the balance"},
        "amount": {"type": ["integer", "null"], "description": "The credits the payment adds"},
    },
}


@app.post(
    "/api/checkout",
    status_code=HTTPStatus.CREATED,
    summary="Open a Checkout Session for a pack",
    description=(
        "`amount` is a pack's price in minor units, or any whole amount within the price list's `custom` "
        "bounds (GET /api/packs); `currency`, optional, must be the price list's."
    ),
    tags=["Checkout"],
    security=BEARER,
    responses={
        201: {"description": "Opened", "content": {"application/json": {"schema": NEW_CHECKOUT}}},
        400: documented_error(
            f"The body is not a JSON object of at most {MAX_BODY_BYTES:,} bytes, "
            "or `amount` is neither a pack's price nor within the custom bounds, or `currency` is another"
        ),
        429: documented_error("This user opened too many checkouts this hour"),
        502: documented_error("Stripe could not be reached; nothing was charged, try again"),
    },
)
@tracer.capture_method
def start_checkout() -> dict[str, Any]:
    body = json_object(app)
    save_card = body.get("saveCard", False)
    if not isinstance(save_card, bool):
        raise InvalidBodyError("saveCard must be true or false.")
    new = checkout.start_checkout(
        user_id(app), body.get("amount"), save_card=save_card, currency=body.get("currency")
    )
    logger.info(
        "checkout session created", extra={"session_id": new.session_id, "payment_id": new.payment_id}
    )
    return {"sessionId": new.session_id, "url": new.url, "paymentId": new.payment_id}


@app.get(
    "/api/checkout/<session_id>",
    summary="See a Checkout Session through to credits",
    description="Back from Checkout: where the session stands, crediting it now if it is paid.",
    tags=["Checkout"],
    security=BEARER,
    responses={
        200: {"description": "Where it stands", "content": {"application/json": {"schema": CHECKOUT_STATUS}}},
        404: documented_error("No such Checkout Session for this user"),
        429: documented_error("Too many uncredited sessions looked up at Stripe this hour"),
        500: documented_error("The ledger could not be reached; nothing was lost, try again"),
        502: documented_error("Stripe could not be reached; try again"),
    },
)
@tracer.capture_method
def complete_checkout(session_id: str) -> dict[str, Any]:
    from wallet.outcomes import Result  # with the ledger it needs, loaded by this route only

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


DOCUMENTS = {
    "type": "object",
    "required": ["paymentId", "receiptUrl", "invoiceUrl", "invoicePdf"],
    "additionalProperties": False,
    "properties": {
        "paymentId": {"type": "string"},
        "receiptUrl": {
            "type": ["string", "null"],
            "format": "uri",
            "description": "Stripe's receipt for the charge; null when the payment has no paid charge",
        },
        "invoiceUrl": {
            "type": ["string", "null"],
            "format": "uri",
            "description": "Stripe's page of the paid invoice, when Checkout made one (InvoicesEnabled)",
        },
        "invoicePdf": {"type": ["string", "null"], "format": "uri", "description": "The invoice as a PDF"},
    },
}


@app.get(
    "/api/payments/<payment_id>/documents",
    summary="A top-up's receipt and invoice",
    description="Links to what Stripe keeps for one of the signed-in user's deposits (its `paymentId`).",
    tags=["Checkout"],
    security=BEARER,
    responses={
        200: {"description": "The links", "content": {"application/json": {"schema": DOCUMENTS}}},
        404: documented_error("No such top-up for this user"),
        429: documented_error("Too many receipts and invoices asked for this hour"),
        500: documented_error("The ledger could not be reached; try again"),
        502: documented_error("Stripe could not be reached; try again"),
    },
)
@tracer.capture_method
def payment_documents(payment_id: str) -> dict[str, Any]:
    from wallet import receipts  # with the ledger it reads, loaded by this route only

    found = receipts.documents(user_id(app), payment_id)
    return {
        "paymentId": payment_id,
        "receiptUrl": found.receipt_url,
        "invoiceUrl": found.invoice_url,
        "invoicePdf": found.invoice_pdf,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""What the functions share at the HTTP edge: the resolver, the caller's identity, the request body,
and the one mapping from domain errors to status codes and error bodies."""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from wallet.errors import (
    CheckoutSessionNotFoundError,
    InvalidAmountError,
    InvalidEventError,
    InvalidPageError,
    LedgerUnavailableError,
    PaymentsUnavailableError,
)
from wallet.settings import SettingsError

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

MAX_BODY_BYTES = 4096
logger = Logger(child=True)


class UnauthorizedError(Exception):
    """The request carries no verified user identity."""


class InvalidBodyError(ValueError):
    """A request body that is not the JSON object the route expects."""


# Domain error -> status and error code. The message is the exception's own, written for people.
STATUS: dict[type[Exception], tuple[HTTPStatus, str]] = {
    UnauthorizedError: (HTTPStatus.UNAUTHORIZED, "unauthorized"),
    InvalidBodyError: (HTTPStatus.BAD_REQUEST, "invalid_body"),
    InvalidAmountError: (HTTPStatus.BAD_REQUEST, "invalid_amount"),
    InvalidPageError: (HTTPStatus.BAD_REQUEST, "invalid_page"),
    InvalidEventError: (HTTPStatus.BAD_REQUEST, "invalid_event"),
    CheckoutSessionNotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    PaymentsUnavailableError: (HTTPStatus.BAD_GATEWAY, "stripe_unavailable"),
    # 500, not 503, on every route: Stripe retries a webhook delivery on any 5xx.
    LedgerUnavailableError: (HTTPStatus.INTERNAL_SERVER_ERROR, "ledger_unavailable"),
}
MESSAGES: dict[type[Exception], str] = {
    UnauthorizedError: "Sign in to continue.",
    CheckoutSessionNotFoundError: "No such checkout session.",
    PaymentsUnavailableError: "The payment provider could not be reached. Nothing was charged; try again.",
    LedgerUnavailableError: "Your balance could not be reached just now. Nothing was lost; try again.",
}


def error(status: HTTPStatus, code: str, message: str) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def documented_error(description: str) -> OpenAPIResponse:
    """An error response for the OpenAPI document: the one error shape, with what it means here."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def resolver() -> APIGatewayHttpResolver:
    """An HTTP API resolver whose every error, expected or not, is answered in the one error shape."""
    app = APIGatewayHttpResolver()

    def domain_error(exc: Exception) -> Response[str]:
        status, code = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.exception("request failed", extra={"error_code": code})
        return error(status, code, MESSAGES.get(type(exc), str(exc)))

    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        message = "Something went wrong on our side. Nothing was charged twice; try again."
        if isinstance(exc, SettingsError):
            message = "This service is not configured correctly."
        return error(status, "internal_error", message)

    def not_found(_: NotFoundError) -> Response[str]:
        return error(HTTPStatus.NOT_FOUND, "not_found", "No such route.")

    app.exception_handler(list(STATUS))(domain_error)
    app.exception_handler(Exception)(unexpected)
    app.not_found(not_found)
    return app


def user_id(app: APIGatewayHttpResolver) -> str:
    """The signed-in user: the `sub` claim the API's JWT authorizer verified. Never from the request."""
    sub = app.current_event.request_context.authorizer.jwt_claim.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise UnauthorizedError("no verified user identity on the request")
    return sub


def raw_body(app: APIGatewayHttpResolver) -> bytes:
    """The body's exact bytes; API Gateway base64-encodes bodies it does not treat as text."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBodyError("The request body is not valid base64.") from exc


def json_object(app: APIGatewayHttpResolver) -> dict[str, Any]:
    body = raw_body(app)
    if len(body) > MAX_BODY_BYTES:
        raise InvalidBodyError(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBodyError("The request body must be a JSON object.") from exc
    if not isinstance(value, dict):
        raise InvalidBodyError("The request body must be a JSON object.")
    return value

"""What the functions share at the HTTP edge: the resolver, the caller's identity, the request body,
and the one mapping from domain errors to status codes and error bodies."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import unicodedata
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
)

from wallet.amounts import WrittenNumber, written_integer
from wallet.errors import (
    CheckoutSessionNotFoundError,
    DepositNotFoundError,
    DepositNotRecordedError,
    EmailAlertsOffError,
    ExportTooLargeError,
    HoldNotActiveError,
    HoldNotFoundError,
    IdempotencyKeyReusedError,
    InsufficientCreditsError,
    InvalidAmountError,
    InvalidEventError,
    InvalidExpiryError,
    InvalidPageError,
    InvalidPeriodError,
    InvalidRangeError,
    InvalidShardsError,
    LedgerUnavailableError,
    NoPaymentMethodError,
    NoVerifiedEmailError,
    PaymentsUnavailableError,
    ShardsAlreadySetError,
    TooManyCardSetupsError,
    TooManyCheckoutsError,
    TooManyLookupsError,
    TooManyReceiptsError,
)
from wallet.principals import InvalidPrincipalError, principal
from wallet.settings import SettingsError, origin_secrets

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

# A description or a reason, in characters (code points): one line, as a history row shows it.
MAX_TEXT = 500
# Every body a route takes fits, its text sent as JSON escapes: the longest escape of one character is a
# surrogate pair ("\ud83d\ude00", 12 bytes), so 500 are 6,000 bytes; all other fields are under 200.
MAX_BODY_BYTES = 8192
# Unicode categories a text field refuses: Cc, the C0 and C1 controls and DEL (tab and newline among them:
# a row is one line); Zl and Zp, the line and paragraph separators; Cs, a lone surrogate (no character).
NOT_ONE_LINE_OF_TEXT = frozenset({"Cc", "Zl", "Zp", "Cs"})
# And the explicit directional embeddings, overrides and isolates of Unicode's bidirectional algorithm
# (UAX #9, section 2): they reorder the text after them on the page, in a CSV and in a log, so that
# "Refund" with U+202E inside can read as something else (CVE-2021-42574). The implicit marks (U+200E,
# U+200F, U+061C) move nothing past a neutral and are taken.
DIRECTIONAL_FORMATTING = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# The header CloudFront adds to every request it sends the page API (template.yaml, SiteDistribution).
ORIGIN_HEADER = "x-origin-verify"
logger = Logger(child=True)


class UnauthorizedError(Exception):
    """The request carries no verified user identity."""


class ForbiddenError(Exception):
    """A service route reached without the IAM identity API Gateway's AWS_IAM authorization adds."""


class NotThroughTheSiteError(Exception):
    """A page route called at the API's own URL, around CloudFront and WAF: no valid X-Origin-Verify."""


class CallerNotAllowedError(Exception):
    """A signed service call from a principal that is not listed for what it asks."""


class InvalidBodyError(ValueError):
    """A request body that is not the JSON object the route expects."""


class MissingIdempotencyKeyError(ValueError):
    """A service call that changes a balance without an Idempotency-Key to make its retries safe."""


class InvalidIdempotencyKeyError(ValueError):
    """An Idempotency-Key that is not 1 to 255 printable ASCII characters."""


class InvalidUserError(ValueError):
    """A user id in a service route's path that no sign-in could have issued."""


class InvalidTokenUserError(ValueError):
    """A verified token whose `sub` is not a user id the ledger takes (an external issuer's own format)."""


# Domain error -> status and error code. The message is the exception's own, written for people.
STATUS: dict[type[Exception], tuple[HTTPStatus, str]] = {
    UnauthorizedError: (HTTPStatus.UNAUTHORIZED, "unauthorized"),
    ForbiddenError: (HTTPStatus.FORBIDDEN, "forbidden"),
    CallerNotAllowedError: (HTTPStatus.FORBIDDEN, "caller_not_allowed"),
    NotThroughTheSiteError: (HTTPStatus.FORBIDDEN, "not_through_the_site"),
    InvalidBodyError: (HTTPStatus.BAD_REQUEST, "invalid_body"),
    MissingIdempotencyKeyError: (HTTPStatus.BAD_REQUEST, "missing_idempotency_key"),
    InvalidIdempotencyKeyError: (HTTPStatus.BAD_REQUEST, "invalid_idempotency_key"),
    InvalidUserError: (HTTPStatus.BAD_REQUEST, "invalid_user"),
    InvalidTokenUserError: (HTTPStatus.BAD_REQUEST, "invalid_user"),
    InvalidAmountError: (HTTPStatus.BAD_REQUEST, "invalid_amount"),
    InsufficientCreditsError: (HTTPStatus.PAYMENT_REQUIRED, "insufficient_credits"),
    IdempotencyKeyReusedError: (HTTPStatus.CONFLICT, "idempotency_key_reused"),
    InvalidPageError: (HTTPStatus.BAD_REQUEST, "invalid_page"),
    InvalidRangeError: (HTTPStatus.BAD_REQUEST, "invalid_range"),
    InvalidPeriodError: (HTTPStatus.BAD_REQUEST, "invalid_period"),
    ExportTooLargeError: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "export_too_large"),
    DepositNotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    TooManyReceiptsError: (HTTPStatus.TOO_MANY_REQUESTS, "too_many_receipts"),
    InvalidEventError: (HTTPStatus.BAD_REQUEST, "invalid_event"),
    CheckoutSessionNotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    HoldNotFoundError: (HTTPStatus.NOT_FOUND, "hold_not_found"),
    HoldNotActiveError: (HTTPStatus.CONFLICT, "hold_not_active"),
    PaymentsUnavailableError: (HTTPStatus.BAD_GATEWAY, "stripe_unavailable"),
    TooManyLookupsError: (HTTPStatus.TOO_MANY_REQUESTS, "too_many_lookups"),
    TooManyCheckoutsError: (HTTPStatus.TOO_MANY_REQUESTS, "too_many_checkouts"),
    TooManyCardSetupsError: (HTTPStatus.TOO_MANY_REQUESTS, "too_many_card_setups"),
    # 500, not 503, on every route: Stripe retries a webhook delivery on any 5xx.
    LedgerUnavailableError: (HTTPStatus.INTERNAL_SERVER_ERROR, "ledger_unavailable"),
    # A refund that overtook its deposit: 500 so that Stripe delivers it again once the deposit is in.
    DepositNotRecordedError: (HTTPStatus.INTERNAL_SERVER_ERROR, "deposit_not_recorded"),
    NoPaymentMethodError: (HTTPStatus.CONFLICT, "no_payment_method"),
    EmailAlertsOffError: (HTTPStatus.CONFLICT, "email_alerts_off"),
    NoVerifiedEmailError: (HTTPStatus.CONFLICT, "no_verified_email"),
    ShardsAlreadySetError: (HTTPStatus.CONFLICT, "shards_already_set"),
    InvalidShardsError: (HTTPStatus.BAD_REQUEST, "invalid_shards"),
    InvalidExpiryError: (HTTPStatus.BAD_REQUEST, "invalid_expiry"),
}
MESSAGES: dict[type[Exception], str] = {
    UnauthorizedError: "Sign in to continue.",
    ForbiddenError: "This route takes only requests signed with AWS credentials (SigV4).",
    NotThroughTheSiteError: "This API is reached through the site only.",
    MissingIdempotencyKeyError: "Send an Idempotency-Key header: the same key makes a retry safe.",
    InvalidIdempotencyKeyError: "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
    InvalidUserError: "The user id in the path must be 1 to 255 printable ASCII characters, without spaces "
    'or any of " # / ? \\ `.',
    InvalidTokenUserError: "The token's sub claim is not a user id this service takes: it must be 1 to 255 "
    "printable ASCII characters, without spaces or any of \" # / ? \\ `. Ask the sign-in provider's admin.",
    CheckoutSessionNotFoundError: "No such checkout session.",
    HoldNotFoundError: "No such hold for this user.",
    TooManyLookupsError: "Too many checkout sessions looked up this hour; try again later.",
    TooManyCheckoutsError: "Too many checkouts opened this hour; try again later.",
    TooManyReceiptsError: "Too many receipts and invoices asked for this hour; try again later.",
    DepositNotFoundError: "No such top-up.",
    TooManyCardSetupsError: "Too many cards set up this hour; try again later.",
    EmailAlertsOffError: "This site sends no email alerts.",
    PaymentsUnavailableError: "The payment provider could not be reached. Nothing was charged; try again.",
    LedgerUnavailableError: "Your balance could not be reached just now. Nothing was lost; try again.",
}


def error(status: HTTPStatus, code: str, message: str, **details: Any) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message, **details}})
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def documented_error(description: str) -> OpenAPIResponse:
    """An error response for the OpenAPI document: the one error shape, with what it means here."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def resolver(*, through_the_site: bool = False) -> APIGatewayHttpResolver:
    """An HTTP API resolver whose every error, expected or not, is answered in the one error shape.
    `through_the_site`: the page API, whose every route first checks CloudFront's X-Origin-Verify."""
    app = APIGatewayHttpResolver()
    if through_the_site:
        app.use([_through_the_site])
    _answer_in_one_shape(app)
    return app


def service_resolver() -> APIGatewayRestResolver:
    """The service API's resolver: a REST API (it holds the resource policy naming the callers), whose
    errors are answered in the same one shape."""
    app = APIGatewayRestResolver()
    _answer_in_one_shape(app)
    return app


def _answer_in_one_shape(app: ApiGatewayResolver) -> None:
    def domain_error(exc: Exception) -> Response[str]:
        status, code = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.exception("request failed", extra={"error_code": code})
        details: dict[str, Any] = {}
        if isinstance(exc, InsufficientCreditsError):
            details = {"balance": exc.balance, "available": exc.available}
        elif isinstance(exc, HoldNotActiveError):
            details = {"hold": exc.hold}
        elif isinstance(exc, ExportTooLargeError):
            details = {"fitsThrough": None if exc.fits_through is None else exc.fits_through.isoformat()}
        return error(status, code, MESSAGES.get(type(exc), str(exc)), **details)

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


def _through_the_site(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[str]:
    sent = (app.current_event.headers.get(ORIGIN_HEADER) or "").encode()
    # Every value is compared, so the time taken tells nothing of which one, or how much, matched.
    matches = [hmac.compare_digest(sent, value.encode()) for value in origin_secrets()]
    if not any(matches):
        raise NotThroughTheSiteError("no valid X-Origin-Verify header")
    return next_middleware(app)


def user_id(app: APIGatewayHttpResolver) -> str:
    """The signed-in user: the `sub` claim the API's JWT authorizer verified. Never from the request."""
    sub = app.current_event.request_context.authorizer.jwt_claim.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise UnauthorizedError("no verified user identity on the request")
    # Held to a path's user id: a "#" would name a ledger record or a hot account's sub-balance.
    if not USER_ID.fullmatch(sub):
        raise InvalidTokenUserError("the token's sub is not a user id")
    return sub


def caller_arn(app: ApiGatewayResolver) -> str:
    """The IAM principal that signed a service call, as API Gateway's AWS_IAM authorization verified it:
    a REST API's request identity, or an HTTP API's IAM authorizer."""
    event = app.current_event
    if isinstance(event, APIGatewayProxyEvent):
        arn = event.request_context.identity.user_arn or ""
    elif isinstance(event, APIGatewayProxyEventV2):
        arn = event.request_context.authorizer.iam.user_arn or ""
    else:
        arn = ""
    if not arn.startswith("arn:"):
        raise ForbiddenError("no IAM principal on the request")
    return arn


def allowed_caller(app: ApiGatewayResolver, allowed: frozenset[str], listed_in: str) -> str:
    """The signing principal's ARN when `allowed` names it (any session of a listed role counts), else
    CallerNotAllowedError naming the principal and the list it is missing from. Checked before any write."""
    arn = caller_arn(app)
    try:
        name = principal(arn)
    except InvalidPrincipalError:
        name = arn
    if name not in allowed:
        raise CallerNotAllowedError(f"{name} may not call this route: it is not listed in {listed_in}.")
    return arn


def idempotency_key(app: ApiGatewayResolver) -> str:
    """The caller's Idempotency-Key: one key, one effect, however often the request is sent."""
    key = app.current_event.headers.get("idempotency-key")
    if key is None or key == "":
        raise MissingIdempotencyKeyError("no Idempotency-Key header")
    if not re.fullmatch(r"[ -~]{1,255}", key) or key != key.strip():
        raise InvalidIdempotencyKeyError("malformed Idempotency-Key header")
    return key


# A user id in a service route's path, as the function receives it (decoded once): a sign-in's `sub` is
# printable ASCII; " # / ? \ and ` are left out, as no route of an HTTP API, whose path arrives decoded,
# can take them in a path segment.
USER_ID = re.compile(r"[!$-.0->@-\[\]-_a-~]{1,255}")


def path_user_id(user: str) -> str:
    """A user id named in a service route's path; a leading "#" names the ledger's own records (the
    sweep's), never a user."""
    if not USER_ID.fullmatch(user) or user.startswith("#"):
        raise InvalidUserError("malformed user id")
    return user


def raw_body(app: ApiGatewayResolver) -> bytes:
    """The body's exact bytes; API Gateway base64-encodes bodies it does not treat as text."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBodyError("The request body is not valid base64.") from exc


def json_object(app: ApiGatewayResolver) -> dict[str, Any]:
    """The body as a JSON object of at most MAX_BODY_BYTES; numbers written with a fraction or an exponent,
    or too long for int(), keep their text (WrittenNumber), so that a refusal quotes what the caller wrote."""
    body = raw_body(app)
    if len(body) > MAX_BODY_BYTES:
        raise InvalidBodyError(f"The request body is larger than {MAX_BODY_BYTES:,} bytes.")
    try:
        value = json.loads(body, parse_float=WrittenNumber, parse_int=written_integer)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBodyError("The request body must be a JSON object.") from exc
    if not isinstance(value, dict):
        raise InvalidBodyError("The request body must be a JSON object.")
    return value


def text_field(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    """A description or a reason: 1 to MAX_TEXT characters on one line, trimmed; None when optional and
    absent. Every route that takes text reads it here."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidBodyError(f"{name} must be text of 1 to {MAX_TEXT} characters.")
    for position, character in enumerate(value):
        if unicodedata.category(character) in NOT_ONE_LINE_OF_TEXT:
            raise InvalidBodyError(
                f"{name} must be one line of printable text: character {position + 1} is "
                f"U+{ord(character):04X}, a control character, line break or lone surrogate."
            )
        if character in DIRECTIONAL_FORMATTING:
            raise InvalidBodyError(
                f"{name} must be one line of printable text: character {position + 1} is "
                f"U+{ord(character):04X}, a directional override, embedding or isolate."
            )
    return value.strip()

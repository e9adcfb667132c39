"""Errors in Stripe's shape, `{"error": {"type", "code", "message", "param"}}` with Stripe's HTTP status."""

from __future__ import annotations

from http import HTTPStatus

from devstack.stripe_emulator.fixtures import JsonObject


class StripeApiError(Exception):
    """An answer in Stripe's error shape, `{"error": {"type", "code", "message", "param"}}`, and status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        validation: bool = False,
        details: JsonObject | None = None,
    ) -> None:
        super().__init__(message)
        # More of Stripe's error fields: a card error's decline_code, payment_intent and payment_method.
        self.details = details or {}
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        # Stripe saves no idempotent result for a request whose parameters fail validation.
        self.validation = validation

    def body(self) -> JsonObject:
        error: JsonObject = {"message": self.message, "type": self.error_type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.details)
        return {"error": dict(sorted(error.items()))}


class UnknownCheckoutSessionError(LookupError):
    """A payment action named a Checkout Session this emulator never created."""


class InvalidTransitionError(RuntimeError):
    """A payment action that Checkout would not allow in the session's current state."""


def invalid(message: str, param: str | None, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param, validation=True)


def missing(param: str) -> StripeApiError:
    return invalid(f"Missing required param: {param}.", param, "parameter_missing")


def no_such(resource: str, object_id: str, param: str) -> StripeApiError:
    """Stripe's 404 for an id it does not know: `No such checkout.session: 'cs_...'`."""
    return StripeApiError(404, f"No such {resource}: '{object_id}'", code="resource_missing", param=param)


def unrecognized(method: str, path: str, emulated: str) -> StripeApiError:
    return StripeApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
        f"https://support.stripe.com/. (This local emulator answers only {emulated}.)",
    )


def injected(status: int) -> StripeApiError:
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return StripeApiError(
            status,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status == HTTPStatus.CONFLICT:
        return StripeApiError(
            status,
            "This object cannot be accessed right now because another API request or Stripe process is "
            "currently accessing it. If you see this error intermittently, retry the request.",
            code="lock_timeout",
        )
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return StripeApiError(status, "An unknown error occurred", error_type="api_error")
    return StripeApiError(status, HTTPStatus(status).phrase)


def mask_api_key(key: str) -> str:
    """The key as Stripe shows it in an error: its `sk_test_`-style prefix and at most its last 4 chars."""
    prefix = key[: key.rfind("_", 0, 8) + 1]
    rest = key[len(prefix) :]
    tail = rest[-4:] if len(rest) > 8 else ""
    return prefix + "*" * (len(rest) - len(tail)) + tail


class UnknownObjectError(LookupError):
    """A test control named a charge or dispute this emulator never made."""

"""A local Stripe API for Checkout Sessions, served on 127.0.0.1 to the real stripe SDK. Never deployed.

The API side answers the calls the product makes (create, retrieve, list and expire a Checkout Session)
with form-encoded requests in and Stripe-shaped JSON out: every object is a deep copy of Stripe's own
example (`stripe_fixtures.json`) with real values filled in, errors carry Stripe's `{"error": {...}}` body
and HTTP status, idempotency keys are honoured, and faults (5xx, 429, slow answers) can be injected.

The customer's side is played in code: `pay`, `pay_later` then `settle` or `fail_payment`, `decline` and
`expire` move a session as Checkout would and return the events Stripe would send; each is also signed
with the emulator's webhook secret and handed to the optional `deliver` callable (for real delivery over
HTTP, a `devstack.webhook_delivery.WebhookSender`; `SignedEvent.resigned()` signs a retry afresh).

    with StripeEmulator() as emulator:
        client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.api_base})
        session = client.v1.checkout.sessions.create({...})
        [completed] = emulator.pay(session.id)
        signed = emulator.sign(completed)  # signed.payload, signed.signature: what Stripe would POST

Or by a person, on the hosted Checkout page at the session's `url` (`GET /checkout/{id}`): plain HTML
forms, no API key, that post to `/checkout/{id}/pay`, `/pay-later`, `/decline` or `/cancel` and answer
`303 See Other` to where Checkout sends the customer: the `success_url` (its `{CHECKOUT_SESSION_ID}`
filled in) after paying, the page again after a decline, the `cancel_url` after cancelling (no event).
"Pay later" settles by itself `settle_after` seconds on. Asked for JSON, the same posts answer
`200 {"sessionId", "status", "paymentStatus", "redirect"}` instead, for scripts; a session that can no
longer be paid is a 409 and an unknown one a 404, each with `{"error": {"message"}}`:

    curl -s -X POST -H 'Accept: application/json' "$API_BASE/checkout/$SESSION_ID/pay"
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import functools
import html
import json
import logging
import re
import secrets
import string
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import SplitResult, parse_qs, parse_qsl, quote, unquote, urlsplit

import stripe

FIXTURES = Path(__file__).with_name("stripe_fixtures.json")
DEFAULT_API_KEY = "sk_test_emulator"
SESSION_LIFETIME_SECONDS = 24 * 60 * 60
MIN_SESSION_LIFETIME_SECONDS = 30 * 60
CHECKOUT_PAGE_TITLE = "Stripe Checkout emulator (local)"
CHECKOUT_PAGE_TEMPLATE = Path(__file__).with_name("checkout_page.html")
DEFAULT_SETTLE_AFTER_SECONDS = 5.0
DECLINED_MESSAGE = "Your card was declined. Try again or use another card."
LIST_URL = "/v1/checkout/sessions"

JsonObject = dict[str, Any]

_log = logging.getLogger(__name__)
_ID_ALPHABET = string.ascii_letters + string.digits
_INTEGER = re.compile(r"-?\d+")
_PARAM_NAME = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SUBSCRIPT = re.compile(r"\[([^\[\]]*)\]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[a-z]{3}")
_SESSIONS = re.compile(r"/v1/checkout/sessions")
_SESSION = re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)")
_SESSION_EXPIRE = re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/expire")
_CHECKOUT_PAGE = re.compile(r"/checkout/(?P<id>[^/]+)")
_CHECKOUT_ACTION = re.compile(r"/checkout/(?P<id>[^/]+)/(?P<action>[^/]+)")
CHECKOUT_ACTIONS = ("pay", "pay-later", "decline", "cancel")
CHECKOUT_PAGE_NOTICE = "Local Stripe Checkout emulator — no real payment is taken."
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # No form-action: it would also restrict the redirect to the site's success and cancel URLs.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_JSON_PAGE_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
_EMULATED_ROUTES = (
    "POST /v1/checkout/sessions, GET /v1/checkout/sessions, GET /v1/checkout/sessions/{id}, "
    "POST /v1/checkout/sessions/{id}/expire"
)
# Stripe's currencies whose amounts have no minor unit, for showing an amount on the Checkout page.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    (
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    )
)
# Stripe's currencies with three decimals; their amounts are in thousandths.
_THREE_DECIMAL_CURRENCIES = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))
_METADATA_MAX_KEYS = 50
_METADATA_MAX_KEY_LENGTH = 40
_METADATA_MAX_VALUE_LENGTH = 500
_CLIENT_REFERENCE_ID_MAX_LENGTH = 200


# ---------------------------------------------------------------------------------------------------------
# Stripe's objects
# ---------------------------------------------------------------------------------------------------------


@cache
def _fixtures() -> Mapping[str, JsonObject]:
    resources: dict[str, JsonObject] = json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]
    return resources


def fixture(name: str) -> JsonObject:
    """A deep copy of Stripe's example object `name`: `checkout.session`, `event`, `payment_intent`..."""
    return copy.deepcopy(_fixtures()[name])


def _stripe_object(name: str, **values: Any) -> JsonObject:
    """Stripe's example `name` with `values` filled in; a value for a field Stripe does not have is a bug."""
    obj = fixture(name)
    if unknown := values.keys() - obj.keys():
        raise KeyError(f"{name} has no field {sorted(unknown)}")
    obj.update(values)
    return obj


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _now() -> int:
    return int(time.time())


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


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
    ) -> None:
        super().__init__(message)
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
        return {"error": dict(sorted(error.items()))}


class UnknownCheckoutSessionError(LookupError):
    """A payment action named a Checkout Session this emulator never created."""


class InvalidTransitionError(RuntimeError):
    """A payment action that Checkout would not allow in the session's current state."""


def _invalid(message: str, param: str | None, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param, validation=True)


def _missing(param: str) -> StripeApiError:
    return _invalid(f"Missing required param: {param}.", param, "parameter_missing")


def _no_such_session(session_id: str, param: str) -> StripeApiError:
    return StripeApiError(
        404, f"No such checkout.session: '{session_id}'", code="resource_missing", param=param
    )


def _unrecognized(method: str, path: str) -> StripeApiError:
    return StripeApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
        f"https://support.stripe.com/. (This local emulator answers only {_EMULATED_ROUTES}.)",
    )


def _injected(status: int) -> StripeApiError:
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


# ---------------------------------------------------------------------------------------------------------
# Form-encoded parameters
# ---------------------------------------------------------------------------------------------------------


def parse_form(encoded: str) -> JsonObject:
    """Stripe's form encoding read back as nested values: `a[b][0][c]=1` -> `{"a": {"b": [{"c": "1"}]}}`.

    A hash keyed 0..n-1 reads as the array the SDK encoded it from, and `a[]=x` appends to an array; every
    value stays the string that was sent.
    """
    root: JsonObject = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        match = _PARAM_NAME.fullmatch(name)
        if match is None:
            raise _invalid(f"Invalid parameter name: {name}", name)
        keys = [match[1], *_SUBSCRIPT.findall(match[2])]
        appending = keys[-1] == ""
        if appending:
            keys.pop()
        if "" in keys:
            raise _invalid(f"Invalid parameter name: {name}", name)
        node = root
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise _invalid(f"Invalid hash: {name} mixes a value and a hash", name)
            node = child
        last = keys[-1]
        if appending:
            items = node.setdefault(last, [])
            if not isinstance(items, list):
                raise _invalid(f"Invalid array: {name} mixes a value and an array", name)
            items.append(value)
        elif isinstance(node.get(last), dict | list):
            raise _invalid(f"Invalid string: {name} mixes a value and a hash", name)
        else:
            node[last] = value
    return {name: _with_arrays(value) for name, value in root.items()}


def _with_arrays(value: Any) -> Any:
    if isinstance(value, list):
        return [_with_arrays(item) for item in value]
    if not isinstance(value, dict):
        return value
    items = {key: _with_arrays(item) for key, item in value.items()}
    indexes = [str(index) for index in range(len(items))]
    return [items[index] for index in indexes] if items and items.keys() == set(indexes) else items


class _Metadata:
    """Schema marker: a free-form hash of strings, with Stripe's limits on keys and values."""


class _Range:
    """Schema marker: an integer, or a hash of `gt`, `gte`, `lt`, `lte` integers."""


_METADATA = _Metadata()
_RANGE = _Range()

# What the emulator reads of each request; any other parameter is answered `parameter_unknown`.
_CREATE_PARAMS: JsonObject = {
    "cancel_url": str,
    "client_reference_id": str,
    "customer_email": str,
    "expand": [str],
    "expires_at": int,
    "line_items": [
        {
            "price_data": {
                "currency": str,
                "product_data": {"description": str, "metadata": _METADATA, "name": str},
                "unit_amount": int,
            },
            "quantity": int,
        }
    ],
    "metadata": _METADATA,
    "mode": str,
    "payment_intent_data": {"description": str, "metadata": _METADATA},
    "success_url": str,
}
_LIST_PARAMS: JsonObject = {
    "created": _RANGE,
    "ending_before": str,
    "expand": [str],
    "limit": int,
    "payment_intent": str,
    "starting_after": str,
    "status": str,
}
_EXPAND_ONLY: JsonObject = {"expand": [str]}


def _stripe_params(params: Any) -> frozenset[str]:
    """The top-level parameters Stripe itself accepts, from the SDK's typed parameters."""
    keys: frozenset[str] = params.__required_keys__ | params.__optional_keys__
    return keys - stripe.RequestOptions.__optional_keys__


_STRIPE_CREATE_PARAMS = _stripe_params(stripe.params.checkout.SessionCreateParams)
_STRIPE_LIST_PARAMS = _stripe_params(stripe.params.checkout.SessionListParams)


def _conform(value: object, schema: object, param: str, stripe_knows: frozenset[str] = frozenset()) -> Any:
    """`value` read as `schema` says, or the 400 Stripe answers for the first parameter that does not fit."""
    if schema is str:
        if not isinstance(value, str):
            raise _invalid(f"Invalid string: {param} must be a string", param)
        return value
    if schema is int:
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            raise _invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer")
        return int(value)
    if schema is _RANGE:
        if isinstance(value, dict):
            return _conform(value, dict.fromkeys(("gt", "gte", "lt", "lte"), int), param)
        return _conform(value, int, param)
    if schema is _METADATA:
        return _metadata(value, param)
    if isinstance(schema, list):
        if value == "":
            return []
        if isinstance(value, dict) and all(key.isdigit() for key in value):
            value = [value[key] for key in sorted(value, key=int)]
        if not isinstance(value, list):
            raise _invalid(f"Invalid array: {param} must be an array", param)
        return [_conform(item, schema[0], f"{param}[{index}]") for index, item in enumerate(value)]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _invalid(f"Invalid hash: {param} must be a hash", param)
        conformed: JsonObject = {}
        for key, item in value.items():
            name = f"{param}[{key}]" if param else key
            if key not in schema:
                hint = " (Stripe accepts it; this local emulator does not)" if key in stripe_knows else ""
                raise _invalid(f"Received unknown parameter: {name}{hint}", name, "parameter_unknown")
            conformed[key] = _conform(item, schema[key], name)
        return conformed
    raise TypeError(f"not a parameter schema: {schema!r}")


def _metadata(value: object, param: str) -> dict[str, str]:
    if value == "":
        return {}
    if isinstance(value, list):
        # Keys 0..n-1 were read as an array; metadata keeps them as the keys they were.
        value = {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise _invalid(f"Invalid hash: {param} must be a hash", param)
    if len(value) > _METADATA_MAX_KEYS:
        raise _invalid(f"Invalid {param}: at most {_METADATA_MAX_KEYS} keys are allowed", param)
    for key, item in value.items():
        name = f"{param}[{key}]"
        if not isinstance(item, str):
            raise _invalid(f"Invalid string: {name} must be a string", name)
        if len(key) > _METADATA_MAX_KEY_LENGTH:
            raise _invalid(
                f"Invalid {param}: keys can be at most {_METADATA_MAX_KEY_LENGTH} characters", name
            )
        if len(item) > _METADATA_MAX_VALUE_LENGTH:
            raise _invalid(
                f"Invalid {name}: values can be at most {_METADATA_MAX_VALUE_LENGTH} characters", name
            )
    return dict(value)


def _required(params: Mapping[str, Any], key: str, parent: str = "") -> Any:
    name = f"{parent}[{key}]" if parent else key
    if params.get(key) in (None, "", []):
        raise _missing(name)
    return params[key]


def _check_url(url: str, param: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid("Not a valid URL", param, "url_invalid")


def _expands_payment_intent(params: Mapping[str, Any], path: str) -> bool:
    for item in params.get("expand", []):
        if item != path:
            raise _invalid(f"This property cannot be expanded ({item}).", "expand")
    return path in params.get("expand", [])


# ---------------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------------


Signer = Callable[[bytes, int | None], str]
"""Computes the `Stripe-Signature` header of a payload at a timestamp (None: now)."""


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """An event as Stripe posts it: the exact body bytes and the `Stripe-Signature` header over them."""

    event: JsonObject
    payload: bytes
    signature: str
    headers: dict[str, str]
    # Kept so a sender can sign each attempt afresh, as Stripe does; it holds the secret, so never shown.
    signer: Signer | None = field(default=None, repr=False, compare=False)

    def resigned(self, timestamp: int | None = None) -> SignedEvent:
        """The same payload signed again now (or at `timestamp`), as Stripe signs each delivery attempt.

        An event made without a signer (built by hand) is returned as it is.
        """
        if self.signer is None:
            return self
        return _signed_event(self.event, self.payload, self.signer, timestamp)


def _signed_event(event: JsonObject, payload: bytes, signer: Signer, timestamp: int | None) -> SignedEvent:
    signature = signer(payload, timestamp)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature,
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return SignedEvent(event=event, payload=payload, signature=signature, headers=headers, signer=signer)


Deliver = Callable[[SignedEvent], None]


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request the API answered, as the request log keeps it."""

    method: str
    path: str
    params: JsonObject
    status: int
    request_id: str
    idempotency_key: str | None
    stripe_version: str | None
    replayed: bool
    injected: bool


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int | None
    delay: float
    should_retry: bool | None


@dataclass(slots=True)
class _CheckoutRecord:
    """A session, the PaymentIntent Checkout made for it (if any) and what that PaymentIntent will carry."""

    sequence: int
    session: JsonObject
    payment_intent_data: JsonObject
    payment_intent: JsonObject | None = None
    # Stripe keeps them apart from the session object; the Checkout page shows them.
    line_items: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _IdempotentResult:
    method: str
    path: str
    params: JsonObject
    status: int
    body: bytes
    request_id: str


@dataclass(slots=True)
class _RequestContext:
    request_id: str
    idempotency_key: str | None
    events: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes
    events: tuple[JsonObject, ...] = ()
    # Run once the events are delivered, so what it causes is announced after them.
    then: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class _PageView:
    """What the Checkout page shows of a session, copied under the lock."""

    session: JsonObject
    line_items: list[JsonObject]
    payment_intent_status: str | None


class StripeEmulator:
    """Stripe's Checkout Session API and hosted Checkout page on 127.0.0.1, served from a daemon thread.

    `stop()` or leaving the `with` ends it and cancels the settlements the page scheduled. Thread-safe: one
    lock guards the sessions, events, request log, faults, idempotency keys and pending settlements.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        webhook_secret: str | None = None,
        port: int = 0,
        public_base_url: str | None = None,
        deliver: Deliver | None = None,
        settle_after: float = DEFAULT_SETTLE_AFTER_SECONDS,
    ) -> None:
        if settle_after < 0:
            raise ValueError("settle_after must not be negative")
        self._api_key = api_key
        self._webhook_secret = webhook_secret or _new_id("whsec_", 32)
        self._deliver = deliver
        self._settle_after = settle_after
        self._settlements: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sessions: dict[str, _CheckoutRecord] = {}
        self._events: list[JsonObject] = []
        self._requests: list[ApiRequest] = []
        self._faults: collections.deque[_Fault] = collections.deque()
        self._idempotent_results: dict[str, _IdempotentResult] = {}
        self._sequence = 0
        # Checkout's payment methods come from the account's one payment method configuration.
        self._payment_method_configuration = _new_id("pmc_")
        self._server = _ApiServer(("127.0.0.1", port), self)
        self._public_base_url = (public_base_url or self.api_base).rstrip("/")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # Checked this often for a stop, so stopping takes no longer than a test can afford.
            kwargs={"poll_interval": 0.05},
            name="stripe-emulator",
            daemon=True,
        )
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """The base address for the SDK: `StripeClient(..., base_addresses={"api": emulator.api_base})`."""
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def public_base_url(self) -> str:
        return self._public_base_url

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def webhook_secret(self) -> str:
        return self._webhook_secret

    @property
    def settle_after(self) -> float:
        """Seconds after "Pay later" on the Checkout page until that payment succeeds."""
        return self._settle_after

    def start(self) -> Self:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending settlements; a request in an injected delay is woken and answered."""
        self._stopping.set()
        if self._started:
            self._server.shutdown()
            self._thread.join()
            self._started = False
        self._cancel_settlements()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(
        self,
        *,
        max_network_retries: int | None = None,
        http_client: stripe.HTTPClient | None = None,
        stripe_version: str | None = None,
    ) -> stripe.StripeClient:
        """A `stripe.StripeClient` that talks to this emulator with its API key."""
        return stripe.StripeClient(
            self._api_key,
            stripe_version=stripe_version,
            max_network_retries=max_network_retries,
            http_client=http_client,
            base_addresses={"api": self.api_base},
        )

    # -- what tests read and control ---------------------------------------------------------------------

    @property
    def events(self) -> list[JsonObject]:
        """Every event produced so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def requests(self) -> list[ApiRequest]:
        """Every API request answered so far (the Checkout page and its buttons aside), oldest first."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        count: int = 1,
        status: int | None = 500,
        *,
        delay: float = 0.0,
        should_retry: bool | None = None,
    ) -> None:
        """Make the next `count` API requests fail: each waits `delay` seconds, then answers `status`.

        `status` 5xx answers an `api_error`, 429 a `rate_limit`, 409 a `lock_timeout`; with `status=None` the
        request is carried out normally after the delay (a slow Stripe). `should_retry` sets Stripe's
        `Stripe-Should-Retry` header, which the SDK obeys over its own rules. No idempotent result is saved
        for an injected failure, so the SDK's retry with the same key is carried out afresh.
        """
        if count < 1 or delay < 0:
            raise ValueError("count must be positive and delay not negative")
        with self._lock:
            self._faults.extend([_Fault(status, delay, should_retry)] * count)

    def reset(self) -> None:
        """Forget every session, event, request, pending fault and idempotency key; cancel settlements."""
        self._cancel_settlements()
        with self._lock:
            self._sessions.clear()
            self._events.clear()
            self._requests.clear()
            self._faults.clear()
            self._idempotent_results.clear()

    def sign(self, event: Mapping[str, Any], timestamp: int | None = None) -> SignedEvent:
        """`event` as Stripe would post it now (or at `timestamp`), signed with the webhook secret.

        `resigned()` on the result signs the same bytes again with a fresh timestamp, for a retry.
        """
        payload = json.dumps(event, indent=2).encode()
        return _signed_event(dict(event), payload, self._signature, timestamp)

    def _signature(self, payload: bytes, timestamp: int | None) -> str:
        return str(
            stripe.WebhookSignature.generate_signature_header(
                payload.decode(), self._webhook_secret, timestamp=timestamp
            )
        )

    # -- the customer's side of Checkout ---------------------------------------------------------------

    def pay(self, session_id: str) -> list[JsonObject]:
        """The customer pays by card: the session completes, paid -> `[checkout.session.completed]`."""
        events = self._pay(session_id)
        self._deliver_all(events)
        return events

    def pay_later(self, session_id: str) -> list[JsonObject]:
        """The customer pays by bank debit: the session completes unpaid -> `[checkout.session.completed]`.

        Nothing settles it by itself: call `settle` or `fail_payment` (the Checkout page's "Pay later"
        schedules `settle` after `settle_after` seconds).
        """
        events = self._pay_later(session_id)
        self._deliver_all(events)
        return events

    def settle(self, session_id: str) -> list[JsonObject]:
        """A delayed payment succeeds: the session is paid -> `[checkout.session.async_payment_succeeded]`."""
        with self._lock:
            record, intent = self._awaiting_funds(session_id, "settle")
            self._settle_payment_intent(intent)
            record.session["payment_status"] = "paid"
            events = [self._publish("checkout.session.async_payment_succeeded", record)]
        self._deliver_all(events)
        return events

    def fail_payment(self, session_id: str) -> list[JsonObject]:
        """A delayed payment fails: the session stays unpaid -> `[checkout.session.async_payment_failed]`."""
        with self._lock:
            record, intent = self._awaiting_funds(session_id, "fail the payment of")
            intent.update(
                status="requires_payment_method",
                amount_received=0,
                last_payment_error={
                    "code": "payment_intent_payment_attempt_failed",
                    "doc_url": "https://stripe.com/docs/error-codes/payment-intent-payment-attempt-failed",
                    "message": "The latest payment attempt of this PaymentIntent has failed.",
                    "type": "invalid_request_error",
                },
            )
            events = [self._publish("checkout.session.async_payment_failed", record)]
        self._deliver_all(events)
        return events

    def decline(self, session_id: str) -> list[JsonObject]:
        """The card is declined: the session stays open for another try, Checkout sends no event -> `[]`."""
        with self._lock:
            record = self._record_in(session_id, "decline a payment for", status="open")
            intent = self._attempt(record)
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                latest_charge=_new_id("ch_"),
                last_payment_error={
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": "Your card was declined.",
                    "type": "card_error",
                },
            )
        return []

    def expire(self, session_id: str) -> list[JsonObject]:
        """The session expires unpaid, as at its `expires_at` -> `[checkout.session.expired]`."""
        with self._lock:
            record = self._record_in(session_id, "expire", status="open")
            events = [self._expire(record, request=None)]
        self._deliver_all(events)
        return events

    def _pay(self, session_id: str) -> list[JsonObject]:
        with self._lock:
            record = self._record_in(session_id, "pay", status="open")
            self._settle_payment_intent(self._attempt(record))
            self._complete(record, payment_status="paid")
            return [self._publish("checkout.session.completed", record)]

    def _pay_later(self, session_id: str) -> list[JsonObject]:
        with self._lock:
            record = self._record_in(session_id, "pay later", status="open")
            intent = self._attempt(record)
            intent.update(
                status="processing",
                payment_method=_new_id("pm_"),
                latest_charge=_new_id("py_"),
                last_payment_error=None,
            )
            self._complete(record, payment_status="unpaid")
            return [self._publish("checkout.session.completed", record)]

    def _schedule_settlement(self, session_id: str) -> None:
        """Settle the delayed payment `settle_after` seconds from now, in a timer thread `stop()` cancels."""
        timer = threading.Timer(self._settle_after, self._settle_scheduled, args=(session_id,))
        timer.name = "stripe-emulator-settle"
        timer.daemon = True
        with self._lock:
            if self._stopping.is_set():
                return
            self._settlements = [pending for pending in self._settlements if pending.is_alive()]
            self._settlements.append(timer)
            timer.start()

    def _settle_scheduled(self, session_id: str) -> None:
        try:
            self.settle(session_id)
        except (UnknownCheckoutSessionError, InvalidTransitionError) as exc:
            # Settled, failed or forgotten by hand in the meantime: nothing is left to do.
            _log.info("scheduled settlement skipped: %s", exc)
        except Exception:
            _log.exception("settling Checkout Session %s failed", session_id)

    def _cancel_settlements(self) -> None:
        with self._lock:
            settlements, self._settlements = self._settlements, []
        for timer in settlements:
            timer.cancel()
        for timer in settlements:
            if timer is not threading.current_thread():
                timer.join()

    # -- state changes (lock held) ---------------------------------------------------------------------

    def _record(self, session_id: str) -> _CheckoutRecord:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownCheckoutSessionError(
                f"no Checkout Session {session_id!r} in this emulator"
            ) from None

    def _record_in(self, session_id: str, action: str, *, status: str) -> _CheckoutRecord:
        record = self._record(session_id)
        session = record.session
        if session["status"] != status:
            raise InvalidTransitionError(
                f"cannot {action} Checkout Session {session_id}: its status is {session['status']!r} "
                f"(payment_status {session['payment_status']!r}), not {status!r}"
            )
        return record

    def _awaiting_funds(self, session_id: str, action: str) -> tuple[_CheckoutRecord, JsonObject]:
        record = self._record_in(session_id, action, status="complete")
        intent = record.payment_intent
        if intent is None or intent["status"] != "processing":
            raise InvalidTransitionError(
                f"cannot {action} Checkout Session {session_id}: no delayed payment is processing "
                f"(payment_status {record.session['payment_status']!r})"
            )
        return record, intent

    def _attempt(self, record: _CheckoutRecord) -> JsonObject:
        """The session's PaymentIntent, made on the customer's first attempt to pay, as Checkout does."""
        if record.payment_intent is None:
            record.payment_intent = self._new_payment_intent(record)
            record.session["payment_intent"] = record.payment_intent["id"]
        return record.payment_intent

    @staticmethod
    def _settle_payment_intent(intent: JsonObject) -> None:
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            payment_method=intent["payment_method"] or _new_id("pm_"),
            latest_charge=(intent["latest_charge"] if intent["status"] == "processing" else _new_id("ch_")),
            last_payment_error=None,
        )

    @staticmethod
    def _complete(record: _CheckoutRecord, payment_status: str) -> None:
        session = record.session
        customer_details = fixture("checkout.session")["customer_details"]
        customer_details.update(
            address=dict.fromkeys(customer_details["address"]) | {"country": "US"},
            email=session["customer_email"] or "customer@example.com",
            name=None,
            phone=None,
            tax_exempt="none",
            tax_ids=[],
        )
        session.update(
            status="complete",
            payment_status=payment_status,
            customer_details=customer_details,
            collected_information={"business_name": None, "individual_name": None, "shipping_details": None},
            # A finished session has no page to send the customer to.
            url=None,
        )

    def _expire(self, record: _CheckoutRecord, request: _RequestContext | None) -> JsonObject:
        record.session.update(status="expired", url=None)
        if record.payment_intent is not None:
            record.payment_intent.update(
                status="canceled", canceled_at=_now(), cancellation_reason="abandoned"
            )
        return self._publish("checkout.session.expired", record, request)

    def _publish(
        self, event_type: str, record: _CheckoutRecord, request: _RequestContext | None = None
    ) -> JsonObject:
        event = _stripe_object(
            "event",
            api_version=stripe.api_version,
            created=_now(),
            data={"object": copy.deepcopy(record.session)},
            id=_new_id("evt_"),
            livemode=False,
            object="event",
            pending_webhooks=1 if self._deliver else 0,
            request={
                "id": request.request_id if request else None,
                "idempotency_key": request.idempotency_key if request else None,
            },
            type=event_type,
        )
        self._events.append(event)
        return copy.deepcopy(event)

    def _deliver_all(self, events: list[JsonObject] | tuple[JsonObject, ...]) -> None:
        """Sign each event as it is sent, as Stripe does, and hand it to `deliver` (lock not held)."""
        if self._deliver is not None:
            for event in events:
                self._deliver(self.sign(event))

    # -- building objects --------------------------------------------------------------------------------

    def _new_session(self, params: JsonObject) -> _CheckoutRecord:
        mode = _required(params, "mode")
        if mode not in ("payment", "setup", "subscription"):
            raise _invalid("Invalid mode: must be one of payment, setup, or subscription", "mode")
        if mode != "payment":
            raise _invalid(f"mode={mode} is not emulated locally; only mode=payment is", "mode")
        success_url = _required(params, "success_url")
        _check_url(success_url, "success_url")
        cancel_url = params.get("cancel_url")
        if cancel_url is not None:
            _check_url(cancel_url, "cancel_url")
        customer_email = params.get("customer_email")
        if customer_email is not None and not _EMAIL.fullmatch(customer_email):
            raise _invalid(f"Invalid email address: {customer_email}", "customer_email", "email_invalid")
        client_reference_id = params.get("client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > _CLIENT_REFERENCE_ID_MAX_LENGTH:
            raise _invalid(
                f"Invalid client_reference_id: must be at most {_CLIENT_REFERENCE_ID_MAX_LENGTH} characters",
                "client_reference_id",
            )
        currency, amount = _line_items_total(_required(params, "line_items"))
        created = _now()
        expires_at = params.get("expires_at", created + SESSION_LIFETIME_SECONDS)
        if expires_at < created + MIN_SESSION_LIFETIME_SECONDS:
            raise _invalid(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                "expires_at",
            )
        if expires_at > created + SESSION_LIFETIME_SECONDS:
            raise _invalid(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                "expires_at",
            )
        session_id = _new_id("cs_test_a1", 56)
        template = fixture("checkout.session")
        session = _stripe_object(
            "checkout.session",
            adaptive_pricing={"enabled": False},
            after_expiration=None,
            allow_promotion_codes=None,
            amount_subtotal=amount,
            amount_total=amount,
            automatic_tax={"enabled": False, "liability": None, "provider": None, "status": None},
            billing_address_collection=None,
            cancel_url=cancel_url,
            client_reference_id=client_reference_id,
            client_secret=None,
            collected_information=None,
            consent=None,
            consent_collection=None,
            created=created,
            currency=currency,
            currency_conversion=None,
            custom_fields=[],
            custom_text=dict.fromkeys(template["custom_text"]),
            customer=None,
            customer_account=None,
            customer_creation="if_required",
            customer_details=None,
            customer_email=customer_email,
            discounts=[],
            expires_at=expires_at,
            id=session_id,
            integration_identifier=None,
            invoice=None,
            invoice_creation={
                "enabled": False,
                "invoice_data": dict.fromkeys(template["invoice_creation"]["invoice_data"])
                | {"metadata": {}},
            },
            livemode=False,
            locale=None,
            managed_payments=None,
            metadata=params.get("metadata", {}),
            mode=mode,
            object="checkout.session",
            origin_context=None,
            payment_intent=None,
            payment_link=None,
            payment_method_collection="if_required",
            payment_method_configuration_details={"id": self._payment_method_configuration, "parent": None},
            payment_method_options={"card": {"request_three_d_secure": "automatic"}},
            payment_method_types=["card", "us_bank_account"],
            payment_status="unpaid",
            permissions=None,
            phone_number_collection={"enabled": False},
            recovered_from=None,
            saved_payment_method_options=None,
            setup_intent=None,
            shipping_address_collection=None,
            shipping_cost=None,
            shipping_options=[],
            status="open",
            submit_type=None,
            subscription=None,
            success_url=success_url,
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            ui_mode="hosted",
            url=f"{self._public_base_url}/checkout/{session_id}",
            wallet_options=None,
        )
        self._sequence += 1
        return _CheckoutRecord(
            self._sequence, session, params.get("payment_intent_data", {}), line_items=params["line_items"]
        )

    def _new_payment_intent(self, record: _CheckoutRecord) -> JsonObject:
        session = record.session
        intent_id = _new_id("pi_")
        return _stripe_object(
            "payment_intent",
            amount=session["amount_total"],
            amount_capturable=0,
            amount_details={"tip": {}},
            amount_received=0,
            application=None,
            application_fee_amount=None,
            automatic_payment_methods=None,
            canceled_at=None,
            cancellation_reason=None,
            capture_method="automatic_async",
            client_secret=f"{intent_id}_secret_{_new_id('', 25)}",
            confirmation_method="automatic",
            created=_now(),
            currency=session["currency"],
            customer=None,
            customer_account=None,
            description=record.payment_intent_data.get("description"),
            excluded_payment_method_types=None,
            id=intent_id,
            last_payment_error=None,
            latest_charge=None,
            livemode=False,
            managed_payments=None,
            metadata=dict(record.payment_intent_data.get("metadata", {})),
            next_action=None,
            object="payment_intent",
            on_behalf_of=None,
            payment_method=None,
            payment_method_configuration_details=dict(session["payment_method_configuration_details"]),
            payment_method_options=copy.deepcopy(session["payment_method_options"]),
            payment_method_types=list(session["payment_method_types"]),
            processing=None,
            receipt_email=None,
            review=None,
            setup_future_usage=None,
            shipping=None,
            source=None,
            statement_descriptor=None,
            statement_descriptor_suffix=None,
            status="requires_payment_method",
            transfer_data=None,
            transfer_group=None,
        )

    def _render(self, record: _CheckoutRecord, expand_payment_intent: bool) -> JsonObject:
        session = copy.deepcopy(record.session)
        if expand_payment_intent and record.payment_intent is not None:
            session["payment_intent"] = copy.deepcopy(record.payment_intent)
        return session

    # -- the API ------------------------------------------------------------------------------------------

    def _create(self, params: JsonObject, request: _RequestContext) -> JsonObject:
        params = _conform(params, _CREATE_PARAMS, "", _STRIPE_CREATE_PARAMS)
        expand = _expands_payment_intent(params, "payment_intent")
        record = self._new_session(params)
        self._sessions[record.session["id"]] = record
        return self._render(record, expand)

    def _retrieve(self, session_id: str, params: JsonObject) -> JsonObject:
        expand = _expands_payment_intent(_conform(params, _EXPAND_ONLY, ""), "payment_intent")
        record = self._sessions.get(session_id)
        if record is None:
            raise _no_such_session(session_id, "session")
        return self._render(record, expand)

    def _expire_by_api(self, session_id: str, params: JsonObject, request: _RequestContext) -> JsonObject:
        expand = _expands_payment_intent(_conform(params, _EXPAND_ONLY, ""), "payment_intent")
        record = self._sessions.get(session_id)
        if record is None:
            raise _no_such_session(session_id, "session")
        if record.session["status"] != "open":
            raise StripeApiError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f"This Checkout Session has a status of `{record.session['status']}`.",
            )
        request.events.append(self._expire(record, request))
        return self._render(record, expand)

    def _list(self, params: JsonObject) -> JsonObject:
        params = _conform(params, _LIST_PARAMS, "", _STRIPE_LIST_PARAMS)
        expand = _expands_payment_intent(params, "data.payment_intent")
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise _invalid(f"Invalid limit: must be between 1 and 100, got {limit}", "limit")
        status = params.get("status")
        if status is not None and status not in ("open", "complete", "expired"):
            raise _invalid("Invalid status: must be one of open, complete, or expired", "status")
        if "starting_after" in params and "ending_before" in params:
            raise _invalid(
                "You may only specify one of these parameters: ending_before, starting_after.",
                "ending_before",
            )
        newest_first = [record for record in reversed(self._sessions.values()) if _matches(record, params)]
        if "starting_after" in params:
            cursor = self._cursor(params["starting_after"], "starting_after")
            older = [record for record in newest_first if record.sequence < cursor.sequence]
            page, has_more = older[:limit], len(older) > limit
        elif "ending_before" in params:
            cursor = self._cursor(params["ending_before"], "ending_before")
            newer = [record for record in newest_first if record.sequence > cursor.sequence]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = newest_first[:limit], len(newest_first) > limit
        return {
            "object": "list",
            "data": [self._render(record, expand) for record in page],
            "has_more": has_more,
            "url": LIST_URL,
        }

    def _cursor(self, session_id: str, param: str) -> _CheckoutRecord:
        record = self._sessions.get(session_id)
        if record is None:
            raise _no_such_session(session_id, param)
        return record

    def _route(self, method: str, path: str) -> Callable[[JsonObject, _RequestContext], JsonObject]:
        if _SESSIONS.fullmatch(path):
            if method == "POST":
                return self._create
            if method == "GET":
                return lambda params, _request: self._list(params)
        elif match := _SESSION_EXPIRE.fullmatch(path):
            if method == "POST":
                session_id = unquote(match["id"])
                return lambda params, request: self._expire_by_api(session_id, params, request)
        elif (match := _SESSION.fullmatch(path)) and method == "GET":
            session_id = unquote(match["id"])
            return lambda params, _request: self._retrieve(session_id, params)
        raise _unrecognized(method, path)

    def _authenticate(self, authorization: str | None) -> None:
        key = _presented_key(authorization)
        if not key:
            raise StripeApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
            )
        if not secrets.compare_digest(key.encode(), self._api_key.encode()):
            raise StripeApiError(401, f"Invalid API Key provided: {mask_api_key(key)}")

    def _respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Response:
        """The answer to one HTTP request (`headers` named in lower case); its events are delivered after."""
        url = urlsplit(target)
        if url.path.startswith("/checkout/"):
            return self._checkout(method, url, headers)
        request = _RequestContext(
            request_id=_new_id("req_", 14),
            idempotency_key=headers.get("idempotency-key") if method == "POST" else None,
        )
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        params: JsonObject = {}
        replayed_from: str | None = None
        try:
            if fault is not None and fault.status is not None:
                raise _injected(fault.status)
            self._authenticate(headers.get("authorization"))
            encoded = url.query if method in ("GET", "DELETE") else body.decode("utf-8", "replace")
            params = parse_form(encoded)
            handler = self._route(method, url.path)
            with self._lock:
                status, payload, replayed_from = self._idempotently(
                    method, url.path, params, request, handler
                )
        except StripeApiError as exc:
            status, payload = exc.status, _json(exc.body())
        with self._lock:
            self._requests.append(
                ApiRequest(
                    method=method,
                    path=url.path,
                    params=params,
                    status=status,
                    request_id=request.request_id,
                    idempotency_key=request.idempotency_key,
                    stripe_version=headers.get("stripe-version"),
                    replayed=replayed_from is not None,
                    injected=fault is not None and fault.status is not None,
                )
            )
        response_headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache, no-store",
            "Request-Id": request.request_id,
            "Stripe-Version": headers.get("stripe-version") or stripe.api_version,
        }
        if request.idempotency_key:
            response_headers["Idempotency-Key"] = request.idempotency_key
        if replayed_from is not None:
            response_headers["Idempotent-Replayed"] = "true"
            response_headers["Original-Request"] = replayed_from
        if fault is not None and fault.should_retry is not None:
            response_headers["Stripe-Should-Retry"] = str(fault.should_retry).lower()
        return _Response(status, response_headers, payload, tuple(request.events))

    def _idempotently(
        self,
        method: str,
        path: str,
        params: JsonObject,
        request: _RequestContext,
        handler: Callable[[JsonObject, _RequestContext], JsonObject],
    ) -> tuple[int, bytes, str | None]:
        """Carry out the request, or replay the saved answer to the earlier one with its key (lock held)."""
        key = request.idempotency_key
        earlier = self._idempotent_results.get(key) if key else None
        if earlier is not None:
            if (earlier.method, earlier.path) != (method, path):
                raise StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they were first "
                    f"used for ('{earlier.method} {earlier.path}' vs '{method} {path}'). Try using a key "
                    f"other than '{key}' if you meant to execute a different request.",
                    error_type="idempotency_error",
                )
            if earlier.params != params:
                raise StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    f"used with. Try using a key other than '{key}' if you meant to execute a different "
                    "request.",
                    error_type="idempotency_error",
                )
            return earlier.status, earlier.body, earlier.request_id
        try:
            status, payload = 200, _json(handler(params, request))
        except StripeApiError as exc:
            if exc.validation:
                raise
            status, payload = exc.status, _json(exc.body())
        if key:
            self._idempotent_results[key] = _IdempotentResult(
                method, path, params, status, payload, request.request_id
            )
        return status, payload, None

    # -- the hosted Checkout page -------------------------------------------------------------------------

    def _checkout(self, method: str, url: SplitResult, headers: Mapping[str, str]) -> _Response:
        """The hosted Checkout page and its form posts; like Stripe's, they need no API key."""
        as_json = "application/json" in headers.get("accept", "").lower()
        if page := _CHECKOUT_PAGE.fullmatch(url.path):
            if method != "GET":
                return _method_not_allowed("GET", as_json)
            declined = parse_qs(url.query).get("declined") == ["1"]
            return self._checkout_page(unquote(page["id"]), declined=declined)
        action = _CHECKOUT_ACTION.fullmatch(url.path)
        if action is None or action["action"] not in CHECKOUT_ACTIONS:
            return _page_error(404, "Page not found", f"Nothing is served at {url.path}.", as_json)
        if method != "POST":
            return _method_not_allowed("POST", as_json)
        return self._checkout_action(unquote(action["id"]), action["action"], as_json)

    def _view(self, session_id: str) -> _PageView:
        with self._lock:
            record = self._record(session_id)
            intent = record.payment_intent
            return _PageView(
                session=copy.deepcopy(record.session),
                line_items=copy.deepcopy(record.line_items),
                payment_intent_status=intent["status"] if intent else None,
            )

    def _page_url(self, session_id: str) -> str:
        return f"{self._public_base_url}/checkout/{quote(session_id, safe='')}"

    def _checkout_page(self, session_id: str, *, declined: bool = False) -> _Response:
        try:
            view = self._view(session_id)
        except UnknownCheckoutSessionError:
            return _no_such_checkout(session_id, as_json=False)
        if view.session["status"] == "open":
            return _html_page(200, "Pay", _open_page(view, self._settle_after, declined=declined))
        return _html_page(200, "Checkout closed", _closed_page(view))

    def _checkout_action(self, session_id: str, action: str, as_json: bool) -> _Response:
        """One button of the page: the state change, then where Stripe would send the customer."""
        events: list[JsonObject] = []
        then: Callable[[], None] | None = None
        try:
            if action == "pay":
                events = self._pay(session_id)
            elif action == "pay-later":
                events = self._pay_later(session_id)
                then = functools.partial(self._schedule_settlement, session_id)
            elif action == "decline":
                self.decline(session_id)
            view = self._view(session_id)
        except UnknownCheckoutSessionError:
            return _no_such_checkout(session_id, as_json)
        except InvalidTransitionError:
            return _cannot_pay(self._view(session_id), self._page_url(session_id), as_json)
        session = view.session
        if action in ("pay", "pay-later"):
            redirect = _success_url(session)
        elif action == "decline":
            redirect = f"{self._page_url(session_id)}?declined=1"
        else:
            # Cancelling changes nothing at Stripe and sends no event; the customer just leaves.
            redirect = session["cancel_url"] or self._page_url(session_id)
        if as_json:
            body = {
                "sessionId": session["id"],
                "status": session["status"],
                "paymentStatus": session["payment_status"],
                "redirect": redirect,
            }
            return _Response(200, dict(_JSON_PAGE_HEADERS), _json(body), tuple(events), then)
        link = html.escape(redirect)
        page = (
            f'<!doctype html>\n<html lang="en"><title>See Other</title><a href="{link}">{link}</a></html>\n'
        )
        headers = _HTML_HEADERS | {"Location": redirect}
        return _Response(303, headers, page.encode(), tuple(events), then)


def _line_items_total(line_items: list[JsonObject]) -> tuple[str, int]:
    """The one currency of the line items and their total, in its smallest unit."""
    currencies: set[str] = set()
    total = 0
    for index, item in enumerate(line_items):
        name = f"line_items[{index}]"
        price_data = _required(item, "price_data", name)
        quantity = _required(item, "quantity", name)
        if quantity < 1:
            raise _invalid("This value must be greater than or equal to 1.", f"{name}[quantity]")
        price = f"{name}[price_data]"
        currency = _required(price_data, "currency", price).lower()
        if not _CURRENCY.fullmatch(currency):
            raise _invalid(f"Invalid currency: {currency}.", f"{price}[currency]", "parameter_invalid_string")
        unit_amount = _required(price_data, "unit_amount", price)
        if unit_amount < 1:
            raise _invalid(
                "This value must be greater than or equal to 1.",
                f"{price}[unit_amount]",
                "parameter_invalid_integer",
            )
        _required(_required(price_data, "product_data", price), "name", f"{price}[product_data]")
        currencies.add(currency)
        total += unit_amount * quantity
    if len(currencies) > 1:
        raise _invalid("All line items must have the same currency.", "line_items")
    return currencies.pop(), total


def _matches(record: _CheckoutRecord, params: Mapping[str, Any]) -> bool:
    session = record.session
    if "status" in params and session["status"] != params["status"]:
        return False
    if "payment_intent" in params and session["payment_intent"] != params["payment_intent"]:
        return False
    created = params.get("created")
    if isinstance(created, int):
        return bool(session["created"] == created)
    if isinstance(created, dict):
        at = session["created"]
        bounds = {
            "gt": lambda limit: at > limit,
            "gte": lambda limit: at >= limit,
            "lt": lambda limit: at < limit,
            "lte": lambda limit: at <= limit,
        }
        return all(bounds[name](limit) for name, limit in created.items())
    return True


def _presented_key(authorization: str | None) -> str | None:
    """The API key in an `Authorization` header: Bearer, or Basic with the key as user name (curl -u)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _format_amount(amount: int, currency: str) -> str:
    """An amount in the currency's smallest unit as a person reads it: `5000, "usd"` -> `50.00 USD`."""
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return f"{amount:,} {currency.upper()}"
    if currency in _THREE_DECIMAL_CURRENCIES:
        return f"{amount / 1000:,.3f} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


# ---------------------------------------------------------------------------------------------------------
# The Checkout page
# ---------------------------------------------------------------------------------------------------------


@cache
def _page_template() -> string.Template:
    return string.Template(CHECKOUT_PAGE_TEMPLATE.read_text(encoding="utf-8"))


def _html_page(status: int, title: str, content: str, headers: Mapping[str, str] | None = None) -> _Response:
    """A whole page around `content`, which is HTML already escaped."""
    page = _page_template().substitute(
        title=html.escape(f"{title} · {CHECKOUT_PAGE_TITLE}"), notice=CHECKOUT_PAGE_NOTICE, content=content
    )
    return _Response(status, _HTML_HEADERS | dict(headers or {}), page.encode())


def _page_error(
    status: int,
    title: str,
    message: str,
    as_json: bool,
    *,
    link: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Response:
    """An error as a page with an optional `(href, text)` link, or as `{"error": {"message"}}`."""
    if as_json:
        body = _json({"error": {"message": message}})
        return _Response(status, _JSON_PAGE_HEADERS | dict(headers or {}), body)
    content = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(message)}</p>"
    if link is not None:
        content += f'\n<p><a class="button" href="{html.escape(link[0])}">{html.escape(link[1])}</a></p>'
    return _html_page(status, title, f'<section class="card">\n{content}\n</section>', headers)


def _method_not_allowed(allowed: str, as_json: bool) -> _Response:
    return _page_error(
        405, "Method not allowed", f"Only {allowed} is answered here.", as_json, headers={"Allow": allowed}
    )


def _no_such_checkout(session_id: str, as_json: bool) -> _Response:
    return _page_error(
        404,
        "Checkout Session not found",
        f"No such Checkout Session: {session_id}. Sessions last only as long as the emulator that made them.",
        as_json,
    )


def _cannot_pay(view: _PageView, page_url: str, as_json: bool) -> _Response:
    state = "is already complete" if view.session["status"] == "complete" else "has expired"
    message = f"This Checkout Session {state}: it can no longer be paid."
    return _page_error(409, "Nothing to pay", message, as_json, link=(page_url, "Back to the Checkout page"))


def _success_url(session: Mapping[str, Any]) -> str:
    """Where Checkout sends the customer after paying, with `{CHECKOUT_SESSION_ID}` filled in."""
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])


def _product_name(line_items: list[JsonObject]) -> str:
    if len(line_items) == 1:
        return str(line_items[0]["price_data"]["product_data"]["name"])
    return f"{len(line_items)} items"


def _seconds(seconds: float) -> str:
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def _open_page(view: _PageView, settle_after: float, *, declined: bool) -> str:
    session = view.session
    currency = session["currency"]
    total = html.escape(_format_amount(session["amount_total"], currency))
    items = view.line_items
    # Relative to /checkout/{id}, so the forms work behind any proxy that serves the page.
    action = html.escape(quote(session["id"], safe=""))
    parts = [f"<h1>{html.escape(_product_name(items))}</h1>"]
    if len(items) == 1 and (description := items[0]["price_data"]["product_data"].get("description")):
        parts.append(f'<p class="muted">{html.escape(description)}</p>')
    if len(items) > 1 or items[0]["quantity"] > 1:
        rows = []
        for item in items:
            price = item["price_data"]
            amount = _format_amount(price["unit_amount"] * item["quantity"], currency)
            name = f"{html.escape(price['product_data']['name'])} &times; {item['quantity']}"
            rows.append(f"<li><span>{name}</span> <span>{html.escape(amount)}</span></li>")
        parts.append('<ul class="items">\n' + "\n".join(rows) + "\n</ul>")
    parts.append(f'<p class="total"><span class="label">Total due</span> <strong>{total}</strong></p>')
    if declined:
        parts.append(f'<p class="alert" role="alert">{html.escape(DECLINED_MESSAGE)}</p>')
    buttons = [
        ("pay", "Pay", f"Pay {total} by card: the payment succeeds at once."),
        (
            "pay-later",
            "Pay later",
            f"Pay by bank debit: pending at first, then it succeeds {_seconds(settle_after)} on.",
        ),
        ("decline", "Decline", "Pay by a card that the bank declines: nothing is charged."),
        ("cancel", "Cancel", "Leave Checkout without paying and go back to the site."),
    ]
    forms = [
        f'<form method="post" action="{action}/{name}">'
        f'<button type="submit" class="{"primary" if name == "pay" else "secondary"}"'
        f' aria-describedby="{name}-hint">{label}</button>'
        f'<p class="hint" id="{name}-hint">{hint}</p></form>'
        for name, label, hint in buttons
    ]
    parts.append(
        '<h2 class="choose">Choose how this test payment ends</h2>\n<div class="actions">\n'
        + "\n".join(forms)
        + "\n</div>"
    )
    return '<section class="card" aria-label="Payment">\n' + "\n".join(parts) + "\n</section>"


def _closed_page(view: _PageView) -> str:
    session = view.session
    summary = html.escape(
        f"{_product_name(view.line_items)} · {_format_amount(session['amount_total'], session['currency'])}"
    )
    if session["status"] == "complete":
        heading = "This Checkout Session is complete"
        if session["payment_status"] == "paid":
            outcome = "The payment succeeded."
        elif view.payment_intent_status == "processing":
            outcome = "The payment is processing; the site is told when it succeeds."
        else:
            outcome = "The delayed payment failed; nothing was charged."
        back: str | None = _success_url(session)
    else:
        heading = "This Checkout Session has expired"
        outcome = "It was not paid; nothing was charged."
        back = session["cancel_url"]
    parts = [f"<h1>{heading}</h1>", f'<p class="muted">{summary}</p>', f"<p>{outcome}</p>"]
    if back:
        parts.append(f'<p><a class="button" href="{html.escape(back)}">Return to the site</a></p>')
    return '<section class="card">\n' + "\n".join(parts) + "\n</section>"


def _json(body: JsonObject) -> bytes:
    return (json.dumps(body, indent=2) + "\n").encode()


# ---------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # Room for a burst of concurrent clients; the default backlog of 5 drops connections under load.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: StripeEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout ran out during an injected delay) is no fault of the server.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _ApiServer
    server_version = "stripe-emulator"

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        emulator = self.server.emulator
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = emulator._respond(method, self.path, headers, body)
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
        finally:
            # What happened at Stripe is announced even when the caller is no longer listening.
            try:
                emulator._deliver_all(response.events)
            except Exception:
                _log.exception("delivering the events of %s %s failed", method, self.path)
            if response.then is not None:
                response.then()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)

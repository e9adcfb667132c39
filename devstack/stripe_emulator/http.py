"""The HTTP layer: Stripe's API over HTTP on 127.0.0.1, and the server that also serves the Checkout page.

`StripeApi` answers one API request as Stripe would: the API key checked, the form-encoded body read, the
route found, idempotency keys honoured, injected faults played, errors in Stripe's shape and status, every
request logged. The resources (checkout_sessions, payment_intents, charges, refunds, disputes, events) do
the work; the emulator gives their routes.
"""

from __future__ import annotations

import base64
import binascii
import collections
import logging
import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, unquote

import stripe

from devstack.stripe_emulator.errors import StripeApiError, injected, mask_api_key, unrecognized
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, json_bytes, new_id
from devstack.stripe_emulator.forms import parse_form

_log = logging.getLogger(__name__)

Handler = Callable[[JsonObject, RequestContext], JsonObject]
"""Answers one API request's parameters with the Stripe object; raises `StripeApiError` for an error."""


@dataclass(frozen=True, slots=True)
class Route:
    """`method` on a path matching `pattern`; `handler` gets the path's named groups, URL-decoded."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Handler]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    events: tuple[JsonObject, ...] = ()
    # Run once the events are delivered, so what it causes is announced after them.
    then: Callable[[], None] | None = None


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
class Fault:
    status: int | None
    delay: float
    should_retry: bool | None


@dataclass(frozen=True, slots=True)
class _IdempotentResult:
    method: str
    path: str
    params: JsonObject
    status: int
    body: bytes
    request_id: str


class StripeApi:
    """Stripe's API for `routes`, sharing the emulator's lock (held while a handler runs)."""

    def __init__(
        self,
        api_key: str,
        lock: threading.Lock,
        stopping: threading.Event,
        routes: Sequence[Route],
        emulated: str,
    ) -> None:
        self._api_key = api_key
        self._lock = lock
        self._stopping = stopping
        self._routes = tuple(routes)
        self._emulated = emulated
        self.requests: list[ApiRequest] = []
        self.faults: collections.deque[Fault] = collections.deque()
        self._idempotent_results: dict[str, _IdempotentResult] = {}

    def clear(self) -> None:
        """Forget requests, faults and idempotency keys (lock held)."""
        self.requests.clear()
        self.faults.clear()
        self._idempotent_results.clear()

    def respond(self, method: str, url: SplitResult, headers: Mapping[str, str], body: bytes) -> Response:
        """The answer to one API request (`headers` named in lower case); its events are delivered after."""
        request = RequestContext(
            request_id=new_id("req_", 14),
            idempotency_key=headers.get("idempotency-key") if method == "POST" else None,
        )
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        params: JsonObject = {}
        replayed_from: str | None = None
        try:
            if fault is not None and fault.status is not None:
                raise injected(fault.status)
            self._authenticate(headers.get("authorization"))
            encoded = url.query if method in ("GET", "DELETE") else body.decode("utf-8", "replace")
            params = parse_form(encoded)
            handler = self._route(method, url.path)
            with self._lock:
                status, payload, replayed_from = self._idempotently(
                    method, url.path, params, request, handler
                )
        except StripeApiError as exc:
            status, payload = exc.status, json_bytes(exc.body())
        with self._lock:
            self.requests.append(
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
        return Response(status, response_headers, payload, tuple(request.events))

    def _route(self, method: str, path: str) -> Handler:
        for route in self._routes:
            if route.method == method and (match := route.pattern.fullmatch(path)):
                return route.handler(**{name: unquote(value) for name, value in match.groupdict().items()})
        raise unrecognized(method, path, self._emulated)

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

    def _idempotently(
        self, method: str, path: str, params: JsonObject, request: RequestContext, handler: Handler
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
            status, payload = 200, json_bytes(handler(params, request))
        except StripeApiError as exc:
            if exc.validation:
                raise
            status, payload = exc.status, json_bytes(exc.body())
        except Exception:
            # Execution began, then failed: Stripe saves that 500 for the key too, and replays it.
            _log.exception("the emulator failed while carrying out %s %s", method, path)
            error = injected(500)
            status, payload = error.status, json_bytes(error.body())
        if key:
            self._idempotent_results[key] = _IdempotentResult(
                method, path, params, status, payload, request.request_id
            )
        return status, payload, None


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


Answer = Callable[[str, str, Mapping[str, str], bytes], Response]
"""The answer to (method, target, lower-cased headers, body)."""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # Room for a burst of concurrent clients; the default backlog of 5 drops connections under load.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        answer: Answer,
        deliver_all: Callable[[Sequence[JsonObject]], None],
    ) -> None:
        super().__init__(address, _Handler)
        self.answer = answer
        self.deliver_all = deliver_all

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout ran out during an injected delay) is no fault of the server.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
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
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.answer(method, self.path, headers, body)
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
                self.server.deliver_all(response.events)
            except Exception:
                _log.exception("delivering the events of %s %s failed", method, self.path)
            if response.then is not None:
                response.then()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)

"""API Gateway HTTP API (v2) events for the handlers, made from the samples in events/."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

EVENTS = Path(__file__).resolve().parents[1] / "events"
SAMPLES = {
    ("POST", "/api/checkout"): "api_post_checkout.json",
    ("GET", "/api/checkout/{sessionId}"): "api_get_checkout.json",
    ("GET", "/api/balance"): "api_get_balance.json",
    ("GET", "/api/balance/daily"): "api_get_balance.json",
    ("GET", "/api/balance/export"): "api_get_balance.json",
    ("GET", "/api/payments/{paymentId}/documents"): "api_get_checkout.json",
    ("GET", "/api/packs"): "api_get_packs.json",
    ("POST", "/api/webhooks/stripe"): "api_post_stripe_webhook.json",
    ("POST", "/api/users/{userId}/spend"): "api_post_spend.json",
    ("GET", "/api/users/{userId}/balance"): "api_get_user_balance.json",
    ("GET", "/api/books/{period}"): "api_get_books.json",
    ("GET", "/api/users/{userId}/transactions"): "api_get_user_transactions.json",
    ("POST", "/api/users/{userId}/adjustments"): "api_post_adjustment.json",
    ("POST", "/api/users/{userId}/grants"): "api_post_grant.json",
    ("POST", "/api/users/{userId}/holds"): "api_post_hold.json",
    ("POST", "/api/users/{userId}/holds/{holdId}/capture"): "api_post_hold_capture.json",
    ("POST", "/api/users/{userId}/holds/{holdId}/release"): "api_post_hold_release.json",
}


@cache
def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def api_event(
    method: str,
    route: str,
    *,
    user: str | None = "user-123",
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: bytes | str | None = None,
    base64_body: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends for one request; `user=None` is a request with no verified token, or
    for a service route, with no verified IAM identity."""
    event = copy.deepcopy(sample(SAMPLES[(method, route)]))
    path = route
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    if "httpMethod" in event:
        return _rest_event(event, path, user, path_parameters, query, body, base64_body, headers)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    event["rawQueryString"] = urlencode(query or {})
    event.pop("queryStringParameters", None)
    if query:
        event["queryStringParameters"] = query
    if user is None:
        event["requestContext"].pop("authorizer", None)
        event["headers"].pop("authorization", None)
    elif "jwt" in event["requestContext"].get("authorizer", {}):
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = user
    if body is not None:
        raw = body.encode() if isinstance(body, str) else body
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
        event["isBase64Encoded"] = base64_body
        event["headers"]["content-length"] = str(len(raw))
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    return event


def _rest_event(
    event: dict[str, Any],
    path: str,
    user: str | None,
    path_parameters: dict[str, str] | None,
    query: dict[str, str] | None,
    body: bytes | str | None,
    base64_body: bool,
    headers: dict[str, str] | None,
) -> dict[str, Any]:
    """A REST API (payload format 1.0) sample made into one request: the service API's."""
    event["path"] = path
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    event["queryStringParameters"] = dict(query) if query else None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    if user is None:
        event["requestContext"]["identity"]["userArn"] = None
        event["headers"].pop("authorization", None)
    if body is not None:
        raw = body.encode() if isinstance(body, str) else body
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
        event["isBase64Encoded"] = base64_body
        event["headers"]["content-length"] = str(len(raw))
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
    return event


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/26/[$LATEST]0123456789abcdef"
    remaining_ms: int = 15_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any
    headers: dict[str, str]


def invoke(handler: Any, event: dict[str, Any]) -> HttpResponse:
    return response_of(handler(event, LambdaContext()))


def response_of(result: dict[str, Any]) -> HttpResponse:
    """A handler's payload format 2.0 result, its JSON body parsed."""
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = dict(result.get("headers") or {})
    # A REST API's (payload format 1.0) answer carries its headers as lists.
    headers.update(
        {name: ",".join(values) for name, values in (result.get("multiValueHeaders") or {}).items()}
    )
    return HttpResponse(result["statusCode"], json.loads(body) if body else None, headers)

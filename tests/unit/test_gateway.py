"""The local gateway reads its routes from template.yaml and makes the events AWS's HTTP API makes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from devstack.auth import LocalIssuer, UnauthorizedError
from devstack.drain import DRAIN_TIMEOUT_SECONDS, DrainTimeoutError
from devstack.gateway import (
    MAX_SETTLE_SECONDS,
    SETTLE_PATH,
    Gateway,
    Request,
    api_event,
    lambda_response,
    rest_api_event,
    routes,
)
from devstack.sigv4 import ServiceCredentials

ROOT = Path(__file__).resolve().parents[2]
ISSUER = LocalIssuer("urn:credits:test")
SERVICE = ServiceCredentials("AKIALOCALTEST0000003", "unused")


def shape(value: Any) -> Any:
    """The keys at every level, without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__ if value is not None else None


def test_routes_are_the_template_ones_with_the_webhook_and_packs_public() -> None:
    table = {(r.method, r.path): (r.module, r.authorization) for r in routes()}

    assert table == {
        ("POST", "/api/checkout"): ("functions.create_checkout.app", "JWT"),
        ("GET", "/api/checkout/{sessionId}"): ("functions.create_checkout.app", "JWT"),
        ("POST", "/api/webhooks/stripe"): ("functions.stripe_webhook.app", "NONE"),
        ("GET", "/api/balance"): ("functions.get_balance.app", "JWT"),
        ("GET", "/api/balance/daily"): ("functions.get_balance.app", "JWT"),
        ("GET", "/api/balance/export"): ("functions.get_balance.app", "JWT"),
        ("GET", "/api/payments/{paymentId}/documents"): ("functions.create_checkout.app", "JWT"),
        ("GET", "/api/packs"): ("functions.get_balance.app", "NONE"),
        ("POST", "/api/users/{userId}/spend"): ("functions.spend.app", "AWS_IAM"),
        ("GET", "/api/users/{userId}/balance"): ("functions.spend.app", "AWS_IAM"),
        ("GET", "/api/users/{userId}/transactions"): ("functions.spend.app", "AWS_IAM"),
        ("POST", "/api/users/{userId}/adjustments"): ("functions.spend.app", "AWS_IAM"),
        ("POST", "/api/users/{userId}/grants"): ("functions.spend.app", "AWS_IAM"),
        ("POST", "/api/users/{userId}/holds"): ("functions.spend.app", "AWS_IAM"),
        ("POST", "/api/users/{userId}/holds/{holdId}/capture"): ("functions.spend.app", "AWS_IAM"),
        ("POST", "/api/users/{userId}/holds/{holdId}/release"): ("functions.spend.app", "AWS_IAM"),
        ("PUT", "/api/users/{userId}/shards"): ("functions.spend.app", "AWS_IAM"),
        ("PUT", "/api/users/{userId}/alerts"): ("functions.spend.app", "AWS_IAM"),
        ("GET", "/api/books/{period}"): ("functions.spend.app", "AWS_IAM"),
        ("GET", "/api/auto-top-up"): ("functions.auto_top_up.app", "JWT"),
        ("PUT", "/api/auto-top-up"): ("functions.auto_top_up.app", "JWT"),
        ("GET", "/api/low-balance-email"): ("functions.auto_top_up.app", "JWT"),
        ("PUT", "/api/low-balance-email"): ("functions.auto_top_up.app", "JWT"),
        ("POST", "/api/payment-method"): ("functions.auto_top_up.app", "JWT"),
        ("DELETE", "/api/payment-method"): ("functions.auto_top_up.app", "JWT"),
    }


def test_path_parameters_are_matched_by_name() -> None:
    [route] = [r for r in routes() if r.path == "/api/checkout/{sessionId}"]

    assert route.match("GET", "/api/checkout/cs_test_123") == {"sessionId": "cs_test_123"}
    assert route.match("GET", "/api/checkout/cs_test_123/more") is None
    assert route.match("POST", "/api/checkout/cs_test_123") is None


@pytest.mark.parametrize("sample", sorted(p.name for p in (ROOT / "events").glob("api_*.json")))
def test_events_have_the_shape_of_the_samples(sample: str) -> None:
    expected = json.loads((ROOT / "events" / sample).read_text())
    if "httpMethod" in expected:  # the service API's: a REST API's payload format 1.0
        key = (expected["httpMethod"], expected["resource"])
        [route] = [r for r in routes() if (r.method, r.path) == key]
        body = (expected["body"] or "").encode()
        request = Request(route.method, expected["path"], expected["headers"], body, "203.0.113.10")
        parameters = route.match(route.method, expected["path"]) or {}
        assert route.rest
        assert shape(rest_api_event(route, parameters, request, SERVICE.iam_authorizer())) == shape(expected)
        return
    [route] = [r for r in routes() if f"{r.method} {r.path}" == expected["routeKey"]]
    target = expected["rawPath"] + (f"?{expected['rawQueryString']}" if expected["rawQueryString"] else "")
    request = Request(
        route.method, target, expected["headers"], (expected.get("body") or "").encode(), "203.0.113.10"
    )
    claims = ISSUER.verify("Bearer " + ISSUER.issue("user-123")) if route.authorization == "JWT" else None
    iam = SERVICE.iam_authorizer() if route.authorization == "AWS_IAM" else None

    event = api_event(route, route.match(route.method, expected["rawPath"]) or {}, request, claims, iam=iam)

    assert shape(event) == shape(expected)


def test_a_binary_body_arrives_base64_encoded_and_json_as_text() -> None:
    [route] = [r for r in routes() if r.path == "/api/webhooks/stripe"]
    binary = Request(
        "POST", "/api/webhooks/stripe", {"content-type": "application/octet-stream"}, b"\xff", "::1"
    )
    text = Request("POST", "/api/webhooks/stripe", {"content-type": "application/json"}, b'{"a":1}', "::1")

    assert (
        api_event(route, {}, binary, None)["body"],
        api_event(route, {}, binary, None)["isBase64Encoded"],
    ) == (
        "/w==",
        True,
    )
    assert (
        api_event(route, {}, text, None)["body"],
        api_event(route, {}, text, None)["isBase64Encoded"],
    ) == (
        '{"a":1}',
        False,
    )


def test_repeated_query_parameters_are_joined_by_commas() -> None:
    [route] = [r for r in routes() if r.path == "/api/balance"]
    request = Request("GET", "/api/balance?limit=5&limit=6", {}, b"", "127.0.0.1")

    event = api_event(route, {}, request, {"sub": "alice"})

    assert event["queryStringParameters"] == {"limit": "5,6"}
    assert event["rawQueryString"] == "limit=5&limit=6"
    assert "body" not in event


def test_a_function_result_becomes_the_http_response() -> None:
    response = lambda_response(
        {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": "{}"}
    )

    assert (response.status, response.headers, response.body) == (
        201,
        {"Content-Type": "application/json"},
        b"{}",
    )


def test_the_authorizer_passes_claims_on_as_strings() -> None:
    claims = ISSUER.verify("Bearer " + ISSUER.issue("alice"))

    assert claims["sub"] == "alice"
    assert claims["aud"] == "credits-local"
    assert all(isinstance(value, str) for value in claims.values())


def forged(claims: dict[str, Any]) -> str:
    other = LocalIssuer(ISSUER.issuer)
    token = other.issue("alice")
    header = jwt.get_unverified_header(token)
    return jwt.encode(claims, other._key, algorithm="RS256", headers={"kid": header["kid"]})


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer not.a.token",
        "Bearer " + ISSUER.issue("alice", lifetime=-5),
        "Bearer " + LocalIssuer(ISSUER.issuer).issue("alice"),
        "Bearer " + LocalIssuer("urn:someone:else").issue("alice"),
        "Bearer "
        + jwt.encode(
            {"sub": "alice", "iss": ISSUER.issuer, "aud": "credits-local", "exp": int(time.time()) + 60},
            "secret",
            algorithm="HS256",
        ),
    ],
    ids=["none", "empty", "bearer only", "garbage", "expired", "another key", "another issuer", "hs256"],
)
def test_the_authorizer_refuses_what_api_gateway_would(authorization: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        ISSUER.verify(authorization)


def test_a_token_for_another_audience_is_refused() -> None:
    other_audience = LocalIssuer(ISSUER.issuer, audience="another-app")
    other_audience._key, other_audience._key_id = ISSUER._key, ISSUER._key_id

    with pytest.raises(UnauthorizedError):
        ISSUER.verify("Bearer " + other_audience.issue("alice"))


@pytest.mark.parametrize("user_id", ["", "a" * 65, "alice smith", "<script>", "\uff41lice"])
def test_local_sign_in_refuses_odd_user_ids(user_id: str) -> None:
    with pytest.raises(ValueError, match="userId"):
        ISSUER.issue(user_id)


def settle_request(query: str = "") -> Request:
    return Request("POST", SETTLE_PATH + (f"?{query}" if query else ""), {}, b"", "127.0.0.1")


def test_local_settle_waits_with_the_timeout_asked_for_and_answers_504_naming_what_was_pending() -> None:
    gateway = Gateway(ISSUER, str, routes_=[], service_credentials=SERVICE)
    asked: list[float] = []
    gateway.settle = asked.append

    settled = gateway.respond(settle_request("timeout=2.5"))
    by_default = gateway.respond(settle_request())

    def late(timeout: float) -> None:
        raise DrainTimeoutError("webhook deliveries not finished in 1 s: refund.created evt_1 (attempt 1)")

    gateway.settle = late
    pending = gateway.respond(settle_request("timeout=1"))

    assert (settled.status, json.loads(settled.body)) == (200, {"settled": True})
    assert asked == [2.5, DRAIN_TIMEOUT_SECONDS]
    assert by_default.status == 200
    assert pending.status == 504
    assert json.loads(pending.body)["error"] == {
        "code": "not_settled",
        "message": "webhook deliveries not finished in 1 s: refund.created evt_1 (attempt 1)",
    }


@pytest.mark.parametrize("timeout", ["0", "-1", "600.5", "nan", "inf", "soon", ""])
def test_local_settle_refuses_a_timeout_out_of_bounds(timeout: str) -> None:
    gateway = Gateway(ISSUER, str, routes_=[], service_credentials=SERVICE)
    asked: list[float] = []
    gateway.settle = asked.append

    answer = gateway.respond(settle_request(f"timeout={timeout}"))

    assert answer.status == 400
    assert json.loads(answer.body)["error"]["code"] == "invalid_timeout"
    assert asked == []


def test_local_settle_waits_up_to_the_bound() -> None:
    gateway = Gateway(ISSUER, str, routes_=[], service_credentials=SERVICE)
    asked: list[float] = []
    gateway.settle = asked.append

    assert gateway.respond(settle_request(f"timeout={MAX_SETTLE_SECONDS:g}")).status == 200
    assert asked == [MAX_SETTLE_SECONDS]


def test_local_settle_is_no_route_without_a_stack_to_settle() -> None:
    gateway = Gateway(ISSUER, str, routes_=[], service_credentials=SERVICE, static_site=ROOT / "static_site")

    assert gateway.respond(settle_request()).status == 405

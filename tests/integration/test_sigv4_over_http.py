"""SigV4 over real HTTP: what a client signs is what the gateway's HTTP server hands the verifier
(the Host header, a percent-encoded path, an unsorted query, a body), and a wrong secret still fails."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.auth import LocalIssuer
from devstack.gateway import Gateway, GatewayServer, Route, route_pattern
from devstack.sigv4 import ServiceCredentials, signed_headers

CREDENTIALS = ServiceCredentials("AKIALOCALTEST0000002", "over-http-secret")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    routes = [
        Route(
            method,
            path,
            "SpendFunction",
            "tests.container_functions",
            "echo",
            "AWS_IAM",
            128,
            route_pattern(path),
        )
        for method, path in [("GET", "/api/users/{userId}/balance"), ("POST", "/api/users/{userId}/spend")]
    ]
    gateway = Gateway(LocalIssuer("urn:credits:test"), lambda: "", routes, service_credentials=CREDENTIALS)
    with GatewayServer(gateway) as server:
        yield server.url


def send(method: str, url: str, body: bytes, credentials: ServiceCredentials) -> int:
    headers = signed_headers(method, url, body, credentials, headers={"Idempotency-Key": "k-1"})
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            json.loads(response.read())
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/users/alice/balance?limit=5&cursor=a%2Fb&a=1", b""),
        ("POST", "/api/users/alice%40example.com/spend", b'{"amount": 250, "description": "caf\\u00e9"}'),
    ],
)
def test_a_signed_request_passes_and_a_wrong_secret_does_not(
    url: str, method: str, path: str, body: bytes
) -> None:
    assert send(method, url + path, body, CREDENTIALS) == 200
    assert send(method, url + path, body, ServiceCredentials(CREDENTIALS.access_key_id, "wrong")) == 403

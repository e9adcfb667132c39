"""SigV4 over real HTTP: what a client signs is what the gateway's HTTP server hands the verifier
(the Host header, a percent-encoded path, an unsorted query, a body), and a wrong secret still fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

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


def echoed(url: str, path: str, credentials: ServiceCredentials = CREDENTIALS) -> tuple[int, Any]:
    headers = signed_headers("GET", url + path, b"", credentials)
    request = urllib.request.Request(url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("sent", "user_id"),
    [
        ("alice", "alice"),
        ("alice%40example.com", "alice@example.com"),
        ("J%C3%BCrgen", "J\u00fcrgen"),
        ("a%2Fb", "a/b"),
        ("100%2525", "100%25"),
    ],
)
def test_path_parameters_arrive_decoded_once(url: str, sent: str, user_id: str) -> None:
    status, event = echoed(url, f"/api/users/{sent}/balance")

    assert status == 200
    assert event["pathParameters"] == {"userId": user_id}
    # and the path itself arrives decoded, as an HTTP API's rawPath does
    assert event["rawPath"] == f"/api/users/{user_id}/balance"


CURL = shutil.which("curl")


def curl_status(url: str, path: str) -> int:
    assert CURL is not None
    run = subprocess.run(
        [
            CURL,
            "-s",
            "-o",
            os.devnull,
            "-w",
            "%{http_code}",
            "--aws-sigv4",
            "aws:amz:us-east-1:execute-api",
            "--user",
            f"{CREDENTIALS.access_key_id}:{CREDENTIALS.secret_access_key}",
            url + path,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(run.stdout)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
@pytest.mark.parametrize("user", ["alice", "svc-01_batch.job~2", "4f1c2a9e-0b7d-4c55-9a63-2d1e8f0a7b31"])
def test_curl_and_botocore_agree_on_user_ids_of_unreserved_characters(url: str, user: str) -> None:
    # Letters, digits and -._~ are signed as written by every SigV4 client, so both get through.
    assert curl_status(url, f"/api/users/{user}/balance") == 200
    assert echoed(url, f"/api/users/{user}/balance")[0] == 200

"""The local stack answers only requests that name it: a page elsewhere whose name was rebound to
127.0.0.1 (DNS rebinding) sends its own Host and is refused before any route runs."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from devstack.auth import LocalIssuer
from devstack.gateway import Gateway, GatewayServer


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    gateway = Gateway(LocalIssuer("urn:credits:test"), lambda: "", [])
    with GatewayServer(gateway) as server:
        yield int(urlsplit(server.url).port or 0)


def get(port: int, host: str | None) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/api/nothing-here", skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("own", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_a_request_that_names_the_stack_reaches_its_routes(port: int, own: str) -> None:
    status, _ = get(port, own.format(port=port))

    assert status == 404  # the gateway's own answer for an unknown route


@pytest.mark.parametrize(
    "host",
    ["attacker.example:{port}", "attacker.example", "127.0.0.1", "127.0.0.1:1", "127.0.0.1.nip.io:{port}"],
)
def test_a_request_naming_another_host_is_421_and_reaches_nothing(port: int, host: str) -> None:
    status, body = get(port, host.format(port=port))

    assert status == 421
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "wrong_host"
    assert f"127.0.0.1:{port}" in str(error["message"])


def test_a_request_without_a_host_is_421(port: int) -> None:
    assert get(port, None)[0] == 421

"""Schemathesis fuzzes the API from its OpenAPI document, served by `make run`'s stack at
GET /api/openapi.json: no request it makes is answered 5xx, and every answer is one the document lists,
with a body of the schema it gives. The JWT routes get a valid bearer token; the service routes (AWS_IAM)
get every request SigV4-signed with the stack's service credentials, as a backend would sign them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.gateway import routes
from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import DevStackProcess
from tests.fresh_process import modules_imported

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SERVICE = ServiceCredentials("AKIALOCALFUZZTEST001", "fuzz-test-secret")


class SigV4(requests.auth.AuthBase):
    """Signs each request as it is finally sent: its method, URL and body bytes."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        request.headers.update(signed_headers(str(request.method), str(request.url), raw, SERVICE))
        return request


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    settings = {
        "DEVSTACK_SERVICE_ACCESS_KEY_ID": SERVICE.access_key_id,
        "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": SERVICE.secret_access_key,
    }
    with DevStackProcess(settings) as running:
        yield running


def get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data), timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def bearer(stack: DevStackProcess) -> dict[str, str]:
    token = get_json(f"{stack.url}/local/token", {"userId": "fuzzer"})["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api_schema(stack: DevStackProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json")


def documented_path(path: str) -> str:
    """The template's path as the document names it: Powertools names the parameter after the handler's."""
    return (
        path.replace("{sessionId}", "{session_id}")
        .replace("{userId}", "{user_id}")
        .replace("{holdId}", "{hold_id}")
        .replace("{paymentId}", "{payment_id}")
    )


# Each route with valid and with invalid input; GET /api/packs takes none, so nothing to make invalid.
FUZZED = [
    (route.method, route.path, mode)
    for route in sorted(routes(), key=lambda r: (r.path, r.method))
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (route.path == "/api/packs" and mode is GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("method", "path", "mode"), FUZZED, ids=[f"{m} {p} {mode}" for m, p, mode in FUZZED])
def test_every_generated_request_gets_a_documented_answer_and_no_5xx(
    api_schema: schemathesis.BaseSchema,
    stack: DevStackProcess,
    bearer: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[documented_path(path)][method]
    [route] = [r for r in routes() if (r.method, r.path) == (method, path)]
    session = requests.Session()
    if route.authorization == "AWS_IAM":
        session.auth = SigV4()

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers_as_documented(case: schemathesis.Case) -> None:
        headers = {} if route.authorization == "AWS_IAM" else bearer
        case.call_and_validate(base_url=stack.url, session=session, headers=headers, checks=CHECKS)

    answers_as_documented()


def test_the_document_covers_every_route_of_the_template(stack: DevStackProcess) -> None:
    document = get_json(f"{stack.url}/api/openapi.json")

    documented = {
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    }
    assert documented == {(route.method, documented_path(route.path)) for route in routes()}
    for route in routes():
        operation = document["paths"][documented_path(route.path)][route.method.lower()]
        assert bool(operation.get("security")) == route.authorized, route.path
        assert ("401" in operation["responses"]) == (route.authorization == "JWT"), route.path
        assert ("403" in operation["responses"]) == (route.authorization == "AWS_IAM"), route.path
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_functions_never_import_pydantic() -> None:
    # A fresh interpreter: this test process has imported pydantic to generate the document.
    script = (
        "from functions.create_checkout.app import lambda_handler as checkout\n"
        "from functions.get_balance.app import lambda_handler as balance\n"
        "from functions.stripe_webhook.app import lambda_handler as webhook\n"
        "from tests.lambda_events import api_event, invoke\n"
        "assert invoke(balance, api_event('GET', '/api/packs', user=None)).status == 200\n"
        "assert invoke(checkout, api_event('POST', '/api/checkout', body='[]')).status == 400\n"
        "webhook_request = api_event('POST', '/api/webhooks/stripe', user=None, body='{}')\n"
        "assert invoke(webhook, webhook_request).status == 400\n"
    )

    assert modules_imported(script, "pydantic") == []

"""Schemathesis fuzzes the API from its OpenAPI document, served by `make run`'s stack at
GET /api/openapi.json: no request it makes is answered 5xx, and every answer is one the document lists,
with a body of the schema it gives. The authed routes get a valid bearer token."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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
from tests.devstack_process import DevStackProcess
from tests.fresh_process import modules_imported

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess() as running:
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
    return path.replace("{sessionId}", "{session_id}")


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

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=stack.url, headers=bearer, checks=CHECKS)

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
        assert ("401" in operation["responses"]) == route.authorized, route.path
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

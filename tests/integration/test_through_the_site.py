"""The page API answers only what came through CloudFront: a request to its own execute-api URL lacks
CloudFront's X-Origin-Verify and is refused 403 before any route runs; the service API does not ask."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.create_checkout.app import lambda_handler as create_checkout
from functions.get_balance.app import lambda_handler as get_balance
from functions.spend.app import lambda_handler as spend
from functions.stripe_webhook.app import lambda_handler as stripe_webhook
from tests.checkout_flow import webhook_request
from tests.lambda_events import api_event, invoke
from wallet import ledger

pytestmark = pytest.mark.usefixtures("tables", "stripe_emulator")


def page_requests() -> list[tuple[str, Any, dict[str, Any]]]:
    return [
        ("GET /api/balance", get_balance, api_event("GET", "/api/balance")),
        ("GET /api/packs", get_balance, api_event("GET", "/api/packs")),
        ("POST /api/checkout", create_checkout, api_event("POST", "/api/checkout", body='{"amount": 1000}')),
    ]


@pytest.mark.parametrize("sent", [None, "", "sample-origin-secre", "another-origin-secret"])
@pytest.mark.parametrize("index", range(3))
def test_a_page_route_without_cloudfronts_header_is_403_and_runs_nothing(
    index: int, sent: str | None
) -> None:
    _, handler, event = page_requests()[index]
    event["headers"].pop("x-origin-verify")
    if sent is not None:
        event["headers"]["x-origin-verify"] = sent

    response = invoke(handler, event)

    assert (response.status, response.body["error"]["code"]) == (403, "not_through_the_site")
    assert response.body["error"]["message"] == "This API is reached through the site only."


def test_the_webhook_without_cloudfronts_header_is_403_and_credits_nothing() -> None:
    event = webhook_request(
        json.dumps({"id": "evt_1", "type": "checkout.session.completed"}).encode(), "t=1,v1=x"
    )
    event["headers"].pop("x-origin-verify")

    response = invoke(stripe_webhook, event)

    assert response.status == 403
    assert ledger.get_balance("user-123") == 0


@pytest.mark.parametrize("index", range(3))
def test_with_cloudfronts_header_the_page_route_runs(index: int) -> None:
    name, handler, event = page_requests()[index]

    assert invoke(handler, event).status in (200, 201), name


def test_the_service_api_is_not_behind_the_site_and_does_not_ask_for_the_header() -> None:
    event = api_event("GET", "/api/users/{userId}/balance", path_parameters={"userId": "alice"})

    assert "x-origin-verify" not in event["headers"]
    assert invoke(spend, event).status == 200

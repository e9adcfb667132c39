"""A backend's low balance threshold for one user (PUT /api/users/{userId}/alerts): a whole number of
credits within its bounds, or null for the stack's default; anything else is 400 and saves nothing; only
ServiceCallerArns may set it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import settings
from wallet.models import CreditBalance

pytestmark = pytest.mark.usefixtures("tables")
SERVICE = "arn:aws:iam::123456789012:user/api-service"
OTHER = "arn:aws:iam::123456789012:role/somebody-else"
# The bound README's API table names: 0 to 100,000,000 credits.
LARGEST = 100_000_000


def put_alerts(user: str, body: Any, signer: str = SERVICE) -> HttpResponse:
    # The adjustment's sample event, sent as API Gateway sends the alerts route's.
    event = api_event(
        "POST",
        "/api/users/{userId}/adjustments",
        path_parameters={"userId": user},
        body=body if isinstance(body, str) else json.dumps(body),
    )
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "PUT"
    event["resource"] = event["requestContext"]["resourcePath"] = "/api/users/{userId}/alerts"
    event["path"] = event["requestContext"]["path"] = event["path"].replace("/adjustments", "/alerts")
    event["requestContext"]["identity"]["userArn"] = signer
    return invoke(spend_handler, event)


def saved(user: str) -> int | None:
    try:
        item = CreditBalance.get(user, consistent_read=True)
    except CreditBalance.DoesNotExist:
        return None
    return None if item.low_balance_threshold is None else int(item.low_balance_threshold)


@pytest.mark.parametrize("threshold", [0, 1, 500, LARGEST])
def test_a_threshold_within_the_bounds_is_saved_and_again_changes_nothing(threshold: int) -> None:
    first = put_alerts("alice", {"lowBalanceThreshold": threshold})
    again = put_alerts("alice", {"lowBalanceThreshold": threshold})

    assert (first.status, first.body) == (200, {"userId": "alice", "lowBalanceThreshold": threshold})
    assert (again.status, again.body) == (200, first.body)
    assert saved("alice") == threshold


def test_null_goes_back_to_the_stack_s_default() -> None:
    put_alerts("alice", {"lowBalanceThreshold": 700})

    response = put_alerts("alice", {"lowBalanceThreshold": None})

    assert (response.status, response.body) == (200, {"userId": "alice", "lowBalanceThreshold": None})
    assert saved("alice") is None


@pytest.mark.parametrize("threshold", [-1, LARGEST + 1, 2.5, 500.0, "500", True, [500]])
def test_a_threshold_that_is_not_a_whole_number_within_the_bounds_is_400_and_saves_nothing(
    threshold: Any,
) -> None:
    put_alerts("alice", {"lowBalanceThreshold": 300})

    response = put_alerts("alice", {"lowBalanceThreshold": threshold})

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    assert f"whole number of credits from 0 to {LARGEST}" in response.body["error"]["message"]
    assert saved("alice") == 300


@pytest.mark.parametrize("body", [{}, {"lowBalanceThreshold": 5, "other": 1}, "not json", "[500]"])
def test_a_bad_body_is_400_and_saves_nothing(body: Any) -> None:
    response = put_alerts("bob", body)

    assert response.status == 400
    assert saved("bob") is None


def test_only_a_service_caller_may_set_a_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_CALLER_ARNS", OTHER)
    settings.service_callers.cache_clear()
    try:
        response = put_alerts("carol", {"lowBalanceThreshold": 5})
    finally:
        settings.service_callers.cache_clear()

    assert response.status == 403
    assert saved("carol") is None

"""The one bound on amounts at the auto top-up route: a threshold up to MAX_AMOUNT is kept, anything past
it, or not a whole number, is 400 with the limit and the value as JSON spells it, and nothing is saved."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.auto_top_up.app import lambda_handler as auto_top_up_routes
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import auto_top_up
from wallet.amounts import MAX_AMOUNT

pytestmark = pytest.mark.usefixtures("tables")


def put_settings(user: str, threshold: Any) -> HttpResponse:
    body = json.dumps({"enabled": False, "threshold": threshold, "amount": 1000})
    request = api_event("GET", "/api/balance", user=user, body=body)
    request["routeKey"] = "PUT /api/auto-top-up"
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/api/auto-top-up"
    request["requestContext"]["http"]["method"] = "PUT"
    return invoke(auto_top_up_routes, request)


def test_a_threshold_at_the_bound_is_kept() -> None:
    response = put_settings("alice", MAX_AMOUNT)

    assert (response.status, response.body["threshold"]) == (200, MAX_AMOUNT)
    assert auto_top_up.view("alice").threshold == MAX_AMOUNT


@pytest.mark.parametrize(
    ("threshold", "spelling"),
    [
        (MAX_AMOUNT + 1, str(MAX_AMOUNT + 1)),
        (10**40, str(10**40)),
        (-1, "-1"),
        (None, "null"),
        (True, "true"),
        ("", '""'),
        (2.5, "2.5"),
    ],
)
def test_a_threshold_past_the_bound_or_not_whole_is_400_and_saves_nothing(
    threshold: Any, spelling: str
) -> None:
    response = put_settings("bob", threshold)

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    message = response.body["error"]["message"]
    assert f"from 0 to {MAX_AMOUNT}" in message
    assert message.endswith(f"not {spelling}"), message
    assert auto_top_up.view("bob").threshold is None

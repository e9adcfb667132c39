"""The bounds on amounts at auto top-up: a threshold up to its pack's credits is kept, anything past it (up
to and past MAX_AMOUNT), or not a whole number, is 400 with the limit and the value as JSON spells it, and
nothing is saved; the trigger reads every balance within the bound exactly; and at checkout an Other
amount from CUSTOM_AMOUNT_MIN to CUSTOM_AMOUNT_MAX opens a session, one past either is 400 before Stripe."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from devstack.stripe_emulator import StripeEmulator
from functions.auto_top_up.app import lambda_handler as auto_top_up_routes
from functions.auto_top_up.app import stream_handler
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.lambda_events import HttpResponse, LambdaContext, api_event, invoke
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


def test_a_threshold_at_its_bound_is_kept() -> None:
    """The threshold's bound is the chosen pack's credits (one charge ends any dip), far inside MAX_AMOUNT."""
    response = put_settings("alice", 1000)

    assert (response.status, response.body["threshold"]) == (200, 1000)
    assert auto_top_up.view("alice").threshold == 1000


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
    assert "from 1 to 1000 for the 1000 pack" in message
    assert message.endswith(f"not {spelling}"), message
    assert auto_top_up.view("bob").threshold is None


def test_a_threshold_above_the_pack_says_what_to_choose() -> None:
    response = put_settings("bob", 1001)

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    assert (
        "choose a pack of 5000 or 10000, or a threshold of at most 1000" in response.body["error"]["message"]
    )
    assert auto_top_up.view("bob").threshold is None


def balance_record(balance: int, threshold: int) -> dict[str, Any]:
    """One change of a balance item, as DynamoDB Streams hands it to the trigger."""
    image = {
        "userId": {"S": "stream-user"},
        "balance": {"N": str(balance)},
        "autoTopUp": {"BOOL": True},
        "autoTopUpThreshold": {"N": str(threshold)},
    }
    return {
        "eventID": "1",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"userId": {"S": "stream-user"}},
            "NewImage": image,
            "SequenceNumber": "100",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/CreditBalance/stream/2026",
    }


def test_the_trigger_reads_balances_up_to_the_bound_and_fails_on_more_digits_than_dynamodb_keeps() -> None:
    # Within the bound, either way, the record is read exactly and handled
    within = stream_handler({"Records": [balance_record(-MAX_AMOUNT, MAX_AMOUNT)]}, LambdaContext())
    assert within == {"batchItemFailures": []}

    # 40 significant digits, as an unbounded amount could store: decimal.Inexact, and the record fails
    with pytest.raises(BatchProcessingError, match="Inexact"):
        stream_handler({"Records": [balance_record(-int("1234567890" * 4), MAX_AMOUNT)]}, LambdaContext())


def open_checkout(amount: Any) -> HttpResponse:
    body = json.dumps({"amount": amount})
    return invoke(create_checkout, api_event("POST", "/api/checkout", user="carol", body=body))


@pytest.mark.parametrize("amount", [500, 100_000])
def test_an_other_amount_at_either_bound_opens_a_session_for_it(
    stripe_emulator: StripeEmulator, amount: int
) -> None:
    """CUSTOM_AMOUNT_MIN and CUSTOM_AMOUNT_MAX (defaults $5 and $1,000) are both amounts one may buy."""
    response = open_checkout(amount)

    assert response.status == 201, response.body
    session = stripe_emulator.client().v1.checkout.sessions.retrieve(response.body["sessionId"])
    assert (session.amount_total, session.metadata["amount"]) == (amount, str(amount))


@pytest.mark.parametrize("amount", [499, 100_001, MAX_AMOUNT, MAX_AMOUNT + 1, 10**40, -500, 0])
def test_an_other_amount_past_either_bound_is_400_before_stripe_is_called(
    stripe_emulator: StripeEmulator, amount: int
) -> None:
    before = len(stripe_emulator.requests)

    response = open_checkout(amount)

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    assert "from 500 to 100000" in response.body["error"]["message"]
    assert len(stripe_emulator.requests) == before

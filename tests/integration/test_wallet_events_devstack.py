"""The wallet's events through `make run`'s process: a paid Checkout, a hold that expires, and 64 spends
at once across the low balance threshold, each seen on the stand-in bus as EventBridge would take it.
Every event the stack published is checked against its JSON Schema (schemas/wallet-events/)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devstack.sigv4 import signed_headers
from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, call, settle, stripe_call
from tests.integration.test_holds_devstack import CREDENTIALS, expire_holds, seconds, signed
from tests.waiting import WAIT_SECONDS, wait_until

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "wallet-events"
THRESHOLD = 500
SETTINGS = {
    "DEVSTACK_SERVICE_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
    "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
    "LOW_BALANCE_THRESHOLD": str(THRESHOLD),
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def published(stack: DevStackProcess, user: str | None = None) -> list[dict[str, Any]]:
    settle(stack)
    status, body = call("GET", f"{stack.url}/local/wallet-events")
    assert status == 200, body
    return [e for e in body["events"] if user is None or e["detail"]["userId"] == user]


def test_a_paid_checkout_is_one_credits_deposited_with_its_payment_and_the_balance(
    stack: DevStackProcess,
) -> None:
    shopper = Shopper(stack, "events-buyer")
    session = shopper.checkout(1000)
    shopper.on_checkout_page(session, "pay")
    shopper.wait_for_balance(1000)

    [event] = published(stack, shopper.user)

    assert (event["source"], event["detail-type"]) == ("wallet", "credits.deposited")
    detail = event["detail"]
    assert (detail["amount"], detail["paymentId"], detail["transactionId"]) == (
        1000,
        session["paymentId"],
        session["paymentId"],
    )
    assert (detail["balance"], detail["stripeSessionId"]) == (1000, session["sessionId"])
    assert "wallet event credits.deposited {" in stack.log()


def test_64_spends_at_once_across_the_threshold_give_one_balance_low(stack: DevStackProcess) -> None:
    # Given 1,000 credits (an adjustment: no event) and 64 spends of 10 (640 in all, ending at 360)
    user = "events-spender"
    assert signed(stack, f"{user}/adjustments", {"amount": 1000, "reason": "start"})[0] == 201

    # When they are all sent at once
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: signed(stack, f"{user}/spend", {"amount": 10})[0], range(64)))

    # Then each is spent, and the balance crossed 500 once: one balance.low, with the balance after it
    assert Counter(answers) == {201: 64}
    events = published(stack, user)
    assert [e["detail-type"] for e in events] == ["balance.low"]
    [low] = events
    assert low["detail"]["threshold"] == THRESHOLD
    assert THRESHOLD - 10 <= low["detail"]["available"] < THRESHOLD


def test_a_backend_s_own_threshold_for_a_user_wins_over_the_stack_s(stack: DevStackProcess) -> None:
    # Given 1,000 credits and the backend's threshold of 900 for this user (the stack's is 500)
    user = "events-own-threshold"
    assert signed(stack, f"{user}/adjustments", {"amount": 1000, "reason": "start"})[0] == 201
    url = f"{stack.url}/api/users/{user}/alerts"
    body = json.dumps({"lowBalanceThreshold": 900}).encode()
    headers = signed_headers("PUT", url, body, CREDENTIALS, headers={"Content-Type": "application/json"})
    request = urllib.request.Request(url, data=body, headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
        assert json.loads(response.read()) == {"userId": user, "lowBalanceThreshold": 900}

    # When a spend of 200 leaves 800
    assert signed(stack, f"{user}/spend", {"amount": 200})[0] == 201

    # Then the balance is low by the user's threshold
    [low] = [e["detail"] for e in published(stack, user)]
    assert (low["type"], low["threshold"], low["available"]) == ("balance.low", 900, 800)


def test_an_expired_hold_is_one_hold_expired_naming_the_hold(stack: DevStackProcess) -> None:
    user = "events-holder"
    assert signed(stack, f"{user}/adjustments", {"amount": 2000, "reason": "start"})[0] == 201
    status, made = signed(stack, f"{user}/holds", {"amount": 400, "expiresInSeconds": 1})
    assert status == 201, made
    wait_until(lambda: time.time() > seconds(made["expiresAt"]), "the one-second hold to pass its time")

    expire_holds(stack)

    [event] = [e for e in published(stack, user) if e["detail-type"] == "hold.expired"]
    assert (event["detail"]["holdId"], event["detail"]["released"]) == (made["holdId"], 400)
    assert event["detail"]["balance"] == 2000


def test_a_refund_and_a_dispute_are_claw_backs_and_the_dispute_needs_a_response_once(
    stack: DevStackProcess,
) -> None:
    # Given two paid packs
    shopper = Shopper(stack, "events-disputed")
    refunded_session, disputed_session = shopper.checkout(5000), None
    shopper.on_checkout_page(refunded_session, "pay")
    disputed_session = shopper.checkout(1000)
    shopper.on_checkout_page(disputed_session, "pay")
    shopper.wait_for_balance(6000)
    _, refunded = stripe_call(stack, "GET", f"/v1/checkout/sessions/{refunded_session['sessionId']}")
    _, disputed = stripe_call(stack, "GET", f"/v1/checkout/sessions/{disputed_session['sessionId']}")
    _, intent = stripe_call(stack, "GET", f"/v1/payment_intents/{disputed['payment_intent']}")

    # When 2,000 of the first is refunded and the second is disputed
    refund = {"payment_intent": refunded["payment_intent"], "amount": "2000"}
    assert stripe_call(stack, "POST", "/v1/refunds", refund)[0] == 200
    shopper.wait_for_balance(4000)
    status, dispute = stripe_call(
        stack, "POST", f"/_emulator/charges/{intent['latest_charge']}/dispute", {"action": "open"}
    )
    assert status == 200, dispute
    shopper.wait_for_balance(3000)

    # Then each claw-back names its payment and why, and the dispute needs a response, once
    events = published(stack, shopper.user)
    backs = sorted(
        (e["detail"]["reason"], e["detail"]["amount"], e["detail"]["paymentId"])
        for e in events
        if e["detail-type"] == "credits.clawed_back"
    )
    assert backs == [
        ("dispute", 1000, disputed_session["paymentId"]),
        ("refund", 2000, refunded_session["paymentId"]),
    ]
    [needs] = [e["detail"] for e in events if e["detail-type"] == "dispute.needs_response"]
    assert (needs["paymentId"], needs["status"]) == (disputed_session["paymentId"], "needs_response")
    assert needs["disputeId"].startswith(("dp_", "du_"))


def test_every_event_the_stack_published_matches_its_schema_and_no_id_repeats(stack: DevStackProcess) -> None:
    events = published(stack)

    assert {e["detail-type"] for e in events} >= {
        "credits.deposited",
        "credits.clawed_back",
        "dispute.needs_response",
        "balance.low",
        "hold.expired",
    }
    for event in events:
        schema = json.loads((SCHEMAS / f"{event['detail-type']}.json").read_text())
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        validator.validate(event["detail"])
    ids = [e["detail"]["id"] for e in events]
    assert len(ids) == len(set(ids))

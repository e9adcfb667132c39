"""`make run`'s stack over real HTTP on 127.0.0.1: sign in, buy, pay on the emulator, see the credit."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from tests.devstack_process import ROOT, DevStackProcess
from tests.waiting import WAIT_SECONDS, wait_until

Http = tuple[int, Any]


def call(
    method: str, url: str, body: Any = None, token: str | None = None, accept: str = "application/json"
) -> Http:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": accept, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        # Room for a settle's own wait, on top of a slow answer.
        with urllib.request.urlopen(request, timeout=2 * WAIT_SECONDS) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def settle(stack: DevStackProcess) -> None:
    """Wait until the stack has delivered everything it queued: events, their retries, stream records."""
    status, body = call("POST", f"{stack.url}/local/settle?timeout={WAIT_SECONDS:g}")
    assert status == 200, body


class Shopper:
    def __init__(self, stack: DevStackProcess, user: str) -> None:
        self.stack = stack
        self.user = user
        status, body = call("POST", f"{stack.url}/local/token", {"userId": user})
        assert status == 200, body
        self.token = body["token"]

    def wait_for_balance(self, credits: int) -> None:
        wait_until(lambda: self.balance()["balance"] == credits, f"{self.user}'s balance to be {credits}")

    def balance(self) -> dict[str, Any]:
        status, body = call("GET", f"{self.stack.url}/api/balance", token=self.token)
        assert status == 200, body
        return dict(body)

    def checkout(self, amount: int) -> dict[str, Any]:
        status, body = call("POST", f"{self.stack.url}/api/checkout", {"amount": amount}, self.token)
        assert status == 201, body
        return dict(body)

    def on_checkout_page(self, session: dict[str, Any], action: str) -> dict[str, Any]:
        """Press a button of the emulator's hosted page, as a script may: POST with Accept: JSON."""
        status, body = call("POST", f"{session['url']}/{action}")
        assert status == 200, body
        return dict(body)

    def session(self, session_id: str) -> Http:
        return call("GET", f"{self.stack.url}/api/checkout/{session_id}", token=self.token)


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess() as running:
        yield running


def test_it_prints_where_everything_is(stack: DevStackProcess) -> None:
    log = stack.log()

    assert f"{stack.url}/dashboard/credits/" in log
    assert f"{stack.url}/api" in log
    assert "local Checkout emulator" in log
    assert "/local/token" in log


def test_a_paid_checkout_is_credited_by_the_webhook(stack: DevStackProcess) -> None:
    alice = Shopper(stack, "alice-paid")
    session = alice.checkout(5000)

    paid = alice.on_checkout_page(session, "pay")

    assert (
        paid["redirect"]
        == f"{stack.url}/dashboard/credits/?checkout=success&session_id={session['sessionId']}"
    )
    alice.wait_for_balance(5000)
    settle(stack)
    [deposit] = alice.balance()["transactions"]
    assert (deposit["type"], deposit["amount"], deposit["paymentId"]) == (
        "deposit",
        5000,
        session["paymentId"],
    )


@pytest.mark.parametrize("action", ["cancel", "decline"])
def test_a_cancelled_or_declined_checkout_credits_nothing(stack: DevStackProcess, action: str) -> None:
    bob = Shopper(stack, f"bob-{action}")
    session = bob.checkout(1000)

    bob.on_checkout_page(session, action)

    assert bob.session(session["sessionId"]) == (
        200,
        {"status": "open", "paymentStatus": "unpaid", "credited": False, "amount": 1000},
    )
    assert bob.balance()["balance"] == 0


def test_pay_later_is_credited_once_the_payment_succeeds(stack: DevStackProcess) -> None:
    carol = Shopper(stack, "carol")
    session = carol.checkout(10000)

    carol.on_checkout_page(session, "pay-later")

    assert carol.session(session["sessionId"])[1]["credited"] is False
    carol.wait_for_balance(10000)
    settle(stack)
    assert len(carol.balance()["transactions"]) == 1


def test_tokens_the_authorizer_refuses_get_its_401(stack: DevStackProcess) -> None:
    forged = Shopper(stack, "mallory").token[:-4] + "AAAA"

    for token in (None, "garbage", forged):
        assert call("GET", f"{stack.url}/api/balance", token=token) == (401, {"message": "Unauthorized"})
    assert call("POST", f"{stack.url}/api/checkout", {"amount": 1000}, token=None)[0] == 401


def test_one_user_cannot_see_or_claim_anothers_checkout(stack: DevStackProcess) -> None:
    alice, mallory = Shopper(stack, "alice-private"), Shopper(stack, "mallory-private")
    session = alice.checkout(5000)
    alice.on_checkout_page(session, "pay")
    alice.wait_for_balance(5000)

    assert mallory.session(session["sessionId"])[0] == 404
    assert mallory.balance()["balance"] == 0
    assert mallory.balance()["transactions"] == []


def test_the_page_and_config_are_served_from_the_same_origin(stack: DevStackProcess) -> None:
    status, config = call("GET", f"{stack.url}/config.js", accept="*/*")

    assert status == 200
    assert '"apiBase": "/api"' in config
    assert call("GET", f"{stack.url}/api/packs")[1]["packs"][0] == {
        "amount": 1000,
        "credits": 1000,
        "label": "$10",
    }
    assert call("GET", f"{stack.url}/api/nothing-here")[0] == 404


def test_every_event_delivered_twice_still_credits_once() -> None:
    with DevStackProcess({"STRIPE_EMULATOR_DELIVER_TWICE": "1"}) as twice:
        dave = Shopper(twice, "dave")
        session = dave.checkout(5000)
        dave.on_checkout_page(session, "pay")

        settle(twice)
        wait_until(
            lambda: twice.log().count('"result":"already_credited"') >= 1,
            "the second delivery's already_credited in the stack's log",
        )
        assert dave.balance()["balance"] == 5000
        assert len(dave.balance()["transactions"]) == 1


class FlakyEndpoint:
    """Answers the first delivery 500, then passes deliveries on to the stack's webhook."""

    def __init__(self) -> None:
        self.target = ""
        self.statuses: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not endpoint.statuses:
                    status, answer = 500, b'{"message": "Internal Server Error"}'
                else:
                    # Host is the target's, as a proxy sends it: the stack refuses any other (DNS rebinding).
                    headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                    forwarded = urllib.request.Request(endpoint.target, data=body, headers=headers)
                    try:
                        with urllib.request.urlopen(forwarded, timeout=10) as response:
                            status, answer = response.status, response.read()
                    except urllib.error.HTTPError as error:
                        status, answer = error.code, error.read()
                endpoint.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_webhook_answering_500_is_retried_and_credits_once() -> None:
    endpoint = FlakyEndpoint()
    try:
        with DevStackProcess({"STRIPE_EMULATOR_WEBHOOK_URL": endpoint.url}) as stack:
            endpoint.target = f"{stack.url}/api/webhooks/stripe"
            erin = Shopper(stack, "erin")
            erin.on_checkout_page(erin.checkout(1000), "pay")

            erin.wait_for_balance(1000)
            settle(stack)
            assert endpoint.statuses[:2] == [500, 200]
            assert len(erin.balance()["transactions"]) == 1
    finally:
        endpoint.stop()


def test_ctrl_c_stops_everything_cleanly() -> None:
    running = DevStackProcess().start()

    assert running.stop() == 0
    assert "Stopping" in running.log()


def make_audit(stack: DevStackProcess) -> subprocess.CompletedProcess[str]:
    """`make audit`'s command against this stack, as a developer runs it in another terminal."""
    environment = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "devstack.audit"],
        cwd=ROOT,
        env=environment
        | {"PYTHONPATH": f"{ROOT / 'layers/shared'}:{ROOT}", "DEVSTACK_RUN_FILE": str(stack.run_file)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_audit_is_silent_on_a_clean_ledger_and_names_a_drifted_balance(stack: DevStackProcess) -> None:
    carol = Shopper(stack, "carol-audited")
    carol.on_checkout_page(carol.checkout(1000), "pay")
    carol.wait_for_balance(1000)

    clean = make_audit(stack)

    environment = json.loads(stack.run_file.read_text())["environment"]
    boto3.client(
        "dynamodb",
        endpoint_url=environment["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).update_item(
        TableName=environment["CREDIT_BALANCE_TABLE"],
        Key={"userId": {"S": "carol-audited"}},
        UpdateExpression="ADD balance :extra",
        ExpressionAttributeValues={":extra": {"N": "1"}},
    )
    drifted = make_audit(stack)

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert " 0 differ" in clean.stdout
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "carol-audited: balance 1001, rows add up to 1000" in drifted.stdout


def stripe_call(stack: DevStackProcess, method: str, path: str, form: dict[str, str] | None = None) -> Http:
    """A call to the running stack's Stripe emulator, form-encoded as Stripe's API takes it."""
    api_base = re.search(r"local Checkout emulator at (http://127\.0\.0\.1:\d+)", stack.log())
    assert api_base, stack.log()
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(f"{api_base[1]}{path}", data=data, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"sk_test_emulator:").decode())
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_refund_and_a_dispute_on_the_emulator_take_back_credits_through_the_webhook(
    stack: DevStackProcess,
) -> None:
    dave = Shopper(stack, "dave-refunded")
    refunded_session = dave.checkout(5000)
    dave.on_checkout_page(refunded_session, "pay")
    disputed_session = dave.checkout(1000)
    dave.on_checkout_page(disputed_session, "pay")
    dave.wait_for_balance(6000)
    _, refunded = stripe_call(stack, "GET", f"/v1/checkout/sessions/{refunded_session['sessionId']}")
    _, disputed = stripe_call(stack, "GET", f"/v1/checkout/sessions/{disputed_session['sessionId']}")
    _, disputed_intent = stripe_call(stack, "GET", f"/v1/payment_intents/{disputed['payment_intent']}")

    status, refund = stripe_call(
        stack, "POST", "/v1/refunds", {"payment_intent": refunded["payment_intent"], "amount": "2000"}
    )
    assert status == 200, refund
    dave.wait_for_balance(4000)
    status, dispute = stripe_call(
        stack, "POST", f"/_emulator/charges/{disputed_intent['latest_charge']}/dispute", {"action": "open"}
    )
    assert status == 200, dispute
    dave.wait_for_balance(3000)
    stripe_call(
        stack, "POST", f"/_emulator/charges/{disputed_intent['latest_charge']}/dispute", {"action": "win"}
    )
    dave.wait_for_balance(4000)
    settle(stack)

    kinds = sorted((row["type"], row["amount"]) for row in dave.balance()["transactions"])
    assert kinds == [
        ("deposit", 1000),
        ("deposit", 5000),
        ("dispute", -1000),
        ("dispute_won", 1000),
        ("refund", -2000),
    ]

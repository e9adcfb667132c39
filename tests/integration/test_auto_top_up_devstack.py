"""The whole auto top-up loop in `make run`'s process, over real HTTP: save a card on the emulator's page,
turn auto top-up on, spend below the threshold, and see the balance refill once, through the stack's
stream poller, the trigger, the emulator's off-session payment and its webhook delivery. Spends go over
the SigV4-signed service route, as the product's backend sends them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, call, settle
from tests.waiting import wait_until

CREDENTIALS = ServiceCredentials("AKIAAUTOTOPUPTEST001", "auto-top-up-test-secret")
SETTINGS = {
    "DEVSTACK_SERVICE_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
    "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def spend(stack: DevStackProcess, user: str, amount: int) -> None:
    """A spend as the product's backend makes it: SigV4-signed, with an Idempotency-Key."""
    url = f"{stack.url}/api/users/{user}/spend"
    body = json.dumps({"amount": amount}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    request = urllib.request.Request(
        url, data=body, headers=signed_headers("POST", url, body, CREDENTIALS, headers=headers), method="POST"
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201


def test_save_a_card_turn_it_on_spend_below_and_the_balance_refills_once_per_dip(
    stack: DevStackProcess,
) -> None:
    user = f"auto-{uuid.uuid4().hex[:8]}"
    shopper = Shopper(stack, user)
    settings_url = f"{stack.url}/api/auto-top-up"

    # Given a card saved on the emulator's setup page
    status, opened = call("POST", f"{stack.url}/api/payment-method", token=shopper.token)
    assert status == 201, opened
    status, saved = call("POST", f"{opened['url']}/pay")
    assert status == 200, saved
    wait_until(
        lambda: call("GET", settings_url, token=shopper.token)[1]["paymentMethod"] is not None,
        "the saved card in the auto top-up settings",
    )

    # When auto top-up is turned on with an empty balance, it refills at once
    body = {"enabled": True, "threshold": 500, "amount": 1000}
    status, answer = call("PUT", settings_url, body, shopper.token)
    assert (status, answer["status"]) == (200, "on"), answer
    shopper.wait_for_balance(1000)

    # And a spend below the threshold refills once more, once
    spend(stack, user, 700)
    shopper.wait_for_balance(1300)
    settle(stack)
    rows = [row for row in shopper.balance()["transactions"] if row["type"] == "deposit"]
    assert len(rows) == 2

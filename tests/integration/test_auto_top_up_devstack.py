"""The whole auto top-up loop in `make run`'s process, over real HTTP: save a card on the emulator's page,
turn auto top-up on, spend below the threshold, and see the balance refill once, through the stack's
stream poller, the trigger, the emulator's off-session payment and its webhook delivery.

Spends are written into the stack's ledger by `wallet.ledger` itself, from this process, as the
service route writes them (the local gateway does not sign-check SigV4 routes)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, call, eventually
from wallet import ledger, models, settings

SETTINGS = {
    "CREDIT_BALANCE_TABLE": settings.tables().balance_table,
    "CREDIT_TRANSACTION_TABLE": settings.tables().transaction_table,
    "CREDIT_GUARD_TABLE": settings.tables().guard_table,
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        environment = json.loads(running.run_file.read_text(encoding="utf-8"))["environment"]
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        models.connection.cache_clear()
        try:
            yield running
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            models.connection.cache_clear()


def spend(user: str, amount: int) -> None:
    ledger.spend(
        user, amount, idempotency_key=str(uuid.uuid4()), description=None, actor="service", currency="usd"
    )


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
    assert eventually(lambda: call("GET", settings_url, token=shopper.token)[1]["paymentMethod"] is not None)

    # When auto top-up is turned on with an empty balance, it refills at once
    body = {"enabled": True, "threshold": 500, "amount": 1000}
    status, answer = call("PUT", settings_url, body, shopper.token)
    assert (status, answer["status"]) == (200, "on"), answer
    assert eventually(lambda: shopper.balance()["balance"] == 1000, timeout=20)

    # And a spend below the threshold refills once more, once
    spend(user, 700)
    assert eventually(lambda: shopper.balance()["balance"] == 1300, timeout=20)
    rows = [row for row in shopper.balance()["transactions"] if row["type"] == "deposit"]
    assert len(rows) == 2

"""What a Checkout Session credits is fixed when it is made: a price change strands no paid session,
forged metadata mints nothing, and another integration's session is simply not ours, with no alarm."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import deliver, start_checkout
from wallet import ledger, reconciliation, settings

pytestmark = pytest.mark.usefixtures("tables", "fresh_emulator")


@pytest.fixture
def fresh_emulator(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


def emitted(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for definition in record["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    value = record[metric["Name"]]
                    values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def session_made_elsewhere(emulator: StripeEmulator, amount: int, metadata: dict[str, str]) -> str:
    """A session another holder of an API key of the account made: any metadata it likes."""
    params: Any = {
        "mode": "payment",
        "success_url": "https://elsewhere.example/ok",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "X"}},
            }
        ],
        "metadata": metadata,
    }
    return emulator.client().v1.checkout.sessions.create(params).id


def test_a_price_change_between_checkout_and_payment_credits_what_was_bought(
    stripe_emulator: StripeEmulator,
) -> None:
    old_pack = start_checkout("alice", 5000)
    retired_pack = start_checkout("alice", 1000)

    with pytest.MonkeyPatch.context() as tomorrow:
        tomorrow.setenv("CREDIT_PACKS", "5000:4000,10000")
        settings.price_list.cache_clear()
        for session in (old_pack, retired_pack):
            *_, completed = stripe_emulator.pay(session)
            assert deliver(stripe_emulator.sign(completed)).status == 200
    settings.price_list.cache_clear()

    assert ledger.get_balance("alice") == 6000


def test_a_foreign_paid_session_is_not_ours_and_alarms_nobody(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    *_, completed = stripe_emulator.pay(session_made_elsewhere(stripe_emulator, 700, {"order": "42"}))
    capsys.readouterr()

    response = deliver(stripe_emulator.sign(completed))
    report = reconciliation.sweep(lambda: 300.0)

    assert response.status == 200
    assert (report.not_ours, report.rejected) == (1, 0)
    output = capsys.readouterr().out
    assert "RejectedFulfilments" not in emitted(output)
    assert '"level":"ERROR"' not in output


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"amount": "10000"}, id="more credits than paid for"),
        pytest.param({"userId": "mallory"}, id="someone else's user"),
        pytest.param({"creditsMark": "v1." + "0" * 64}, id="a made-up mark"),
    ],
)
def test_forged_metadata_mints_nothing(
    stripe_emulator: StripeEmulator, metadata: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a real session's metadata, copied onto a session made elsewhere and changed
    ours = start_checkout("alice", 1000)
    copied = stripe_emulator.client().v1.checkout.sessions.retrieve(ours).to_dict()["metadata"]
    *_, completed = stripe_emulator.pay(session_made_elsewhere(stripe_emulator, 1000, copied | metadata))
    capsys.readouterr()

    assert deliver(stripe_emulator.sign(completed)).status == 200

    assert ledger.get_balance("alice") == ledger.get_balance("mallory") == 0
    assert emitted(capsys.readouterr().out)["RejectedFulfilments"] == 1


def test_an_unmarked_session_after_the_cut_over_mints_nothing(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = {"userId": "mallory", "paymentId": str(ULID()), "amount": "1000"}
    *_, completed = stripe_emulator.pay(session_made_elsewhere(stripe_emulator, 1000, forged))
    monkeypatch.setattr(settings, "unmarked_sessions_until", lambda: int(time.time()) - 60)

    deliver(stripe_emulator.sign(completed))

    assert ledger.get_balance("mallory") == 0


def test_an_unmarked_session_from_before_the_cut_over_is_checked_against_the_price_list(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_before = {"userId": "bob", "paymentId": str(ULID()), "amount": "1000"}
    *_, completed = stripe_emulator.pay(session_made_elsewhere(stripe_emulator, 1000, made_before))
    monkeypatch.setattr(settings, "unmarked_sessions_until", lambda: int(time.time()) + 60)

    deliver(stripe_emulator.sign(completed))

    assert ledger.get_balance("bob") == 1000

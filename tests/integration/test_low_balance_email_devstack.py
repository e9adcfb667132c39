"""The user's own low balance email through `make run`'s process: turned on from the page's API with the
address the sign-in verified, sent once per dip into the local mail sink (many spends at once across the
threshold send one), saying the balance, the threshold, how to top up or turn it off, with the page's
link; a bad threshold is 400 and saves nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, call, settle
from tests.integration.test_holds_devstack import CREDENTIALS, signed

SETTINGS = {
    "DEVSTACK_SERVICE_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
    "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
    "ALERT_SENDER": "alerts@credits.test",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def mail_to(stack: DevStackProcess, address: str) -> list[dict[str, Any]]:
    settle(stack)
    status, body = call("GET", f"{stack.url}/local/mail")
    assert status == 200, body
    return [mail for mail in body["mail"] if address in mail["to"]]


def test_it_is_off_until_the_user_turns_it_on(stack: DevStackProcess) -> None:
    shopper = Shopper(stack, "mail-off")

    assert call("GET", f"{stack.url}/api/low-balance-email", token=shopper.token) == (
        200,
        {"available": True, "enabled": False, "threshold": None, "email": None},
    )


@pytest.mark.parametrize("threshold", [0, -5, 100_000_001, 2.5, "500", True, None])
def test_a_bad_threshold_is_400_and_saves_nothing(stack: DevStackProcess, threshold: Any) -> None:
    shopper = Shopper(stack, "mail-bad")
    url = f"{stack.url}/api/low-balance-email"
    assert call("PUT", url, {"enabled": True, "threshold": 300}, shopper.token)[0] == 200

    status, body = call("PUT", url, {"enabled": True, "threshold": threshold}, shopper.token)

    assert (status, body["error"]["code"]) == (400, "invalid_amount")
    assert "from 1 to 100000000" in body["error"]["message"]
    assert call("GET", url, token=shopper.token)[1]["threshold"] == 300


@pytest.mark.parametrize("threshold", [1, 100_000_000])
def test_the_bounds_themselves_are_saved(stack: DevStackProcess, threshold: int) -> None:
    shopper = Shopper(stack, "mail-bounds")
    status, body = call(
        "PUT", f"{stack.url}/api/low-balance-email", {"enabled": True, "threshold": threshold}, shopper.token
    )
    assert (status, body["threshold"]) == (200, threshold)


def test_one_email_per_dip_even_for_many_spends_at_once_and_none_once_turned_off(
    stack: DevStackProcess,
) -> None:
    # Given 1,000 credits and the email on below 500, to the address the sign-in verified
    user = "mail-spender"
    address = f"{user}@users.credits.test"
    shopper = Shopper(stack, user)
    assert signed(stack, f"{user}/adjustments", {"amount": 1000, "reason": "start"})[0] == 201
    status, saved = call(
        "PUT", f"{stack.url}/api/low-balance-email", {"enabled": True, "threshold": 500}, shopper.token
    )
    assert (status, saved) == (200, {"available": True, "enabled": True, "threshold": 500, "email": address})

    # When 32 spends of 20 go at once (640: the balance ends at 360)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: signed(stack, f"{user}/spend", {"amount": 20})[0], range(32)))
    assert Counter(answers) == {201: 32}

    # Then one email, from the sender, says the balance under the threshold, how to top up or stop
    [mail] = mail_to(stack, address)
    assert mail["from"] == "alerts@credits.test"
    assert "500" in mail["text"]
    # Steps of 20 from 1,000: 500 is not below it, so the crossing lands on 480
    assert "Your balance is 480 credits" in mail["text"]
    assert f"{stack.url}/dashboard/credits/" in mail["text"]
    assert "top up" in mail["text"].lower()
    assert "stop these emails" in mail["text"].lower()

    # And after a top-up above it, turned off, a new dip sends nothing more
    assert signed(stack, f"{user}/adjustments", {"amount": 1000, "reason": "more"})[0] == 201
    off = call(
        "PUT", f"{stack.url}/api/low-balance-email", {"enabled": False, "threshold": None}, shopper.token
    )
    assert off == (200, {"available": True, "enabled": False, "threshold": None, "email": None})
    assert signed(stack, f"{user}/spend", {"amount": 1000})[0] == 201
    assert len(mail_to(stack, address)) == 1

"""The low balance email's guard and its rule for a dip: a record delivered again sends nothing more, a
failed send is given back so the redelivery sends it, and only the change that begins a dip sends."""

from __future__ import annotations

from typing import Any

import pytest

from wallet import email_alerts
from wallet.errors import LedgerUnavailableError

pytestmark = pytest.mark.usefixtures("tables")


class Outbox:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    def __call__(self, to: str, subject: str, text: str) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("SES did not answer")
        self.sent.append((to, subject, text))


def test_a_dip_delivered_twice_sends_one_email() -> None:
    outbox = Outbox()

    first = email_alerts.notify_once("alice", "000100", "a@example.test", "s", "t", outbox)
    again = email_alerts.notify_once("alice", "000100", "a@example.test", "s", "t", outbox)
    other_dip = email_alerts.notify_once("alice", "000200", "a@example.test", "s", "t", outbox)

    assert (first, again, other_dip) == (True, False, True)
    assert len(outbox.sent) == 2


def test_a_failed_send_is_given_back_and_sent_by_the_redelivery() -> None:
    outbox = Outbox(fail=1)

    with pytest.raises(LedgerUnavailableError):
        email_alerts.notify_once("bob", "000300", "b@example.test", "s", "t", outbox)
    assert email_alerts.notify_once("bob", "000300", "b@example.test", "s", "t", outbox)
    assert len(outbox.sent) == 1


def item(balance: int, threshold: int | None = 500, **more: Any) -> dict[str, Any]:
    on = (
        {} if threshold is None else {"emailAlertThreshold": threshold, "emailAlertAddress": "c@example.test"}
    )
    return {"userId": "carol", "balance": balance, **on, **more}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (item(600), item(400), 500),  # crosses: the dip begins
        (item(500), item(499), 500),  # at the threshold is not below it
        (item(400), item(300), None),  # already below: the same dip
        (item(600), item(500), None),  # not below
        (item(600, None), item(400, None), None),  # off
        (item(600), item(400, shards=8), None),  # a hot account's main item
        (item(800, None), item(800), None),  # turned on above it: not low yet
        (item(400, None), item(400), 500),  # turned on while below it: the dip begins now
    ],
)
def test_only_the_change_that_begins_a_dip_sends(
    old: dict[str, Any], new: dict[str, Any], expected: int | None
) -> None:
    assert email_alerts.dips(old, new) == expected


def test_the_message_says_the_balance_the_threshold_how_to_top_up_or_stop_and_links_the_page() -> None:
    subject, text = email_alerts.message(480, 500, "https://credits.example.test")

    assert "480" in subject
    assert "Your balance is 480 credits, below the 500" in text
    assert "https://credits.example.test/dashboard/credits/" in text
    assert "top up" in text.lower()
    assert "stop these emails" in text.lower()

"""Webhook delivery over real HTTP on 127.0.0.1: the emulator's events, retried and signed as Stripe does."""

from __future__ import annotations

import collections
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from devstack.drain import DrainTimeoutError
from devstack.stripe_emulator import SignedEvent, StripeEmulator, fixture
from devstack.webhook_delivery import WebhookSender
from tests.waiting import WAIT_SECONDS, wait_until

API_KEY = "sk_test_51WebhookDeliveryKey"
FAST = (0.01, 0.01)


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def timestamp(self) -> int:
        return int(self.headers["Stripe-Signature"].split(",")[0].removeprefix("t="))


class Endpoint:
    """A webhook endpoint on 127.0.0.1 that answers each POST with the next scripted status, then 200."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.statuses = collections.deque(statuses)
        self.received: list[Received] = []
        self.answering = threading.Event()
        self.answering.set()
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.answering.wait(timeout=WAIT_SECONDS)
                with endpoint._lock:
                    endpoint.received.append(Received(body, dict(self.headers.items())))
                    status = endpoint.statuses.popleft() if endpoint.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/webhooks/stripe"

    def __enter__(self) -> Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.answering.set()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def emulator() -> Iterator[StripeEmulator]:
    with StripeEmulator(api_key=API_KEY) as emulator:
        yield emulator


def open_session(emulator: StripeEmulator) -> str:
    session = emulator.client().v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 5000,
                        "product_data": {"name": "5,000 Credits"},
                    },
                }
            ],
            "success_url": "https://credits.example/done?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://credits.example/cancelled",
        }
    )
    return session.id


def verified(received: Received, secret: str) -> stripe.Event:
    event: stripe.Event = stripe.Webhook.construct_event(
        received.body, received.headers["Stripe-Signature"], secret
    )
    return event


def a_signed_event(emulator: StripeEmulator, timestamp: int | None = None) -> SignedEvent:
    event = fixture("event") | {"id": "evt_delivery_test", "type": "checkout.session.completed"}
    return emulator.sign(event, timestamp=timestamp)


def test_a_500_is_retried_and_every_attempt_carries_a_valid_signature() -> None:
    with (
        Endpoint([500]) as endpoint,
        WebhookSender(endpoint.url, retry_delays=FAST) as sender,
        StripeEmulator(api_key=API_KEY, deliver=sender) as emulator,
    ):
        # The payment's first event, charge.succeeded, meets the 500; the others go through at once.
        charged, *others = emulator.pay(open_session(emulator))

        emulator.drain()

    attempts = [a for a in sender.attempts if a.event_id == charged["id"]]
    assert [(a.event_id, a.event_type, a.attempt, a.status, a.error) for a in attempts] == [
        (charged["id"], "charge.succeeded", 1, 500, None),
        (charged["id"], "charge.succeeded", 2, 200, None),
    ]
    assert [a.succeeded for a in attempts] == [False, True]
    assert attempts[0].at <= attempts[1].at
    assert sorted((a.event_id, a.attempt, a.status) for a in sender.attempts if a not in attempts) == sorted(
        (event["id"], 1, 200) for event in others
    )
    first, second = [r for r in endpoint.received if verified(r, emulator.webhook_secret).id == charged["id"]]
    assert first.body == second.body == emulator.sign(charged).payload
    for received in (first, second):
        assert received.headers["Content-Type"] == "application/json; charset=utf-8"
        assert received.headers["User-Agent"].startswith("Stripe/1.0")
    assert first.timestamp <= second.timestamp


def test_each_attempt_is_signed_when_it_is_sent(emulator: StripeEmulator, endpoint: Endpoint) -> None:
    an_hour_ago = int(time.time()) - 3600
    stale = a_signed_event(emulator, timestamp=an_hour_ago)

    with WebhookSender(endpoint.url) as sender:
        sender(stale)
        sender.drain()

    [received] = endpoint.received
    assert received.body == stale.payload
    assert received.timestamp > an_hour_ago
    assert verified(received, emulator.webhook_secret).id == "evt_delivery_test"


def test_twice_delivers_every_event_twice(endpoint: Endpoint) -> None:
    with (
        WebhookSender(endpoint.url, retry_delays=FAST, twice=True) as sender,
        StripeEmulator(api_key=API_KEY, deliver=sender) as emulator,
    ):
        paid = emulator.pay(open_session(emulator))
        [expired] = emulator.expire(open_session(emulator))
        emulator.drain()

    ids = [verified(received, emulator.webhook_secret).id for received in endpoint.received]
    assert ids == [event["id"] for event in [*paid, expired] for _ in range(2)]
    assert all(attempt.succeeded and attempt.attempt == 1 for attempt in sender.attempts)
    assert sender.twice


def test_it_gives_up_after_the_schedule_and_logs_no_secrets(
    emulator: StripeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    signed = a_signed_event(emulator)
    caplog.set_level(logging.INFO, logger="devstack.webhook_delivery")

    with Endpoint([500, 503, 500, 500]) as endpoint, WebhookSender(endpoint.url, retry_delays=FAST) as sender:
        sender(signed)
        sender.drain()

    assert [(a.attempt, a.status) for a in sender.attempts] == [(1, 500), (2, 503), (3, 500)]
    assert len(endpoint.received) == 3
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "webhook checkout.session.completed evt_delivery_test attempt 1: 500, retrying in 0.01s",
        "webhook checkout.session.completed evt_delivery_test attempt 2: 503, retrying in 0.01s",
        "webhook checkout.session.completed evt_delivery_test attempt 3: 500",
        "webhook checkout.session.completed evt_delivery_test: giving up after 3 attempts",
    ]
    assert caplog.records[-1].levelno == logging.WARNING


def test_a_refused_connection_and_a_redirect_are_failed_deliveries(emulator: StripeEmulator) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]

    with WebhookSender(f"http://127.0.0.1:{closed_port}/hook", retry_delays=(0.01,)) as refused:
        refused(a_signed_event(emulator))
        refused.drain()
    with Endpoint([302]) as endpoint, WebhookSender(endpoint.url, retry_delays=FAST) as redirected:
        redirected(a_signed_event(emulator))
        redirected.drain()

    assert [(a.status, a.error is not None) for a in refused.attempts] == [(None, True), (None, True)]
    assert "refused" in (refused.attempts[0].error or "").lower()
    assert [a.status for a in redirected.attempts] == [302, 200]


def test_the_caller_never_waits_for_the_endpoint(emulator: StripeEmulator, endpoint: Endpoint) -> None:
    endpoint.answering.clear()

    with WebhookSender(endpoint.url) as sender:
        started = time.monotonic()
        for _ in range(3):
            sender(a_signed_event(emulator))
        handed_over = time.monotonic() - started

        with pytest.raises(DrainTimeoutError):
            sender.drain(timeout=0.05)
        endpoint.answering.set()
        sender.drain()

    # Had a call waited for its answer, it would have waited for `answering` (up to WAIT_SECONDS).
    assert handed_over < 1
    assert [a.status for a in sender.attempts] == [200, 200, 200]


def test_stop_is_prompt_with_a_retry_pending(emulator: StripeEmulator) -> None:
    with Endpoint([500]) as endpoint:
        sender = WebhookSender(endpoint.url, retry_delays=(60.0,)).start()
        sender(a_signed_event(emulator))
        wait_until(lambda: len(sender.attempts) == 1, "the first attempt, answered 500")

        started = time.monotonic()
        sender.stop()
        stopping = time.monotonic() - started
        sender(a_signed_event(emulator))

    assert stopping < 1
    assert [a.status for a in sender.attempts] == [500]
    assert len(endpoint.received) == 1
    assert not any(thread.name == "webhook-sender" for thread in threading.enumerate())
    sender.drain(timeout=0)


def test_events_handed_over_before_start_are_sent_once_started(
    emulator: StripeEmulator, endpoint: Endpoint
) -> None:
    sender = WebhookSender(endpoint.url)
    sender(a_signed_event(emulator))

    with sender:
        sender.drain()

    assert len(endpoint.received) == 1


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "127.0.0.1:3000/hook", "http:///hook"])
def test_only_an_http_url_is_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookSender(url)


def test_the_checkout_page_delivers_pay_later_and_its_settlement_in_order(endpoint: Endpoint) -> None:
    no_redirects = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    with (
        WebhookSender(endpoint.url, retry_delays=FAST) as sender,
        StripeEmulator(api_key=API_KEY, deliver=sender, settle_after=0.05) as emulator,
    ):
        session_id = open_session(emulator)
        request = urllib.request.Request(
            f"{emulator.public_base_url}/checkout/{session_id}/pay-later",
            data=b"",
            headers={"Accept": "application/json"},
            method="POST",
        )
        with no_redirects.open(request, timeout=5) as response:
            answer = json.loads(response.read())
        wait_until(lambda: len(emulator.events) == 4, "the scheduled settlement's events")
        emulator.drain()

    assert (answer["status"], answer["paymentStatus"]) == ("complete", "unpaid")
    events = [verified(received, emulator.webhook_secret) for received in endpoint.received]
    assert [event.type for event in events] == [
        "checkout.session.completed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    sessions = [events[0], events[-1]]
    assert [(event.data.object.id, event.data.object.payment_status) for event in sessions] == [
        (session_id, "unpaid"),
        (session_id, "paid"),
    ]
    assert events[2].data.object.id == events[1].data.object.payment_intent


def test_refund_and_dispute_events_reach_the_endpoint_signed(endpoint: Endpoint) -> None:
    with (
        WebhookSender(endpoint.url, retry_delays=FAST) as sender,
        StripeEmulator(api_key=API_KEY, deliver=sender) as emulator,
    ):
        session_id = open_session(emulator)
        emulator.pay(session_id)
        charge = emulator.charge_of(session_id)
        emulator.client().v1.refunds.create({"charge": charge, "amount": 1000})
        request = urllib.request.Request(
            f"{emulator.api_base}/_emulator/charges/{charge}/dispute", data=b"action=open", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        emulator.drain()

    events = [verified(received, emulator.webhook_secret) for received in endpoint.received]
    assert [event.type for event in events] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
        "charge.refunded",
        "refund.created",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    assert events[3].data.object.amount_refunded == 1000
    assert events[5].data.object.charge == events[6].data.object.charge == charge


def test_drain_waits_for_a_scheduled_retry_to_be_made(emulator: StripeEmulator) -> None:
    with Endpoint([500]) as endpoint, WebhookSender(endpoint.url, retry_delays=(0.3,)) as sender:
        sender(a_signed_event(emulator))

        sender.drain()

        assert [(a.attempt, a.status) for a in sender.attempts] == [(1, 500), (2, 200)]


def test_a_drain_that_runs_out_of_time_names_what_is_in_flight_and_what_waits_to_be_retried(
    emulator: StripeEmulator,
) -> None:
    with Endpoint([500]) as endpoint, WebhookSender(endpoint.url, retry_delays=(60.0,)) as sender:
        sender(a_signed_event(emulator))
        wait_until(lambda: len(sender.attempts) == 1, "the first attempt, answered 500")
        endpoint.answering.clear()
        sender(emulator.sign(fixture("event") | {"id": "evt_held", "type": "charge.refunded"}))

        with pytest.raises(DrainTimeoutError) as late:
            sender.drain(timeout=0.2)
        endpoint.answering.set()

    message = str(late.value)
    assert endpoint.url in message
    assert "charge.refunded evt_held (attempt 1)" in message
    assert "checkout.session.completed evt_delivery_test (attempt 2) due in" in message


def test_the_emulators_drain_drains_its_sender(endpoint: Endpoint) -> None:
    endpoint.answering.clear()
    with (
        WebhookSender(endpoint.url, retry_delays=FAST) as sender,
        StripeEmulator(api_key=API_KEY, deliver=sender) as emulator,
    ):
        emulator.pay(open_session(emulator))

        with pytest.raises(DrainTimeoutError, match=r"checkout\.session\.completed evt_\w+ \(attempt 1\)"):
            emulator.drain(timeout=0.2)
        endpoint.answering.set()
        emulator.drain()

        assert [a.status for a in sender.attempts] == [200, 200, 200]

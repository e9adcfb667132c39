"""Webhook delivery for the local stack: the Stripe emulator's events POSTed to a webhook URL. Never deployed.

A `WebhookSender` is the emulator's `deliver` callable. Like Stripe, it POSTs each event's exact JSON bytes
with its `Stripe-Signature`, signed afresh for every attempt (`SignedEvent.resigned()`: a new timestamp),
from a worker thread, so the caller (the Checkout page's redirect) never waits. An answer other than 2xx
(a redirect too), a timeout or a refused connection is tried again after each of `retry_delays` in turn,
then given up with a warning. `twice=True` delivers every event twice, as Stripe may, to show that the
handler credits a payment once.

    with WebhookSender("http://127.0.0.1:3000/api/webhooks/stripe") as sender:
        with StripeEmulator(deliver=sender, settle_after=5.0) as emulator:
            ...
            emulator.drain(timeout=60.0)  # every event so far handed over, then delivered or given up
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from devstack.drain import DRAIN_TIMEOUT_SECONDS, DrainTimeoutError
from devstack.stripe_emulator import SignedEvent

# Stripe retries for up to three days in live mode (a few hours in a sandbox); a local stack needs seconds.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
DEFAULT_TIMEOUT_SECONDS = 10.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of one event: its HTTP status, or the error that left it without one."""

    event_id: str
    event_type: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class _Delivery:
    signed: SignedEvent
    attempt: int = 1


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Stripe counts a redirect as a failed delivery rather than following it.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _Sender:
    """Delivers events one at a time, in the order handed over, from a daemon worker thread; a failed
    delivery is tried again after its delay without holding up the events behind it. `_deliver` makes
    one attempt. Events handed over before `start()` wait for it; `stop()` drops what is still waiting."""

    door = "delivery"
    """How log lines name this sender's deliveries."""

    def __init__(self, *, retry_delays: Sequence[float], twice: bool) -> None:
        if any(delay < 0 for delay in retry_delays):
            raise ValueError("retry delays must not be negative and the timeout must be positive")
        self._retry_delays = tuple(retry_delays)
        self._twice = twice
        self._changed = threading.Condition()
        self._queue: list[tuple[float, int, _Delivery]] = []
        self._order = itertools.count()
        self._in_flight: list[_Delivery] = []
        self._stopping = False
        self._attempts: list[DeliveryAttempt] = []
        self._thread = threading.Thread(target=self._run, name=f"{self.door}-sender", daemon=True)

    @property
    def destination(self) -> str:
        """Where the deliveries go, as a drain that runs out of time names it."""
        raise NotImplementedError

    def _deliver(self, delivery: _Delivery) -> DeliveryAttempt:
        raise NotImplementedError

    @property
    def twice(self) -> bool:
        return self._twice

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        """Every attempt so far, oldest first."""
        with self._changed:
            return list(self._attempts)

    def __call__(self, signed: SignedEvent) -> None:
        """Queue `signed` for delivery (twice with `twice`) and return at once."""
        with self._changed:
            if self._stopping:
                _log.warning("%s %s %s not sent: the sender is stopped", self.door, *_describe(signed))
                return
            now = time.monotonic()
            for _ in range(2 if self._twice else 1):
                heapq.heappush(self._queue, (now, next(self._order), _Delivery(signed)))
            self._changed.notify_all()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the worker, dropping queued deliveries and retries; an attempt in flight is finished first."""
        with self._changed:
            self._stopping = True
            dropped = len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if dropped:
            _log.warning("%s sender stopped with %d deliveries not made", self.door, dropped)

    def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until every event handed over so far was delivered or given up, its retries included.

        Raises `DrainTimeoutError`, naming each delivery still in flight or queued (and when it is due),
        when `timeout` seconds run out first.
        """
        with self._changed:
            if self._changed.wait_for(lambda: not self._queue and not self._in_flight, timeout):
                return
            now = time.monotonic()
            pending = [f"{_label(delivery)} in flight" for delivery in self._in_flight] + [
                f"{_label(delivery)} due in {max(0.0, due - now):.1f} s"
                for due, _, delivery in sorted(self._queue)
            ]
        raise DrainTimeoutError(
            f"{self.door} deliveries to {self.destination} not finished in {timeout:g} s: "
            + "; ".join(pending)
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            with self._changed:
                delivery = self._next_due()
                if delivery is None:
                    return
                self._in_flight.append(delivery)
            try:
                self._after(delivery, self._deliver(delivery))
            finally:
                # Only now, so a queued retry keeps `drain` waiting without a gap.
                with self._changed:
                    self._in_flight.remove(delivery)
                    self._changed.notify_all()

    def _next_due(self) -> _Delivery | None:
        """The first delivery whose time has come, waiting for it; None once stopping (lock held)."""
        while not self._stopping:
            if not self._queue:
                self._changed.wait()
                continue
            wait = self._queue[0][0] - time.monotonic()
            if wait <= 0:
                return heapq.heappop(self._queue)[2]
            self._changed.wait(wait)
        return None

    def _after(self, delivery: _Delivery, attempt: DeliveryAttempt) -> None:
        """Record the attempt, and queue the next one if it failed and the schedule has one left."""
        outcome = str(attempt.status) if attempt.status is not None else attempt.error
        retry_in: float | None = None
        with self._changed:
            self._attempts.append(attempt)
            if not attempt.succeeded and delivery.attempt <= len(self._retry_delays) and not self._stopping:
                retry_in = self._retry_delays[delivery.attempt - 1]
                retry = _Delivery(delivery.signed, delivery.attempt + 1)
                heapq.heappush(self._queue, (time.monotonic() + retry_in, next(self._order), retry))
        label = (self.door, attempt.event_type, attempt.event_id, attempt.attempt, outcome)
        if attempt.succeeded:
            _log.info("%s %s %s attempt %d: %s", *label)
        elif retry_in is not None:
            _log.info("%s %s %s attempt %d: %s, retrying in %gs", *label, retry_in)
        else:
            _log.info("%s %s %s attempt %d: %s", *label)
            _log.warning(
                "%s %s %s: giving up after %d attempts",
                self.door,
                attempt.event_type,
                attempt.event_id,
                attempt.attempt,
            )


class WebhookSender(_Sender):
    """POSTs each event's exact bytes to `url` with its Stripe-Signature, signed afresh for each attempt."""

    door = "webhook"

    def __init__(
        self,
        url: str,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        twice: bool = False,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if timeout <= 0:
            raise ValueError("retry delays must not be negative and the timeout must be positive")
        super().__init__(retry_delays=retry_delays, twice=twice)
        self._url = url
        self._timeout = timeout
        # The local endpoint is reached directly, whatever proxy the environment names.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    @property
    def url(self) -> str:
        return self._url

    @property
    def destination(self) -> str:
        return self._url

    def _deliver(self, delivery: _Delivery) -> DeliveryAttempt:
        return self._post(delivery)

    def _post(self, delivery: _Delivery) -> DeliveryAttempt:
        signed = delivery.signed.resigned()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) in __init__
            self._url, data=signed.payload, headers=signed.headers, method="POST"
        )
        at = time.time()
        status: int | None = None
        error: str | None = None
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except urllib.error.URLError as exc:
            error = str(exc.reason)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = str(exc) or type(exc).__name__
        event_type, event_id = _describe(signed)
        return DeliveryAttempt(event_id, event_type, delivery.attempt, status, error, at)


class EventBusSender(_Sender):
    """The local stand-in for Stripe's partner event bus and its rule: each event wrapped in EventBridge's
    envelope (`source` the partner event source, `detail-type` the event's type, `detail` the event:
    docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html) and handed to `invoke`, the
    EventBridge function's handler. An invocation that raises is tried again on the same schedule as a
    webhook delivery, as Lambda retries an asynchronous invocation; the same drain waits for it."""

    door = "eventbridge"

    def __init__(
        self,
        invoke: Callable[[dict[str, Any]], object],
        source: str,
        detail_types: Collection[str],
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        twice: bool = False,
        account: str = "123456789012",
        region: str = "us-east-1",
    ) -> None:
        if not source.startswith("aws.partner/stripe.com/"):
            raise ValueError(f"not a Stripe partner event source: {source!r}")
        super().__init__(retry_delays=retry_delays, twice=twice)
        self._invoke = invoke
        self.source = source
        self._detail_types = frozenset(detail_types)
        self._account = account
        self._region = region

    @property
    def destination(self) -> str:
        return f"the partner event bus {self.source}"

    def __call__(self, signed: SignedEvent) -> None:
        """As the rule's pattern does, pass on only the event types it names (template.yaml's
        StripeEventsRule: the event table's); the bus drops the rest."""
        if signed.event.get("type") in self._detail_types:
            super().__call__(signed)

    def envelope(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event as EventBridge hands it to a rule's target: one envelope id per attempt's event."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": str(event.get("type", "")),
            "source": self.source,
            "account": self._account,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self._region,
            "resources": [],
            "detail": dict(event),
        }

    def _deliver(self, delivery: _Delivery) -> DeliveryAttempt:
        at = time.time()
        status: int | None = None
        error: str | None = None
        try:
            self._invoke(self.envelope(delivery.signed.event))
            status = 200
        # Any error is a failed invocation, retried.
        except Exception as exc:
            error = f"{type(exc).__name__}: the function failed"
        event_type, event_id = _describe(delivery.signed)
        return DeliveryAttempt(event_id, event_type, delivery.attempt, status, error, at)


def _label(delivery: _Delivery) -> str:
    """`type id (attempt n)`, how a pending delivery is named when a drain runs out of time."""
    return "{} {}".format(*_describe(delivery.signed)) + f" (attempt {delivery.attempt})"


def _describe(signed: SignedEvent) -> tuple[str, str]:
    """The event's type and id, all a log line shows of it."""
    return str(signed.event.get("type", "?")), str(signed.event.get("id", "?"))

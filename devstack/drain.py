"""Waiting for the local stack to settle: every delivery queued so far made, or a loud failure saying which
are not. Never deployed.

The local stack delivers on threads of its own, as AWS and Stripe do: the Stripe emulator hands each event to
its `deliver` callable after answering the request that caused it, the `WebhookSender` POSTs it later (and
again after 1, 2, 4, ... s when the endpoint fails), and the `BalanceStream` poller hands the balance table's
changes to the auto top-up trigger. A test that counts what was delivered, or asserts that nothing more was,
first drains what it counts:

- `StripeEmulator.drain(timeout)`: every event published so far has been handed to `deliver` and `deliver`
  returned; then, when `deliver` drains too (a `WebhookSender`), it is drained with the time left.
- `WebhookSender.drain(timeout)`: nothing queued, in flight or waiting to be retried: each event handed
  over so far was delivered (2xx) or given up after its last retry. A scheduled retry is waited for, not
  skipped, so a drain against an endpoint that keeps failing lasts as long as the retry schedule.
- `BalanceStream.drain(timeout)`: every record committed so far, and every record those deliveries
  committed in turn, was handed to the trigger (a poll that began after the call found nothing new).
- `DevStack.settle(timeout)`: the three in turn, until a round finds nothing more to deliver; over HTTP,
  `POST /local/settle?timeout=60` on `make run`'s address (200, or 504 with what was pending).

What has not happened yet is not waited for: a "Pay later" settlement the Checkout page scheduled
`settle_after` seconds on publishes its event when its time comes, and is drained only after that (wait
for its event first). A drain that runs out of time raises `DrainTimeoutError`, naming what was pending.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# Generous: a drain waits for work that is already under way, so on a loaded machine it is slow, not stuck.
DRAIN_TIMEOUT_SECONDS = 60.0


class DrainTimeoutError(TimeoutError):
    """A drain ran out of time; the message names what was still pending."""


@runtime_checkable
class Drains(Protocol):
    """Something that delivers on a thread of its own and can be waited for until it has nothing left."""

    def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> object: ...

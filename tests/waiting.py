"""Waiting in tests for what happens on another thread or process: on a condition, never for a fixed time.

The timeout is generous, as a loaded machine is slow rather than wrong; running out of it fails the test
with what was awaited. Deliveries the local stack makes on its own threads are drained instead
(`StripeEmulator.drain`, `WebhookSender.drain`, `BalanceStream.drain`; see `devstack.drain`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

WAIT_SECONDS = 60.0
# How often the condition is checked: often enough to add little to a test, seldom enough to cost little.
CHECK_EVERY_SECONDS = 0.05


def wait_until(
    condition: Callable[[], bool], awaited: str | Callable[[], str], timeout: float = WAIT_SECONDS
) -> None:
    """Return once `condition()` holds; after `timeout` s, fail with what was awaited (a callable: worked
    out then, so it can show what was seen instead)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {awaited() if callable(awaited) else awaited}")
        time.sleep(CHECK_EVERY_SECONDS)

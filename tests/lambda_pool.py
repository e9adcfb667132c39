"""Many Lambda containers at once. Lambda runs one request at a time per container, and a handler's
module state (the resolver's current event) assumes it, so concurrent requests go to separate
processes here, each one warm container of every function."""

from __future__ import annotations

import importlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tests.lambda_events import invoke

HANDLERS = {
    "create_checkout": "functions.create_checkout.app",
    "stripe_webhook": "functions.stripe_webhook.app",
    "get_balance": "functions.get_balance.app",
    "spend": "functions.spend.app",
}


def _invoke(function: str, event: dict[str, Any]) -> tuple[int, Any]:
    response = invoke(importlib.import_module(HANDLERS[function]).lambda_handler, event)
    return response.status, response.body


def _warm_up() -> None:
    for module in HANDLERS.values():
        importlib.import_module(module)


class Containers:
    def __init__(self, count: int) -> None:
        # spawn, not fork: the parent runs server threads, which a forked child would inherit half-dead.
        self._pool = ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up
        )

    def invoke_all(self, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
        """Send every (function, event) at once, spread over the containers; the responses in order."""
        futures = [self._pool.submit(_invoke, function, event) for function, event in requests]
        return [future.result(timeout=60) for future in futures]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

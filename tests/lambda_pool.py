"""Many Lambda containers at once, for requests that must really overlap: the dev stack's containers
(devstack.containers), each function in processes of its own that serve one event at a time, with the
settings and server addresses this test process has when the pool starts."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devstack.containers import Containers as FunctionContainers
from devstack.containers import Function
from tests.lambda_events import response_of

HANDLERS = {
    "create_checkout": "functions.create_checkout.app",
    "stripe_webhook": "functions.stripe_webhook.app",
    "get_balance": "functions.get_balance.app",
    "spend": "functions.spend.app",
}


class Containers:
    def __init__(self, per_function: int) -> None:
        environment = dict(os.environ)
        functions = [
            Function(name, module, "lambda_handler", environment=environment)
            for name, module in HANDLERS.items()
        ]
        self._containers = FunctionContainers(functions, per_function)
        self._containers.warm()

    def invoke_all(self, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
        """Send every (function, event) at once, spread over the containers; the responses in order."""

        def invoke(request: tuple[str, dict[str, Any]]) -> tuple[int, Any]:
            response = response_of(self._containers.invoke(*request))
            return response.status, response.body

        with ThreadPoolExecutor(max_workers=len(requests) or 1) as pool:
            return list(pool.map(invoke, requests, timeout=60))

    def close(self) -> None:
        self._containers.close()

"""Tiny handlers for the gateway's own tests: what a container saw, kept, or did when it failed."""

from __future__ import annotations

import json
import os
import time
from typing import Any

# Module state, kept between events by a warm container.
SEEN: list[dict[str, Any]] = []


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event's authorizer and body, the container's pid and how many events it has served."""
    SEEN.append(event)
    return _answer(
        {
            "authorizer": event["requestContext"].get("authorizer"),
            "body": event.get("body"),
            "pid": os.getpid(),
            "served": len(SEEN),
            "setting": os.environ.get("CONTAINER_TEST_SETTING"),
        }
    )


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(0.3)
    return echo(event, context)


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    SEEN.append(event)
    raise RuntimeError("the handler raised")


def die(event: dict[str, Any], context: Any) -> dict[str, Any]:
    os._exit(3)

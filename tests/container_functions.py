"""Tiny handlers for the gateway's own tests: what a container saw, kept, or did when it failed."""

from __future__ import annotations

import json
import os
import time
from typing import Any

# Module state, kept between events by a warm container.
SEEN: list[dict[str, Any]] = []


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event's authorizer, body and path, the container's pid and how many events it has served."""
    SEEN.append(event)
    body = {
        "authorizer": event["requestContext"].get("authorizer"),
        "body": event.get("body"),
        "pathParameters": event.get("pathParameters"),
        "rawPath": event.get("rawPath"),
        "pid": os.getpid(),
        "served": len(SEEN),
        "setting": os.environ.get("CONTAINER_TEST_SETTING"),
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def act(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Does what the body says: echo, wait (then echo), fail (raise), die (the process exits) or hang."""
    action = event.get("body") or "echo"
    if action == "fail":
        SEEN.append(event)
        raise RuntimeError("the handler raised")
    if action == "die":
        os._exit(3)
    if action == "hang":
        time.sleep(600)
    if action == "wait":
        time.sleep(0.3)
    return echo(event, context)

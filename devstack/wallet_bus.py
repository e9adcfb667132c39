"""A local stand-in for the wallet's EventBridge bus: takes PutEvents as boto3's client sends it, checks
each entry as EventBridge would (at most 10, the bus named, source, detail-type and a JSON detail), and
records what it accepted, for `GET /local/wallet-events` and tests; `make run` prints each event."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

MAX_ENTRIES = 10
logger = logging.getLogger(__name__)


class BusError(ValueError):
    """A request EventBridge would refuse whole."""


class WalletBus:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.requests = 0

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803  # boto3's name
        if not 1 <= len(Entries) <= MAX_ENTRIES:
            raise BusError(f"PutEvents takes 1 to {MAX_ENTRIES} entries, not {len(Entries)}")
        results = []
        with self._lock:
            self.requests += 1
            for entry in Entries:
                if (
                    entry.get("EventBusName") != self.name
                    or not entry.get("Source")
                    or not entry.get("DetailType")
                ):
                    results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "bus, source or type"})
                    continue
                detail = json.loads(entry["Detail"])
                self._events.append(
                    {"source": entry["Source"], "detail-type": entry["DetailType"], "detail": detail}
                )
                results.append({"EventId": str(uuid.uuid4())})
                print(f"wallet event {entry['DetailType']} {json.dumps(detail, sort_keys=True)}", flush=True)
        failed = sum(1 for result in results if "ErrorCode" in result)
        return {"FailedEntryCount": failed, "Entries": results}

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

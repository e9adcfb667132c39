"""Publishing the wallet's events to its EventBridge bus: PutEvents in batches of at most 10 entries (the
request's limit, "Amazon EventBridge quotas"), and, as "Sending events with PutEvents" asks, the entries
of a response that carry an ErrorCode sent again, alone; what still fails is returned to the caller,
whose stream record is then delivered again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from wallet.wallet_events import WalletEvent, entry

MAX_ENTRIES = 10
ATTEMPTS = 3


class PutEvents(Protocol):
    """boto3's EventBridge client, or the local stack's stand-in for it."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...  # noqa: N803


def publish(events: Sequence[WalletEvent], client: PutEvents, bus: str) -> set[str]:
    """Send `events`; the ids of those still not accepted after ATTEMPTS tries (empty: all sent)."""
    pending = list(events)
    for _ in range(ATTEMPTS):
        failed: list[WalletEvent] = []
        for start in range(0, len(pending), MAX_ENTRIES):
            batch = pending[start : start + MAX_ENTRIES]
            failed += _put(batch, client, bus)
        pending = failed
        if not pending:
            break
    return {event.id for event in pending}


def _put(batch: list[WalletEvent], client: PutEvents, bus: str) -> list[WalletEvent]:
    """The events of `batch` that EventBridge did not accept."""
    try:
        response = client.put_events(Entries=[entry(event, bus) for event in batch])
    except (BotoCoreError, ClientError):
        return batch
    if not response.get("FailedEntryCount"):
        return []
    # The response's entries answer the request's, one for one and in order.
    return [
        event for event, result in zip(batch, response["Entries"], strict=True) if result.get("ErrorCode")
    ]

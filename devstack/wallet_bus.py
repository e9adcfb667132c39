"""Local stand-ins for what the wallet events function sends to: the wallet's EventBridge bus takes
PutEvents as boto3's client sends it, checks each entry as EventBridge would (at most 10, the bus named,
source, detail-type and a JSON detail), and records what it accepted, for `GET /local/wallet-events` and
tests; the mail sink takes SES v2's SendEmail from the one sender and keeps each email, for
`GET /local/mail`. `make run` prints both."""

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


class MailSink:
    """Amazon SES v2's SendEmail, kept instead of sent."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self._lock = threading.Lock()
        self._mail: list[dict[str, Any]] = []

    def send_email(
        self,
        *,
        FromEmailAddress: str,  # noqa: N803  # boto3's names
        Destination: dict[str, list[str]],  # noqa: N803
        Content: dict[str, Any],  # noqa: N803
    ) -> dict[str, str]:
        if FromEmailAddress != self.sender:
            raise BusError(f"Email address is not verified: {FromEmailAddress}")
        simple = Content["Simple"]
        mail = {
            "from": FromEmailAddress,
            "to": Destination["ToAddresses"],
            "subject": simple["Subject"]["Data"],
            "text": simple["Body"]["Text"]["Data"],
        }
        with self._lock:
            self._mail.append(mail)
        print(f"mail to {', '.join(mail['to'])}: {mail['subject']}\n{mail['text']}", flush=True)
        return {"MessageId": str(uuid.uuid4())}

    def mail(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._mail)

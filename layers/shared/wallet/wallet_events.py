"""The wallet's own events, for the systems around it: built from committed changes only, so a crash
between a change's commit and its event's publication delays the event and never loses it.

Three streams feed them, each record handled alone and the same way every time it is delivered:
- a new row of the transactions table: `credits.deposited`, `credits.clawed_back`, `hold.expired`, with
  the row's ids; their `balance` is the account's, read when the event is built (at or after the change);
- a change of a balance item (its old and new images): `balance.low`, `balance.exhausted`,
  `auto_top_up.failed`, with the balance after that very change;
- a dispute's notice item, first put on the guard table (wallet.dispute_notices): `dispute.needs_response`
  for each stage that needs the merchant's answer, with the account's balance as rows' events have it.

Each event's id is derived from its cause (the row, or the stream record of the change), so a record
delivered again gives the same event with the same id: delivery is at least once, and consumers drop
the ids they have seen.

Once per dip: DynamoDB Streams writes each change of an item exactly once, in the order of the item's
changes ("Change data capture for DynamoDB Streams", developer guide), and a dip begins with the one
change that takes the balance from at or above the threshold to below it (or the threshold above the
balance: each side is compared with the threshold in force then). That change, and only it, gives
`balance.low`; the next dip needs a change that brings the balance back to the threshold first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wallet.writes import DEPOSIT, DISPUTE, HOLD_EXPIRED, INQUIRY, REFUND

# EventBridge's `source` of every event the wallet sends; backends' rules match on it.
SOURCE = "wallet"
DEPOSITED = "credits.deposited"
CLAWED_BACK = "credits.clawed_back"
HOLD_EXPIRED_EVENT = "hold.expired"
LOW = "balance.low"
EXHAUSTED = "balance.exhausted"
AUTO_TOP_UP_FAILED = "auto_top_up.failed"
DISPUTE_NEEDS_RESPONSE = "dispute.needs_response"
TYPES = (
    DEPOSITED,
    CLAWED_BACK,
    HOLD_EXPIRED_EVENT,
    LOW,
    EXHAUSTED,
    AUTO_TOP_UP_FAILED,
    DISPUTE_NEEDS_RESPONSE,
)
# Rows that take credits back for a payment (wallet.payment_state): a refund, a chargeback, an inquiry.
CLAW_BACK_TYPES = frozenset({REFUND, DISPUTE, INQUIRY})
# Fixed for good: an event's id is uuid5(this, its type, user and cause), the same on every delivery.
ID_NAMESPACE = uuid.UUID("6f1d3a52-3c1e-4c8e-9a57-3f0b7f3e2c11")


@dataclass(frozen=True)
class WalletEvent:
    type: str
    detail: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.detail["id"])


def event_id(kind: str, user_id: str, cause: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}|{user_id}|{cause}"))


def _event(kind: str, user_id: str, cause: str, occurred_at: str, **fields: Any) -> WalletEvent:
    detail = {
        "id": event_id(kind, user_id, cause),
        "type": kind,
        "userId": user_id,
        "occurredAt": occurred_at,
    }
    return WalletEvent(kind, detail | {name: value for name, value in fields.items() if value is not None})


def from_row(row: Mapping[str, Any], balance_of: Callable[[str], tuple[int, int]]) -> list[WalletEvent]:
    """The event of a new transactions row, if its type has one. `balance_of(user)`: (balance, held) now."""
    kind = {DEPOSIT: DEPOSITED, HOLD_EXPIRED: HOLD_EXPIRED_EVENT}.get(str(row.get("type")))
    amount = int(row.get("amount", 0))
    if row.get("type") in CLAW_BACK_TYPES and amount < 0:
        kind = CLAWED_BACK
    user, transaction_id = str(row["userId"]), str(row["transactionId"])
    if kind is None or "#" in user:  # a sub-balance's rows are spends: no event of their own
        return []
    balance, held = balance_of(user)
    ids = {
        "transactionId": transaction_id,
        "paymentId": _text(row.get("paymentId")),
        "stripePaymentIntentId": _text(row.get("stripePaymentIntentId")),
        "stripeSessionId": _text(row.get("stripeSessionId")),
        "stripeEventId": _text(row.get("stripeEventId")),
        "holdId": _text(row.get("holdId")),
    }
    common = {"balance": balance, "held": held, **ids}
    occurred = str(row.get("createdAt") or _now())
    if kind == DEPOSITED:
        return [
            _event(
                kind, user, transaction_id, occurred, amount=amount, source=_text(row.get("source")), **common
            )
        ]
    if kind == CLAWED_BACK:
        return [
            _event(kind, user, transaction_id, occurred, amount=-amount, reason=str(row["type"]), **common)
        ]
    return [_event(kind, user, transaction_id, occurred, released=int(row.get("reserved", 0)), **common)]


def from_balance_change(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    sequence: str,
    default_threshold: int,
    at: str | None = None,
) -> list[WalletEvent]:
    """The events of one committed change of a balance item (the stream record `sequence`, written `at`)."""
    if not new or "#" in str(new["userId"]):  # removed, or a hot account's sub-balance or a reserved item
        return []
    user = str(new["userId"])
    before, after = int((old or {}).get("balance", 0)), int(new.get("balance", 0))
    held = int(new.get("held") or 0)
    occurred = at or str(new.get("updatedAt") or _now())
    events: list[WalletEvent] = []
    # Low against the threshold in force at each side: a change of the threshold may begin a dip too.
    threshold = _threshold(new, default_threshold)
    # A new item has not fallen: the first change of an account begins no dip.
    was_low = before < _threshold(old, default_threshold) if old else True
    # A hot account's main item is not what it may spend (its sub-balances are, and refills move credits
    # between them with no row): its balance events would be false, so it has none (a known limit).
    hot = new.get("shards") is not None
    if threshold and not hot and not was_low and after < threshold:
        events.append(
            _event(
                LOW,
                user,
                sequence,
                occurred,
                balance=after + held,
                available=after,
                held=held,
                threshold=threshold,
            )
        )
    if not hot and before > 0 >= after:
        events.append(
            _event(EXHAUSTED, user, sequence, occurred, balance=after + held, available=after, held=held)
        )
    if (old or {}).get("autoTopUpStatus") != "failed" and new.get("autoTopUpStatus") == "failed":
        events.append(
            _event(
                AUTO_TOP_UP_FAILED,
                user,
                sequence,
                occurred,
                balance=after + held,
                available=after,
                held=held,
                reason=_text(new.get("autoTopUpReason")),
                paymentId=_text((old or {}).get("autoTopUpEpisode")),
                stripePaymentIntentId=_text((old or {}).get("autoTopUpIntent")),
            )
        )
    return events


def from_notice(item: Mapping[str, Any], balance_of: Callable[[str], tuple[int, int]]) -> list[WalletEvent]:
    """The event of a dispute's notice item (`notice#<dispute>#<status>`), first put when it was claimed."""
    user, guard_id = str(item["userId"]), str(item["guardId"])
    _, dispute_id, status = guard_id.split("#", 2)
    balance, held = balance_of(user)
    due_by = item.get("noticeDueBy")
    due = (
        datetime.fromtimestamp(int(due_by), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if due_by and int(due_by) > 0
        else None
    )
    occurred = str(item.get("createdAt") or _now())
    cause = f"{dispute_id}#{status}"
    fields = {
        "disputeId": dispute_id,
        "status": status,
        "dueBy": due,
        "paymentId": _text(item.get("noticePaymentId")),
    }
    return [_event(DISPUTE_NEEDS_RESPONSE, user, cause, occurred, balance=balance, held=held, **fields)]


def entry(event: WalletEvent, bus: str) -> dict[str, Any]:
    """A PutEvents entry: `detail-type` is the event's type, `detail` the event itself."""
    return {
        "Source": SOURCE,
        "DetailType": event.type,
        "Detail": json.dumps(event.detail),
        "EventBusName": bus,
    }


def _threshold(item: Mapping[str, Any] | None, default: int) -> int:
    own = (item or {}).get("lowBalanceThreshold")
    return default if own is None else int(own)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""A dispute stage that needs the merchant's answer (`warning_needs_response`, `needs_response`,
`appeal_needs_response`) reaches the stack's alarm topic once per dispute and stage, naming the dispute,
its charge and `evidence_details.due_by` (Stripe's "Date by which evidence must be submitted", 0 when no
response is allowed): a bare metric alarm could not say which dispute, or by when.

Exactly once under duplicates, concurrent deliveries and the sweep's replays: a notice item
(`notice#<dispute>#<status>`) is put on the guard table on condition that none exists, and only the
delivery whose put succeeded publishes. If the publish fails, that delivery deletes its claim and
raises, so the webhook answers 500 and Stripe (or the sweep) delivers again: the ledger has nothing more
to do, and the notice is claimed and published then. A claim left by a delivery that died between its
put and its publish (no `noticeSentAt`) may be taken over after wallet.once.CLAIM_SECONDS, so a crash delays a
notice and never loses it; a notice whose publish succeeded but whose `noticeSentAt` was not written may
be published twice, never not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from wallet import settings
from wallet.errors import LedgerUnavailableError
from wallet.models import CreditGuard
from wallet.once import act_once

logger = Logger(child=True)

# Kept past Stripe's 30 days of events, so no replay of the stage's event finds its notice gone.
KEPT = timedelta(days=45)

Publish = Callable[[str, str], None]
"""(subject, message) -> None, raising when the notice could not be published."""


class NoticeUnavailableError(LedgerUnavailableError):
    """The notice could not be published: answered 500, so that Stripe delivers the event again."""


def give_notice(
    user_id: str, payment_id: str, dispute: Mapping[str, Any], publish: Publish | None = None
) -> bool:
    """Announce the dispute's current stage once: True when this call published it, False when another
    delivery did (or is doing it now)."""
    dispute_id, status = str(dispute.get("id")), str(dispute.get("status"))
    notice = CreditGuard(
        user_id,
        f"notice#{dispute_id}#{status}",
        notice_payment_id=payment_id,
        notice_due_by=_due_by(dispute),
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        expires_at=datetime.now(UTC) + KEPT,
    )

    def announce() -> None:
        try:
            (publish or _publish)(*_notice(payment_id, dispute))
        except Exception as exc:  # any failure to publish: the claim is given back, a redelivery sends it
            raise NoticeUnavailableError("the dispute's notice could not be published") from exc

    return act_once(notice, announce, "the ledger could not record the dispute's notice")


def _due_by(dispute: Mapping[str, Any]) -> int | None:
    details = dispute.get("evidence_details")
    due_by = details.get("due_by") if isinstance(details, Mapping) else None
    return due_by if isinstance(due_by, int) else None


def _notice(payment_id: str, dispute: Mapping[str, Any]) -> tuple[str, str]:
    due_by = _due_by(dispute)
    due = (
        datetime.fromtimestamp(due_by, UTC).isoformat().replace("+00:00", "Z")
        if isinstance(due_by, int) and due_by > 0
        else None
    )
    charge = dispute.get("charge")
    charge_id = charge.get("id") if isinstance(charge, Mapping) else charge
    status = str(dispute.get("status"))
    answer = f"answer it in Stripe by {due}" if due else "Stripe allows no response to it"
    subject = f"Dispute {dispute.get('id')} needs a response ({status})"[:100]
    body = {
        "notice": "dispute_needs_response",
        "text": f"Dispute {dispute.get('id')} of charge {charge_id} is {status}: {answer}.",
        "disputeId": dispute.get("id"),
        "chargeId": charge_id,
        "paymentIntentId": dispute.get("payment_intent"),
        "paymentId": payment_id,
        "status": status,
        "amount": dispute.get("amount"),
        "currency": dispute.get("currency"),
        "reason": dispute.get("reason"),
        "dueBy": due_by,
        "dueByIso": due,
    }
    return subject, json.dumps(body, separators=(",", ":"))


def _publish(subject: str, message: str) -> None:
    topic = settings.alarm_topic_arn()
    if topic is None:
        logger.warning("dispute needs a response", extra={"subject": subject, "notice": message})
        return
    _sns().publish(TopicArn=topic, Subject=subject, Message=message)


@cache
def _sns() -> Any:
    import boto3

    return boto3.client("sns")

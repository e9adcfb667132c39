"""A side effect that cannot be taken back (a notice published, an email sent) done once per key, for
callers that are themselves delivered at least once (a webhook, a stream record).

The guard item is put on condition that none exists, and only the caller whose put succeeded acts. If
the act fails, that caller deletes its claim and raises, so the redelivery claims and acts again. A claim
left by a caller that died between its put and its act (no `noticeSentAt`) may be taken over after
CLAIM_SECONDS: a crash delays the effect and never loses it; one that acted but died before marking the
guard sent may act twice, never not at all."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DeleteError, PutError, PynamoDBException, UpdateError
from ulid import ULID

from wallet.errors import LedgerUnavailableError
from wallet.models import CreditGuard

logger = Logger(child=True)

# A webhook delivery or a stream batch lasts seconds; a claim older than this was left by a crash.
CLAIM_SECONDS = 300


def act_once(guard: CreditGuard, act: Callable[[], None], unavailable: str) -> bool:
    """Claim `guard` (unsaved; its key names the effect) and `act()`: True when this call acted, False
    when another did (or is doing it now). `unavailable`: the error's message when the claim cannot be
    written; an exception from `act` is raised as it is, after the claim is given back."""
    claim, now = str(ULID()), int(time.time())
    guard.notice_claim, guard.notice_claimed_at = claim, now
    unclaimed = CreditGuard.guard_id.does_not_exist() | (
        CreditGuard.notice_sent_at.does_not_exist() & (CreditGuard.notice_claimed_at < now - CLAIM_SECONDS)
    )
    try:
        guard.save(condition=unclaimed)
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise LedgerUnavailableError(unavailable) from exc
    try:
        act()
    except Exception:
        try:
            guard.delete(condition=CreditGuard.notice_claim == claim)
        except (DeleteError, PynamoDBException):
            # Left claimed: taken over after CLAIM_SECONDS by a redelivery.
            logger.warning("claim not given back", extra={"guard_id": guard.guard_id})
        raise
    try:
        guard.update(actions=[CreditGuard.notice_sent_at.set(int(time.time()))])
    except UpdateError:
        logger.warning("done, not marked done", extra={"guard_id": guard.guard_id})
    return True

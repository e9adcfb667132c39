"""The success page's return, answered from DynamoDB where it can be: a credited session is found by its
deposit (one read of the sparse `bySession` index, no Stripe call), and what must go to Stripe is counted
per user and hour, so that made-up `cs_` ids cannot spend the account's Stripe rate limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import PynamoDBException

from wallet import rate_limits
from wallet.errors import LedgerUnavailableError, TooManyLookupsError
from wallet.models import CreditTransaction

# A person returning from Checkout polls a dozen times; a few sessions an hour is already a lot.
STRIPE_LOOKUPS_PER_HOUR = 60


@dataclass(frozen=True, slots=True)
class CreditedSession:
    user_id: str
    credits: int


def credited_session(session_id: str) -> CreditedSession | None:
    """The deposit a Checkout Session made, or None (not credited, or the index has not caught up yet)."""
    try:
        for row in CreditTransaction.deposits_by_session.query(session_id, limit=1):
            return CreditedSession(row.user_id, int(row.amount))
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not look up a checkout session") from exc
    return None


def count_stripe_lookup(user_id: str, now: datetime | None = None) -> None:
    """One more Stripe lookup for `user_id` this hour, refused past STRIPE_LOOKUPS_PER_HOUR."""
    rate_limits.count(user_id, "lookups", STRIPE_LOOKUPS_PER_HOUR, TooManyLookupsError, now)

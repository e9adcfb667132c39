"""Per-user limits on the page routes that call Stripe: a count per user (the JWT's `sub`) and hour in
the guard table, one conditional update each, refused past the limit. API Gateway's route throttles are
shared by every client, so without these one signed-in user could spend them, and Stripe's rate limit,
for everyone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PynamoDBException, UpdateError

from wallet.errors import LedgerUnavailableError
from wallet.models import CreditGuard

# Far above what a person does: a few checkouts a day, a card saved once.
CHECKOUTS_PER_HOUR = 20
CARD_SETUPS_PER_HOUR = 10


def count(
    user_id: str, kind: str, per_hour: int, refused: type[Exception], now: datetime | None = None
) -> None:
    """One more `kind` for `user_id` this hour; `refused(user_id)` past `per_hour`. The counter expires."""
    hour = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    counter = CreditGuard(user_id, f"{kind}#{hour:%Y-%m-%dT%H}")
    try:
        counter.update(
            actions=[CreditGuard.amount.add(1), CreditGuard.expires_at.set(hour + timedelta(hours=2))],
            condition=CreditGuard.amount.does_not_exist() | (CreditGuard.amount < per_hour),
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise refused(user_id) from exc
        raise LedgerUnavailableError(f"the ledger could not count a {kind}") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError(f"the ledger could not count a {kind}") from exc

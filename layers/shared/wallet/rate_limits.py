"""Per-user limits on the page routes that call Stripe: a count per user (the JWT's `sub`) and hour in
the guard table, one conditional update each, refused past the limit. API Gateway's route throttles are
shared by every client, so without these one signed-in user could spend them, and Stripe's rate limit,
for everyone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from wallet.errors import LedgerUnavailableError
from wallet.models import CreditGuard

# Far above what a person does: a few checkouts a day, a card saved once.
CHECKOUTS_PER_HOUR = 20
CARD_SETUPS_PER_HOUR = 10


def count(
    user_id: str, kind: str, per_hour: int, refused: type[Exception], now: datetime | None = None
) -> None:
    """One more `kind` for `user_id` this hour; `refused(user_id)` past `per_hour`.

    One item per user and kind, `rate#<kind>`, holding only `requests` and `requestsHour`: names no other
    guard item has, so the role that counts cannot change a hold or an idempotency key. Each step is one
    conditional update: count on within the hour, or start the hour again at 1."""
    hour = f"{(now or datetime.now(UTC)):%Y-%m-%dT%H}"
    counter = CreditGuard(user_id, f"rate#{kind}")
    steps: tuple[tuple[list[Action], Condition], ...] = (
        (
            [CreditGuard.requests.add(1)],
            (CreditGuard.requests_hour == hour) & (CreditGuard.requests < per_hour),
        ),
        (
            [CreditGuard.requests.set(1), CreditGuard.requests_hour.set(hour)],
            CreditGuard.requests_hour.does_not_exist() | (CreditGuard.requests_hour != hour),
        ),
    )
    # Twice: a request that finds the hour just started by another one counts on in the second round.
    for _ in range(2):
        for actions, condition in steps:
            try:
                counter.update(actions=actions, condition=condition)
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise LedgerUnavailableError(f"the ledger could not count a {kind}") from exc
                continue
            except PynamoDBException as exc:
                raise LedgerUnavailableError(f"the ledger could not count a {kind}") from exc
            return
    raise refused(user_id)

"""Free credits: an operator's promotional grant (POST /api/users/{userId}/grants) and the sign-up grant a
new user receives once. Each is a `grant` row, maybe expiring, made in one transaction with its balance
and the guard that makes it happen once; wallet.grants folds it into the account's grants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet import account, settings, writes
from wallet.account import Receipt
from wallet.amounts import whole
from wallet.errors import InvalidExpiryError
from wallet.models import CreditBalance, CreditGuard, CreditTransaction
from wallet.writes import GRANT, balance_actions, transact

# What one promotional grant may give: $10,000 of credits at a cent each.
MAX_GRANT_CREDITS = 1_000_000
# How far ahead a grant may expire; a sign-up grant's days are bounded the same (wallet.settings).
MAX_EXPIRY_DAYS = 1_095
# The longest expiry text taken: an ISO 8601 time with its zone is about 30 characters.
MAX_EXPIRY_TEXT = 40
PROMOTION = "promotion"
SIGNUP = "signup"
SIGNUP_GUARD = "signup"


def check_credits(credits: object) -> int:
    return whole(credits, name="credits", minimum=1, maximum=MAX_GRANT_CREDITS)


def check_expiry(text: object, now: datetime) -> int | None:
    """A grant's expiry as Unix seconds: an ISO 8601 time with its zone (2027-01-12T00:00:00Z), after now
    and at most MAX_EXPIRY_DAYS ahead, whole seconds; None when absent."""
    if text is None:
        return None
    refused = InvalidExpiryError(
        "expiresAt must be an ISO 8601 time with its zone, such as 2027-01-12T00:00:00Z, after now and at "
        f"most {MAX_EXPIRY_DAYS} days ahead"
    )
    if not isinstance(text, str) or len(text) > MAX_EXPIRY_TEXT:
        raise refused
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise refused from exc
    if moment.tzinfo is None or moment.microsecond:
        raise refused
    if not now < moment <= now + timedelta(days=MAX_EXPIRY_DAYS):
        raise refused
    return int(moment.timestamp())


def grant(
    user_id: str,
    credits: object,
    *,
    reason: str,
    expires_at: object,
    idempotency_key: str,
    actor: str,
    currency: str,
) -> Receipt:
    """An operator's promotional grant of `credits`, with its reason, maybe expiring; once per key.
    Everything is checked before anything is written."""
    amount = check_credits(credits)
    expiry = check_expiry(expires_at, datetime.now(UTC))
    if not reason.strip():
        raise ValueError("a grant needs a reason")
    return account.keyed_change(
        user_id,
        amount,
        kind=GRANT,
        source=PROMOTION,
        idempotency_key=idempotency_key,
        description=reason.strip(),
        actor=actor,
        currency=currency,
        expires_at=expiry,
    )


def paid_expiry() -> int | None:
    """When paid credits credited now expire (Unix seconds), by PAID_CREDITS_EXPIRE_DAYS; None: never."""
    days = settings.paid_credits_expire_days()
    return None if days is None else int((datetime.now(UTC) + timedelta(days=days)).timestamp())


def welcome(user_id: str, credits: int, expire_days: int | None, currency: str) -> bool:
    """The sign-up grant, given once per user: its guard (`signup`), its row and the balance in one
    transaction, so concurrent first visits grant it once. True when this call gave it."""
    if credits <= 0:
        return False
    now = writes.now()
    expiry = None
    if expire_days:
        expiry = int((datetime.now(UTC) + timedelta(days=expire_days)).timestamp())
    transaction_id = str(ULID())
    row = CreditTransaction(
        user_id,
        transaction_id,
        type=GRANT,
        amount=credits,
        source=SIGNUP,
        description="Sign-up credits",
        grant_expires_at=expiry,
        created_at=now,
    )

    def write(transaction: TransactWrite) -> None:
        transaction.update(
            CreditGuard(user_id, SIGNUP_GUARD),
            actions=[CreditGuard.signed_up_at.set(now)],
            condition=CreditGuard.guard_id.does_not_exist(),
        )
        transaction.save(row, condition=CreditTransaction.transaction_id.does_not_exist())
        transaction.update(
            CreditBalance(user_id),
            actions=[*balance_actions(credits, currency, now), *writes.grant_actions(None, expiry)],
        )

    return transact(write, "the ledger could not record the sign-up grant") is None

"""The ledger: credits a balance exactly once per payment, and reads the balance and its history back.

It knows nothing of HTTP, Lambda or Stripe: callers hand it a user id, an amount and a payment id.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite
from ulid import ULID

from wallet.errors import InvalidAmountError, InvalidPageError, LedgerUnavailableError
from wallet.models import CreditBalance, CreditTransaction, connection

DEPOSIT = "deposit"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200
# Real DynamoDB cancels one of two transactions that touch the same item at once; the loser retries.
CONFLICT_ATTEMPTS = 4


class Credit(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"


@dataclass(frozen=True, slots=True)
class Transaction:
    id: str
    type: str
    amount: int
    source: str
    payment_id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Page:
    transactions: list[Transaction]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    balance: int
    page: Page


def check_amount(amount: object) -> int:
    # bool is an int in Python; True credits are not a thing.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidAmountError(f"amount must be a positive whole number of minor units, not {amount!r}")
    return amount


def add_credits(
    user_id: str,
    amount: int,
    *,
    source: str,
    payment_id: str,
    currency: str,
    stripe_session_id: str | None = None,
    stripe_payment_intent_id: str | None = None,
    stripe_event_id: str | None = None,
) -> Credit:
    """Deposit `amount` for `payment_id` once: a second call for the same payment changes nothing.

    One TransactWriteItems puts the deposit row, on condition that its id is new, and adds the
    amount to the balance; either both happen or neither does.
    """
    check_amount(amount)
    if not user_id or not payment_id:
        raise ValueError("user_id and payment_id are required")
    now = _now()
    deposit = CreditTransaction(
        user_id,
        payment_id,
        type=DEPOSIT,
        amount=amount,
        source=source,
        payment_id=payment_id,
        stripe_session_id=stripe_session_id,
        stripe_payment_intent_id=stripe_payment_intent_id,
        stripe_event_id=stripe_event_id,
        created_at=now,
    )
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(deposit, condition=CreditTransaction.transaction_id.does_not_exist())
                transaction.update(
                    CreditBalance(user_id),
                    actions=[
                        CreditBalance.balance.add(amount),
                        CreditBalance.currency.set(currency),
                        CreditBalance.updated_at.set(now),
                    ],
                )
        except TransactWriteError as exc:
            reasons = [reason.code if reason else None for reason in exc.cancellation_reasons]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return Credit.ALREADY_CREDITED
            if "TransactionConflict" in reasons and attempt < CONFLICT_ATTEMPTS:
                time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret
                continue
            raise LedgerUnavailableError("the ledger could not record the deposit") from exc
        except PynamoDBException as exc:
            raise LedgerUnavailableError("the ledger could not record the deposit") from exc
        return Credit.CREDITED
    raise AssertionError("unreachable: the last attempt returns or raises")


def get_balance(user_id: str) -> int:
    """The user's balance in minor units; 0 for a user who never topped up."""
    try:
        return int(CreditBalance.get(user_id, consistent_read=True).balance)
    except DoesNotExist:
        return 0
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the balance") from exc


def list_transactions(user_id: str, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> Page:
    """The user's transactions, newest first, `limit` at a time; pass `next_cursor` on for more."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidPageError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    start = None if cursor is None else {"userId": {"S": user_id}, "transactionId": {"S": _decode(cursor)}}
    try:
        # One more than asked tells whether another page exists without a second query.
        rows = list(
            CreditTransaction.query(
                user_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
            )
        )
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the history") from exc
    page = rows[:limit]
    next_cursor = _encode(page[-1].transaction_id) if len(rows) > limit else None
    return Page([_transaction(row) for row in page], next_cursor)


def statement(user_id: str, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> Statement:
    """The balance and one page of history: the two reads the balance page needs."""
    page = list_transactions(user_id, limit, cursor)
    return Statement(get_balance(user_id), page)


def _transaction(row: CreditTransaction) -> Transaction:
    return Transaction(
        id=row.transaction_id,
        type=row.type,
        amount=int(row.amount),
        source=row.source,
        payment_id=row.payment_id,
        created_at=row.created_at,
    )


def _encode(transaction_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": transaction_id}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    """The transaction id a cursor resumes after; it only ever names a row of the caller's own history."""
    refused = InvalidPageError("cursor is not one this API returned; start again without it")
    # The cursors issued are about 50 characters; a long one could nest JSON past the recursion limit.
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise refused
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        transaction_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
        ULID.from_str(transaction_id)
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError) as exc:
        raise refused from exc
    return str(transaction_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

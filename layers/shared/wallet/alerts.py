"""The backend's low balance threshold of one user: below it, the wallet's `balance.low` event goes out
once per dip (wallet.wallet_events). Kept on the user's balance item, so the balance stream's images
carry it with the balance it is compared to; none set: the stack's LowBalanceThreshold."""

from __future__ import annotations

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.update import Action

from wallet.amounts import spelled
from wallet.errors import InvalidAmountError, LedgerUnavailableError
from wallet.models import CreditBalance
from wallet.settings import MAX_LOW_BALANCE_THRESHOLD


def set_low_balance_threshold(user_id: str, threshold: object) -> int | None:
    """Save `threshold` (credits, 0: never for this user) or, with None, go back to the stack's default.
    A bad value raises InvalidAmountError before anything is written."""
    action: Action
    if threshold is None:
        action = CreditBalance.low_balance_threshold.remove()
        saved = None
    else:
        # bool is an int in Python; a threshold of true credits is not a thing.
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise InvalidAmountError(_refusal(threshold))
        if not 0 <= threshold <= MAX_LOW_BALANCE_THRESHOLD:
            raise InvalidAmountError(_refusal(threshold))
        saved = threshold
        action = CreditBalance.low_balance_threshold.set(saved)
    try:
        CreditBalance(user_id).update(actions=[action])
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not save the threshold") from exc
    return saved


def _refusal(threshold: object) -> str:
    return (
        f"lowBalanceThreshold must be a whole number of credits from 0 to {MAX_LOW_BALANCE_THRESHOLD}, "
        f"or null for the default, not {spelled(threshold)}"
    )

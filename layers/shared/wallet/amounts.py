"""Amounts of money in whole minor units (cents), and the one bound on every amount a caller names:
spends, adjustments, auto top-up thresholds, packs, and what the page formats."""

from __future__ import annotations

import json

from wallet.errors import InvalidAmountError

# 2^53 - 1: exact as a JSON number in every parser (JavaScript's Number.MAX_SAFE_INTEGER), and far
# inside DynamoDB's 38 digits, so sums of such amounts stay exact where balances are stored and read.
MAX_AMOUNT = 2**53 - 1


def spelled(value: object) -> str:
    """A value as JSON spells it (true, null, "250", 2.5), for messages about what a caller sent."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def whole(value: object, *, name: str, minimum: int, maximum: int = MAX_AMOUNT) -> int:
    """`value` if it is a whole number of minor units from `minimum` to `maximum`, else a clear error."""
    # bool is an int in Python; true credits are not a thing.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidAmountError(
            f"{name} must be a whole number of minor units from {minimum} to {maximum}, not {spelled(value)}"
        )
    return value

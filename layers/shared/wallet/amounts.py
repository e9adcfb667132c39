"""Amounts of money in whole minor units (cents), and the one bound on every amount a caller names:
spends, adjustments, auto top-up thresholds, packs, and what the page formats."""

from __future__ import annotations

import json
import sys

from wallet.errors import InvalidAmountError

# 2^53 - 1: exact as a JSON number in every parser (JavaScript's Number.MAX_SAFE_INTEGER), and far
# inside DynamoDB's 38 digits, so sums of such amounts stay exact where balances are stored and read.
MAX_AMOUNT = 2**53 - 1


class WrittenNumber(float):
    """A JSON number with a fraction or an exponent, as `json.loads(..., parse_float=WrittenNumber)` reads
    it: still a float, so never a whole amount, but keeping the caller's text for messages (1e2, not 100.0).
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> WrittenNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


def written_integer(text: str) -> int | WrittenNumber:
    """A JSON integer as `json.loads(..., parse_int=written_integer)` reads it: an int, or past Python's
    limit on the digits int() converts (4,300 by default), a WrittenNumber refused like any non-integer."""
    if len(text.lstrip("-")) <= sys.get_int_max_str_digits():
        return int(text)
    return WrittenNumber(text)


def spelled(value: object) -> str:
    """A value as the caller wrote it (1e2, 2.50) or as JSON spells it (true, null, "250"), for messages
    about what a caller sent."""
    if isinstance(value, WrittenNumber):
        text = value.text
    else:
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

"""The mark a Checkout Session carries from its creation: an HMAC, with a key only this product's functions
read, over what it may be credited for (user, payment, credits) and what it must have been paid (amount,
currency), and what Checkout may change of the totals (tax, promotion codes: wallet.totals).
Fulfilment credits what the mark fixed, not today's price list, so a price change strands no
open or settling session; metadata written by anyone else holding an API key of the account carries no
valid mark, so it mints nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

METADATA_KEY = "creditsMark"
VERSION = "v1"


def mark(
    key: str, *, user_id: str, payment_id: str, credits: int, amount: int, currency: str, terms: str = ""
) -> str:
    # JSON, so no value can run into the next whatever it holds. No terms, no seventh value: a session made
    # before terms existed keeps the mark it was made with.
    fields: list[object] = [VERSION, user_id, payment_id, credits, amount, currency.lower()]
    message = json.dumps([*fields, terms] if terms else fields).encode()
    return f"{VERSION}.{hmac.new(key.encode(), message, hashlib.sha256).hexdigest()}"


def holds(
    value: str,
    keys: Iterable[str],
    *,
    user_id: str,
    payment_id: str,
    credits: int,
    amount: int,
    currency: str,
    terms: str = "",
) -> bool:
    """Whether `value` is the mark of exactly these terms under one of `keys` (the current, or a previous
    one kept during a rotation)."""
    return any(
        hmac.compare_digest(
            value.encode(),
            mark(
                key,
                user_id=user_id,
                payment_id=payment_id,
                credits=credits,
                amount=amount,
                currency=currency,
                terms=terms,
            ).encode(),
        )
        for key in keys
    )

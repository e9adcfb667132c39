"""The price list: what each amount costs and how many credits it grants. The server is its only source."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from wallet.amounts import MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Pack:
    amount: int
    """The price in minor units of the currency."""
    credits: int
    """The credits it adds to the balance, in the same minor units; more than `amount` for a bonus pack."""


def parse_packs(spec: str) -> tuple[Pack, ...]:
    """`"1000,5000,10000"` or `"1000,5000:5500"` (price:credits for a bonus pack), in the order given."""
    packs: list[Pack] = []
    for item in spec.split(","):
        price, _, credits = item.strip().partition(":")
        if not price.isdigit() or not (credits or price).isdigit():
            raise ValueError(f"{item.strip()!r} is not an amount in minor units, or price:credits")
        pack = Pack(int(price), int(credits or price))
        if not (0 < pack.amount <= MAX_AMOUNT and 0 < pack.credits <= MAX_AMOUNT):
            raise ValueError(f"{item.strip()!r}: amounts must be from 1 to {MAX_AMOUNT}")
        if any(existing.amount == pack.amount for existing in packs):
            raise ValueError(f"{pack.amount} is listed twice")
        packs.append(pack)
    return tuple(packs)


def base_credits(amount: int, packs: tuple[Pack, ...]) -> int:
    """The credits an amount the customer chose buys: at the packs' base rate, the least generous pack's
    credits per minor unit (so no bonus), rounded down to whole credits; 1:1 when the packs are plain."""
    base = min(packs, key=lambda pack: (Fraction(pack.credits, pack.amount), pack.amount))
    return amount * base.credits // base.amount


SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}


def label(amount: int, currency: str) -> str:
    """`$10`, `$12.50`, `25 CHF`: a short price for a button; the page formats balances itself."""
    whole, cents = divmod(amount, 100)
    number = f"{whole:,}" if cents == 0 else f"{whole:,}.{cents:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"

"""Which credits an account holds, credit by credit: a reference written apart from `wallet.grants` (it
imports nothing from `wallet`), so that a test can hold the product's lots against it.

Every credit is one token that remembers its grant, the grant's kind (free or paid), its expiry (Unix
seconds, or None) and its state: `left`, `held` by a hold, or gone as `used`, `expired` or `reversed`.
The rule, as docs/ARCHITECTURE.md states it ("Grants"), applied one token at a time: a debit at instant
t takes, one by one, the token that sorts first by

    (not of the payment a refund or dispute names, expired at t, expiry (never last), paid, grant id)

and what it cannot find is debt, which the next tokens to arrive pay, oldest debt first. A hold takes
tokens the same way and remembers the order it took them in; its capture uses them in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

NEVER = float("inf")


@dataclass
class Token:
    grant: str
    paid: bool
    expires: int | None
    state: str = "left"
    hold: str | None = None


@dataclass
class Account:
    tokens: list[Token] = field(default_factory=list)
    debt: list[str] = field(default_factory=list)
    """One entry per credit owed: what it was taken as."""
    holds: dict[str, list[Token | None]] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)
    """What each paid grant cost, minor units."""
    sizes: dict[str, int] = field(default_factory=dict)

    def _arrive(self, token: Token) -> None:
        if self.debt:
            token.state = self.debt.pop(0)
        self.tokens.append(token)

    def grant(self, grant_id: str, credits: int, *, paid: int | None, expires: int | None) -> None:
        """A grant of `credits`: paid (for `paid` minor units) or free (paid None)."""
        self.sizes[grant_id] = credits
        if paid is not None:
            self.prices[grant_id] = paid
        for _ in range(credits):
            self._arrive(Token(grant_id, paid is not None, expires))

    def _pick(self, at_s: float, first: str | None) -> Token | None:
        candidates = [token for token in self.tokens if token.state == "left"]
        if not candidates:
            return None

        def rank(token: Token) -> tuple[bool, bool, float, bool, str]:
            expired = token.expires is not None and token.expires <= at_s
            expiry = NEVER if token.expires is None else token.expires
            return (token.grant != first, expired, expiry, token.paid, token.grant)

        return min(candidates, key=rank)

    def take(self, credits: int, at_s: float, *, as_: str = "used", payment: str | None = None) -> None:
        for _ in range(credits):
            token = self._pick(at_s, payment)
            if token is None:
                self.debt.append(as_)
            else:
                token.state = as_

    def hold(self, hold_id: str, credits: int, at_s: float) -> None:
        taken: list[Token | None] = []
        for _ in range(credits):
            token = self._pick(at_s, None)
            if token is not None:
                token.state, token.hold = "held", hold_id
            taken.append(token)
        self.holds[hold_id] = taken

    def settle(self, hold_id: str, captured: int, at_s: float) -> None:
        taken = self.holds.pop(hold_id)
        for index, token in enumerate(taken):
            used = index < captured
            if token is None:
                if used:
                    self.debt.append("used")
                continue
            token.hold = None
            if used:
                token.state = "used"
            else:
                token.state = "left"
                if self.debt:
                    token.state = self.debt.pop(0)
        if captured > len(taken):
            self.take(captured - len(taken), at_s)

    def expire(self, grant_id: str, credits: int, at_s: float) -> None:
        """An `expired` row of `credits` for `grant_id`."""
        mine = [token for token in self.tokens if token.grant == grant_id and token.state == "left"]
        for token in mine[:credits]:
            token.state = "expired"
        self.take(max(0, credits - len(mine)), at_s, as_="expired")

    def give_back(self, payment: str, credits: int, new_grant: str) -> None:
        """A refund failed or a dispute was won: what the payment's grant lost to reversals comes back to
        it; anything beyond is a free grant of its own."""
        reversed_ = [token for token in self.tokens if token.grant == payment and token.state == "reversed"]
        for token in reversed_[:credits]:
            token.state = "left"
            if self.debt:
                token.state = self.debt.pop(0)
        extra = credits - min(credits, len(reversed_))
        if extra:
            self.grant(new_grant, extra, paid=None, expires=None)

    # -- what a test compares ----------------------------------------------------------------------

    def count(self, grant_id: str, state: str) -> int:
        return sum(1 for token in self.tokens if token.grant == grant_id and token.state == state)

    def balance(self) -> int:
        """left + held - debt: what the account owns."""
        owned = sum(1 for token in self.tokens if token.state in ("left", "held"))
        return owned - len(self.debt)

    def due(self, now_s: float) -> dict[str, int]:
        """What expiring now would take, by grant: credits left (not held) of grants past their expiry."""
        found: dict[str, int] = {}
        for token in self.tokens:
            if token.state == "left" and token.expires is not None and token.expires <= now_s:
                found[token.grant] = found.get(token.grant, 0) + 1
        return found

    def money_gone(self) -> int:
        """What the paid credits gone so far cost: for each paid grant, its price times the share of its
        credits gone, rounded half up once per grant."""
        total = 0
        for grant_id, price in self.prices.items():
            size = self.sizes[grant_id]
            gone = sum(
                1
                for token in self.tokens
                if token.grant == grant_id and token.state in ("used", "expired", "reversed")
            )
            if size:
                exact = Fraction(price * gone, size)
                total += int(exact + Fraction(1, 2)) if exact.denominator != 1 else int(exact)
        return total

    def unused(self) -> tuple[int, int, int]:
        """What the grants hold, left or held: (cost of the paid credits, paid credits, free credits). The
        cost is what was paid less what the credits gone cost (money_gone's rule), grant by grant."""
        paid_credits = sum(1 for token in self.tokens if token.paid and token.state in ("left", "held"))
        free_credits = sum(1 for token in self.tokens if not token.paid and token.state in ("left", "held"))
        return sum(self.prices.values()) - self.money_gone(), paid_credits, free_credits

"""Grants (lots): which credits an account holds, of what kind, bought at what price, until when.

A pure fold of the account's rows in order (wallet.projection keeps it): every row that adds credits
makes a grant, every row that takes credits draws from the grants by the rule below, and a hold keeps
what it reserved apart until it settles. It reads no table and knows no HTTP.

The order credits are used in (docs/ARCHITECTURE.md, "Grants"): the grants live at the row's instant,
soonest expiry first (never-expiring last), then free before paid, then oldest; a refund or dispute first
from its own payment's grant; then grants past their expiry whose `expired` row is not written yet;
beyond that the account is in debt, which the next credits pay first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from wallet.writes import (
    ADJUSTMENT,
    DEPOSIT,
    DISPUTE,
    EXPIRED,
    GRANT,
    HOLD,
    HOLD_EXPIRED,
    HOLD_RELEASED,
    INQUIRY,
    REFUND,
    SPEND,
)

PAID = "paid"
FREE = "free"
# What a debit was, for the books: used (recognised when paid), expired (breakage), or taken back by a
# refund or dispute (a reversal).
USED = "used"
BROKEN = "expired"
REVERSED = "reversed"
PAYMENT_TAKES = frozenset({REFUND, DISPUTE, INQUIRY})
# Paid grants used up are kept this long after they were made, so a refund or dispute finds its own
# grant (Stripe's dispute window is 120 days), and for good once a refund or dispute took from them, so
# what a dispute won or a failed refund gives back returns to them however late; every other grant used
# up is dropped.
KEEP_USED_PAID_MS = 180 * 86_400_000
_NEVER = 2**63
# The stored form's version. The first (no month cursor, no closing figures) is refolded from the rows.
FORMAT = 2
# What each month's books keep of the grants as the month closed (wallet.books reads them): the paid
# credits unused, their cost (deferred revenue), and the free credits unused.
CLOSING = ("close_paid_money", "close_paid_credits", "close_free_credits")


@dataclass(frozen=True, slots=True)
class Row:
    """What the fold needs of a row. `at_ms` is its instant: its ULID's, or a late deposit's createdAt."""

    id: str
    type: str
    amount: int
    at_ms: int
    payment_id: str | None = None
    hold_id: str | None = None
    reserved: int | None = None
    paid: int | None = None
    """A deposit's price, minor units; None on deposits written before prices were recorded."""
    expires_at: int | None = None
    """A grant's expiry, Unix seconds."""
    grant_id: str | None = None
    """An `expired` row's grant."""


@dataclass(slots=True)
class Lot:
    grant_id: str
    kind: str
    credits: int
    paid: int | None
    expires_at: int | None
    at_ms: int
    left: int
    held: int = 0
    used: int = 0
    expired: int = 0
    reversed: int = 0

    def consumed(self) -> int:
        return self.used + self.expired + self.reversed

    def live_at(self, at_ms: int) -> bool:
        return self.expires_at is None or at_ms < self.expires_at * 1000


@dataclass(slots=True)
class Grants:
    """The lots of one account, its debt (credits taken beyond every grant), the holds' reservations
    (hold id -> [[grant id, credits], ...]) and the books by month (wallet.grants.book).

    The books' month is the fold's: a row counts in the later of its own month and the month of the rows
    before it (a row's `createdAt` may precede the one before it by a request's length, and a late
    deposit's is its commit), so a month once closed gets nothing more. When the fold enters a later
    month, the month it leaves keeps what the grants held at its close (CLOSING), from the lots
    themselves: each month's opening + in - out = closing is then a check, not a sum."""

    lots: dict[str, Lot] = field(default_factory=dict)
    debt: list[list[Any]] = field(default_factory=list)
    """[[what, credits], ...] in the order taken: what a credit paying it off counts as."""
    holds: dict[str, list[list[Any]]] = field(default_factory=dict)
    books: dict[str, dict[str, int]] = field(default_factory=dict)
    month: str | None = None
    """The month the fold has reached (YYYY-MM): the month of the latest row folded, or of any before."""
    touched: set[str] = field(default_factory=set, repr=False, compare=False)
    """Grants some credits left since the last prune: the only ones a row can have used up."""

    # -- reading -----------------------------------------------------------------------------------

    def owed(self) -> int:
        return sum(credits for _, credits in self.debt)

    def total(self) -> int:
        """What the grants say the account owns (left + held - debt): its balance + held."""
        return sum(lot.left + lot.held for lot in self.lots.values()) - self.owed()

    def unused(self) -> dict[str, int]:
        """What the grants hold now, left or held: paid credits, their cost not yet recognised (deferred
        revenue, minor units), and free credits; keyed as CLOSING."""
        paid = [lot for lot in self.lots.values() if lot.kind == PAID]
        return {
            "close_paid_money": sum(
                lot.paid - money(lot, lot.consumed()) for lot in paid if lot.paid is not None
            ),
            "close_paid_credits": sum(lot.left + lot.held for lot in paid),
            "close_free_credits": sum(lot.left + lot.held for lot in self.lots.values() if lot.kind == FREE),
        }

    def due(self, now_s: float) -> list[Lot]:
        """Grants past their expiry with credits left that no hold keeps, oldest expiry first."""
        found = [
            lot
            for lot in self.lots.values()
            if lot.expires_at is not None and lot.expires_at <= now_s and lot.left > 0
        ]
        return sorted(found, key=lambda lot: (lot.expires_at or 0, lot.grant_id))

    def expiring(self, now_s: float, within_s: float) -> list[Lot]:
        """Grants with credits left (or held) that expire after now and within `within_s`, soonest first."""
        found = [
            lot
            for lot in self.lots.values()
            if lot.expires_at is not None
            and now_s < lot.expires_at <= now_s + within_s
            and lot.left + lot.held > 0
        ]
        return sorted(found, key=lambda lot: (lot.expires_at or 0, lot.grant_id))

    # -- folding -----------------------------------------------------------------------------------

    def apply(self, row: Row) -> None:
        """Fold one row in. Rows must come in the order the account took them (wallet.projection)."""
        self._enter(month_of(row.at_ms))
        amount = row.amount
        if row.type == HOLD and row.hold_id and row.reserved:
            self.holds[row.hold_id] = self._draw(int(row.reserved), row, into_hold=True)
        elif row.hold_id and row.type in (SPEND, HOLD_RELEASED, HOLD_EXPIRED) and row.hold_id in self.holds:
            self._settle_hold(row.hold_id, -amount if row.type == SPEND else 0, row)
        elif row.type == EXPIRED and row.grant_id in self.lots:
            self._expire(self.lots[row.grant_id], -amount, row)
        elif row.type == EXPIRED:
            self._draw(-amount, row, what=BROKEN)
        elif amount > 0 and row.type in (DEPOSIT, ADJUSTMENT, GRANT):
            self._new_lot(row)
        elif amount > 0:
            # A payment's refund failed, a dispute was won or an inquiry closed: back to its grant.
            self._give_back(row)
        elif amount < 0:
            self._draw(-amount, row, what=REVERSED if row.type in PAYMENT_TAKES else USED)
        self._prune(row.at_ms)

    def _enter(self, month: str) -> None:
        """Move the books to `month` if it is later than theirs, closing the month they leave."""
        if self.month is not None and month <= self.month:
            return
        if self.month is not None:
            self.books.setdefault(self.month, {}).update(self.unused())
            # Once a month, every grant: a paid grant used up is dropped by age, with no row touching it.
            self.touched = set(self.lots)
        self.month = month

    def _order(self, row: Row, first: str | None) -> list[Lot]:
        def key(lot: Lot) -> tuple[int, int, int, int, str]:
            return (
                0 if lot.grant_id == first else 1,
                0 if lot.live_at(row.at_ms) else 1,
                _NEVER if lot.expires_at is None else lot.expires_at,
                0 if lot.kind == FREE else 1,
                lot.grant_id,
            )

        return sorted((lot for lot in self.lots.values() if lot.left > 0), key=key)

    def _draw(self, credits: int, row: Row, what: str = USED, into_hold: bool = False) -> list[list[Any]]:
        """Take `credits` from the lots in order; what they lack becomes debt. Returns what each gave."""
        first = row.payment_id if row.type in PAYMENT_TAKES else None
        taken: list[list[Any]] = []
        for lot in self._order(row, first):
            if not credits:
                break
            part = min(lot.left, credits)
            lot.left -= part
            credits -= part
            if into_hold:
                lot.held += part
            else:
                self._consume(lot, part, what, row)
            taken.append([lot.grant_id, part])
        if credits and into_hold:
            # Reserved beyond every grant: a debt only if the hold's capture uses it.
            taken.append([None, credits])
        elif credits:
            self.debt.append([what, credits])
        return taken

    def _consume(self, lot: Lot, credits: int, what: str, row: Row) -> None:
        """`credits` of `lot` leave the account as `what` (negative: come back), booked in the row's month."""
        before = lot.consumed()
        self.touched.add(lot.grant_id)
        if what == USED:
            lot.used += credits
        elif what == BROKEN:
            lot.expired += credits
        else:
            lot.reversed += credits
        book(self.books, lot, what, credits, before, self.month or month_of(row.at_ms))

    def _credit(self, lot: Lot, credits: int, row: Row) -> None:
        """Credits come to `lot`: they pay the debt first, oldest first, then are left to spend."""
        while credits and self.debt:
            what, owed = self.debt[0]
            part = min(owed, credits)
            self._consume(lot, part, what, row)
            credits -= part
            if part == owed:
                self.debt.pop(0)
            else:
                self.debt[0][1] = owed - part
        lot.left += credits

    def _new_lot(self, row: Row) -> None:
        kind = PAID if row.type == DEPOSIT else FREE
        lot = Lot(row.id, kind, row.amount, row.paid if kind == PAID else None, row.expires_at, row.at_ms, 0)
        self.lots[row.id] = lot
        month = self.books.setdefault(self.month or month_of(row.at_ms), {})
        _add(month, f"{kind}_credits_in", row.amount)
        if kind == PAID and row.paid is not None:
            _add(month, "paid_money_in", row.paid)
        self._credit(lot, row.amount, row)

    def _give_back(self, row: Row) -> None:
        lot = self.lots.get(row.payment_id or "")
        back = 0 if lot is None else min(row.amount, lot.reversed)
        if lot is not None and back:
            self._consume(lot, -back, REVERSED, row)
            self._credit(lot, back, row)
        if row.amount > back:
            # Its grant was dropped (used up long ago), or gave back more than it took: a grant of its own.
            self._new_lot(Row(row.id, ADJUSTMENT, row.amount - back, row.at_ms))

    def _settle_hold(self, hold_id: str, captured: int, row: Row) -> None:
        """A hold's credits: `captured` of them are used (in the order they were reserved), the rest
        go back to their grants."""
        for grant_id, part in self.holds.pop(hold_id):
            used = min(part, captured)
            captured -= used
            lot = self.lots.get(grant_id) if grant_id else None
            if lot is None:
                # Reserved beyond every grant: what the capture uses of it is taken beyond them, a debt.
                if used:
                    self.debt.append([USED, used])
                continue
            lot.held -= part
            if used:
                self._consume(lot, used, USED, row)
            self._credit(lot, part - used, row)
        if captured:
            self._draw(captured, row)

    def _expire(self, lot: Lot, credits: int, row: Row) -> None:
        part = min(lot.left, credits)
        lot.left -= part
        self._consume(lot, part, BROKEN, row)
        if credits > part:
            self._draw(credits - part, row, what=BROKEN)

    def _prune(self, at_ms: int) -> None:
        """Drop the grants used up among those touched: a fold's cost per row does not grow with the
        number of grants the account holds."""
        touched, self.touched = self.touched, set()
        done = [
            grant_id
            for grant_id in touched
            if (lot := self.lots.get(grant_id)) is not None
            and lot.left == 0
            and lot.held == 0
            and (lot.kind == FREE or (at_ms - lot.at_ms > KEEP_USED_PAID_MS and not lot.reversed))
            and lot.consumed() == lot.credits
        ]
        for grant_id in done:
            del self.lots[grant_id]

    # -- storing -----------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "lots": [asdict(lot) for lot in self.lots.values()],
                "debt": self.debt,
                "holds": self.holds,
                "books": self.books,
                "month": self.month,
                "format": FORMAT,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Grants:
        if not text:
            return cls()
        data = json.loads(text)
        lots = {lot["grant_id"]: Lot(**lot) for lot in data["lots"]}
        return cls(lots, data["debt"], data["holds"], data["books"], data.get("month"))

    @staticmethod
    def current_form(text: str | None) -> bool:
        """Whether a stored form is this release's; an earlier one's books lack what months closed with,
        and the projection folds the rows again rather than read them (wallet.projection.stored)."""
        return not text or json.loads(text).get("format") == FORMAT


def fold(rows: list[Row], grants: Grants | None = None) -> Grants:
    """The grants after `rows`, in order, folded onto `grants` (or onto none)."""
    grants = grants or Grants()
    for row in rows:
        grants.apply(row)
    return grants


def month_of(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m")


def money(lot: Lot, consumed: int) -> int:
    """What `consumed` credits of a paid grant cost, rounded half up on the running total, so a grant's
    consumptions add up to exactly what was paid for it once all its credits are gone."""
    if lot.paid is None or lot.credits <= 0:
        return 0
    sign = -1 if consumed < 0 else 1
    return sign * ((2 * lot.paid * abs(consumed) + lot.credits) // (2 * lot.credits))


def book(
    books: dict[str, dict[str, int]], lot: Lot, what: str, credits: int, before: int, month_name: str
) -> None:
    """Count `credits` of `lot` leaving as `what` in `month_name`: credits by kind, and for paid grants
    the money at cost basis (recognised revenue, breakage, reversals)."""
    month = books.setdefault(month_name, {})
    _add(month, f"{lot.kind}_{what}", credits)
    if lot.kind == PAID:
        _add(month, f"money_{what}", money(lot, before + credits) - money(lot, before))


def _add(counters: dict[str, int], name: str, value: int) -> None:
    counters[name] = counters.get(name, 0) + value

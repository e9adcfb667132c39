"""The books a finance team closes each month, per currency: prepaid credits are deferred revenue until
they are used (revenue recognised) or expire (breakage), and a refund or dispute reverses its share.

For one month and one account: the deferred revenue it opened with (paid credits unused, at their cost
basis), purchases, revenue recognised, breakage, reversals (refunds and disputes), and the deferred
revenue it closed with; the same in credits for paid credits, and in credits alone for free grants,
which cost nothing. The figures come from the account's grants (wallet.grants, kept by
wallet.projection): the month's movements from its books, the opening and closing from what the grants
held as the month before it and the month itself closed, read off the lots, not summed from the
movements. So each line proves itself: opening + in - out = closing, per account and in total, or the
line is listed as not adding up.

A month is complete once SETTLE_SECONDS have passed since its end: no row of it can commit later.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import PynamoDBException

from wallet import account, projection
from wallet.errors import InvalidPageError, InvalidPeriodError, LedgerUnavailableError
from wallet.grants import BROKEN, CLOSING, REVERSED, USED, Grants
from wallet.models import CreditBalance

PERIOD = re.compile(r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])")
# Accounts a page of the report reads (GET /api/books/{period}): by default, and at most.
DEFAULT_PAGE = 25
MAX_PAGE = 100
MAX_CURSOR_LENGTH = 1500


@dataclass(slots=True)
class Line:
    """One account's month (`user_id`), or one currency's total (`user_id` None). Money in minor units."""

    currency: str
    user_id: str | None = None
    opening_deferred: int = 0
    purchases: int = 0
    recognised: int = 0
    breakage: int = 0
    reversals: int = 0
    closing_deferred: int = 0
    opening_paid_credits: int = 0
    paid_credits_in: int = 0
    paid_credits_used: int = 0
    paid_credits_expired: int = 0
    paid_credits_reversed: int = 0
    closing_paid_credits: int = 0
    opening_free_credits: int = 0
    free_credits_in: int = 0
    free_credits_used: int = 0
    free_credits_expired: int = 0
    free_credits_reversed: int = 0
    closing_free_credits: int = 0

    def unbalanced(self) -> list[str]:
        """Which of the three accounts (deferred revenue, paid credits, free credits) does not add up."""
        checks = {
            "deferred": (
                self.opening_deferred,
                self.purchases,
                self.recognised + self.breakage + self.reversals,
                self.closing_deferred,
            ),
            "paid_credits": (
                self.opening_paid_credits,
                self.paid_credits_in,
                self.paid_credits_used + self.paid_credits_expired + self.paid_credits_reversed,
                self.closing_paid_credits,
            ),
            "free_credits": (
                self.opening_free_credits,
                self.free_credits_in,
                self.free_credits_used + self.free_credits_expired + self.free_credits_reversed,
                self.closing_free_credits,
            ),
        }
        return [
            name for name, (opened, came, went, closed) in checks.items() if opened + came - went != closed
        ]

    def idle(self) -> bool:
        """Nothing held, nothing moved: an account the month's report need not list."""
        return not any(getattr(self, name) for name in NUMBERS)

    def add(self, other: Line) -> None:
        for name in NUMBERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        """As the API and `make report` answer it: camelCase names."""
        return {_camel(name): value for name, value in asdict(self).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


NUMBERS = tuple(item.name for item in fields(Line) if item.name not in ("currency", "user_id"))
# The figures as the API names them.
FIGURES = tuple(_camel(name) for name in NUMBERS)


def page(period: str, query: Callable[[str], str | None], default_currency: str) -> dict[str, Any]:
    """GET /api/books/{period}: a page of accounts (`limit`, `cursor`), their lines and the page's totals."""
    now = time.time()
    found = report(
        parse_period(period, now),
        now,
        default_currency=default_currency,
        cursor=_cursor(query("cursor")),
        limit=_limit(query("limit")),
        keep=True,
    )
    return {
        "period": found.period,
        "complete": found.complete,
        "balanced": found.balanced(),
        "accounts": [line.to_dict() for line in found.lines],
        "accountsRead": found.accounts,
        "totals": [found.totals[currency].to_dict() for currency in sorted(found.totals)],
        "unbalanced": [line.to_dict() for line in found.unbalanced],
        "nextCursor": None if found.next_cursor is None else encode_cursor(found.next_cursor),
    }


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": user_id}).encode()).decode().rstrip("=")


def _cursor(raw: str | None) -> str | None:
    if raw is None:
        return None
    refused = InvalidPageError("cursor is not one this API returned; start again without it")
    if len(raw) > MAX_CURSOR_LENGTH:
        raise refused
    try:
        found = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["after"]
    except (ValueError, TypeError, KeyError) as exc:
        raise refused from exc
    if not isinstance(found, str) or not found:
        raise refused
    return found


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    # ASCII digits, and few of them: int() refuses "²" and anything over 4300 digits.
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > len(str(MAX_PAGE))
        or not 1 <= int(raw) <= MAX_PAGE
    ):
        raise InvalidPageError(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def parse_period(text: str, now_s: float) -> str:
    """A month as YYYY-MM, at most the current one."""
    match = PERIOD.fullmatch(text or "")
    if match is None:
        raise InvalidPeriodError("period must be a month, YYYY-MM")
    if text > datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m"):
        raise InvalidPeriodError("period must not be in the future")
    return text


def complete(period: str, now_s: float) -> bool:
    """Whether every row of the month has committed: SETTLE_SECONDS after its end."""
    year, month = int(period[:4]), int(period[5:])
    end = calendar.timegm((year, month, calendar.monthrange(year, month)[1], 0, 0, 0)) + 86_400
    return now_s >= end + projection.SETTLE_SECONDS


def previous(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def closing(grants: Grants, period: str) -> dict[str, int]:
    """What the grants held when `period` closed (or hold now, when the fold has not gone past it)."""
    if grants.month is None or grants.month <= period:
        # No row after the month: what the grants hold now is what they held at its end.
        return grants.unused() if grants.month is not None else dict.fromkeys(CLOSING, 0)
    # The latest month at or before the period with books was closed when the fold left it.
    months = [month for month in grants.books if month <= period]
    if not months:
        return dict.fromkeys(CLOSING, 0)
    closed = grants.books[max(months)]
    return {name: int(closed.get(name, 0)) for name in CLOSING}


def line(grants: Grants, period: str, currency: str, user_id: str | None = None) -> Line:
    """The account's month, from its grants folded at least to the month's end."""
    opened, closed = closing(grants, previous(period)), closing(grants, period)
    moved = grants.books.get(period, {})

    def out(kind: str, what: str) -> int:
        return int(moved.get(f"{kind}_{what}", 0))

    return Line(
        currency=currency,
        user_id=user_id,
        opening_deferred=opened["close_paid_money"],
        purchases=int(moved.get("paid_money_in", 0)),
        recognised=int(moved.get(f"money_{USED}", 0)),
        breakage=int(moved.get(f"money_{BROKEN}", 0)),
        reversals=int(moved.get(f"money_{REVERSED}", 0)),
        closing_deferred=closed["close_paid_money"],
        opening_paid_credits=opened["close_paid_credits"],
        paid_credits_in=int(moved.get("paid_credits_in", 0)),
        paid_credits_used=out("paid", USED),
        paid_credits_expired=out("paid", BROKEN),
        paid_credits_reversed=out("paid", REVERSED),
        closing_paid_credits=closed["close_paid_credits"],
        opening_free_credits=opened["close_free_credits"],
        free_credits_in=int(moved.get("free_credits_in", 0)),
        free_credits_used=out("free", USED),
        free_credits_expired=out("free", BROKEN),
        free_credits_reversed=out("free", REVERSED),
        closing_free_credits=closed["close_free_credits"],
    )


@dataclass
class Report:
    period: str
    complete: bool
    """Whether the month has ended SETTLE_SECONDS ago; a report of an open month is month to date."""
    totals: dict[str, Line] = field(default_factory=dict)
    """By currency."""
    accounts: int = 0
    """Accounts read, idle or not."""
    unbalanced: list[Line] = field(default_factory=list)
    """Accounts whose month does not add up: a defect, for a person to look at."""
    lines: list[Line] = field(default_factory=list)
    """The accounts' lines, idle ones left out, when the report was asked to keep them."""
    next_cursor: str | None = None
    """Where a report read page by page goes on (None: it has read every account)."""

    def balanced(self) -> bool:
        return not self.unbalanced and not any(total.unbalanced() for total in self.totals.values())


def report(
    period: str,
    now_s: float,
    *,
    default_currency: str,
    cursor: str | None = None,
    limit: int | None = None,
    write: Callable[[Line], None] | None = None,
    keep: bool = False,
) -> Report:
    """The month's books over every account from `cursor` on (at most `limit` of them read), each
    account's line handed to `write` as it is made (idle ones are not), so the report's memory is one
    account's grants and the totals, however many accounts and rows there are; `keep` keeps the lines
    too (for a page of accounts)."""
    result = Report(period, complete(period, now_s))
    if keep:
        write = result.lines.append
    try:
        scan = CreditBalance.scan(
            last_evaluated_key=None if cursor is None else {"userId": {"S": cursor}},
            limit=limit,
            page_size=min(limit or MAX_PAGE, MAX_PAGE),
            attributes_to_get=["userId", "currency"],
        )
        for item in scan:
            # A hot account's sub-balances are the account's, not accounts.
            if not account.is_sub_balance(item.user_id):
                _account(result, item.user_id, item.currency or default_currency, now_s, write)
        if limit is not None and scan.last_evaluated_key:
            result.next_cursor = scan.last_evaluated_key["userId"]["S"]
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the books could not read the accounts") from exc
    return result


def _account(
    result: Report, user_id: str, currency: str, now_s: float, write: Callable[[Line], None] | None
) -> None:
    found = line(projection.current(user_id, now_s), result.period, currency, user_id)
    result.accounts += 1
    result.totals.setdefault(currency, Line(currency)).add(found)
    if found.unbalanced():
        result.unbalanced.append(found)
    if write is not None and not found.idle():
        write(found)

"""The grants' fold (wallet.grants) against a reference that follows every credit on its own
(tests/reference_grants.py): grants with and without expiry, free and paid, spends, holds and their
captures and releases, refunds and disputes of a payment, their reversal, expiries, debts."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.reference_grants import Account
from wallet import books, grants
from wallet.grants import Grants, Row

START_MS = 1_800_000_000_000


class GrantsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.grants = Grants()
        self.reference = Account()
        self.clock_ms = START_MS
        self.serial = 0
        self.paid: list[str] = []
        self.holds: dict[str, int] = {}
        # The reference's figures as each month closed, and what each month took in, by month.
        self.closed: dict[str, tuple[int, int, int]] = {}
        self.came: dict[str, list[int]] = {}
        self.month: str | None = None

    def _id(self) -> str:
        self.serial += 1
        self.clock_ms += 1
        return f"{self.clock_ms:013d}{self.serial:06d}"

    def _apply(self, **fields: object) -> str:
        month = grants.month_of(self.clock_ms)
        if self.month is not None and month != self.month:
            self.closed[self.month] = self.reference.unused()
        self.month = month
        row_id = str(fields.pop("id", None) or self._id())
        self.grants.apply(Row(id=row_id, at_ms=self.clock_ms, **fields))  # type: ignore[arg-type]
        return row_id

    @property
    def now_s(self) -> float:
        return self.clock_ms / 1000

    @rule(seconds=st.integers(0, 3_000))
    def time_passes(self, seconds: int) -> None:
        self.clock_ms += seconds * 1000

    @rule(days=st.integers(1, 70))
    def days_pass(self, days: int) -> None:
        self.clock_ms += days * 86_400_000

    def _came(self, paid: int, paid_credits: int, free_credits: int) -> None:
        month = grants.month_of(self.clock_ms)
        counts = self.came.setdefault(month, [0, 0, 0])
        for index, value in enumerate((paid, paid_credits, free_credits)):
            counts[index] += value

    @rule(
        credits=st.integers(1, 40),
        price=st.none() | st.integers(1, 5_000),
        expires=st.none() | st.integers(1, 5_000),
    )
    def deposit(self, credits: int, price: int | None, expires: int | None) -> None:
        expiry = None if expires is None else int(self.now_s) + expires
        row_id = self._id()
        self._apply(
            id=row_id, type="deposit", amount=credits, paid=price, expires_at=expiry, payment_id=row_id
        )
        self.reference.grant(row_id, credits, paid=price if price is not None else 0, expires=expiry)
        self.paid.append(row_id)
        self._came(price or 0, credits, 0)

    @rule(
        credits=st.integers(1, 40),
        expires=st.none() | st.integers(1, 5_000),
        kind=st.sampled_from(["grant", "adjustment"]),
    )
    def free_grant(self, credits: int, expires: int | None, kind: str) -> None:
        expiry = None if expires is None or kind == "adjustment" else int(self.now_s) + expires
        row_id = self._id()
        self._apply(id=row_id, type=kind, amount=credits, expires_at=expiry)
        self.reference.grant(row_id, credits, paid=None, expires=expiry)
        self._came(0, 0, credits)

    @rule(credits=st.integers(1, 60), kind=st.sampled_from(["spend", "adjustment"]))
    def take(self, credits: int, kind: str) -> None:
        self._apply(type=kind, amount=-credits)
        self.reference.take(credits, self.now_s)

    @precondition(lambda self: self.paid)
    @rule(data=st.data(), credits=st.integers(1, 30), kind=st.sampled_from(["refund", "dispute", "inquiry"]))
    def claw_back(self, data: st.DataObject, credits: int, kind: str) -> None:
        payment = data.draw(st.sampled_from(self.paid))
        self._apply(type=kind, amount=-credits, payment_id=payment)
        self.reference.take(credits, self.now_s, as_="reversed", payment=payment)

    @precondition(lambda self: self.paid)
    @rule(data=st.data(), credits=st.integers(1, 30), kind=st.sampled_from(["dispute_won", "refund_failed"]))
    def give_back(self, data: st.DataObject, credits: int, kind: str) -> None:
        payment = data.draw(st.sampled_from(self.paid))
        row_id = self._id()
        self._apply(id=row_id, type=kind, amount=credits, payment_id=payment)
        before = self.reference.sizes.get(row_id, 0)
        self.reference.give_back(payment, credits, row_id)
        self._came(0, 0, self.reference.sizes.get(row_id, 0) - before)

    @rule(credits=st.integers(1, 30))
    def hold(self, credits: int) -> None:
        # The ledger only makes a hold the available balance covers.
        if self.reference.balance() - sum(self.holds.values()) < credits:
            return
        hold_id = self._id()
        self._apply(id=hold_id, type="hold", amount=0, hold_id=hold_id, reserved=credits)
        self.reference.hold(hold_id, credits, self.now_s)
        self.holds[hold_id] = credits

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), how=st.sampled_from(["capture", "hold_released", "hold_expired"]))
    def settle(self, data: st.DataObject, how: str) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        reserved = self.holds.pop(hold_id)
        captured = data.draw(st.integers(1, reserved)) if how == "capture" else 0
        kind = "spend" if how == "capture" else how
        self._apply(type=kind, amount=-captured, hold_id=hold_id, reserved=reserved)
        self.reference.settle(hold_id, captured, self.now_s)

    @rule()
    def sweep(self) -> None:
        due = {lot.grant_id: lot.left for lot in self.grants.due(self.now_s)}
        assert due == self.reference.due(self.now_s)
        for grant_id, left in due.items():
            self._apply(type="expired", amount=-left, grant_id=grant_id)
            self.reference.expire(grant_id, left, self.now_s)

    @invariant()
    def lots_match(self) -> None:
        reference = self.reference
        assert self.grants.total() == reference.balance()
        assert self.grants.owed() == len(reference.debt)
        for grant_id in reference.sizes:
            lot = self.grants.lots.get(grant_id)
            found = (0, 0) if lot is None else (lot.left, lot.held)
            assert found == (reference.count(grant_id, "left"), reference.count(grant_id, "held")), grant_id
            if lot is not None:
                assert (lot.used, lot.expired, lot.reversed) == (
                    reference.count(grant_id, "used"),
                    reference.count(grant_id, "expired"),
                    reference.count(grant_id, "reversed"),
                ), grant_id

    @invariant()
    def books_add_up(self) -> None:
        money = sum(
            month.get(f"money_{what}", 0)
            for month in self.grants.books.values()
            for what in (grants.USED, grants.BROKEN, grants.REVERSED)
        )
        assert money == self.reference.money_gone()

    @invariant()
    def months_close_as_the_reference_did(self) -> None:
        """Each month's line: its closing figures are the reference's as the month closed (or now, for
        the month the account is in), its opening the month before's, what came in the reference's, and
        what went out is what the rest leaves; and the line says it adds up."""
        now = None if self.month is None else self.reference.unused()
        months = sorted({*self.closed, *self.came, *([self.month] if self.month else [])})
        for month in months:
            found = books.line(self.grants, month, "usd")
            earlier = [m for m in self.closed if m < month]
            opened = self.closed[max(earlier)] if earlier else (0, 0, 0)
            closed = self.closed.get(month, now if month == self.month else opened)
            came = self.came.get(month, [0, 0, 0])
            assert (found.opening_deferred, found.opening_paid_credits, found.opening_free_credits) == opened
            assert (found.closing_deferred, found.closing_paid_credits, found.closing_free_credits) == closed
            assert (found.purchases, found.paid_credits_in, found.free_credits_in) == tuple(came)
            assert found.unbalanced() == [], (month, found)

    @invariant()
    def stored_form_round_trips(self) -> None:
        again = Grants.from_json(self.grants.to_json())
        assert again.to_json() == self.grants.to_json()


def test_grants_follow_the_reference() -> None:
    run_state_machine_as_test(
        GrantsMachine, settings=settings(max_examples=300, stateful_step_count=40, deadline=None)
    )


def test_soonest_expiring_then_free_then_oldest() -> None:
    """The documented order, spelled out: a worked example whose answer is read off the rule by hand."""
    rows = [
        Row("a", "deposit", 10, START_MS, paid=1000),  # paid, never expires
        Row("b", "grant", 10, START_MS + 1),  # free, never expires
        Row("c", "deposit", 10, START_MS + 2, paid=1000, expires_at=START_MS // 1000 + 100),  # paid, expires
        Row("d", "grant", 10, START_MS + 3, expires_at=START_MS // 1000 + 100),  # free, same expiry
        Row("e", "spend", -35, START_MS + 4),
    ]
    lots = grants.fold(rows).lots
    # d (expiring, free), then c (expiring, paid), then b (free), then 5 of a.
    assert "d" not in lots
    assert lots["c"].left == 0
    assert "b" not in lots
    assert lots["a"].left == 5


def test_a_refund_takes_from_its_own_payment_first() -> None:
    rows = [
        Row("a", "deposit", 10, START_MS, paid=1000),
        Row("b", "deposit", 10, START_MS + 1, paid=1000),
        Row("r", "refund", -4, START_MS + 2, payment_id="b"),
    ]
    lots = grants.fold(rows).lots
    assert (lots["a"].left, lots["b"].left, lots["b"].reversed) == (10, 6, 4)


def test_a_paid_grant_used_up_costs_exactly_what_was_paid() -> None:
    rows = [Row("a", "deposit", 3, START_MS, paid=1000)] + [
        Row(f"s{i}", "spend", -1, START_MS + 1 + i) for i in range(3)
    ]
    books = grants.fold(rows).books
    assert sum(month.get("money_used", 0) for month in books.values()) == 1000


def test_a_capture_of_credits_reserved_beyond_every_grant_is_a_debt_the_next_credits_pay() -> None:
    """Rows folded in id order can show a hold reserving more than the grants then hold (a row whose id
    was made before another's commit): what its capture uses beyond them is owed, not lost."""
    rows = [
        Row("a", "grant", 10, START_MS),
        Row("h", "hold", 0, START_MS + 1, hold_id="h", reserved=15),
        Row("c", "spend", -15, START_MS + 2, hold_id="h", reserved=15),
    ]
    done = grants.fold(rows)
    # 10 + 0 - 15 taken: 5 owed.
    assert (done.total(), done.owed()) == (-5, 5)

    done.apply(Row("d", "deposit", 10, START_MS + 3, paid=100, payment_id="d"))
    assert (done.total(), done.lots["d"].left, done.lots["d"].used) == (5, 5, 5)

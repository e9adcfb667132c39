"""The account's grants, through the ledger and moto's DynamoDB, against the reference that follows each
credit on its own (tests/reference_grants.py).

Hypothesis runs paid top-ups (some expiring), promotional grants (some expiring), spends, holds and their
captures and releases, refunds and disputes (opened, won), time passing on a clock the rows are stamped
with, expiry sweeps (some run twice, some raced by a spend that commits between the sweep's read and its
write), on a plain account and on a hot one (2 sub-balances). After every step the grants as of now
(wallet.projection.current) match the reference grant by grant, and the balance is what they own; at the
end the stored projection, folded step by step, says the same.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ulid import ULID

from tests.conftest import TABLE_NAMES
from tests.reference_grants import Account
from wallet import account, expiry, grants_due, holds, hot_accounts, ledger, projection, promotions, writes
from wallet.errors import InsufficientCreditsError
from wallet.ledger import Deposit, RowKinds

SERVICE = "arn:aws:iam::000000000000:user/service"
USERS = ("plain", "hot")
EXAMPLES = 15
keys = itertools.count()


class Clock:
    """The instant the ledger stamps rows with (`createdAt`), moved by the machine; never behind now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def stamp(self) -> str:
        return datetime.fromtimestamp(self.now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GrantsLedgerMachine(RuleBasedStateMachine):
    server: Any
    clocks: list[Clock]

    def __init__(self) -> None:
        super().__init__()
        self.server.reset()
        self.server.create_tables(TABLE_NAMES)
        hot_accounts.forget()
        self.clock = Clock()
        self.clocks[:] = [self.clock]
        hot_accounts.make_hot("hot", 2, currency="usd")
        self.reference = {user: Account() for user in USERS}
        self.payments: dict[str, list[tuple[str, int, int]]] = {user: [] for user in USERS}
        self.holds: dict[str, dict[str, int]] = {user: {} for user in USERS}
        self.disputes: dict[str, list[tuple[str, str, str]]] = {user: [] for user in USERS}

    def key(self) -> str:
        return f"k{next(keys)}"

    # -- credits in ----------------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 60), price=st.integers(1, 9_000),
          expires=st.none() | st.integers(60, 4_000))  # fmt: skip
    def top_up(self, user: str, credits: int, price: int, expires: int | None) -> None:
        payment = str(ULID())
        expiry = None if expires is None else int(self.clock.now) + expires
        ledger.add_credits(
            user, credits, source="stripe_payment", payment_id=payment, currency="usd", amount_paid=price,
            expires_at=expiry,
        )  # fmt: skip
        self.reference[user].grant(payment, credits, paid=price, expires=expiry)
        self.payments[user].append((payment, credits, price))

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 60), expires=st.none() | st.integers(60, 4_000))
    def promotion(self, user: str, credits: int, expires: int | None) -> None:
        expiry = None
        text = None
        if expires is not None:
            expiry = int(self.clock.now) + expires
            text = datetime.fromtimestamp(expiry, UTC).isoformat()
        receipt = promotions.grant(
            user, credits, reason="promo", expires_at=text, idempotency_key=self.key(), actor=SERVICE,
            currency="usd",
        )  # fmt: skip
        self.reference[user].grant(receipt.transaction_id, credits, paid=None, expires=expiry)

    # -- credits out ---------------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 80))
    def spend(self, user: str, credits: int) -> None:
        try:
            ledger.spend(
                user, credits, idempotency_key=self.key(), description=None, actor=SERVICE, currency="usd"
            )
        except InsufficientCreditsError:
            return
        self.reference[user].take(credits, self.clock.now)

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 40))
    def hold(self, user: str, credits: int) -> None:
        try:
            held = holds.create_hold(
                user, credits, expires_in=86_400, idempotency_key=self.key(), description=None, actor=SERVICE,
                currency="usd", now=self.clock,
            )  # fmt: skip
        except InsufficientCreditsError:
            return
        self.reference[user].hold(held.hold.hold_id, credits, self.clock.now)
        self.holds[user][held.hold.hold_id] = credits

    @precondition(lambda self: any(self.holds.values()))
    @rule(data=st.data(), capture=st.booleans())
    def settle(self, data: st.DataObject, capture: bool) -> None:
        user = data.draw(st.sampled_from([user for user in USERS if self.holds[user]]))
        hold_id = data.draw(st.sampled_from(sorted(self.holds[user])))
        reserved = self.holds[user].pop(hold_id)
        used = data.draw(st.integers(1, reserved)) if capture else 0
        if capture:
            holds.capture_hold(
                user, hold_id, used, idempotency_key=self.key(), actor=SERVICE, currency="usd", now=self.clock
            )
        else:
            holds.release_hold(
                user, hold_id, idempotency_key=self.key(), actor=SERVICE, currency="usd", now=self.clock
            )
        self.reference[user].settle(hold_id, used, self.clock.now)

    @precondition(lambda self: any(self.payments.values()))
    @rule(data=st.data(), share=st.integers(1, 100), dispute=st.booleans())
    def claw_back(self, data: st.DataObject, share: int, dispute: bool) -> None:
        user = data.draw(st.sampled_from([user for user in USERS if self.payments[user]]))
        payment, credits, price = data.draw(st.sampled_from(self.payments[user]))
        money = max(1, price * share // 100)
        cause = f"{'dp' if dispute else 're'}_{next(keys)}"

        def observe(state: Any) -> Any:
            if dispute:
                return state.with_dispute(cause, money, "needs_response")
            return state.with_refund(cause, money, "succeeded")

        kinds = RowKinds("dispute", "dispute_won") if dispute else RowKinds("refund", "refund_failed")
        change = ledger.settle_payment(Deposit(user, payment, credits, price), observe, kinds, currency="usd")
        if change.amount:
            self.reference[user].take(-change.amount, self.clock.now, as_="reversed", payment=payment)
        if dispute and change.amount:
            self.disputes[user].append((payment, cause, str(money)))

    @precondition(lambda self: any(self.disputes.values()))
    @rule(data=st.data())
    def dispute_won(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from([user for user in USERS if self.disputes[user]]))
        payment, cause, money = self.disputes[user].pop(
            data.draw(st.integers(0, len(self.disputes[user]) - 1))
        )
        credits, price = next((c, p) for pid, c, p in self.payments[user] if pid == payment)
        change = ledger.settle_payment(
            Deposit(user, payment, credits, price),
            lambda state: state.with_dispute(cause, int(money), "won"),
            RowKinds("dispute", "dispute_won"),
            currency="usd",
        )
        if change.amount:
            self.reference[user].give_back(payment, change.amount, change.transaction_id or "")

    # -- time and expiry -----------------------------------------------------------------------------

    @rule(seconds=st.integers(1, 1_500))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += seconds

    @rule(user=st.sampled_from(USERS), twice=st.booleans())
    def sweep(self, user: str, twice: bool) -> None:
        due = self.reference[user].due(self.clock.now)
        done = expiry.expire(user, self.clock.now + projection.SETTLE_SECONDS, "usd")
        assert done.credits == sum(due.values())
        for grant_id, left in due.items():
            self.reference[user].expire(grant_id, left, self.clock.now)
        if twice:
            # The hourly sweep's way: expire, then index the account at its next expiry.
            again = grants_due.expire_and_index(user, self.clock.now + projection.SETTLE_SECONDS, "usd")
            assert again.credits == 0
            soonest = min(
                (
                    t.expires
                    for t in self.reference[user].tokens
                    if t.expires is not None and t.state in ("left", "held")
                ),
                default=None,
            )
            assert grants_due.indexed(user)[1] == soonest

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 30))
    def sweep_raced_by_a_spend(self, user: str, credits: int) -> None:
        """A spend commits after the sweep read the rows and before it writes: the expiry must not be
        computed from what it read, as the spend drew first on the soonest-expiring grant."""
        spent: list[int] = []
        real = projection.current

        def raced(user_id: str, now_s: float) -> Any:
            grants = real(user_id, now_s)
            if not spent:
                spent.append(0)
                try:
                    ledger.spend(user, credits, idempotency_key=self.key(), description=None, actor=SERVICE,
                                 currency="usd")  # fmt: skip
                    spent[0] = credits
                except InsufficientCreditsError:
                    pass
            return grants

        projection.current = raced
        try:
            done = expiry.expire(user, self.clock.now + projection.SETTLE_SECONDS, "usd")
        finally:
            projection.current = real
        reference = self.reference[user]
        if spent[0]:
            reference.take(spent[0], self.clock.now)
        due = reference.due(self.clock.now)
        assert done.credits == sum(due.values())
        for grant_id, left in due.items():
            reference.expire(grant_id, left, self.clock.now)

    # -- what must hold ------------------------------------------------------------------------------

    @invariant()
    def grants_match_the_reference(self) -> None:
        for user in USERS:
            reference = self.reference[user]
            grants = projection.current(user, self.clock.now)
            assert grants.total() == reference.balance() == account.get_balance(user)
            for grant_id in reference.sizes:
                lot = grants.lots.get(grant_id)
                found = (0, 0) if lot is None else (lot.left, lot.held)
                assert found == (reference.count(grant_id, "left"), reference.count(grant_id, "held")), (
                    grant_id
                )

    def teardown(self) -> None:
        # The stored projection, folded in batches by a projector run many times, says what `current` says.
        for user in USERS:
            for _ in range(3):
                projection.project(user, self.clock.now + 10 * projection.SETTLE_SECONDS)
            kept = projection.stored(user).grants
            now = projection.current(user, self.clock.now)
            assert kept.to_json() == now.to_json()
            assert projection.new_deposits(user) == set()


def test_grants_follow_the_reference(monkeypatch: pytest.MonkeyPatch, tables: Any) -> None:
    clocks: list[Clock] = [Clock()]
    monkeypatch.setattr(writes, "now", lambda: clocks[0].stamp())
    monkeypatch.setattr(GrantsLedgerMachine, "server", tables, raising=False)
    monkeypatch.setattr(GrantsLedgerMachine, "clocks", clocks, raising=False)
    # Small batches, so the stored projection is folded in many steps across the run.
    monkeypatch.setattr(projection, "BATCH_ROWS", 7)
    run_state_machine_as_test(
        GrantsLedgerMachine,
        # No shrinking: each step goes through moto, and shrinking a long run takes many minutes; the
        # failing run's steps are printed as they are.
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=30,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
        ),
    )

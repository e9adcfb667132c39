"""The ledger against a model of what customers are owed.

Hypothesis plays Stripe: customers pay (through the real checkout handler and the emulator), then their
payments are refunded in part or in full, refunds fail at the bank, banks open inquiries that close or
escalate, chargebacks are won, lost, appealed and won on appeal. Each of those moves queues the events
Stripe would send, each carrying the object as it was then. Deliveries are any of them, any number of
times, in any order, through the webhook (signed) or the sweep's path (`stripe_events.act_on`); spends,
adjustments and holds (made, captured, released, expired by their time on a clock the machine moves, by
the minute's sweep or by a settlement that meets them) run between them. After every step each balance
(`available + held`) is the sum of its rows, `held` is the sum of the active holds, no hold is settled
twice and no payment lost more than it bought; at the end, once everything has been delivered, every
balance is what the reference written apart from the ledger (`tests/reference_ledger.py`) says.
"""

from __future__ import annotations

import copy
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from devstack.dynamodb import DynamoDBServer
from devstack.stripe_emulator import StripeEmulator
from tests import reference_ledger as reference
from tests.checkout_flow import deliver, start_checkout
from tests.conftest import TABLE_NAMES
from wallet import account, holds, ledger, stripe_events
from wallet.errors import DepositNotRecordedError, HoldNotActiveError, InsufficientCreditsError
from wallet.models import CreditBalance, CreditTransaction
from wallet.payments import Event

USERS = ("alice", "bob")
SERVICE = "arn:aws:iam::000000000000:user/service"
# Checkout prices and the credits they buy (the 5000 pack's bonus comes with CREDIT_PACKS below).
PACKS = ((1000, 1000), (5000, 5500), (10000, 10000))
FORMAL_OPEN = {"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"}
# What each action does to a dispute's status, and the events Stripe sends for it.
DISPUTE_MOVES: dict[str, tuple[set[str], str, tuple[str, ...]]] = {
    "submit_inquiry": ({"warning_needs_response"}, "warning_under_review", ("charge.dispute.updated",)),
    "close_inquiry": (
        {"warning_needs_response", "warning_under_review"},
        "warning_closed",
        ("charge.dispute.closed",),
    ),
    "escalate": (
        {"warning_needs_response", "warning_under_review"},
        "needs_response",
        ("charge.dispute.updated", "charge.dispute.funds_withdrawn"),
    ),
    "submit": ({"needs_response"}, "under_review", ("charge.dispute.updated",)),
    "win": (
        {"needs_response", "under_review", "appeal_needs_response", "appeal_under_review"},
        "won",
        ("charge.dispute.closed", "charge.dispute.funds_reinstated"),
    ),
    "lose": (
        {"needs_response", "under_review", "appeal_needs_response", "appeal_under_review"},
        "lost",
        ("charge.dispute.closed",),
    ),
    "appeal": ({"lost"}, "appeal_needs_response", ("charge.dispute.updated",)),
    "submit_appeal": ({"appeal_needs_response"}, "appeal_under_review", ("charge.dispute.updated",)),
}


@dataclass
class Payment:
    """One paid Checkout Session and what Stripe has done to it since: the truth the ledger must reach."""

    user: str
    price: int
    credits: int
    payment_intent: str
    charge: str
    refunds: dict[str, list[Any]] = field(default_factory=dict)
    """Refund id -> [amount, status]."""
    disputes: dict[str, list[Any]] = field(default_factory=dict)
    """Dispute id -> [amount, status], in the order they were opened."""
    queued: list[dict[str, Any]] = field(default_factory=list)
    """Every event Stripe sent about this payment, each with its object as it was then."""

    def live_refunds(self) -> int:
        return sum(amount for amount, status in self.refunds.values() if status not in ("failed", "canceled"))

    def open_dispute(self) -> str | None:
        return next(
            (d for d, (_, status) in self.disputes.items() if status not in ("warning_closed", "won")),
            None,
        )

    def owed_back(self) -> int:
        """What the customer may not keep of this payment, from Stripe's final state, by the reference
        written apart from the ledger (`tests/reference_ledger.py`)."""
        refunds = [{"amount": a, "status": s} for a, s in self.refunds.values()]
        disputes = [{"amount": a, "status": s} for a, s in self.disputes.values()]
        money = reference.money_back(self.price, refunds, disputes)
        return self.credits - reference.kept(self.credits, self.price, money)


def event(kind: str, data_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{random.getrandbits(64):016x}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": copy.deepcopy(data_object)},
    }


@dataclass
class Hold:
    user: str
    hold_id: str
    amount: int
    expires_at: int
    state: str = "active"


class Ledger(RuleBasedStateMachine):
    payments = Bundle("payments")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        SERVER.reset()
        SERVER.create_tables(TABLE_NAMES)
        self.numbers = itertools.count()
        self.paid: list[Payment] = []
        self.moved = dict.fromkeys(USERS, 0)
        """Spends, captures and adjustments that went through, per user."""
        self.now = time.time()
        self.made: list[Hold] = []
        # The minute's sweep has run up to now, as the deployed schedule does from the start.
        holds._save_checkpoint(int(self.now) // 60 - 1)

    def clock(self) -> float:
        return self.now

    # -- Stripe's side -------------------------------------------------------------------------------

    @rule(target=payments, user=st.sampled_from(USERS), pack=st.sampled_from(PACKS))
    def pay(self, user: str, pack: tuple[int, int]) -> Payment:
        """A customer pays on Checkout; its checkout.session.completed is queued, not delivered yet."""
        price, credits = pack
        sent = EMULATOR.pay(start_checkout(user, price))  # charge.succeeded, payment_intent.succeeded, ...
        session = sent[-1]["data"]["object"]  # ... and checkout.session.completed, which credits it
        payment = Payment(user, price, credits, session["payment_intent"], EMULATOR.charge_of(session["id"]))
        payment.queued.extend(sent)
        self.paid.append(payment)
        return payment

    @rule(payment=payments, part=st.integers(min_value=1, max_value=10_000), full=st.booleans())
    def refund(self, payment: Payment, part: int, full: bool) -> None:
        """The merchant refunds what is left, or a part: allowed unless a chargeback is under way."""
        left = payment.price - payment.live_refunds()
        if left <= 0 or any(status in FORMAL_OPEN for _, status in payment.disputes.values()):
            return
        amount = left if full else min(part, left)
        refund_id = f"re_{next(self.numbers)}"
        payment.refunds[refund_id] = [amount, "succeeded"]
        payment.queued.append(event("charge.refunded", self._charge(payment)))
        payment.queued.append(event("refund.created", self._refund(payment, refund_id)))

    @rule(payment=payments, pick=st.integers(min_value=0))
    def refund_fails(self, payment: Payment, pick: int) -> None:
        """A refund the bank returns: the customer gets nothing back, so the credits must come back."""
        done = [r for r, (_, status) in payment.refunds.items() if status == "succeeded"]
        if not done:
            return
        refund_id = done[pick % len(done)]
        payment.refunds[refund_id][1] = "failed"
        refund = self._refund(payment, refund_id)
        for kind in ("refund.failed", "refund.updated", "charge.refund.updated"):
            payment.queued.append(event(kind, refund))

    @rule(payment=payments, inquiry=st.booleans())
    def dispute(self, payment: Payment, inquiry: bool) -> None:
        """The cardholder's bank opens an inquiry or a chargeback on what was not refunded."""
        amount = payment.price - payment.live_refunds()
        if amount <= 0 or payment.open_dispute() is not None:
            return
        dispute_id = f"dp_{next(self.numbers)}"
        payment.disputes[dispute_id] = [amount, "warning_needs_response" if inquiry else "needs_response"]
        payment.queued.append(event("charge.dispute.created", self._dispute(payment, dispute_id)))
        if not inquiry:
            payment.queued.append(event("charge.dispute.funds_withdrawn", self._dispute(payment, dispute_id)))

    @rule(payment=payments, move=st.sampled_from(sorted(DISPUTE_MOVES)))
    def dispute_moves(self, payment: Payment, move: str) -> None:
        dispute_id = payment.open_dispute()
        if dispute_id is None:
            return
        allowed, status, kinds = DISPUTE_MOVES[move]
        if payment.disputes[dispute_id][1] not in allowed:
            return
        payment.disputes[dispute_id][1] = status
        for kind in kinds:
            payment.queued.append(event(kind, self._dispute(payment, dispute_id)))

    # -- deliveries --------------------------------------------------------------------------------------

    @rule(
        payment=payments,
        pick=st.integers(min_value=0),
        times=st.integers(min_value=1, max_value=2),
        swept=st.booleans(),
    )
    def deliver(self, payment: Payment, pick: int, times: int, swept: bool) -> None:
        """Any one event Stripe sent, once or twice, by the webhook or by the sweep."""
        sent = payment.queued[pick % len(payment.queued)]
        for _ in range(times):
            self._deliver(sent, swept)

    @rule(payment=payments, order=st.randoms(use_true_random=False))
    def deliver_everything(self, payment: Payment, order: random.Random) -> None:
        """Every event of a payment, shuffled, some twice: Stripe's at-least-once, in no order."""
        sent = payment.queued + order.sample(payment.queued, k=len(payment.queued) // 2)
        order.shuffle(sent)
        for each in sent:
            self._deliver(each, order.random() < 0.5)

    def _deliver(self, sent: dict[str, Any], swept: bool) -> bool:
        """True once the ledger took it; False for a refund or dispute that came before its deposit,
        which the webhook answers 500 and the sweep records, so that both try again."""
        if not swept:
            status = deliver(EMULATOR.sign(sent)).status
            assert status in (200, 500)
            return status == 200
        try:
            stripe_events.act_on(Event(sent["id"], sent["type"], False, sent["data"]["object"]))
        except DepositNotRecordedError:
            return False
        return True

    # -- the product's side ------------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), amount=st.integers(min_value=1, max_value=6000))
    def spend(self, user: str, amount: int) -> None:
        before = account.balances(user)
        try:
            receipt = ledger.spend(
                user,
                amount,
                idempotency_key=f"k{next(self.numbers)}",
                description=None,
                actor=SERVICE,
                currency="usd",
            )
        except InsufficientCreditsError:
            assert before.available < amount
            return
        assert before.available >= amount, "a spend overdrew"
        assert receipt.balance == before.balance - amount
        self.moved[user] -= amount

    @rule(
        target=holds,
        user=st.sampled_from(USERS),
        amount=st.integers(min_value=1, max_value=6000),
        seconds=st.integers(min_value=1, max_value=600),
    )
    def hold(self, user: str, amount: int, seconds: int) -> Hold | None:
        before = account.balances(user)
        try:
            made = holds.create_hold(
                user,
                amount,
                expires_in=seconds,
                idempotency_key=f"h{next(self.numbers)}",
                description=None,
                actor=SERVICE,
                currency="usd",
                now=self.clock,
            )
        except InsufficientCreditsError:
            assert before.available < amount
            return None
        assert before.available >= amount, "a hold overdrew"
        assert made.balances.balance == before.balance
        self.made.append(Hold(user, made.hold.hold_id, amount, made.hold.expires_at))
        return self.made[-1]

    @rule(held=holds, part=st.integers(min_value=1, max_value=6000), capture=st.booleans())
    def settle(self, held: Hold | None, part: int, capture: bool) -> None:
        """A capture of part of it (at most what it holds), or a release: once, or 409 with its state."""
        if held is None:
            return
        key = f"s{next(self.numbers)}"
        amount = min(part, held.amount)
        expected = held.state
        if held.state == "active" and held.expires_at <= self.now:
            expected = "expired"
        try:
            if capture:
                holds.capture_hold(
                    held.user,
                    held.hold_id,
                    amount,
                    idempotency_key=key,
                    actor=SERVICE,
                    currency="usd",
                    now=self.clock,
                )
            else:
                holds.release_hold(
                    held.user,
                    held.hold_id,
                    idempotency_key=key,
                    actor=SERVICE,
                    currency="usd",
                    now=self.clock,
                )
        except HoldNotActiveError as refused:
            told = refused.state
        else:
            told = None
        if told is not None:
            assert told == expected != "active"
            held.state = expected
            return
        assert expected == "active", f"a {held.state} hold was settled again"
        held.state = "captured" if capture else "released"
        if capture:
            self.moved[held.user] -= amount

    @rule(seconds=st.integers(min_value=1, max_value=120))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds

    @rule(by_sweep=st.booleans(), held=holds)
    def expire(self, by_sweep: bool, held: Hold | None) -> None:
        """The minute's sweep, or one hold's expiry: only what is past its time, once."""
        due = [h for h in self.made if h.state == "active" and h.expires_at <= self.now]
        if by_sweep:
            report = holds.expire_due(currency="usd", now=self.clock)
            assert (report.expired, report.failed) == (len(due), 0)
        else:
            if held is None:
                return
            expired = holds.expire_hold(held.user, held.hold_id, currency="usd", now=self.clock)
            assert expired == (held in due)
            due = [held] if expired else []
        for each in due:
            each.state = "expired"

    @rule(user=st.sampled_from(USERS), amount=st.integers(min_value=-2000, max_value=2000).filter(bool))
    def adjust(self, user: str, amount: int) -> None:
        ledger.adjust(
            user,
            amount,
            idempotency_key=f"a{next(self.numbers)}",
            reason="test",
            actor=SERVICE,
            currency="usd",
        )
        self.moved[user] += amount

    # -- what must always hold ---------------------------------------------------------------------------

    @invariant()
    def the_ledger_is_whole(self) -> None:
        """Each balance is the sum of its rows, no payment is credited twice, and what refunds and disputes
        took of a payment is between nothing and what it bought."""
        for user in USERS:
            rows = list(CreditTransaction.query(user, consistent_read=True))
            assert ledger.get_balance(user) == sum(int(row.amount) for row in rows)
            try:
                held = int(CreditBalance.get(user, consistent_read=True).held or 0)
            except CreditBalance.DoesNotExist:
                held = 0
            assert held == sum(h.amount for h in self.made if h.user == user and h.state == "active")
            ends = [row.hold_id for row in rows if row.hold_id and row.type != "hold"]
            assert len(ends) == len(set(ends)), "a hold was settled twice"
            deposits = [row.transaction_id for row in rows if row.type == "deposit"]
            assert len(deposits) == len(set(deposits)), "a payment was credited twice"
            for row in rows:
                if row.type == "deposit":
                    taken = -sum(
                        int(r.amount)
                        for r in rows
                        if r.payment_id == row.transaction_id and r.type != "deposit"
                    )
                    assert 0 <= taken <= int(row.amount), f"payment {row.transaction_id} lost {taken}"

    def teardown(self) -> None:
        """Once every event has reached the ledger, in any order, each balance is what the customer is
        owed: what they bought, less what refunds and disputes finally took, plus spends and adjustments."""
        shuffle = random.Random(len(self.paid))
        pending = [sent for payment in self.paid for sent in payment.queued]
        for _ in range(len(pending) + 1):
            shuffle.shuffle(pending)
            pending = [sent for sent in pending if not self._deliver(sent, shuffle.random() < 0.5)]
            if not pending:
                break
        assert not pending, "events still refused once every deposit was in"
        for user in USERS:
            mine = [p for p in self.paid if p.user == user]
            expected = sum(p.credits - p.owed_back() for p in mine) + self.moved[user]
            assert ledger.get_balance(user) == expected, [(p.refunds, p.disputes) for p in mine]

    @staticmethod
    def _charge(payment: Payment) -> dict[str, Any]:
        return {
            "id": payment.charge,
            "object": "charge",
            "amount": payment.price,
            "amount_refunded": payment.live_refunds(),
            "currency": "usd",
            "payment_intent": payment.payment_intent,
            "refunded": payment.live_refunds() == payment.price,
            "status": "succeeded",
        }

    @staticmethod
    def _refund(payment: Payment, refund_id: str) -> dict[str, Any]:
        amount, status = payment.refunds[refund_id]
        return {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": payment.charge,
            "currency": "usd",
            "payment_intent": payment.payment_intent,
            "status": status,
        }

    @staticmethod
    def _dispute(payment: Payment, dispute_id: str) -> dict[str, Any]:
        amount, status = payment.disputes[dispute_id]
        return {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "charge": payment.charge,
            "currency": "usd",
            "payment_intent": payment.payment_intent,
            "status": status,
            "is_charge_refundable": status.startswith("warning_"),
        }


SERVER: DynamoDBServer
EMULATOR: StripeEmulator
EXAMPLES = 40
STEPS = 30


def test_any_lifecycle_of_payments_refunds_and_disputes_ends_with_what_customers_are_owed(
    tables: DynamoDBServer, stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    global SERVER, EMULATOR  # the state machine class is built by Hypothesis, not by this test
    SERVER, EMULATOR = tables, stripe_emulator
    from wallet import settings as wallet_settings

    monkeypatch.setenv("CREDIT_PACKS", "1000,5000:5500,10000")
    wallet_settings.price_list.cache_clear()
    try:
        run_state_machine_as_test(
            Ledger,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                derandomize=True,
                database=None,
            ),
        )
    finally:
        monkeypatch.undo()
        wallet_settings.price_list.cache_clear()

"""The ledger as a state machine: deposits, spends, adjustments, refunds and disputes, with Stripe's
events delivered late, out of order and more than once. After every step each balance is the sum of
its rows, no spend overdraws, no payment is credited twice, and refunds and disputes never take more
than a payment bought, nor less than the refunds delivered so far ask for."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from ulid import ULID

from devstack.dynamodb import DynamoDBServer
from tests.conftest import TABLE_NAMES
from wallet import ledger
from wallet.errors import IdempotencyKeyReusedError, InsufficientCreditsError
from wallet.ledger import Reversal, Taken
from wallet.models import CreditTransaction

USERS = ("alice", "bob")
SERVICE = "arn:aws:iam::000000000000:user/service"
# Prices and what they buy: a bonus pack gives more credits than it costs.
PACKS = ((1000, 1000), (5000, 5500), (333, 333))


@dataclass
class Payment:
    user: str
    payment_id: str
    payment_intent: str
    price: int
    credits: int
    refunded: int = 0
    """Stripe's cumulative amount_refunded, as the latest event says."""
    events: list[tuple[str, int]] = field(default_factory=list)
    """Stripe's events for this payment: (type, cumulative amount or 0), in the order Stripe sent them."""
    delivered_refund: int = 0
    """The largest cumulative refund the ledger has applied."""


def share(credits: int, taken: int, paid: int) -> int:
    return (2 * credits * taken + paid) // (2 * paid)


class Ledger(RuleBasedStateMachine):
    payments = Bundle("payments")

    def __init__(self) -> None:
        super().__init__()
        SERVER.reset()
        SERVER.create_tables(TABLE_NAMES)
        self.numbers = itertools.count()
        self.keys: dict[tuple[str, str], tuple[int, str | None]] = {}
        self.paid: list[Payment] = []

    @rule(
        target=payments,
        user=st.sampled_from(USERS),
        pack=st.sampled_from(PACKS),
        refunds=st.lists(st.integers(min_value=1, max_value=1000), max_size=3),
        dispute=st.sampled_from([None, "open", "won", "lost"]),
        disputed_first=st.booleans(),
    )
    def pay(
        self,
        user: str,
        pack: tuple[int, int],
        refunds: list[int],
        dispute: str | None,
        disputed_first: bool,
    ) -> Payment:
        """A customer pays; what Stripe then sends about the payment is queued, none of it delivered yet:
        the checkout event, refunds (cumulative) and a dispute that may be won or lost."""
        price, credits = pack
        payment = Payment(user, str(ULID()), f"pi_{next(self.numbers)}", price, credits)
        self.paid.append(payment)
        disputes = []
        if dispute is not None:
            disputes.append(("dispute_open", price))
            if dispute != "open":
                disputes.append((f"dispute_{dispute}", price))
        refunded = []
        for part in refunds:
            if payment.refunded < price:
                payment.refunded = min(price, payment.refunded + part)
                refunded.append(("refund", payment.refunded))
        payment.events = [("deposit", 0), *(disputes + refunded if disputed_first else refunded + disputes)]
        return payment

    @rule(payment=payments, pick=st.integers(min_value=0), times=st.integers(min_value=1, max_value=2))
    def deliver(self, payment: Payment, pick: int, times: int) -> None:
        """Any of a payment's events, in any order, any number of times."""
        if not payment.events:
            return
        kind, amount = payment.events[pick % len(payment.events)]
        for _ in range(times):
            self._apply(payment, kind, amount)

    @rule(payment=payments, order=st.randoms(use_true_random=False))
    def deliver_everything(self, payment: Payment, order: random.Random) -> None:
        """Every event of a payment at least once, shuffled, some twice: Stripe's at-least-once."""
        events = payment.events + order.sample(payment.events, k=len(payment.events) // 2)
        order.shuffle(events)
        for kind, amount in events:
            self._apply(payment, kind, amount)

    def _apply(self, payment: Payment, kind: str, amount: int) -> None:
        if kind == "deposit":
            ledger.add_credits(
                payment.user,
                payment.credits,
                source="stripe_payment",
                payment_id=payment.payment_id,
                currency="usd",
                stripe_payment_intent_id=payment.payment_intent,
                amount_paid=payment.price,
            )
        elif kind == "refund":
            change = ledger.claw_back(
                payment.payment_intent, Reversal.REFUND, taken=amount, paid=payment.price, currency="usd"
            )
            if change.result is not Taken.NO_DEPOSIT:
                payment.delivered_refund = max(payment.delivered_refund, amount)
        elif kind == "dispute_won":
            ledger.restore(payment.payment_intent, currency="usd")
        else:
            ledger.claw_back(
                payment.payment_intent,
                Reversal.DISPUTE,
                taken=amount,
                paid=None,
                currency="usd",
                final=kind == "dispute_lost",
            )

    @rule(
        user=st.sampled_from(USERS),
        amount=st.integers(min_value=1, max_value=3000),
        key=st.sampled_from("abcd"),
    )
    def spend(self, user: str, amount: int, key: str) -> None:
        before = ledger.get_balance(user)
        first = self.keys.get((user, key))
        try:
            receipt = ledger.spend(
                user, amount, idempotency_key=key, description=None, actor=SERVICE, currency="usd"
            )
        except InsufficientCreditsError as refused:
            balance = refused.balance
            assert first is None
            assert balance == before < amount
            return
        except IdempotencyKeyReusedError:
            assert first is not None
            assert first != (-amount, None)
            return
        if first is None:
            assert before >= amount, "a spend overdrew"
            assert receipt.balance == before - amount
            self.keys[(user, key)] = (-amount, None)
        else:
            assert receipt.replayed
            assert receipt.balance == before

    @rule(user=st.sampled_from(USERS), amount=st.integers(min_value=-2000, max_value=2000).filter(bool))
    def adjust(self, user: str, amount: int) -> None:
        before = ledger.get_balance(user)
        receipt = ledger.adjust(
            user,
            amount,
            idempotency_key=f"adj-{next(self.numbers)}",
            reason="test",
            actor=SERVICE,
            currency="usd",
        )
        assert receipt.balance == before + amount

    @invariant()
    def the_ledger_is_whole(self) -> None:
        """Each balance is the sum of its rows, no payment is credited twice, and what refunds and disputes
        took of a payment is between nothing and what it bought."""
        for user in USERS:
            rows = list(CreditTransaction.query(user, consistent_read=True))
            assert ledger.get_balance(user) == sum(int(row.amount) for row in rows)
            deposits = [row.transaction_id for row in rows if row.type == "deposit"]
            assert len(deposits) == len(set(deposits)), "a payment was credited twice"
            bought = {row.transaction_id: int(row.amount) for row in rows if row.type == "deposit"}
            for payment_id, credits in bought.items():
                taken = -sum(
                    int(row.amount)
                    for row in rows
                    if row.payment_id == payment_id and row.type in ("refund", "dispute", "dispute_won")
                )
                assert 0 <= taken <= credits

    def teardown(self) -> None:
        """Every refund applied is reflected in full: refunds took the share of the largest one, unless a
        dispute already held part of the payment."""
        for payment in self.paid:
            rows = list(CreditTransaction.query(payment.user, consistent_read=True))
            mine = [row for row in rows if row.payment_id == payment.payment_id]
            refunds = -sum(int(row.amount) for row in mine if row.type == "refund")
            disputed = any(row.type == "dispute" for row in mine)
            expected = share(payment.credits, payment.delivered_refund, payment.price)
            assert refunds == expected or (disputed and refunds <= expected)


SERVER: DynamoDBServer


def test_any_sequence_of_ledger_changes_and_stripe_deliveries_keeps_the_ledger_whole(
    tables: DynamoDBServer,
) -> None:
    global SERVER  # the state machine class is built by Hypothesis, not by this test
    SERVER = tables
    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=25, stateful_step_count=20, deadline=None, derandomize=True, database=None
        ),
    )

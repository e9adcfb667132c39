"""Spends, adjustments, refunds and disputes against moto's DynamoDB: each change once, the balance always
the sum of the rows, and a spend never below zero."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from ulid import ULID

from wallet import ledger
from wallet.errors import IdempotencyKeyReusedError, InsufficientCreditsError, InvalidAmountError
from wallet.ledger import PaymentChange, RowKinds, Taken
from wallet.models import CreditGuard, CreditTransaction
from wallet.payment_state import PaymentState

pytestmark = pytest.mark.usefixtures("tables")
SERVICE = "arn:aws:iam::000000000000:role/api-service"


def deposit(user_id: str, credits: int, payment_intent: str = "pi_1") -> str:
    payment_id = str(ULID())
    ledger.add_credits(
        user_id,
        credits,
        source="stripe_payment",
        payment_id=payment_id,
        currency="usd",
        stripe_session_id="cs_test_1",
        stripe_payment_intent_id=payment_intent,
    )
    return payment_id


def spend(user_id: str, amount: int, key: str, description: str | None = "tokens") -> ledger.Receipt:
    return ledger.spend(
        user_id, amount, idempotency_key=key, description=description, actor=SERVICE, currency="usd"
    )


def rows(user_id: str) -> list[CreditTransaction]:
    return list(CreditTransaction.query(user_id, consistent_read=True))


def assert_balance_is_the_sum_of_rows(user_id: str) -> int:
    balance = ledger.get_balance(user_id)
    assert balance == sum(int(row.amount) for row in rows(user_id))
    return balance


REFUNDS = RowKinds(take="refund", give="refund_failed")
DISPUTES = RowKinds(take="dispute", give="dispute_won")


def settle(
    payment_intent: str, observe: Callable[[PaymentState], PaymentState], kinds: RowKinds
) -> PaymentChange:
    deposit = ledger.deposit_for(payment_intent)
    if deposit is None:
        return PaymentChange(Taken.NO_DEPOSIT)
    return ledger.settle_payment(deposit, observe, kinds, currency="usd")


def refund(payment_intent: str, refunded: int, paid: int) -> PaymentChange:
    """What a charge.refunded says: the cumulative amount refunded out of the charge's amount."""
    return settle(payment_intent, lambda state: state.with_charge(paid, refunded), REFUNDS)


def dispute(payment_intent: str, amount: int, paid: int, *, status: str = "needs_response") -> PaymentChange:
    return settle(
        payment_intent,
        lambda state: state.with_charge(paid, 0).with_dispute("dp_1", amount, status),
        DISPUTES,
    )


def restore(payment_intent: str) -> PaymentChange:
    return settle(payment_intent, lambda state: state.with_dispute("dp_1", 1000, "won"), DISPUTES)


# --- spends -------------------------------------------------------------------------------------------


def test_a_spend_writes_a_signed_row_and_answers_the_balance_after_it() -> None:
    deposit("alice", 5000)

    receipt = spend("alice", 250, "order-1")

    assert (receipt.amount, receipt.balance, receipt.replayed) == (-250, 4750, False)
    [row] = [row for row in rows("alice") if row.type == "spend"]
    assert (row.transaction_id, row.amount, row.actor, row.description, row.source) == (
        receipt.transaction_id,
        -250,
        SERVICE,
        "tokens",
        "service",
    )
    assert assert_balance_is_the_sum_of_rows("alice") == 4750


def test_the_same_key_and_request_again_replays_the_first_answer_and_changes_nothing() -> None:
    deposit("alice", 1000)
    first = spend("alice", 300, "order-1")

    again = spend("alice", 300, "order-1")

    assert (again.transaction_id, again.amount, again.balance, again.replayed) == (
        first.transaction_id,
        -300,
        700,
        True,
    )
    assert len(rows("alice")) == 2


def test_the_same_key_with_another_request_is_refused_and_changes_nothing() -> None:
    deposit("alice", 1000)
    spend("alice", 300, "order-1")

    with pytest.raises(IdempotencyKeyReusedError):
        spend("alice", 301, "order-1")
    with pytest.raises(IdempotencyKeyReusedError):
        spend("alice", 300, "order-1", description="other")

    assert ledger.get_balance("alice") == 700


def test_keys_are_the_users_own() -> None:
    deposit("alice", 1000)
    deposit("bob", 1000, "pi_2")

    spend("alice", 100, "shared-key")
    bobs = spend("bob", 200, "shared-key")

    assert (bobs.replayed, ledger.get_balance("alice"), ledger.get_balance("bob")) == (False, 900, 800)


def test_a_spend_larger_than_the_balance_is_refused_with_the_balance_and_takes_nothing() -> None:
    deposit("alice", 1000)

    with pytest.raises(InsufficientCreditsError) as refused:
        spend("alice", 1001, "order-1")

    assert refused.value.balance == 1000
    assert assert_balance_is_the_sum_of_rows("alice") == 1000
    # A refused spend leaves its key unused: the same request may succeed after a top-up.
    deposit("alice", 1000, "pi_2")
    assert spend("alice", 1001, "order-1").balance == 999


def test_a_user_with_no_balance_cannot_spend() -> None:
    with pytest.raises(InsufficientCreditsError) as refused:
        spend("nobody", 1, "order-1")

    assert refused.value.balance == 0
    assert rows("nobody") == []


@pytest.mark.parametrize("amount", [0, -5, True, 1.5, "10"])
def test_a_spend_of_no_whole_positive_amount_is_refused(amount: object) -> None:
    with pytest.raises(InvalidAmountError):
        spend("alice", amount, "order-1")  # type: ignore[arg-type]


def test_a_spend_may_use_the_whole_balance_but_no_more() -> None:
    deposit("alice", 1000)

    assert spend("alice", 1000, "all").balance == 0
    with pytest.raises(InsufficientCreditsError):
        spend("alice", 1, "one-more")


def test_concurrent_spends_never_overdraw() -> None:
    deposit("alice", 1000)

    def attempt(n: int) -> bool:
        try:
            spend("alice", 100, f"order-{n}")
        except InsufficientCreditsError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        succeeded = sum(pool.map(attempt, range(20)))

    assert succeeded == 10
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_concurrent_requests_with_one_key_make_one_row() -> None:
    deposit("alice", 1000)

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda _: spend("alice", 100, "one-key"), range(16)))

    assert len({receipt.transaction_id for receipt in receipts}) == 1
    assert sum(not receipt.replayed for receipt in receipts) == 1
    assert assert_balance_is_the_sum_of_rows("alice") == 900


# --- adjustments --------------------------------------------------------------------------------------


def test_an_adjustment_either_way_carries_its_reason_and_actor_and_may_go_below_zero() -> None:
    deposit("alice", 100)

    up = ledger.adjust("alice", 500, idempotency_key="a1", reason="goodwill", actor=SERVICE, currency="usd")
    down = ledger.adjust("alice", -900, idempotency_key="a2", reason="abuse", actor=SERVICE, currency="usd")

    assert (up.balance, down.balance) == (600, -300)
    adjustments = sorted(
        (int(r.amount), r.description, r.actor) for r in rows("alice") if r.type == "adjustment"
    )
    assert adjustments == [(-900, "abuse", SERVICE), (500, "goodwill", SERVICE)]
    assert assert_balance_is_the_sum_of_rows("alice") == -300


def test_an_adjustment_needs_an_amount_and_a_reason() -> None:
    with pytest.raises(InvalidAmountError):
        ledger.adjust("alice", 0, idempotency_key="a1", reason="none", actor=SERVICE, currency="usd")
    with pytest.raises(ValueError, match="reason"):
        ledger.adjust("alice", 10, idempotency_key="a1", reason="  ", actor=SERVICE, currency="usd")


# --- refunds ------------------------------------------------------------------------------------------


def test_a_full_refund_takes_exactly_the_credits_granted_bonus_included() -> None:
    payment_id = deposit("alice", 5500)  # the 5000 pack with a bonus

    change = refund("pi_1", 5000, 5000)

    assert (change.result, change.amount) == (Taken.APPLIED, -5500)
    [row] = [r for r in rows("alice") if r.type == "refund"]
    assert (row.amount, row.payment_id) == (-5500, payment_id)
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_partial_refunds_are_cumulative_and_round_half_up() -> None:
    deposit("alice", 1000)

    first = refund("pi_1", 333, 1000)
    second = refund("pi_1", 1000, 1000)

    assert (first.amount, second.amount) == (-333, -667)
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_half_a_credit_rounds_up() -> None:
    deposit("alice", 5)

    assert refund("pi_1", 1, 2).amount == -3


def test_a_repeated_or_stale_refund_takes_nothing_more() -> None:
    deposit("alice", 1000)
    refund("pi_1", 600, 1000)

    repeated = refund("pi_1", 600, 1000)
    stale = refund("pi_1", 300, 1000)

    assert (repeated.result, stale.result) == (Taken.NOTHING_MORE, Taken.NOTHING_MORE)
    assert assert_balance_is_the_sum_of_rows("alice") == 400


def test_refunds_delivered_out_of_order_take_the_latest_total_once() -> None:
    deposit("alice", 1000)

    later = refund("pi_1", 1000, 1000)
    earlier = refund("pi_1", 400, 1000)

    assert (later.amount, earlier.result) == (-1000, Taken.NOTHING_MORE)
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_a_refund_after_the_credits_were_spent_leaves_a_negative_balance() -> None:
    deposit("alice", 1000)
    spend("alice", 800, "order-1")

    refund("pi_1", 1000, 1000)

    assert assert_balance_is_the_sum_of_rows("alice") == -800
    with pytest.raises(InsufficientCreditsError):
        spend("alice", 1, "order-2")


def test_a_payment_intent_with_no_deposit_takes_nothing() -> None:
    deposit("alice", 1000)

    assert refund("pi_other", 1000, 1000).result is Taken.NO_DEPOSIT
    assert ledger.get_balance("alice") == 1000


def test_concurrent_refund_events_take_the_total_once() -> None:
    deposit("alice", 1000)
    totals = [100, 250, 500, 750, 1000, 1000, 500, 250] * 2

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda total: refund("pi_1", total, 1000), totals))

    assert assert_balance_is_the_sum_of_rows("alice") == 0


# --- disputes -----------------------------------------------------------------------------------------


def test_a_dispute_takes_its_share_and_a_win_gives_it_back_once() -> None:
    deposit("alice", 1000)

    opened = dispute("pi_1", 1000, 1000)
    won = restore("pi_1")
    won_again = restore("pi_1")
    reopened = dispute("pi_1", 1000, 1000)

    assert (opened.amount, won.amount) == (-1000, 1000)
    assert (won_again.result, reopened.result) == (Taken.NOTHING_MORE, Taken.NOTHING_MORE)
    assert sorted(r.type for r in rows("alice")) == ["deposit", "dispute", "dispute_won"]
    assert assert_balance_is_the_sum_of_rows("alice") == 1000


def test_a_lost_dispute_keeps_what_it_took_and_takes_nothing_more() -> None:
    deposit("alice", 1000)
    dispute("pi_1", 1000, 1000)

    lost = dispute("pi_1", 1000, 1000, status="lost")
    opened_again = dispute("pi_1", 1000, 1000)

    assert (lost.result, opened_again.result) == (Taken.NOTHING_MORE, Taken.NOTHING_MORE)
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_a_dispute_closed_before_it_was_opened_is_settled_either_way() -> None:
    deposit("alice", 1000, "pi_won")
    deposit("alice", 1000, "pi_lost")

    restore("pi_won")
    dispute("pi_won", 1000, 1000)
    lost = dispute("pi_lost", 1000, 1000, status="lost")
    dispute("pi_lost", 1000, 1000)

    assert lost.amount == -1000
    assert assert_balance_is_the_sum_of_rows("alice") == 1000


def test_a_refund_after_a_dispute_took_everything_takes_nothing_more() -> None:
    deposit("alice", 1000)

    dispute("pi_1", 1000, 1000)
    refunded = refund("pi_1", 400, 1000)

    assert refunded.result is Taken.NOTHING_MORE
    assert assert_balance_is_the_sum_of_rows("alice") == 0


def test_refunds_and_disputes_together_never_take_more_than_the_deposit_gave() -> None:
    deposit("alice", 1000)

    refund("pi_1", 600, 1000)
    dispute("pi_1", 1000, 1000)

    assert assert_balance_is_the_sum_of_rows("alice") == 0
    guard = CreditGuard.get("alice", f"payment#{rows('alice')[0].payment_id}")
    assert guard.taken == 1000

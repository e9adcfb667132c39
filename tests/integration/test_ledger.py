"""The ledger against moto's DynamoDB server: exactly-once deposits, balances and paged history."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from ulid import ULID

from tests.dynamodb_faults import INTERNAL_ERROR, THROTTLED, TRANSACTION_CONFLICT, failing
from wallet import ledger, models
from wallet.amounts import MAX_AMOUNT
from wallet.ledger import Credit, InvalidAmountError, InvalidPageError, LedgerUnavailableError
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")


def deposit(user_id: str, amount: int, payment_id: str) -> Credit:
    return ledger.add_credits(
        user_id,
        amount,
        source="stripe_payment",
        payment_id=payment_id,
        currency="usd",
        stripe_session_id="cs_test_1",
        stripe_payment_intent_id="pi_1",
        stripe_event_id="evt_1",
    )


def rows(user_id: str) -> list[CreditTransaction]:
    return list(CreditTransaction.query(user_id))


def transact_client() -> object:
    return models.connection().client


def test_a_first_deposit_writes_one_row_and_the_balance() -> None:
    payment_id = str(ULID())

    outcome = deposit("alice", 5000, payment_id)

    assert outcome is Credit.CREDITED
    assert ledger.get_balance("alice") == 5000
    [row] = rows("alice")
    assert (row.transaction_id, row.payment_id, row.type, row.amount, row.source) == (
        payment_id,
        payment_id,
        "deposit",
        5000,
        "stripe_payment",
    )
    assert (row.stripe_session_id, row.stripe_payment_intent_id, row.stripe_event_id) == (
        "cs_test_1",
        "pi_1",
        "evt_1",
    )
    assert row.created_at.endswith("Z")


def test_the_same_payment_again_changes_nothing() -> None:
    payment_id = str(ULID())
    deposit("alice", 1000, payment_id)

    outcome = deposit("alice", 1000, payment_id)

    assert outcome is Credit.ALREADY_CREDITED
    assert ledger.get_balance("alice") == 1000
    assert len(rows("alice")) == 1


def test_a_user_never_seen_has_a_zero_balance_and_no_history() -> None:
    assert ledger.get_balance("nobody") == 0
    assert ledger.list_transactions("nobody") == ledger.Page([], None)


def test_64_concurrent_deliveries_of_one_payment_credit_once() -> None:
    payment_id = str(ULID())

    with ThreadPoolExecutor(max_workers=64) as pool:
        outcomes = Counter(pool.map(lambda _: deposit("alice", 1000, payment_id), range(64)))

    assert outcomes == {Credit.CREDITED: 1, Credit.ALREADY_CREDITED: 63}
    assert len(rows("alice")) == 1
    assert ledger.get_balance("alice") == 1000


def test_1000_distinct_payments_from_16_threads_all_count() -> None:
    amounts = [(i % 7 + 1) * 100 for i in range(1000)]
    payments = [(str(ULID()), amount) for amount in amounts]

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(lambda p: deposit("alice", p[1], p[0]), payments))

    # moto ignores TransactWriteItems' ClientRequestToken: a transaction that committed after botocore's read
    # timeout is retried and answered "already credited" (DynamoDB answers that retry with success). Each
    # payment counts once either way, which the rows and the balance show.
    assert outcomes[Credit.CREDITED] + outcomes[Credit.ALREADY_CREDITED] == 1000
    assert len(rows("alice")) == 1000
    assert ledger.get_balance("alice") == sum(amounts)


@pytest.mark.parametrize("fault", [THROTTLED, INTERNAL_ERROR], ids=["throttled", "internal-error"])
def test_a_dynamodb_failure_surfaces_and_writes_nothing(fault: tuple[int, dict[str, object]]) -> None:
    deposit("alice", 1000, str(ULID()))

    with (
        failing(transact_client(), "TransactWriteItems", fault) as answered,
        pytest.raises(LedgerUnavailableError),
    ):
        deposit("alice", 5000, str(ULID()))

    assert len(answered) > 1, "botocore retries throttling and 5xx before giving up"
    assert ledger.get_balance("alice") == 1000
    assert len(rows("alice")) == 1


def test_a_transient_throttle_is_retried_and_credits_once() -> None:
    with failing(transact_client(), "TransactWriteItems", THROTTLED, times=1) as answered:
        outcome = deposit("alice", 5000, str(ULID()))

    assert answered == ["TransactWriteItems"]
    assert outcome is Credit.CREDITED
    assert ledger.get_balance("alice") == 5000


def test_a_transaction_conflict_is_retried_in_process() -> None:
    with failing(transact_client(), "TransactWriteItems", TRANSACTION_CONFLICT, times=2) as answered:
        outcome = deposit("alice", 5000, str(ULID()))

    assert len(answered) == 2
    assert outcome is Credit.CREDITED
    assert ledger.get_balance("alice") == 5000
    assert len(rows("alice")) == 1


def test_endless_transaction_conflicts_give_up_with_nothing_written() -> None:
    with (
        failing(transact_client(), "TransactWriteItems", TRANSACTION_CONFLICT),
        pytest.raises(LedgerUnavailableError),
    ):
        deposit("alice", 5000, str(ULID()))

    assert ledger.get_balance("alice") == 0
    assert rows("alice") == []


@pytest.mark.parametrize(
    "amount", [0, -100, 10.5, 1000.0, True, "1000", None, [1000], MAX_AMOUNT + 1, 10**40]
)
def test_amounts_that_are_not_positive_whole_minor_units_are_refused_before_any_write(amount: object) -> None:
    with pytest.raises(InvalidAmountError, match=f"whole number of minor units from 1 to {MAX_AMOUNT}"):
        deposit("alice", amount, str(ULID()))  # type: ignore[arg-type]

    assert ledger.get_balance("alice") == 0
    assert rows("alice") == []


def test_45_rows_paged_20_at_a_time_come_back_once_each_newest_first() -> None:
    payment_ids = [str(ULID()) for _ in range(45)]
    for payment_id in payment_ids:
        deposit("alice", 100, payment_id)
    deposit("bob", 100, str(ULID()))

    pages, cursor = [], None
    while True:
        page = ledger.list_transactions("alice", limit=20, cursor=cursor)
        pages.append([t.id for t in page.transactions])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert [len(p) for p in pages] == [20, 20, 5]
    assert [i for p in pages for i in p] == sorted(payment_ids, reverse=True)


def test_a_cursor_only_ever_pages_the_callers_own_history() -> None:
    for _ in range(3):
        deposit("alice", 100, str(ULID()))
    bobs = [str(ULID()) for _ in range(3)]
    for payment_id in bobs:
        deposit("bob", 100, payment_id)
    alices_cursor = ledger.list_transactions("alice", limit=1).next_cursor
    assert alices_cursor is not None

    page = ledger.list_transactions("bob", limit=10, cursor=alices_cursor)

    assert {t.id for t in page.transactions} <= set(bobs)


@pytest.mark.parametrize("limit", [0, -1, 101, 2.5, "20", True])
def test_a_page_size_outside_1_to_100_is_refused(limit: object) -> None:
    with pytest.raises(InvalidPageError, match="1 to 100"):
        ledger.list_transactions("alice", limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("cursor", ["", "not-base64!", "e30", "eyJhZnRlciI6ICJ4In0", "W10"])
def test_a_cursor_the_api_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidPageError, match="cursor"):
        ledger.list_transactions("alice", cursor=cursor)

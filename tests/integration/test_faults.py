"""Faults at DynamoDB and at Stripe while a top-up is under way.

For each: the caller gets the documented status, nothing is half-written, and what comes next (Stripe
delivering again, the user trying again or coming back to the success page) ends in exactly one credit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.stripe_emulator import ApiRequest, SignedEvent, StripeEmulator
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.checkout_flow import deliver, start_checkout
from tests.dynamodb_faults import INTERNAL_ERROR, THROTTLED, TIMED_OUT, TRANSACTION_CONFLICT, failing
from tests.lambda_events import HttpResponse, api_event, invoke
from tests.waiting import wait_until
from wallet import ledger, models, payments
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")

Fault = tuple[int, dict[str, Any]]


def rows(user: str) -> list[tuple[str, int]]:
    return sorted((row.transaction_id, int(row.amount)) for row in CreditTransaction.query(user))


def credited_once(user: str, payment_id: str, amount: int) -> bool:
    return ledger.get_balance(user) == amount and rows(user) == [(payment_id, amount)]


def nothing_written(user: str) -> bool:
    return ledger.get_balance(user) == 0 and rows(user) == []


def success_page(user: str, session_id: str) -> HttpResponse:
    path = {"sessionId": session_id}
    return invoke(
        create_checkout, api_event("GET", "/api/checkout/{sessionId}", user=user, path_parameters=path)
    )


def post_checkout(user: str, amount: int) -> HttpResponse:
    return invoke(
        create_checkout, api_event("POST", "/api/checkout", user=user, body=f'{{"amount": {amount}}}')
    )


def transact_client() -> Any:
    return models.connection().client


# -- DynamoDB --------------------------------------------------------------------------------------------


PERSISTENT_FAULTS: dict[str, Callable[[], Any]] = {
    "throttled": lambda: failing(transact_client(), "TransactWriteItems", THROTTLED),
    "500": lambda: failing(transact_client(), "TransactWriteItems", INTERNAL_ERROR),
    "transaction conflicts": lambda: failing(transact_client(), "TransactWriteItems", TRANSACTION_CONFLICT),
    "read timeout": lambda: failing(transact_client(), "TransactWriteItems", TIMED_OUT),
}


@pytest.fixture
def paid(stripe_emulator: StripeEmulator) -> tuple[SignedEvent, str, str]:
    """alice's paid $50 session: its signed checkout.session.completed, the session id and payment id."""
    session_id = start_checkout("alice", 5000)
    *_, completed = stripe_emulator.pay(session_id)
    return stripe_emulator.sign(completed), session_id, completed["data"]["object"]["metadata"]["paymentId"]


@pytest.mark.parametrize("fault", sorted(PERSISTENT_FAULTS))
def test_dynamodb_failing_a_webhook_is_a_500_with_nothing_written_and_redelivery_credits_once(
    paid: tuple[SignedEvent, str, str], fault: str
) -> None:
    signed, _, payment_id = paid

    with PERSISTENT_FAULTS[fault]() as answered:
        failed = deliver(signed)

    assert answered, "the fault was injected"
    assert (failed.status, failed.body["error"]["code"]) == (500, "ledger_unavailable")
    assert nothing_written("alice")
    assert [deliver(signed.resigned()).status for _ in range(2)] == [200, 200]
    assert credited_once("alice", payment_id, 5000)


@pytest.mark.parametrize("fault", ["500", "transaction conflicts", "read timeout"])
def test_dynamodb_failing_the_success_page_is_a_500_with_nothing_written_and_it_credits_once_later(
    paid: tuple[SignedEvent, str, str], fault: str
) -> None:
    signed, session_id, payment_id = paid

    with PERSISTENT_FAULTS[fault]():
        failed = success_page("alice", session_id)

    assert (failed.status, failed.body["error"]["code"]) == (500, "ledger_unavailable")
    assert nothing_written("alice")
    assert success_page("alice", session_id).body["credited"] is True
    assert deliver(signed.resigned()).status == 200
    assert credited_once("alice", payment_id, 5000)


@pytest.mark.parametrize(
    ("fault", "times"), [(THROTTLED, 1), (INTERNAL_ERROR, 1), (TRANSACTION_CONFLICT, 3)], ids=str
)
def test_a_transient_dynamodb_fault_is_retried_within_the_delivery_and_credits_once(
    paid: tuple[SignedEvent, str, str], fault: Fault, times: int
) -> None:
    signed, _, payment_id = paid

    with failing(transact_client(), "TransactWriteItems", fault, times=times) as answered:
        response = deliver(signed)

    assert len(answered) == times
    assert response.status == 200
    assert credited_once("alice", payment_id, 5000)


def test_a_deposit_committed_whose_answer_was_lost_is_not_credited_twice(
    paid: tuple[SignedEvent, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    signed, _, payment_id = paid

    with failing(
        transact_client(), "TransactWriteItems", INTERNAL_ERROR, times=1, after_sending=True
    ) as answered:
        response = deliver(signed)

    assert answered == ["TransactWriteItems"]
    assert response.status == 200
    # botocore's retry of the lost attempt found the deposit already there.
    assert '"DuplicateDeliveries":[1.0]' in capsys.readouterr().out.replace(" ", "")
    assert credited_once("alice", payment_id, 5000)
    assert deliver(signed.resigned()).status == 200
    assert credited_once("alice", payment_id, 5000)


# -- Stripe ----------------------------------------------------------------------------------------------


@pytest.fixture
def impatient_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The Stripe client with a 0.25 s timeout instead of 8 s, so a slow Stripe is quick to test."""
    monkeypatch.setattr(payments, "TIMEOUT_SECONDS", 0.25)
    payments.stripe_client.cache_clear()
    yield payments.TIMEOUT_SECONDS
    monkeypatch.undo()
    payments.stripe_client.cache_clear()


def creates(emulator: StripeEmulator) -> list[ApiRequest]:
    return [r for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")]


def retrieves(emulator: StripeEmulator, session_id: str) -> list[ApiRequest]:
    return [
        r for r in emulator.requests if (r.method, r.path) == ("GET", f"/v1/checkout/sessions/{session_id}")
    ]


def pay_and_deliver(emulator: StripeEmulator, session_id: str) -> str:
    *_, completed = emulator.pay(session_id)
    assert deliver(emulator.sign(completed)).status == 200
    return str(completed["data"]["object"]["metadata"]["paymentId"])


STRIPE_FAULTS = [
    # (id, status or None for slow, delay, requests the SDK makes: it retries 5xx and timeouts twice)
    ("500", 500, 0.0, 3),
    ("503", 503, 0.0, 3),
    ("rate limited", 429, 0.0, 1),
    ("timeout", None, 0.75, 3),
]


@pytest.mark.usefixtures("impatient_stripe")
@pytest.mark.parametrize(
    ("fault", "status", "delay", "attempts"), STRIPE_FAULTS, ids=[f[0] for f in STRIPE_FAULTS]
)
def test_stripe_failing_to_create_is_a_502_with_nothing_written_and_trying_again_credits_once(
    stripe_emulator: StripeEmulator, fault: str, status: int | None, delay: float, attempts: int
) -> None:
    before = len(creates(stripe_emulator))
    stripe_emulator.fail_next(attempts, status=status, delay=delay)

    failed = post_checkout("alice", 5000)

    assert (failed.status, failed.body["error"]["code"]) == (502, "stripe_unavailable")
    # A slow Stripe finishes what the client gave up on: still one session per payment id, never paid.
    wait_until(
        lambda: len(creates(stripe_emulator)) == before + attempts,
        f"{attempts} attempts to create the session answered, the slow ones included",
    )
    attempted = creates(stripe_emulator)[before:]
    assert len({r.idempotency_key for r in attempted}) == 1
    assert sum(r.status == 200 and not r.replayed for r in attempted) == (1 if status is None else 0)
    assert nothing_written("alice")

    again = post_checkout("alice", 5000)
    assert again.status == 201
    payment_id = pay_and_deliver(stripe_emulator, again.body["sessionId"])
    assert credited_once("alice", payment_id, 5000)


@pytest.mark.usefixtures("impatient_stripe")
@pytest.mark.parametrize(
    ("fault", "status", "delay", "attempts"), STRIPE_FAULTS, ids=[f[0] for f in STRIPE_FAULTS]
)
def test_stripe_failing_to_retrieve_is_a_502_with_nothing_written_and_coming_back_credits_once(
    stripe_emulator: StripeEmulator, fault: str, status: int | None, delay: float, attempts: int
) -> None:
    session_id = start_checkout("alice", 10000)
    *_, completed = stripe_emulator.pay(session_id)
    before = len(retrieves(stripe_emulator, session_id))
    stripe_emulator.fail_next(attempts, status=status, delay=delay)

    failed = success_page("alice", session_id)

    assert (failed.status, failed.body["error"]["code"]) == (502, "stripe_unavailable")
    wait_until(
        lambda: len(retrieves(stripe_emulator, session_id)) == before + attempts,
        f"{attempts} attempts to retrieve the session answered, the slow ones included",
    )
    assert nothing_written("alice")
    back = success_page("alice", session_id)
    assert (back.status, back.body["credited"]) == (200, True)
    assert deliver(stripe_emulator.sign(completed)).status == 200
    assert credited_once("alice", completed["data"]["object"]["metadata"]["paymentId"], 10000)

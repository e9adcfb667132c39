"""Exactly once, as a property: for any set of Checkout Sessions, however they end, and any schedule of
deliveries of their events (each at least once, as Stripe promises, with duplicates, retries signed
afresh, stale replays, in any order) mixed with success-page checks, each user's balance is the sum of
their paid sessions and the ledger holds exactly one deposit per paid session.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.dynamodb import DynamoDBServer
from devstack.stripe_emulator import SignedEvent, StripeEmulator
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.checkout_flow import deliver, start_checkout
from tests.conftest import TABLE_NAMES
from tests.lambda_events import api_event, invoke
from wallet import ledger
from wallet.models import CreditTransaction

USERS = ("alice", "bob")
PACKS = (1000, 5000, 10000)
# How a session ends, and whether that is a payment that must be credited.
FATES = {
    "paid by card": True,
    "paid later, settled": True,
    "paid later, failed": False,
    "paid later, pending": False,
    "expired": False,
    "left open": False,
}


@dataclass(frozen=True)
class Session:
    user: str
    amount: int
    fate: str


def sessions() -> st.SearchStrategy[list[Session]]:
    one = st.builds(Session, st.sampled_from(USERS), st.sampled_from(PACKS), st.sampled_from(sorted(FATES)))
    return st.lists(one, min_size=1, max_size=4)


def play(emulator: StripeEmulator, session: Session) -> tuple[str, list[dict[str, Any]]]:
    """Open the session through the API and end it as its fate says; its id and the events Stripe sent."""
    session_id = start_checkout(session.user, session.amount)
    match session.fate:
        case "paid by card":
            events = emulator.pay(session_id)
        case "paid later, settled":
            events = emulator.pay_later(session_id) + emulator.settle(session_id)
        case "paid later, failed":
            events = emulator.pay_later(session_id) + emulator.fail_payment(session_id)
        case "paid later, pending":
            events = emulator.pay_later(session_id)
        case "expired":
            events = emulator.expire(session_id)
        case _:
            events = []
    return session_id, events


def success_page(user: str, session_id: str) -> int:
    path = {"sessionId": session_id}
    response = invoke(
        create_checkout, api_event("GET", "/api/checkout/{sessionId}", user=user, path_parameters=path)
    )
    return response.status


def ledger_of(user: str) -> tuple[int, Counter[str]]:
    return ledger.get_balance(user), Counter(row.payment_id for row in CreditTransaction.query(user))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(planned=sessions(), data=st.data())
def test_any_schedule_of_deliveries_and_checks_credits_each_paid_session_exactly_once(
    dynamodb_server: DynamoDBServer,
    stripe_emulator: StripeEmulator,
    planned: list[Session],
    data: st.DataObject,
) -> None:
    dynamodb_server.reset()
    dynamodb_server.create_tables(TABLE_NAMES)
    played = [play(stripe_emulator, session) for session in planned]
    signed: list[SignedEvent] = [stripe_emulator.sign(event) for _, events in played for event in events]
    events = range(len(signed))
    owners = range(len(planned))
    # Every event at least once; then duplicates, fresh-signed retries, stale replays and page visits.
    steps: list[tuple[str, int]] = [("deliver", i) for i in events]
    if signed:
        steps += data.draw(
            st.lists(
                st.tuples(st.sampled_from(["deliver", "retry", "stale"]), st.sampled_from(events)), max_size=8
            )
        )
    steps += data.draw(
        st.lists(
            st.tuples(st.sampled_from(["owner checks", "other user checks"]), st.sampled_from(owners)),
            max_size=4,
        )
    )
    schedule = data.draw(st.permutations(steps))

    statuses = []
    for kind, index in schedule:
        if kind == "deliver":
            statuses.append((kind, deliver(signed[index]).status))
        elif kind == "retry":
            statuses.append((kind, deliver(signed[index].resigned()).status))
        elif kind == "stale":
            statuses.append((kind, deliver(signed[index].resigned(int(time.time()) - 600)).status))
        else:
            session, session_id = planned[index], played[index][0]
            user = session.user if kind == "owner checks" else next(u for u in USERS if u != session.user)
            statuses.append((kind, success_page(user, session_id)))

    expected_status = {
        "deliver": 200,
        "retry": 200,
        "stale": 400,
        "owner checks": 200,
        "other user checks": 404,
    }
    assert all(status == expected_status[kind] for kind, status in statuses), statuses
    for user in USERS:
        paid = {
            events[0]["data"]["object"]["metadata"]["paymentId"]: session.amount
            for session, (_, events) in zip(planned, played, strict=True)
            if session.user == user and FATES[session.fate]
        }
        assert ledger_of(user) == (sum(paid.values()), Counter(paid.keys()))

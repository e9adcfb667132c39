"""Refunds on the emulator beyond one that succeeds at once: every status Stripe gives a refund (pending,
requires_action, succeeded, failed, canceled), what a failed or canceled refund gives back to its charge,
the events each move sends, and refunds while the charge is disputed."""

from __future__ import annotations

import inspect
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from devstack.stripe_emulator import (
    InvalidTransitionError,
    StripeApiError,
    StripeEmulator,
    UnknownObjectError,
)
from tests.integration.test_stripe_emulator import API_KEY, sdk
from tests.integration.test_stripe_emulator_after_payment import SHAPES, all_fit, paid_charge, types_of

UPDATED = ["refund.updated", "charge.refund.updated"]
FAILED = ["refund.failed", *UPDATED]


@pytest.fixture
def emulator() -> Iterator[StripeEmulator]:
    with StripeEmulator(api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def client(emulator: StripeEmulator) -> stripe.StripeClient:
    return sdk(emulator)


def post(emulator: StripeEmulator, path: str, **params: str) -> tuple[int, Any]:
    body = "&".join(f"{key}={value}" for key, value in params.items()).encode()
    request = urllib.request.Request(
        f"{emulator.api_base}/_emulator/{path}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def refund_starting(
    emulator: StripeEmulator, client: stripe.StripeClient, status: str, amount: int = 2000
) -> tuple[stripe.Charge, stripe.Refund]:
    charge = paid_charge(emulator, client)
    assert post(emulator, f"charges/{charge.id}/refunds", status=status) == (
        200,
        {"charge": charge.id, "refunds_start_as": status},
    )
    return charge, client.v1.refunds.create({"charge": charge.id, "amount": amount})


def held_to_stripes_shape(refund: stripe.Refund, *extra: str) -> None:
    """Stripe's example's keys, plus those Stripe shows only in this status; the SDK's types throughout."""
    as_json = refund.to_dict()
    assert as_json.keys() == SHAPES["refund"].keys() | set(extra)
    assert all_fit(as_json, stripe.Refund) == []


def test_a_refund_can_start_pending_and_counts_as_refunded_until_it_settles(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge, refund = refund_starting(emulator, client, "pending")
    before = len(emulator.events)

    sent = emulator.refund_action(refund.id, "succeed")

    settled = client.v1.refunds.retrieve(refund.id)
    assert (refund.status, refund.pending_reason) == ("pending", "processing")
    held_to_stripes_shape(refund, "pending_reason")
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 2000
    assert types_of(emulator.events[before - 2 : before]) == ["charge.refunded", "refund.created"]
    assert settled.status == "succeeded"
    held_to_stripes_shape(settled)
    assert types_of(sent) == UPDATED
    assert [event["data"]["object"] for event in sent] == [settled.to_dict()] * 2
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 2000


def test_a_refund_can_wait_for_the_customers_details(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge, refund = refund_starting(emulator, client, "requires_action")

    assert refund.status == "requires_action"
    assert refund.next_action is not None
    assert refund.next_action.type == "display_details"
    assert refund.next_action.display_details is not None
    assert refund.next_action.display_details.expires_at > refund.created
    held_to_stripes_shape(refund, "next_action")
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 2000


@pytest.mark.parametrize("start", ["pending", "succeeded"])
def test_a_failed_refund_gives_its_amount_back_to_the_charge(
    emulator: StripeEmulator, client: stripe.StripeClient, start: str
) -> None:
    charge, refund = refund_starting(emulator, client, start, amount=5000)
    full = client.v1.charges.retrieve(charge.id)

    sent = emulator.fail_refund(refund.id, "lost_or_stolen_card")

    failed = client.v1.refunds.retrieve(refund.id)
    after = client.v1.charges.retrieve(charge.id)
    assert (full.amount_refunded, full.refunded) == (5000, True)
    assert (failed.status, failed.failure_reason) == ("failed", "lost_or_stolen_card")
    assert str(failed.failure_balance_transaction).startswith("txn_")
    held_to_stripes_shape(failed, "failure_reason", "failure_balance_transaction")
    assert types_of(sent) == FAILED
    assert [event["data"]["object"] for event in sent] == [failed.to_dict()] * 3
    assert (after.amount_refunded, after.refunded) == (0, False)
    assert after.refunds is not None
    assert [listed.status for listed in after.refunds.data] == ["failed"]
    # What came back can be refunded again.
    assert client.v1.refunds.create({"charge": charge.id}).amount == 5000


@pytest.mark.parametrize("start", ["pending", "requires_action"])
def test_a_canceled_refund_gives_its_amount_back_without_failing(
    emulator: StripeEmulator, client: stripe.StripeClient, start: str
) -> None:
    charge, refund = refund_starting(emulator, client, start)

    sent = emulator.cancel_refund(refund.id)

    canceled = client.v1.refunds.retrieve(refund.id)
    assert canceled.status == "canceled"
    held_to_stripes_shape(canceled)
    assert types_of(sent) == UPDATED
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0


def documented_statuses() -> set[str]:
    """The refund statuses the SDK's docstring of `Refund.status` lists (it types the field as a string)."""
    source = inspect.getsource(stripe.Refund)
    docstring = source.split("    status: Optional[str]\n", 1)[1].split('"""')[1]
    return set(re.findall(r"`([a-z_]+)`", docstring.split("Learn more")[0]))


def test_every_status_the_sdk_documents_for_a_refund_is_reached(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    _, pending = refund_starting(emulator, client, "pending")
    _, waiting = refund_starting(emulator, client, "requires_action")
    _, succeeded = refund_starting(emulator, client, "succeeded")
    _, failing = refund_starting(emulator, client, "succeeded")
    _, canceling = refund_starting(emulator, client, "pending")
    emulator.fail_refund(failing.id)
    emulator.cancel_refund(canceling.id)

    reached = [client.v1.refunds.retrieve(r.id) for r in (pending, waiting, succeeded, failing, canceling)]

    assert {refund.status for refund in reached} == documented_statuses()
    assert documented_statuses() == {"pending", "requires_action", "succeeded", "failed", "canceled"}
    assert all(all_fit(refund.to_dict(), stripe.Refund) == [] for refund in reached)


@pytest.mark.parametrize(
    ("start", "moves", "refused"),
    [
        ("succeeded", ["cancel"], "only a refund that is pending or requires_action"),
        ("succeeded", ["succeed"], "only a refund that is pending or requires_action"),
        ("requires_action", ["fail"], "only a refund that is pending or succeeded"),
        ("pending", ["fail", "fail"], "it is failed"),
        ("pending", ["fail", "cancel"], "it is failed"),
        ("pending", ["fail", "succeed"], "it is failed"),
        ("pending", ["cancel", "succeed"], "it is canceled"),
        ("pending", ["cancel", "fail"], "it is canceled"),
        ("pending", ["succeed", "cancel"], "it is succeeded"),
    ],
)
def test_a_move_stripe_would_not_make_is_a_409_that_changes_nothing(
    emulator: StripeEmulator, client: stripe.StripeClient, start: str, moves: list[str], refused: str
) -> None:
    charge, refund = refund_starting(emulator, client, start)
    for move in moves[:-1]:
        assert post(emulator, f"refunds/{refund.id}", action=move)[0] == 200
    before = emulator.events
    refunded = client.v1.charges.retrieve(charge.id).amount_refunded

    status, answer = post(emulator, f"refunds/{refund.id}", action=moves[-1])

    assert status == 409, answer
    assert refused in answer["error"]["message"]
    assert emulator.events == before
    assert client.v1.charges.retrieve(charge.id).amount_refunded == refunded
    with pytest.raises(InvalidTransitionError):
        emulator.refund_action(refund.id, moves[-1])


def test_the_refund_control_answers_the_refund_it_moved(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    _, refund = refund_starting(emulator, client, "pending")

    status, answer = post(emulator, f"refunds/{refund.id}", action="fail", failure_reason="declined")

    assert status == 200, answer
    assert answer == client.v1.refunds.retrieve(refund.id).to_dict()
    assert (answer["status"], answer["failure_reason"]) == ("failed", "declined")


@pytest.mark.parametrize(
    ("path", "params", "expected", "message"),
    [
        ("refunds/re_unknown", {"action": "fail"}, 404, "no refund"),
        ("refunds/{refund}", {"action": "refund"}, 400, "action must be one of succeed, fail, cancel"),
        ("refunds/{refund}", {}, 400, "action must be one of"),
        ("refunds/{refund}", {"action": "fail", "failure_reason": "whim"}, 400, "failure_reason is one of"),
        ("refunds/{refund}", {"action": "cancel", "failure_reason": "declined"}, 400, "only to fail"),
        ("refunds/{refund}", {"action": "fail", "amount": "1"}, 400, "unknown parameter amount"),
        ("charges/ch_unknown/refunds", {"status": "pending"}, 404, "no charge"),
        ("charges/{charge}/refunds", {"status": "failed"}, 400, "status must be one of"),
        ("charges/{charge}/refunds", {}, 400, "status must be one of"),
    ],
)
def test_a_bad_control_request_is_refused_and_changes_nothing(
    emulator: StripeEmulator,
    client: stripe.StripeClient,
    path: str,
    params: dict[str, str],
    expected: int,
    message: str,
) -> None:
    charge, refund = refund_starting(emulator, client, "pending")
    before = emulator.events

    status, answer = post(emulator, path.format(refund=refund.id, charge=charge.id), **params)

    assert status == expected, answer
    assert message in answer["error"]["message"]
    assert emulator.events == before
    assert client.v1.refunds.retrieve(refund.id).status == "pending"


def test_refunds_start_succeeded_again_when_asked(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge, held = refund_starting(emulator, client, "pending", amount=100)

    emulator.start_refunds_as(charge.id, "succeeded")
    again = client.v1.refunds.create({"charge": charge.id, "amount": 100})

    assert (held.status, again.status) == ("pending", "succeeded")
    with pytest.raises(UnknownObjectError):
        emulator.start_refunds_as("ch_unknown")
    with pytest.raises(ValueError, match="starts as one of"):
        emulator.start_refunds_as(charge.id, "failed")


@pytest.mark.parametrize(
    ("steps", "refundable"),
    [
        ([], True),
        (["inquire"], True),
        (["inquire", "submit"], True),
        (["inquire", "win"], True),
        (["inquire", "escalate"], False),
        (["open"], False),
        (["open", "win"], False),
        (["open", "lose"], False),
        (["prevent"], False),
    ],
)
def test_a_charge_is_refunded_unless_its_dispute_took_the_money(
    emulator: StripeEmulator, client: stripe.StripeClient, steps: list[str], refundable: bool
) -> None:
    charge = paid_charge(emulator, client)
    for action in steps:
        assert post(emulator, f"charges/{charge.id}/dispute", action=action)[0] == 200

    if refundable:
        assert client.v1.refunds.create({"charge": charge.id, "amount": 1000}).status == "succeeded"
        assert client.v1.charges.retrieve(charge.id).amount_refunded == 1000
    else:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.refunds.create({"charge": charge.id, "amount": 1000})
        assert (refused.value.http_status, refused.value.code) == (400, "charge_disputed")
        with pytest.raises(StripeApiError):
            emulator.refund(charge.id, 1000)
        assert client.v1.charges.retrieve(charge.id).amount_refunded == 0


def test_the_api_cancels_a_refund_waiting_for_the_customer(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge, refund = refund_starting(emulator, client, "requires_action")
    before = len(emulator.events)

    canceled = client.v1.refunds.cancel(refund.id)

    assert canceled.status == "canceled"
    held_to_stripes_shape(canceled)
    assert canceled.to_dict() == client.v1.refunds.retrieve(refund.id).to_dict()
    assert types_of(emulator.events[before:]) == UPDATED
    assert emulator.events[-1]["request"]["id"] is not None
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0


@pytest.mark.parametrize("start", ["pending", "succeeded"])
def test_the_api_cancels_no_other_refund(
    emulator: StripeEmulator, client: stripe.StripeClient, start: str
) -> None:
    _, refund = refund_starting(emulator, client, start)
    before = emulator.events

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.cancel(refund.id)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.refunds.cancel("re_unknown")

    assert refused.value.http_status == 400
    assert "only a refund with a status of requires_action" in str(refused.value.user_message)
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")
    assert client.v1.refunds.retrieve(refund.id).status == start
    assert emulator.events == before


@pytest.mark.parametrize(
    ("steps", "fails"), [(["open"], True), (["inquire", "escalate"], True), (["inquire"], False)]
)
def test_a_chargeback_fails_the_charges_pending_refunds(
    emulator: StripeEmulator, client: stripe.StripeClient, steps: list[str], fails: bool
) -> None:
    charge, pending = refund_starting(emulator, client, "pending", amount=1000)
    emulator.start_refunds_as(charge.id, "succeeded")
    settled = client.v1.refunds.create({"charge": charge.id, "amount": 500})
    before = len(emulator.events)

    for action in steps:
        assert post(emulator, f"charges/{charge.id}/dispute", action=action)[0] == 200

    after = client.v1.refunds.retrieve(pending.id)
    sent = types_of(emulator.events[before:])
    if fails:
        assert (after.status, after.failure_reason) == ("failed", "charge_for_pending_refund_disputed")
        assert sent[-4:] == ["charge.dispute.funds_withdrawn", *FAILED]
        assert client.v1.charges.retrieve(charge.id).amount_refunded == 500
    else:
        assert after.status == "pending"
        assert "refund.failed" not in sent
        assert client.v1.charges.retrieve(charge.id).amount_refunded == 1500
    assert client.v1.refunds.retrieve(settled.id).status == "succeeded"


def test_the_refunds_of_a_payment_are_listed_as_they_are_now_newest_first(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge, first = refund_starting(emulator, client, "pending", amount=1000)
    other, _ = refund_starting(emulator, client, "succeeded", amount=500)
    second = client.v1.refunds.create({"charge": charge.id, "amount": 300})
    emulator.fail_refund(first.id)

    listed = client.v1.refunds.list({"payment_intent": str(charge.payment_intent), "limit": 100})
    by_charge = client.v1.refunds.list({"charge": charge.id, "limit": 1})
    everything = list(client.v1.refunds.list({"limit": 1}).auto_paging_iter())

    assert [(r.id, r.status) for r in listed.data] == [(second.id, "pending"), (first.id, "failed")]
    assert listed.has_more is False
    assert [r.id for r in by_charge.data] == [second.id]
    assert by_charge.has_more is True
    assert len(everything) == 3
    assert other.id != charge.id
    held_to_stripes_shape(listed.data[1], "failure_reason", "failure_balance_transaction")


@pytest.mark.parametrize("limit", [0, 101])
def test_a_refund_list_takes_a_limit_from_1_to_100(
    emulator: StripeEmulator, client: stripe.StripeClient, limit: int
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="limit"):
        client.v1.refunds.list({"limit": limit})

"""Disputes on the emulator: every status Stripe gives one, reached by the test control as at Stripe
(inquiry, chargeback, evidence, appeal, prevention), with Stripe's events and money movements, and every
step Stripe would not take refused."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from devstack.stripe_emulator import InvalidTransitionError, StripeEmulator, UnknownObjectError
from tests.integration.test_stripe_emulator_after_payment import SHAPES, all_fit, paid_charge, types_of
from tests.integration.test_stripe_emulator_fidelity import declared_values
from tests.integration.test_stripe_emulator_refunds import client, emulator, post

__all__ = ["client", "emulator"]  # the fixtures these tests share with the refunds'

CREATED, UPDATED, CLOSED = "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"
WITHDRAWN, REINSTATED = "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"
PAID = 5000

# Steps from a paid charge of 50.00 -> the dispute's status, the events sent, whether the charge can still
# be refunded, and the amounts of the balance transactions (withdrawn, reinstated).
LIFECYCLES: list[tuple[list[str], str, list[str], bool, list[int]]] = [
    (["inquire"], "warning_needs_response", [CREATED], True, []),
    (["inquire", "submit"], "warning_under_review", [CREATED, UPDATED], True, []),
    (["inquire", "win"], "warning_closed", [CREATED, CLOSED], True, []),
    (["inquire", "submit", "win"], "warning_closed", [CREATED, UPDATED, CLOSED], True, []),
    (["inquire", "escalate"], "needs_response", [CREATED, UPDATED, WITHDRAWN], False, [-PAID]),
    (
        ["inquire", "submit", "escalate"],
        "needs_response",
        [CREATED, UPDATED, UPDATED, WITHDRAWN],
        False,
        [-PAID],
    ),
    (["open"], "needs_response", [CREATED, WITHDRAWN], False, [-PAID]),
    (["open", "submit"], "under_review", [CREATED, WITHDRAWN, UPDATED], False, [-PAID]),
    (["open", "win"], "won", [CREATED, WITHDRAWN, CLOSED, REINSTATED], False, [-PAID, PAID]),
    (
        ["open", "submit", "win"],
        "won",
        [CREATED, WITHDRAWN, UPDATED, CLOSED, REINSTATED],
        False,
        [-PAID, PAID],
    ),
    (["open", "submit", "lose"], "lost", [CREATED, WITHDRAWN, UPDATED, CLOSED], False, [-PAID]),
    (["open", "lose"], "lost", [CREATED, WITHDRAWN, CLOSED], False, [-PAID]),
    (
        ["open", "lose", "appeal"],
        "appeal_needs_response",
        [CREATED, WITHDRAWN, CLOSED, UPDATED],
        False,
        [-PAID],
    ),
    (
        ["open", "lose", "appeal", "submit"],
        "appeal_under_review",
        [CREATED, WITHDRAWN, CLOSED, UPDATED, UPDATED],
        False,
        [-PAID],
    ),
    (
        ["open", "lose", "appeal", "submit", "win"],
        "won",
        [CREATED, WITHDRAWN, CLOSED, UPDATED, UPDATED, CLOSED, REINSTATED],
        False,
        [-PAID, PAID],
    ),
    (
        ["open", "lose", "appeal", "lose"],
        "lost",
        [CREATED, WITHDRAWN, CLOSED, UPDATED, CLOSED],
        False,
        [-PAID],
    ),
    (["prevent"], "prevented", [CREATED, CLOSED], False, [-PAID]),
    (["block"], "prevented", [CREATED, CLOSED], False, []),
]


def dispute_control(emulator: StripeEmulator, charge: str, **params: object) -> tuple[int, Any]:
    """`POST /_emulator/charges/{charge}/dispute` with a form body; its status and JSON answer."""
    return post(emulator, f"charges/{charge}/dispute", **{key: str(value) for key, value in params.items()})


def step(emulator: StripeEmulator, charge: str, action: str, **params: object) -> dict[str, Any]:
    status, answer = dispute_control(emulator, charge, action=action, **params)
    assert status == 200, answer
    return dict(answer)


@pytest.mark.parametrize(("steps", "status", "sent", "refundable", "money"), LIFECYCLES)
def test_each_step_of_the_control_moves_the_dispute_as_stripe_does(
    emulator: StripeEmulator,
    client: stripe.StripeClient,
    steps: list[str],
    status: str,
    sent: list[str],
    refundable: bool,
    money: list[int],
) -> None:
    charge = paid_charge(emulator, client)
    before = len(emulator.events)

    answers = [step(emulator, charge.id, action) for action in steps]

    dispute = client.v1.disputes.retrieve(answers[-1]["id"])
    assert {answer["id"] for answer in answers} == {dispute.id}
    assert answers[-1] == dispute.to_dict()
    assert (dispute.status, dispute.is_charge_refundable) == (status, refundable)
    assert [transaction.amount for transaction in dispute.balance_transactions] == money
    events = emulator.events[before:]
    assert types_of(events) == sent
    assert all(event["data"]["object"]["id"] == dispute.id for event in events)
    assert events[-1]["data"]["object"] == dispute.to_dict()
    assert client.v1.charges.retrieve(charge.id).disputed is True
    assert dispute.to_dict().keys() == SHAPES["dispute"].keys()
    assert all_fit(dispute.to_dict(), stripe.Dispute) == []


def test_the_lifecycles_reach_every_status_the_sdk_declares() -> None:
    assert {status for _, status, *_ in LIFECYCLES} == declared_values(stripe.Dispute, "status")


def test_a_chargeback_withdraws_the_money_and_the_fee_and_a_win_reinstates_the_money(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)

    opened = step(emulator, charge.id, "open", amount=1200)
    won = step(emulator, charge.id, "win")

    withdrawal, reinstatement = won["balance_transactions"]
    assert opened["balance_transactions"] == [withdrawal]
    assert (withdrawal["amount"], withdrawal["fee"], withdrawal["net"]) == (-1200, 1500, -2700)
    assert [fee["amount"] for fee in withdrawal["fee_details"]] == [1500]
    assert (reinstatement["amount"], reinstatement["fee"], reinstatement["net"]) == (1200, 0, 1200)
    for transaction in (withdrawal, reinstatement):
        assert transaction["source"] == won["id"]
        assert transaction["currency"] == "usd"
        assert transaction["type"] == "adjustment"
        assert transaction.keys() == SHAPES["balance_transaction"].keys()
        assert all_fit(transaction, stripe.BalanceTransaction) == []
    assert (withdrawal["reporting_category"], reinstatement["reporting_category"]) == (
        "dispute",
        "dispute_reversal",
    )


def test_an_inquiry_withdraws_nothing_until_it_escalates(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)

    inquiry = step(emulator, charge.id, "inquire", reason="product_not_received")
    escalated = step(emulator, charge.id, "escalate")

    assert inquiry["payment_method_details"]["card"]["case_type"] == "inquiry"
    assert escalated["payment_method_details"]["card"]["case_type"] == "chargeback"
    assert (inquiry["balance_transactions"], inquiry["is_charge_refundable"]) == ([], True)
    assert [t["amount"] for t in escalated["balance_transactions"]] == [-PAID]
    assert escalated["reason"] == "product_not_received"
    assert escalated["evidence_details"]["due_by"] >= inquiry["evidence_details"]["due_by"]


def test_submitting_evidence_counts_the_submission(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)
    opened = step(emulator, charge.id, "open")

    submitted = step(emulator, charge.id, "submit")

    assert (opened["evidence_details"]["has_evidence"], opened["evidence_details"]["submission_count"]) == (
        False,
        0,
    )
    assert (
        submitted["evidence_details"]["has_evidence"],
        submitted["evidence_details"]["submission_count"],
    ) == (
        True,
        1,
    )


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        (["escalate"], "has no dispute"),
        (["win"], "has no dispute"),
        (["inquire", "lose"], "never lost"),
        (["inquire", "appeal"], "only a lost dispute"),
        (["inquire", "inquire"], "already been disputed"),
        (["inquire", "open"], "already been disputed"),
        (["inquire", "win", "escalate"], "only an open inquiry"),
        (["inquire", "win", "win"], "only an open inquiry"),
        (["inquire", "submit", "submit"], "evidence is submitted only"),
        (["open", "escalate"], "only an open inquiry"),
        (["open", "appeal"], "only a lost dispute"),
        (["open", "open"], "already been disputed"),
        (["open", "prevent"], "already been disputed"),
        (["open", "win", "win"], "only an open inquiry, chargeback or appeal"),
        (["open", "win", "lose"], "only an open chargeback or appeal"),
        (["open", "win", "appeal"], "only a lost dispute"),
        (["open", "lose", "win"], "only an open inquiry, chargeback or appeal"),
        (["open", "lose", "open"], "already been disputed"),
        (["open", "lose", "submit"], "evidence is submitted only"),
        (["open", "submit", "submit"], "evidence is submitted only"),
        (["prevent", "win"], "only an open inquiry, chargeback or appeal"),
        (["prevent", "submit"], "evidence is submitted only"),
        (["prevent", "inquire"], "already been disputed"),
    ],
)
def test_a_step_stripe_would_not_take_is_a_409_that_changes_nothing(
    emulator: StripeEmulator, client: stripe.StripeClient, steps: list[str], refused: str
) -> None:
    charge = paid_charge(emulator, client)
    for action in steps[:-1]:
        step(emulator, charge.id, action)
    before = emulator.events

    status, answer = dispute_control(emulator, charge.id, action=steps[-1])

    assert status == 409, answer
    assert refused in answer["error"]["message"]
    assert emulator.events == before


def test_after_a_closed_inquiry_a_second_dispute_is_a_new_one_and_the_control_moves_it(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)
    first = step(emulator, charge.id, "inquire")
    step(emulator, charge.id, "win")

    second = step(emulator, charge.id, "open", amount=2000, reason="duplicate")
    lost = step(emulator, charge.id, "lose")

    assert second["id"] != first["id"]
    assert lost["id"] == second["id"] == emulator.dispute_of(charge.id)
    assert client.v1.disputes.retrieve(first["id"]).status == "warning_closed"
    assert (lost["status"], lost["amount"], lost["reason"]) == ("lost", 2000, "duplicate")
    assert dispute_control(emulator, charge.id, action="inquire")[0] == 409


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "open", "amount": "0"}, "between 1 and the charge's 5000"),
        ({"action": "inquire", "amount": str(PAID + 1)}, "between 1 and the charge's 5000"),
        ({"action": "prevent", "amount": str(PAID + 1)}, "between 1 and the charge's 5000"),
        ({"action": "open", "amount": str(PAID + PAID // 10 + 1)}, "a chargeback's up to 5500"),
        ({"action": "prevent", "amount": "-1"}, "positive integer"),
        ({"action": "open", "amount": "ten"}, "positive integer"),
        ({"action": "open", "reason": "whim"}, "reason is one of"),
        ({"action": "win", "amount": "100"}, "given only to inquire, open, prevent"),
        ({"action": "lose", "reason": "fraudulent"}, "given only to inquire, open, prevent"),
        ({"action": "open", "colour": "red"}, "unknown parameter colour"),
        ({"action": "chargeback"}, "action must be one of"),
        ({}, "action must be one of"),
    ],
)
def test_a_bad_parameter_is_a_400_that_changes_nothing(
    emulator: StripeEmulator, client: stripe.StripeClient, params: dict[str, str], message: str
) -> None:
    charge = paid_charge(emulator, client)
    before = emulator.events

    status, answer = dispute_control(emulator, charge.id, **params)

    assert status == 400, answer
    assert message in answer["error"]["message"]
    assert emulator.events == before
    assert client.v1.charges.retrieve(charge.id).disputed is False


@pytest.mark.parametrize("amount", [1, PAID])
def test_a_dispute_is_of_one_cent_up_to_the_whole_charge(
    emulator: StripeEmulator, client: stripe.StripeClient, amount: int
) -> None:
    charge = paid_charge(emulator, client)

    opened = step(emulator, charge.id, "open", amount=amount)

    assert opened["amount"] == amount
    assert [t["amount"] for t in opened["balance_transactions"]] == [-amount]


def test_an_unknown_charge_or_dispute_is_not_found(emulator: StripeEmulator) -> None:
    assert dispute_control(emulator, "ch_unknown", action="inquire")[0] == 404
    with pytest.raises(UnknownObjectError):
        emulator.dispute_action("dp_unknown", "win")
    with pytest.raises(UnknownObjectError):
        emulator.prevent_dispute("ch_unknown")


def test_the_python_controls_are_the_http_control(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    inquired, prevented = paid_charge(emulator, client), paid_charge(emulator, client)

    [created] = emulator.open_dispute(inquired.id, 700, "general", inquiry=True)
    dispute_id = created["data"]["object"]["id"]
    escalated = emulator.dispute_action(dispute_id, "escalate")
    submitted = emulator.dispute_action(dispute_id, "submit")
    closed = emulator.close_dispute(dispute_id, won=True)
    stopped = emulator.prevent_dispute(prevented.id, 300)

    assert created["data"]["object"]["status"] == "warning_needs_response"
    assert types_of(escalated) == [UPDATED, WITHDRAWN]
    assert types_of(submitted) == [UPDATED]
    assert types_of(closed) == [CLOSED, REINSTATED]
    assert types_of(stopped) == [CREATED, CLOSED]
    assert [event["data"]["object"]["status"] for event in stopped] == ["prevented", "prevented"]
    assert stopped[0]["data"]["object"]["amount"] == 300
    assert client.v1.disputes.retrieve(dispute_id).status == "won"
    with pytest.raises(InvalidTransitionError, match="only a lost dispute"):
        emulator.dispute_action(dispute_id, "appeal")
    with pytest.raises(ValueError, match="one of"):
        emulator.dispute_action(dispute_id, "forgive")


@pytest.mark.parametrize(("action", "case_type"), [("prevent", "resolution"), ("block", "block")])
def test_a_prevented_dispute_carries_its_case_type_and_only_a_resolution_moves_money(
    emulator: StripeEmulator, client: stripe.StripeClient, action: str, case_type: str
) -> None:
    charge = paid_charge(emulator, client)

    prevented = step(emulator, charge.id, action)

    # Stripe's 2025-08-27 changelog: `prevented`, with case types `resolution` and `block`.
    assert prevented["status"] == "prevented"
    assert prevented["payment_method_details"]["card"]["case_type"] == case_type
    assert case_type in declared_values(stripe.Dispute.PaymentMethodDetails.Card, "case_type")
    moved = [t["amount"] for t in prevented["balance_transactions"]]
    assert moved == ([-PAID] if case_type == "resolution" else [])
    assert prevented["evidence_details"]["due_by"] == 0


def test_the_python_control_prevents_either_way(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    blocked, resolved = paid_charge(emulator, client), paid_charge(emulator, client)

    sent = emulator.prevent_dispute(blocked.id, case_type="block")
    emulator.prevent_dispute(resolved.id)

    assert types_of(sent) == [CREATED, CLOSED]
    assert client.v1.disputes.retrieve(emulator.dispute_of(blocked.id)).payment_method_details
    case_types = [
        client.v1.disputes.retrieve(emulator.dispute_of(c.id)).to_dict()["payment_method_details"]["card"][
            "case_type"
        ]
        for c in (blocked, resolved)
    ]
    assert case_types == ["block", "resolution"]
    with pytest.raises(ValueError, match="resolution or block"):
        emulator.prevent_dispute(paid_charge(emulator, client).id, case_type="chargeback")


def test_a_chargeback_under_a_new_id_leaves_the_open_inquiry_as_it_was(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)
    inquiry = step(emulator, charge.id, "inquire")

    chargeback = step(emulator, charge.id, "charge_back", amount=PAID + PAID // 10)

    assert chargeback["id"] != inquiry["id"]
    assert (chargeback["status"], chargeback["amount"]) == ("needs_response", PAID + PAID // 10)
    assert chargeback["payment_method_details"]["card"]["case_type"] == "chargeback"
    assert [t["amount"] for t in chargeback["balance_transactions"]] == [-(PAID + PAID // 10)]
    assert client.v1.disputes.retrieve(inquiry["id"]).status == "warning_needs_response"
    assert emulator.dispute_of(charge.id) == chargeback["id"]
    assert all_fit(chargeback, stripe.Dispute) == []


@pytest.mark.parametrize("before", [[], ["open"], ["inquire", "win"]])
def test_a_chargeback_under_a_new_id_follows_only_an_open_inquiry(
    emulator: StripeEmulator, client: stripe.StripeClient, before: list[str]
) -> None:
    charge = paid_charge(emulator, client)
    for action in before:
        step(emulator, charge.id, action)

    status, answer = dispute_control(emulator, charge.id, action="charge_back")

    assert status == 409, answer

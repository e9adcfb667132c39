"""The emulator is held to the Stripe SDK's own models and to Stripe's published example objects for
every field the product reads, and behaves as Stripe does where the product depends on it."""

from __future__ import annotations

import contextlib
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe

from devstack.stripe_emulator import StripeEmulator, checkout_sessions
from tests.checkout_flow import start_checkout
from tests.integration.test_stripe_emulator_after_payment import all_fit
from wallet import settings

pytestmark = pytest.mark.usefixtures("tables", "fresh_emulator")
PUBLISHED: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "devstack" / "stripe_fixtures.json").read_text()
)["resources"]
# The fields of each object that the product (payments, fulfilment, reversals, event_log) reads.
READ = {
    "checkout.session": (
        stripe.checkout.Session,
        ["id", "status", "payment_status", "amount_total", "currency", "payment_intent", "metadata",
         "livemode", "created", "url", "ui_mode", "invoice", "amount_subtotal", "total_details"],
    ),
    "event": (stripe.Event, ["id", "type", "created", "livemode", "data"]),
    "charge": (stripe.Charge, ["id", "amount", "amount_refunded", "payment_intent", "metadata", "paid",
                               "receipt_url"]),
    "dispute": (stripe.Dispute, ["id", "amount", "status", "payment_intent"]),
}  # fmt: skip


@pytest.fixture
def fresh_emulator(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


def declared_values(model: type, field: str) -> set[str]:
    """The string literals the SDK declares for a field (`Literal[...]` inside Optional/Union)."""
    found: set[str] = set()
    pending = [model.__annotations__[field]]
    while pending:
        hint = pending.pop()
        if typing.get_origin(hint) is typing.Literal:
            found |= set(typing.get_args(hint))
        else:
            pending += typing.get_args(hint)
    return found


def objects_of_a_paid_then_reversed_session(emulator: StripeEmulator) -> dict[str, dict[str, Any]]:
    session_id = start_checkout("alice", 5000)
    *_, completed = emulator.pay(session_id)
    [refunded, _] = emulator.refund(emulator.charge_of(session_id), 1000)
    disputed, _withdrawn = emulator.open_dispute(emulator.charge_of(session_id))
    return {
        "checkout.session": emulator.client().v1.checkout.sessions.retrieve(session_id).to_dict(),
        "event": completed,
        "charge": refunded["data"]["object"],
        "dispute": disputed["data"]["object"],
    }


def test_a_session_is_a_hosted_page_as_the_pinned_api_version_says(stripe_emulator: StripeEmulator) -> None:
    session = stripe_emulator.client().v1.checkout.sessions.retrieve(start_checkout("alice", 1000))

    assert session.ui_mode == "hosted_page"
    assert session.ui_mode in declared_values(stripe.checkout.Session, "ui_mode")


@pytest.mark.parametrize("name", sorted(READ))
def test_fields_the_product_reads_have_the_sdks_names_and_stripes_types(
    stripe_emulator: StripeEmulator, name: str
) -> None:
    emulated = objects_of_a_paid_then_reversed_session(stripe_emulator)[name]
    model, fields = READ[name]
    declared = model.__annotations__

    for field in fields:
        assert field in declared, f"{name}.{field} is not in the SDK's model"
        assert field in PUBLISHED[name], f"{name}.{field} is not in Stripe's example"
        published, ours = PUBLISHED[name][field], emulated[field]
        if published is not None and ours is not None:
            assert type(ours) is type(published), f"{name}.{field}: {ours!r} vs Stripe's {published!r}"


def test_a_taxed_discounted_session_has_stripes_total_fields(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a session with tax on top and a promotion code applied
    for name, value in [("TAX_ENABLED", "true"), ("PROMOTION_CODES_ENABLED", "true")]:
        monkeypatch.setenv(name, value)
    settings.checkout_terms.cache_clear()
    try:
        session_id = start_checkout("alice", 5000)
    finally:
        monkeypatch.undo()
        settings.checkout_terms.cache_clear()
    stripe_emulator.apply_promotion_code(session_id, "SAVE20")

    session = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id)

    # Then its totals have the fields and types of Stripe's example and the SDK's model
    details = session.to_dict()["total_details"]
    assert details.keys() == PUBLISHED["checkout.session"]["total_details"].keys()
    assert all(type(value) is int for value in details.values())
    assert session.total_details is not None
    assert isinstance(session.total_details, stripe.checkout.Session.TotalDetails)
    [discount] = session.discounts or []
    assert set(discount.to_dict()) <= set(stripe.checkout.Session.Discount.__annotations__)
    assert session.automatic_tax.status in declared_values(stripe.checkout.Session.AutomaticTax, "status")
    assert (session.amount_subtotal, details["amount_discount"], details["amount_tax"]) == (5000, 1000, 400)
    assert session.amount_total == 4400


def test_line_items_expand_on_retrieve_as_stripe_lists_them(stripe_emulator: StripeEmulator) -> None:
    session_id = start_checkout("alice", 5000)

    session = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items"]})
    plain = stripe_emulator.client().v1.checkout.sessions.retrieve(session_id)

    assert session.line_items is not None
    [item] = session.line_items.data
    assert isinstance(item, stripe.LineItem)
    assert (item.amount_total, item.currency, item.quantity) == (5000, "usd", 1)
    assert item.price is not None
    assert item.price.unit_amount == 5000
    assert item.to_dict().keys() == PUBLISHED["item"].keys()
    assert "line_items" not in plain.to_dict()


def test_an_expansion_stripe_does_not_offer_is_refused(stripe_emulator: StripeEmulator) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        stripe_emulator.client().v1.checkout.sessions.retrieve(
            start_checkout("alice", 1000), {"expand": ["customer_details"]}
        )


def test_a_500_after_execution_began_is_replayed_for_its_idempotency_key(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: object) -> None:
        raise RuntimeError("a bug halfway through")

    params: Any = {
        "mode": "payment",
        "success_url": "https://example.test/ok",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "X"}},
            }
        ],
    }
    client = stripe_emulator.client()
    with monkeypatch.context() as broken:
        broken.setattr(checkout_sessions, "new_session", crash)
        with pytest.raises(stripe.APIError):
            client.v1.checkout.sessions.create(params, options={"idempotency_key": "key-1"})
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.create(params, options={"idempotency_key": "key-1"})
    fresh_key = client.v1.checkout.sessions.create(params, options={"idempotency_key": "key-2"})

    first, *replays, _ = [r for r in stripe_emulator.requests if r.method == "POST"]
    assert (first.status, first.replayed) == (500, False)
    assert replays
    assert all((r.status, r.replayed) == (500, True) for r in replays)
    assert fresh_key.id.startswith("cs_")


# What the SDK models each object the emulator's events carry with (a saved card's PaymentMethod aside).
MODELS: dict[str, type[stripe.StripeObject]] = {
    "checkout.session": stripe.checkout.Session,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
}
# Fields Stripe shows on a refund only in some statuses, absent from its example.
REFUND_STATUS_FIELDS = {"pending_reason", "next_action", "failure_reason", "failure_balance_transaction"}


def every_path(emulator: StripeEmulator) -> None:
    """Every way the emulator moves a payment, a refund and a dispute, each to the end."""
    paid, settled, failed = (start_checkout("alice", 5000) for _ in range(3))
    emulator.pay(paid)
    emulator.pay_later(settled)
    emulator.settle(settled)
    emulator.pay_later(failed)
    emulator.fail_payment(failed)
    declined, expired = start_checkout("alice", 1000), start_checkout("alice", 1000)
    emulator.decline(declined)
    emulator.decline(expired)
    emulator.expire(expired)
    charge = emulator.charge_of(paid)
    for status, move in [("pending", "succeed"), ("requires_action", "cancel"), ("succeeded", "fail")]:
        emulator.start_refunds_as(charge, status)
        [_, created] = emulator.refund(charge, 100)
        emulator.refund_action(created["data"]["object"]["id"], move)
    emulator.start_refunds_as(charge, "requires_action")
    emulator.refund(charge, 100)
    emulator.start_refunds_as(charge, "pending")
    emulator.refund(charge, 100)
    [inquiry] = emulator.open_dispute(charge, inquiry=True)
    for action in ("submit", "win"):
        emulator.dispute_action(inquiry["data"]["object"]["id"], action)
    chargeback, *_ = emulator.open_dispute(charge)
    for action in ("submit", "lose", "appeal", "submit", "win"):
        emulator.dispute_action(chargeback["data"]["object"]["id"], action)
    emulator.prevent_dispute(emulator.charge_of(settled))
    blocked, escalated = start_checkout("alice", 1000), start_checkout("alice", 1000)
    emulator.pay(blocked)
    emulator.prevent_dispute(emulator.charge_of(blocked), case_type="block")
    emulator.pay(escalated)
    emulator.open_dispute(emulator.charge_of(escalated), inquiry=True)
    emulator.charge_back(emulator.charge_of(escalated), 1100)
    client = emulator.client()
    customer = client.v1.customers.create({"email": "alice@example.com"}).id
    for card in ("pm_card_visa", "pm_card_authenticationRequired", "pm_card_chargeDeclined"):
        [attached] = emulator.save_card(customer, card)
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": 1000,
            "currency": "usd",
            "customer": customer,
            "payment_method": attached["data"]["object"]["id"],
            "off_session": True,
            "confirm": True,
        }
        with contextlib.suppress(stripe.CardError):
            client.v1.payment_intents.create(params)


def test_every_object_of_every_event_has_stripes_fields_and_the_sdks_types(
    stripe_emulator: StripeEmulator,
) -> None:
    every_path(stripe_emulator)
    sent = stripe_emulator.events
    event_types = declared_values(stripe.Event, "type")

    checked: dict[str, set[str]] = {name: set() for name in MODELS}
    for event in sent:
        assert event["type"] in event_types, event["type"]
        obj = event["data"]["object"]
        if obj["object"] not in MODELS:
            continue
        extra = REFUND_STATUS_FIELDS if obj["object"] == "refund" else set()
        assert PUBLISHED[obj["object"]].keys() <= obj.keys() <= PUBLISHED[obj["object"]].keys() | extra, event
        assert all_fit(obj, MODELS[obj["object"]]) == [], event["type"]
        checked[obj["object"]].add(obj["status"])
    assert checked["dispute"] == declared_values(stripe.Dispute, "status")
    assert checked["refund"] == {"pending", "requires_action", "succeeded", "failed", "canceled"}
    assert checked["payment_intent"] == {"requires_payment_method", "succeeded"}
    assert checked["charge"] == {"succeeded"}
    # No placeholder of Stripe's examples (their `obj_123` ids, a made-up `type`) survives into an object.
    assert "obj_123" not in json.dumps(sent)
    assert '"type": "type"' not in json.dumps(sent)


def test_every_payment_intent_is_null_where_stripe_leaves_it_null(stripe_emulator: StripeEmulator) -> None:
    every_path(stripe_emulator)
    client = stripe_emulator.client()
    ids = {
        event["data"]["object"]["id"]
        for event in stripe_emulator.events
        if event["data"]["object"]["object"] == "payment_intent"
    } | {
        event["data"]["object"]["payment_intent"]
        for event in stripe_emulator.events
        if event["data"]["object"]["object"] == "checkout.session"
    }
    intents = [client.v1.payment_intents.retrieve(intent_id).to_dict() for intent_id in sorted(ids)]

    assert {intent["status"] for intent in intents} == {"succeeded", "requires_payment_method", "canceled"}
    for intent in intents:
        assert intent.keys() == PUBLISHED["payment_intent"].keys()
        assert all_fit(intent, stripe.PaymentIntent) == []
        assert (intent["transfer_data"], intent["next_action"], intent["processing"]) == (None, None, None)
        assert (intent["shipping"], intent["managed_payments"], intent["review"]) == (None, None, None)
        assert (intent["canceled_at"] is None) is (intent["status"] != "canceled"), intent
        if intent["status"] == "succeeded":
            assert intent["last_payment_error"] is None
        if intent["status"] == "requires_payment_method":
            assert intent["last_payment_error"]["message"], intent
        assert intent["payment_method_configuration_details"]["id"].startswith("pmc_")

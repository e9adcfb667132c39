"""After the payment, on the emulator: the PaymentIntent and Charge a paid session makes, refunds, disputes
and the events list, driven through the real stripe SDK over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from devstack.stripe_emulator import (
    FIXTURES,
    InvalidTransitionError,
    SignedEvent,
    StripeApiError,
    StripeEmulator,
    UnknownObjectError,
)
from tests.integration.test_stripe_emulator import API_KEY, checkout_params, create, sdk
from tests.waiting import wait_until

SHAPES: dict[str, dict[str, Any]] = json.loads(FIXTURES.read_text())["resources"]


@pytest.fixture
def delivered() -> list[SignedEvent]:
    return []


@pytest.fixture
def emulator(delivered: list[SignedEvent]) -> Iterator[StripeEmulator]:
    with StripeEmulator(api_key=API_KEY, deliver=delivered.append) as emulator:
        yield emulator


@pytest.fixture
def client(emulator: StripeEmulator) -> stripe.StripeClient:
    return sdk(emulator)


def paid_charge(emulator: StripeEmulator, client: stripe.StripeClient) -> stripe.Charge:
    session = create(client)
    emulator.pay(session.id)
    return client.v1.charges.retrieve(emulator.charge_of(session.id))


def wait_for(delivered: list[SignedEvent], count: int) -> list[SignedEvent]:
    """The first `count` events delivered, once they are: a control's events go out after its answer."""
    wait_until(lambda: len(delivered) >= count, lambda: f"{count} events delivered, not {len(delivered)}")
    return delivered[:count]


def types_of(event_list: list[SignedEvent] | list[dict[str, Any]]) -> list[str]:
    return [str((item.event if isinstance(item, SignedEvent) else item)["type"]) for item in event_list]


def control(emulator: StripeEmulator, charge: str, body: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{emulator.api_base}/_emulator/charges/{charge}/dispute",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# -- the SDK's declared field types -------------------------------------------------------------------------


def fits(value: object, annotation: Any) -> bool:
    """Whether `value` (decoded JSON) is what the SDK's annotation declares, as far as JSON can tell."""
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is list:
        [item] = typing.get_args(annotation)
        return isinstance(value, list) and all(fits(element, item) for element in value)
    if isinstance(annotation, type) and issubclass(annotation, stripe.StripeObject):
        return isinstance(value, dict) and all_fit(value, annotation) == []
    # A forward reference to another resource, a typed dict, a ListObject: an object in JSON.
    return isinstance(value, dict)


def all_fit(obj: dict[str, Any], cls: type) -> list[str]:
    """The fields of `obj` whose value is not of the type `cls` declares for it (unknown fields too)."""
    declared = _annotations(cls)
    return [key for key, value in obj.items() if key not in declared or not fits(value, declared[key])]


def _annotations(cls: type) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        merged.update(getattr(klass, "__annotations__", {}))
    return merged


# -- a paid session's PaymentIntent and Charge ------------------------------------------------------------


def test_a_paid_session_has_a_succeeded_payment_intent_and_charge_the_sdk_retrieves(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    emulator.pay(session.id)

    paid = client.v1.checkout.sessions.retrieve(session.id)
    intent = client.v1.payment_intents.retrieve(str(paid.payment_intent))
    charge = client.v1.charges.retrieve(str(intent.latest_charge))

    assert str(paid.payment_intent).startswith("pi_")
    assert (intent.status, intent.amount, intent.amount_received, intent.currency) == (
        "succeeded",
        5000,
        5000,
        "usd",
    )
    assert intent.to_dict()["metadata"] == checkout_params()["payment_intent_data"]["metadata"]
    assert charge.id.startswith("ch_")
    assert (charge.amount, charge.amount_captured, charge.amount_refunded, charge.currency) == (
        5000,
        5000,
        0,
        "usd",
    )
    assert (charge.paid, charge.refunded, charge.disputed, charge.status, charge.livemode) == (
        True,
        False,
        False,
        "succeeded",
        False,
    )
    assert charge.payment_intent == intent.id
    assert charge.to_dict()["metadata"] == intent.to_dict()["metadata"]
    card = charge.to_dict()["payment_method_details"]["card"]
    assert (card["installments"], card["three_d_secure"], card["wallet"]) == (None, None, None)
    assert (intent.next_action, intent.transfer_data, intent.canceled_at, intent.processing) == (None,) * 4


def test_a_settled_bank_debit_has_a_charge_pending_then_succeeded(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    emulator.pay_later(session.id)
    charge_id = emulator.charge_of(session.id)
    pending = client.v1.charges.retrieve(charge_id)

    emulator.settle(session.id)

    settled = client.v1.charges.retrieve(charge_id)
    assert (pending.status, pending.paid) == ("pending", False)
    assert (settled.status, settled.paid, settled.amount) == ("succeeded", True, 5000)
    assert client.v1.payment_intents.retrieve(str(settled.payment_intent)).status == "succeeded"


def test_an_unpaid_session_has_no_charge(emulator: StripeEmulator, client: stripe.StripeClient) -> None:
    session = create(client)

    with pytest.raises(InvalidTransitionError):
        emulator.charge_of(session.id)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.charges.retrieve("ch_unknown")
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")


# -- refunds ---------------------------------------------------------------------------------------------


def test_a_full_refund_refunds_what_remains_and_sends_charge_refunded_then_refund_created(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    charge = paid_charge(emulator, client)
    emulator.drain()
    before = len(delivered)

    refund = client.v1.refunds.create({"charge": charge.id, "reason": "requested_by_customer"})
    emulator.drain()

    after = client.v1.charges.retrieve(charge.id)
    assert refund.id.startswith("re_")
    assert (refund.amount, refund.charge, refund.payment_intent, refund.status, refund.reason) == (
        5000,
        charge.id,
        charge.payment_intent,
        "succeeded",
        "requested_by_customer",
    )
    assert (after.amount_refunded, after.refunded) == (5000, True)
    assert client.v1.refunds.retrieve(refund.id).to_dict() == refund.to_dict()
    sent = wait_for(delivered, before + 2)[before:]
    assert types_of(sent) == ["charge.refunded", "refund.created"]
    for signed in sent:
        stripe.Webhook.construct_event(signed.payload, signed.signature, emulator.webhook_secret)
    charge_event, refund_event = (signed.event for signed in sent)
    assert charge_event["data"]["object"]["amount_refunded"] == 5000
    assert charge_event["data"]["object"]["refunded"] is True
    assert refund_event["data"]["object"] == refund.to_dict()
    assert refund_event["data"]["object"]["id"] == refund.id
    assert charge_event["request"]["id"] == refund_event["request"]["id"] is not None


def test_partial_refunds_add_up_and_the_events_carry_the_cumulative_amount(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    charge = paid_charge(emulator, client)
    emulator.drain()
    before = len(delivered)

    client.v1.refunds.create({"charge": charge.id, "amount": 1000})
    middle = client.v1.charges.retrieve(charge.id)
    client.v1.refunds.create({"payment_intent": str(charge.payment_intent), "amount": 1500})
    emulator.drain()

    after = client.v1.charges.retrieve(charge.id)
    assert (middle.amount_refunded, middle.refunded) == (1000, False)
    assert (after.amount_refunded, after.refunded) == (2500, False)
    wait_for(delivered, before + 4)
    refunded = [
        s.event["data"]["object"]["amount_refunded"]
        for s in delivered[before:]
        if s.event["type"] == "charge.refunded"
    ]
    amounts = [
        s.event["data"]["object"]["amount"] for s in delivered[before:] if s.event["type"] == "refund.created"
    ]
    assert (refunded, amounts) == ([1000, 2500], [1000, 1500])
    # The rest, with no amount, makes the charge fully refunded.
    assert client.v1.refunds.create({"charge": charge.id}).amount == 2500
    assert client.v1.charges.retrieve(charge.id).refunded is True


@pytest.mark.parametrize(
    ("refunded_first", "amount", "code"),
    [
        (0, 5001, "amount_too_large"),
        (4000, 1001, "amount_too_large"),
        (5000, None, "charge_already_refunded"),
    ],
)
def test_refunding_more_than_remains_is_a_400_that_changes_nothing(
    emulator: StripeEmulator,
    client: stripe.StripeClient,
    delivered: list[SignedEvent],
    refunded_first: int,
    amount: int | None,
    code: str,
) -> None:
    charge = paid_charge(emulator, client)
    if refunded_first:
        client.v1.refunds.create({"charge": charge.id, "amount": refunded_first})
    emulator.drain()
    before = len(delivered)

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create({"charge": charge.id, **({"amount": amount} if amount else {})})
    emulator.drain()

    assert (refused.value.http_status, refused.value.code) == (400, code)
    assert refused.value.error is not None
    assert refused.value.error.type == "invalid_request_error"
    assert client.v1.charges.retrieve(charge.id).amount_refunded == refunded_first
    assert delivered[before:] == []


@pytest.mark.parametrize(
    ("params", "param"),
    [({"charge": "ch_unknown"}, "charge"), ({"payment_intent": "pi_unknown"}, "payment_intent")],
)
def test_refunding_an_unknown_charge_is_a_404(
    emulator: StripeEmulator, client: stripe.StripeClient, params: dict[str, str], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.refunds.create(params)  # type: ignore[arg-type]

    assert (missing.value.http_status, missing.value.code, missing.value.param) == (
        404,
        "resource_missing",
        param,
    )
    assert emulator.events == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"charge": "ch_x", "amount": "0"},
        {"charge": "ch_x", "amount": "-5"},
        {"charge": "ch_x", "reason": "whim"},
    ],
)
def test_a_refund_without_a_charge_or_with_a_bad_amount_or_reason_is_a_400(
    emulator: StripeEmulator, client: stripe.StripeClient, params: dict[str, str]
) -> None:
    charge = paid_charge(emulator, client)
    params = {key: charge.id if value == "ch_x" else value for key, value in params.items()}

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params)  # type: ignore[arg-type]

    assert refused.value.http_status == 400
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0


def test_a_refund_replayed_with_its_idempotency_key_refunds_once(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    charge = paid_charge(emulator, client)
    emulator.drain()
    before = len(delivered)

    first = client.v1.refunds.create({"charge": charge.id, "amount": 1000}, {"idempotency_key": "refund-1"})
    again = client.v1.refunds.create({"charge": charge.id, "amount": 1000}, {"idempotency_key": "refund-1"})
    emulator.drain()

    assert again.to_dict() == first.to_dict()
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 1000
    assert types_of(wait_for(delivered, before + 2)[before:]) == ["charge.refunded", "refund.created"]
    assert [r.replayed for r in emulator.requests if r.path == "/v1/refunds"] == [False, True]
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create({"charge": charge.id, "amount": 2000}, {"idempotency_key": "refund-1"})


def test_the_python_refund_control_is_the_api_refund(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    charge = paid_charge(emulator, client)

    sent = emulator.refund(charge.id, 2000, reason="duplicate")
    emulator.drain()

    assert types_of(sent) == ["charge.refunded", "refund.created"]
    assert types_of(delivered[-2:]) == ["charge.refunded", "refund.created"]
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 2000
    with pytest.raises(StripeApiError) as refused:
        emulator.refund(str(charge.payment_intent), 3001)
    assert refused.value.code == "amount_too_large"


# -- disputes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("close", "status"), [("win", "won"), ("lose", "lost")])
def test_the_dispute_control_opens_then_closes_a_dispute_with_its_events(
    emulator: StripeEmulator,
    client: stripe.StripeClient,
    delivered: list[SignedEvent],
    close: str,
    status: str,
) -> None:
    charge = paid_charge(emulator, client)
    emulator.drain()
    before = len(delivered)

    opened_status, opened = control(emulator, charge.id, b"action=open", "application/x-www-form-urlencoded")
    disputed = client.v1.charges.retrieve(charge.id)
    closed_status, closed = control(
        emulator, charge.id, json.dumps({"action": close}).encode(), "application/json"
    )
    emulator.drain()

    assert (opened_status, closed_status) == (200, 200)
    assert opened["id"].startswith("dp_")
    assert (opened["amount"], opened["status"], opened["reason"], opened["currency"]) == (
        5000,
        "needs_response",
        "fraudulent",
        "usd",
    )
    assert (opened["charge"], opened["payment_intent"]) == (charge.id, charge.payment_intent)
    assert disputed.disputed is True
    assert (closed["id"], closed["status"]) == (opened["id"], status)
    assert client.v1.disputes.retrieve(opened["id"]).status == status
    reinstated = ["charge.dispute.funds_reinstated"] if close == "win" else []
    expected = [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        *reinstated,
    ]
    sent = wait_for(delivered, before + len(expected))[before:]
    assert types_of(sent) == expected
    for signed in sent:
        stripe.Webhook.construct_event(signed.payload, signed.signature, emulator.webhook_secret)
    assert [s.event["data"]["object"]["status"] for s in sent[:2]] == ["needs_response", "needs_response"]
    assert sent[2].event["data"]["object"]["status"] == status


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (["open", "open"], 409),
        (["win"], 409),
        (["open", "lose", "win"], 409),
        (["open", "bogus"], 400),
    ],
)
def test_the_dispute_control_refuses_what_cannot_happen(
    emulator: StripeEmulator, client: stripe.StripeClient, steps: list[str], expected: int
) -> None:
    charge = paid_charge(emulator, client)

    statuses = [
        control(emulator, charge.id, f"action={step}".encode(), "application/x-www-form-urlencoded")
        for step in steps
    ]

    assert statuses[-1][0] == expected
    assert set(statuses[-1][1]) == {"error"}
    assert control(emulator, "ch_unknown", b"action=open", "application/x-www-form-urlencoded")[0] == 404


def test_the_python_dispute_controls_open_a_partial_dispute_and_close_it(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)

    created, withdrawn = emulator.open_dispute(charge.id, amount=1200, reason="product_not_received")
    dispute_id = created["data"]["object"]["id"]
    [closed] = emulator.close_dispute(dispute_id, won=False)

    assert (created["type"], withdrawn["type"], closed["type"]) == (
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    )
    dispute = client.v1.disputes.retrieve(dispute_id)
    assert (dispute.amount, dispute.reason, dispute.status) == (1200, "product_not_received", "lost")
    with pytest.raises(InvalidTransitionError):
        emulator.close_dispute(dispute_id, won=True)
    with pytest.raises(UnknownObjectError):
        emulator.open_dispute("ch_unknown")
    # A disputed charge cannot be refunded, as at Stripe.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create({"charge": charge.id})
    assert refused.value.code == "charge_disputed"


# -- shapes: Stripe's example objects' keys and the SDK's field types -------------------------------------


def test_every_object_has_stripes_keys_and_the_types_the_sdk_declares(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)
    refund = client.v1.refunds.create({"charge": charge.id, "amount": 100})
    created, _withdrawn = emulator.open_dispute(charge.id)
    objects: dict[str, tuple[stripe.StripeObject, type[stripe.StripeObject]]] = {
        "payment_intent": (
            client.v1.payment_intents.retrieve(str(charge.payment_intent)),
            stripe.PaymentIntent,
        ),
        "charge": (client.v1.charges.retrieve(charge.id), stripe.Charge),
        "refund": (client.v1.refunds.retrieve(refund.id), stripe.Refund),
        "dispute": (client.v1.disputes.retrieve(created["data"]["object"]["id"]), stripe.Dispute),
    }

    for name, (obj, cls) in objects.items():
        as_json = obj.to_dict()
        assert isinstance(obj, cls), name
        assert as_json.keys() == SHAPES[name].keys(), name
        assert all_fit(as_json, cls) == [], name


def test_a_bank_debits_objects_have_the_types_the_sdk_declares(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    emulator.pay_later(session.id)
    emulator.settle(session.id)
    charge = client.v1.charges.retrieve(emulator.charge_of(session.id))
    refund = client.v1.refunds.create({"charge": charge.id})

    assert all_fit(charge.to_dict(), stripe.Charge) == []
    assert all_fit(refund.to_dict(), stripe.Refund) == []


# -- the events list -------------------------------------------------------------------------------------


def test_events_are_listed_newest_first_filtered_and_paged(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    charge = paid_charge(emulator, client)
    emulator.refund(charge.id, 100)
    emulator.refund(charge.id, 200)
    everything = [event["id"] for event in reversed(emulator.events)]

    listed = client.v1.events.list({"limit": 100})
    first = client.v1.events.list({"limit": 2})
    second = client.v1.events.list({"limit": 2, "starting_after": first.data[-1].id})
    back = client.v1.events.list({"limit": 2, "ending_before": second.data[0].id})
    refunds = client.v1.events.list({"type": "refund.created"})
    charges = client.v1.events.list({"type": "charge.*"})
    either = client.v1.events.list({"types": ["refund.created", "checkout.session.completed"]})
    recent = client.v1.events.list({"created": {"gte": emulator.events[-1]["created"]}})

    # The payment's charge.succeeded, payment_intent.succeeded and checkout.session.completed, two refunds.
    assert len(everything) == 3 + 2 * 2
    assert [event.id for event in listed.data] == everything
    assert listed.has_more is False
    assert ([e.id for e in first.data], first.has_more) == (everything[:2], True)
    assert ([e.id for e in second.data], second.has_more) == (everything[2:4], True)
    assert [e.id for e in back.data] == everything[:2]
    assert [e.data.object["amount"] for e in refunds.data] == [200, 100]
    assert [e.type for e in charges.data] == ["charge.refunded", "charge.refunded", "charge.succeeded"]
    assert [e.type for e in either.data] == ["refund.created", "refund.created", "checkout.session.completed"]
    assert everything[0] in [e.id for e in recent.data]
    assert client.v1.events.retrieve(everything[-1]).type == "charge.succeeded"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.events.list({"starting_after": "evt_unknown"})
    assert unknown.value.http_status == 404


# -- off-session payments that fail ------------------------------------------------------------------------


def charge_off_session(
    client: stripe.StripeClient, customer: str, method: str, key: str | None = None
) -> Any:
    return client.v1.payment_intents.create(
        {
            "amount": 1000,
            "currency": "usd",
            "customer": customer,
            "payment_method": method,
            "off_session": True,
            "confirm": True,
        },
        options={"idempotency_key": key} if key else {},
    )


@pytest.mark.parametrize(
    ("card", "code", "decline_code"),
    [
        ("pm_card_authenticationRequired", "authentication_required", "authentication_required"),
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", None),
    ],
)
def test_a_failed_off_session_attempt_leaves_the_intent_awaiting_another_payment_method(
    emulator: StripeEmulator, client: stripe.StripeClient, card: str, code: str, decline_code: str | None
) -> None:
    customer = client.v1.customers.create({"email": "bob@example.com"}).id
    [attached] = emulator.save_card(customer, card)
    method = attached["data"]["object"]["id"]

    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            {
                "amount": 1000,
                "currency": "usd",
                "customer": customer,
                "payment_method": method,
                "off_session": True,
                "confirm": True,
            }
        )

    [failed] = [event for event in emulator.events if event["type"] == "payment_intent.payment_failed"]
    intent = client.v1.payment_intents.retrieve(failed["data"]["object"]["id"])
    assert (declined.value.http_status, declined.value.code) == (402, code)
    assert (intent.status, intent.payment_method, intent.next_action) == (
        "requires_payment_method",
        None,
        None,
    )
    assert intent.last_payment_error is not None
    assert (intent.last_payment_error.code, intent.last_payment_error.type) == (code, "card_error")
    # Stripe leaves decline_code out of an error that is not a bank's decline.
    assert intent.last_payment_error.to_dict().get("decline_code") == decline_code
    assert declined.value.error is not None
    assert declined.value.error.to_dict().get("decline_code") == decline_code
    assert declined.value.error.payment_intent is not None
    assert declined.value.error.payment_intent.id == intent.id
    assert intent.last_payment_error.payment_method is not None
    assert intent.last_payment_error.payment_method.id == method
    assert failed["data"]["object"] == intent.to_dict()
    assert all_fit(intent.to_dict(), stripe.PaymentIntent) == []
    assert not [event for event in emulator.events if event["type"] == "payment_intent.requires_action"]


def test_a_card_with_one_processing_error_fails_once_then_pays_a_new_attempt(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create({}).id
    [attached] = emulator.save_card(customer, "pm_card_processingErrorOnce")
    method = attached["data"]["object"]["id"]

    with pytest.raises(stripe.CardError) as failed:
        charge_off_session(client, customer, method, key="first")
    # The same key replays the failure, as Stripe saves it; a new attempt pays.
    with pytest.raises(stripe.CardError):
        charge_off_session(client, customer, method, key="first")
    paid = charge_off_session(client, customer, method, key="second")

    assert failed.value.code == "processing_error"
    assert paid.status == "succeeded"


def test_a_card_detached_as_the_dashboard_does_sends_its_event_and_cannot_be_charged(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create({}).id
    [attached] = emulator.save_card(customer, "pm_card_visa")
    method = attached["data"]["object"]["id"]

    [detached] = emulator.detach_card(method)

    assert detached["type"] == "payment_method.detached"
    assert detached["data"]["object"]["customer"] is None
    assert detached["data"]["previous_attributes"] == {"customer": customer}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        charge_off_session(client, customer, method)
    assert (refused.value.http_status, refused.value.param) == (400, "payment_method")
    assert refused.value.error is not None
    assert refused.value.error.type == "invalid_request_error"


def test_a_deleted_customer_is_shown_deleted_and_cannot_be_charged(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create({}).id
    [attached] = emulator.save_card(customer, "pm_card_visa")

    deleted = client.v1.customers.delete(customer)

    assert deleted.deleted is True
    assert client.v1.customers.retrieve(customer).deleted is True
    assert [e["type"] for e in emulator.events][-1] == "customer.deleted"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        charge_off_session(client, customer, attached["data"]["object"]["id"])
    assert (refused.value.http_status, refused.value.code, refused.value.param) == (
        400,
        "resource_missing",
        "customer",
    )

"""Auto top-up against the Stripe emulator through the real SDK: the customer, the saved test cards, the
off-session PaymentIntent and the events Stripe sends about them, credited by the webhook."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import deliver
from wallet import auto_top_up, ledger, payments
from wallet.auto_top_up import Decision, Status
from wallet.errors import PaymentDeclinedError
from wallet.payments import OffSessionCharge

pytestmark = pytest.mark.usefixtures("tables")


def events_of(emulator: StripeEmulator, kind: str) -> list[dict[str, Any]]:
    return [event for event in emulator.events if event["type"] == kind]


def saved_card(emulator: StripeEmulator, user: str, test_method: str, *, balance: int) -> str:
    """Given a user with `balance` credits who saved `test_method` on Stripe and turned auto top-up on."""
    emulator.reset()
    if balance:
        ledger.add_credits(user, balance, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    customer = auto_top_up.customer_of(user, payments.create_customer)
    [attached] = emulator.save_card(customer, test_method)
    assert deliver(emulator.sign(attached)).status == 200
    auto_top_up.configure(user, enabled=True, threshold=500, amount=1000)
    return customer


def test_a_saved_visa_is_charged_off_session_and_its_payment_credited_once(
    stripe_emulator: StripeEmulator,
) -> None:
    customer = saved_card(stripe_emulator, "visa", "pm_card_visa", balance=100)
    assert auto_top_up.view("visa").card == auto_top_up.Card("visa", "4242", 12, 2034)

    assert auto_top_up.top_up_if_low("visa") is Decision.CHARGED

    [succeeded] = events_of(stripe_emulator, "payment_intent.succeeded")
    intent = succeeded["data"]["object"]
    assert (intent["customer"], intent["amount"], intent["metadata"]["source"]) == (
        customer,
        1000,
        "auto_top_up",
    )
    for _ in range(2):
        assert deliver(stripe_emulator.sign(succeeded)).status == 200
    assert ledger.get_balance("visa") == 1100
    assert auto_top_up.top_up_if_low("visa") is Decision.ABOVE_THRESHOLD


def test_one_idempotency_key_is_one_payment_however_often_it_is_sent(stripe_emulator: StripeEmulator) -> None:
    customer = saved_card(stripe_emulator, "again", "pm_card_visa", balance=0)
    method = stripe_emulator.events[-1]["data"]["object"]["id"]
    charge = OffSessionCharge(customer, method, 1000, "usd", {"source": "auto_top_up"}, "auto-top-up-1")

    first, second = payments.charge_off_session(charge), payments.charge_off_session(charge)

    assert first == second
    assert len(events_of(stripe_emulator, "payment_intent.succeeded")) == 1


@pytest.mark.parametrize(
    ("test_method", "words"),
    [
        ("pm_card_chargeDeclined", "VISA ending 0002 was declined: the bank refused it without saying why"),
        ("pm_card_authenticationRequired", "VISA ending 3184: the bank asked you to confirm the payment"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "VISA ending 9995 was declined: it has insufficient funds",
        ),
        ("pm_card_chargeDeclinedLostCard", "VISA ending 9987 was declined: it was reported lost"),
        ("pm_card_chargeDeclinedExpiredCard", "VISA ending 0069 has expired"),
    ],
)
def test_a_refusing_card_turns_it_off_with_the_reason_and_credits_nothing(
    stripe_emulator: StripeEmulator, test_method: str, words: str
) -> None:
    saved_card(stripe_emulator, "refusing", test_method, balance=100)

    assert auto_top_up.top_up_if_low("refusing") is Decision.DECLINED
    for failed in events_of(stripe_emulator, "payment_intent.payment_failed"):
        assert deliver(stripe_emulator.sign(failed)).status == 200

    seen = auto_top_up.view("refusing")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert seen.reason
    assert words in seen.reason
    assert ledger.get_balance("refusing") == 100


def test_the_sdk_error_of_a_decline_is_translated(stripe_emulator: StripeEmulator) -> None:
    customer = saved_card(stripe_emulator, "declined", "pm_card_chargeDeclined", balance=0)
    method = stripe_emulator.events[-1]["data"]["object"]["id"]

    with pytest.raises(PaymentDeclinedError) as declined:
        payments.charge_off_session(OffSessionCharge(customer, method, 1000, "usd", {}, "k-declined"))
    assert (declined.value.code, declined.value.decline_code) == ("card_declined", "generic_decline")


def test_a_card_detached_at_stripe_turns_it_off_naming_the_card(stripe_emulator: StripeEmulator) -> None:
    saved_card(stripe_emulator, "detached", "pm_card_visa", balance=100)
    stripe_emulator.detach_card(stripe_emulator.events[-1]["data"]["object"]["id"])

    assert auto_top_up.top_up_if_low("detached") is Decision.DECLINED

    seen = auto_top_up.view("detached")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert seen.reason
    assert "VISA ending 4242 is no longer on file" in seen.reason


def test_a_customer_deleted_at_stripe_turns_it_off_with_a_reason(stripe_emulator: StripeEmulator) -> None:
    customer = saved_card(stripe_emulator, "deleted", "pm_card_visa", balance=100)
    stripe_emulator.delete_customer(customer)

    assert auto_top_up.top_up_if_low("deleted") is Decision.DECLINED

    seen = auto_top_up.view("deleted")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert seen.reason
    assert "payment details are no longer on file" in seen.reason


def test_a_processing_error_is_tried_again_as_a_new_attempt_and_pays_once(
    stripe_emulator: StripeEmulator,
) -> None:
    saved_card(stripe_emulator, "flaky", "pm_card_processingErrorOnce", balance=100)
    slept: list[float] = []

    assert auto_top_up.top_up_if_low("flaky", sleep=slept.append) is Decision.CHARGED

    [failed] = events_of(stripe_emulator, "payment_intent.payment_failed")
    [succeeded] = events_of(stripe_emulator, "payment_intent.succeeded")
    for sent in (failed, succeeded, succeeded):
        assert deliver(stripe_emulator.sign(sent)).status == 200
    assert len(slept) == 1
    assert ledger.get_balance("flaky") == 1100
    assert auto_top_up.view("flaky").status is Status.ON


def test_a_processing_error_that_never_passes_turns_it_off_after_the_attempts(
    stripe_emulator: StripeEmulator,
) -> None:
    saved_card(stripe_emulator, "stuck", "pm_card_chargeDeclinedProcessingError", balance=100)

    assert auto_top_up.top_up_if_low("stuck", sleep=lambda _: None) is Decision.GAVE_UP

    assert len(events_of(stripe_emulator, "payment_intent.payment_failed")) == auto_top_up.ATTEMPTS
    seen = auto_top_up.view("stuck")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert seen.reason
    assert "processing error" in seen.reason


def test_removing_the_card_detaches_it_at_stripe_and_turns_auto_top_up_off(
    stripe_emulator: StripeEmulator,
) -> None:
    saved_card(stripe_emulator, "removing", "pm_card_visa", balance=100)

    auto_top_up.remove_card("removing", payments.detach_payment_method)

    [detached] = events_of(stripe_emulator, "payment_method.detached")
    assert detached["data"]["object"]["customer"] is None
    assert auto_top_up.view("removing").enabled is False
    assert auto_top_up.top_up_if_low("removing") is Decision.NOT_ENABLED


def test_one_customer_per_user(stripe_emulator: StripeEmulator) -> None:
    first = auto_top_up.customer_of("once", payments.create_customer)
    assert auto_top_up.customer_of("once", payments.create_customer) == first


def _routes_event(method: str, path: str, user: str, body: str | None = None) -> dict[str, Any]:
    from tests.lambda_events import api_event

    request = api_event("GET", "/api/balance", user=user, body=body)
    request["routeKey"] = f"{method} {path}"
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["requestContext"]["http"]["method"] = method
    return request


def test_the_whole_loop_save_a_card_turn_it_on_spend_below_and_the_balance_refills_once(
    stripe_emulator: StripeEmulator, tables: Any
) -> None:
    import os

    from devstack.balance_stream import BalanceStream, TriggerContext
    from functions.auto_top_up.app import lambda_handler as routes
    from functions.auto_top_up.app import stream_handler
    from tests.lambda_events import invoke

    stripe_emulator.reset()
    stream = BalanceStream(
        tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stream_handler, TriggerContext()
    )
    # Given a user who saved a card on a setup-mode Checkout Session
    opened = invoke(routes, _routes_event("POST", "/api/payment-method", "loop"))
    assert opened.status == 201
    session_id = opened.body["url"].rsplit("/", 1)[-1]
    for sent in stripe_emulator.pay(session_id):
        assert deliver(stripe_emulator.sign(sent)).status == 200
    assert auto_top_up.view("loop").card == auto_top_up.Card("visa", "4242", 12, 2034)
    # When they turn it on with nothing on the balance, and the stream is read until it is quiet
    body = '{"enabled": true, "threshold": 500, "amount": 1000}'
    assert invoke(routes, _routes_event("PUT", "/api/auto-top-up", "loop", body)).status == 200
    stream.drain()
    for paid in events_of(stripe_emulator, "payment_intent.succeeded") * 2:
        assert deliver(stripe_emulator.sign(paid)).status == 200
    stream.drain()
    # Then the balance refilled once, and stays refilled
    assert ledger.get_balance("loop") == 1000
    assert len(events_of(stripe_emulator, "payment_intent.succeeded")) == 1


def test_a_checkout_with_save_card_pays_and_saves_the_card_on_the_users_customer(
    stripe_emulator: StripeEmulator,
) -> None:
    import json

    from functions.create_checkout.app import lambda_handler as create_checkout
    from tests.lambda_events import api_event, invoke

    stripe_emulator.reset()
    body = json.dumps({"amount": 1000, "saveCard": True})
    opened = invoke(create_checkout, api_event("POST", "/api/checkout", user="saver", body=body))
    assert opened.status == 201
    sent = stripe_emulator.pay(opened.body["sessionId"])
    assert [event["type"] for event in sent] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
        "payment_method.attached",
    ]
    session = sent[2]["data"]["object"]
    assert sent[1]["data"]["object"]["customer"] == session["customer"]
    assert session["customer"] == auto_top_up.customer_of("saver", payments.create_customer)
    for event in sent:
        assert deliver(stripe_emulator.sign(event)).status == 200
    assert ledger.get_balance("saver") == 1000
    assert auto_top_up.view("saver").card is not None
    refused = invoke(
        create_checkout,
        api_event("POST", "/api/checkout", user="saver", body='{"amount": 1000, "saveCard": 1}'),
    )
    assert refused.status == 400


@pytest.mark.parametrize(
    ("button", "last4", "reason_word"),
    [("save-declining", "0002", "declined"), ("save-authenticating", "3184", "confirm")],
)
def test_the_setup_page_saves_the_test_card_chosen_and_auto_top_up_meets_its_behaviour(
    stripe_emulator: StripeEmulator, tables: Any, button: str, last4: str, reason_word: str
) -> None:
    import os
    import urllib.request

    from devstack.balance_stream import BalanceStream, TriggerContext
    from functions.auto_top_up.app import lambda_handler as routes
    from functions.auto_top_up.app import stream_handler
    from tests.lambda_events import invoke

    stripe_emulator.reset()
    stream = BalanceStream(
        tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stream_handler, TriggerContext()
    )
    opened = invoke(routes, _routes_event("POST", "/api/payment-method", "chooser"))
    page = urllib.request.urlopen(opened.body["url"], timeout=10).read().decode()
    assert all(f"/{name}" in page for name in ("pay", "save-declining", "save-authenticating", "cancel"))
    # Given the card chosen on the setup page, saved through the webhook
    pressed = urllib.request.Request(
        f"{opened.body['url']}/{button}", data=b"", headers={"Accept": "application/json"}, method="POST"
    )
    assert json.loads(urllib.request.urlopen(pressed, timeout=10).read())["status"] == "complete"
    for attached in events_of(stripe_emulator, "payment_method.attached"):
        assert deliver(stripe_emulator.sign(attached)).status == 200
    assert auto_top_up.view("chooser").card == auto_top_up.Card("visa", last4, 12, 2034)
    # When auto top-up is turned on below the threshold, its off-session payment meets the card
    body = '{"enabled": true, "threshold": 500, "amount": 1000}'
    assert invoke(routes, _routes_event("PUT", "/api/auto-top-up", "chooser", body)).status == 200
    stream.drain()
    # Then nothing is credited, and it is off with a reason the user can act on
    shown = invoke(routes, _routes_event("GET", "/api/auto-top-up", "chooser")).body
    assert (shown["enabled"], shown["status"]) == (False, "failed")
    assert reason_word in shown["reason"].lower()
    assert ledger.get_balance("chooser") == 0


def attached_to(emulator: StripeEmulator, method: str) -> str | None:
    customer: str | None = emulator.client().v1.payment_methods.retrieve(method).customer
    return customer


def trigger_stream(tables: Any) -> Any:
    import os

    from devstack.balance_stream import BalanceStream, TriggerContext
    from functions.auto_top_up.app import stream_handler

    return BalanceStream(
        tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stream_handler, TriggerContext()
    )


def save_another(emulator: StripeEmulator, customer: str, test_method: str = "pm_card_visa") -> str:
    [attached] = emulator.save_card(customer, test_method)
    assert deliver(emulator.sign(attached)).status == 200
    return str(attached["data"]["object"]["id"])


def test_a_replaced_card_is_detached_at_stripe_and_removing_the_card_leaves_none_attached(
    stripe_emulator: StripeEmulator, tables: Any
) -> None:
    # Given a user who saved a card, then used another card twice
    customer = saved_card(stripe_emulator, "replacer", "pm_card_visa", balance=5000)
    first = stripe_emulator.events[-1]["data"]["object"]["id"]
    second = save_another(stripe_emulator, customer, "pm_card_chargeDeclined")
    third = save_another(stripe_emulator, customer)
    # When the trigger sees the change
    trigger_stream(tables).drain()
    # Then only the card the page shows is still attached at Stripe, and auto top-up is still on
    assert [attached_to(stripe_emulator, m) for m in (first, second, third)] == [None, None, customer]
    assert auto_top_up.view("replacer").enabled is True
    for sent in events_of(stripe_emulator, "payment_method.detached"):
        assert deliver(stripe_emulator.sign(sent)).status == 200
    assert auto_top_up.view("replacer").card == auto_top_up.Card("visa", "4242", 12, 2034)
    # And removing the card detaches it too: Stripe keeps none of them
    auto_top_up.remove_card("replacer", payments.detach_payment_method)
    assert attached_to(stripe_emulator, third) is None


def test_removing_the_card_also_detaches_a_replaced_one_not_detached_yet(
    stripe_emulator: StripeEmulator,
) -> None:
    customer = saved_card(stripe_emulator, "hurried", "pm_card_visa", balance=5000)
    first = stripe_emulator.events[-1]["data"]["object"]["id"]
    second = save_another(stripe_emulator, customer)

    auto_top_up.remove_card("hurried", payments.detach_payment_method)

    assert (attached_to(stripe_emulator, first), attached_to(stripe_emulator, second)) == (None, None)
    assert auto_top_up.view("hurried").card is None


def test_a_card_detached_at_the_dashboard_turns_auto_top_up_off_with_a_reason(
    stripe_emulator: StripeEmulator,
) -> None:
    saved_card(stripe_emulator, "dashboard", "pm_card_visa", balance=5000)
    method = stripe_emulator.events[-1]["data"]["object"]["id"]

    [detached] = stripe_emulator.detach_card(method)
    for _ in range(2):
        assert deliver(stripe_emulator.sign(detached)).status == 200

    seen = auto_top_up.view("dashboard")
    assert (seen.enabled, seen.card, seen.status) == (False, None, Status.FAILED)
    assert seen.reason
    assert "VISA ending 4242 is no longer on file" in seen.reason
    assert auto_top_up.top_up_if_low("dashboard") is Decision.NOT_ENABLED


def test_an_attached_event_older_than_a_removal_never_saves_that_card_again(
    stripe_emulator: StripeEmulator,
) -> None:
    # Given a card saved, whose attached event Stripe will deliver again late, and then removed
    customer = saved_card(stripe_emulator, "late", "pm_card_visa", balance=5000)
    [late] = events_of(stripe_emulator, "payment_method.attached")
    auto_top_up.remove_card("late", payments.detach_payment_method, now=lambda: late["created"] + 5)
    # When the old event arrives after the removal
    assert deliver(stripe_emulator.sign(late)).status == 200
    # Then the removed card stays removed, and a card attached after the removal is saved
    assert auto_top_up.view("late").card is None
    [newer] = stripe_emulator.save_card(customer, "pm_card_chargeDeclined")
    assert deliver(stripe_emulator.sign(dict(newer, created=late["created"] + 6))).status == 200
    assert auto_top_up.view("late").card == auto_top_up.Card("visa", "0002", 12, 2034)


def test_an_attached_event_older_than_a_replacement_never_brings_the_old_card_back(
    stripe_emulator: StripeEmulator,
) -> None:
    customer = saved_card(stripe_emulator, "older", "pm_card_visa", balance=5000)
    [old] = events_of(stripe_emulator, "payment_method.attached")
    [new] = stripe_emulator.save_card(customer, "pm_card_chargeDeclined")
    new = dict(new, created=old["created"] + 1)
    assert deliver(stripe_emulator.sign(new)).status == 200

    assert deliver(stripe_emulator.sign(old)).status == 200

    assert auto_top_up.view("older").card == auto_top_up.Card("visa", "0002", 12, 2034)

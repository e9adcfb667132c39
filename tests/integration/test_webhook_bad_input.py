"""POST /api/webhooks/stripe with what is not, or not quite, a paid Stripe event, table-driven.

Every row gives the status the contract promises (400 for what is not a signed Stripe event, 200 for a
signed event it handled, credited or not) and checks the ledger of every user involved: exactly as it
was, or exactly one deposit more for the few deliveries that are what Stripe really sends.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import stripe
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from functions.create_checkout.app import lambda_handler as create_checkout
from functions.stripe_webhook.app import lambda_handler as stripe_webhook
from tests.checkout_flow import Ledger, ledger_of, start_checkout, webhook_request
from tests.lambda_events import HttpResponse, api_event, invoke
from wallet import ledger, settings

pytestmark = pytest.mark.usefixtures("tables")

SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
USERS = ("alice", "bob")
PRICE = 5000
Event = dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    payload: bytes
    signature: str | None
    encoding: str = "text"
    """`text`, `base64`, or `bad-base64`: flagged base64 but not base64 at all."""


def sign(payload: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp=at))


def body(event: Any) -> bytes:
    return json.dumps(event).encode()


def signed(event: Any, *, secret: str = SECRET, at: int | None = None) -> Delivery:
    payload = body(event)
    return Delivery(payload, sign(payload, secret=secret, at=at))


def changed(event: Event, **session: Any) -> Event:
    """The event with fields of its Checkout Session replaced."""
    copied = copy.deepcopy(event)
    copied["data"]["object"].update(session)
    return copied


def with_metadata(event: Event, **metadata: str | None) -> Event:
    """The event with metadata values replaced, or removed where the value is None."""
    copied = copy.deepcopy(event)
    kept = copied["data"]["object"]["metadata"]
    for key, value in metadata.items():
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = value
    return copied


def several_v1(event: Event, *, with_right_one: bool) -> Delivery:
    """A header with several v1 signatures, as Stripe sends while an endpoint's secret is rolled."""
    payload = body(event)
    at = int(time.time())
    right = sign(payload, at=at).split("v1=")[1]
    others = [sign(payload, secret=f"whsec_rolled_{n}", at=at).split("v1=")[1] for n in range(2)]
    signatures = [others[0], right, others[1]] if with_right_one else others
    return Delivery(payload, f"t={at}," + ",".join(f"v1={s}" for s in signatures))


def header_of(delivery: Delivery, change: Callable[[str], str]) -> Delivery:
    assert delivery.signature is not None
    return Delivery(delivery.payload, change(delivery.signature), delivery.encoding)


def capitalised_signature(header: str) -> str:
    timestamp, signature = header.split(",v1=")
    return f"{timestamp},v1={signature.upper()}"


def tampered(event: Event) -> Delivery:
    """Signed, then changed in transit: a bigger pack for the same signature."""
    delivery = signed(event)
    return Delivery(
        delivery.payload.replace(b'"amount_total": 5000', b'"amount_total": 10000'), delivery.signature
    )


def padded_to_one_megabyte(event: Event) -> Delivery:
    return signed(event | {"padding": "x" * (1024 * 1024)})


def thin_event(event: Event) -> Delivery:
    return signed({"id": event["id"], "object": "v2.core.event", "type": event["type"], "data": {}})


def live(event: Event) -> Event:
    copied = changed(event, livemode=True)
    copied["livemode"] = True
    return copied


@dataclass(frozen=True)
class Case:
    id: str
    delivery: Callable[[Event], Delivery]
    status: int
    credited: bool = False
    """True only for what Stripe really sends: then exactly one deposit of the session is expected."""
    delivered_before: bool = False
    """The genuine delivery was made (and credited) before this one: a replay."""
    code: str = "invalid_event"


CASES = [
    # -- the Stripe-Signature header --------------------------------------------------------------------
    Case("no header", lambda e: Delivery(body(e), None), 400),
    Case("empty header", lambda e: Delivery(body(e), ""), 400),
    Case("blank header", lambda e: Delivery(body(e), "   "), 400),
    Case("wrong scheme v0", lambda e: header_of(signed(e), lambda h: h.replace("v1=", "v0=")), 400),
    Case("scheme in capitals", lambda e: header_of(signed(e), lambda h: h.replace("v1=", "V1=")), 400),
    Case("no timestamp", lambda e: header_of(signed(e), lambda h: h.split(",", 1)[1]), 400),
    Case(
        "timestamp not a number", lambda e: header_of(signed(e), lambda h: "t=soon," + h.split(",")[1]), 400
    ),
    Case("several v1, one right", lambda e: several_v1(e, with_right_one=True), 200, credited=True),
    Case("several v1, none right", lambda e: several_v1(e, with_right_one=False), 400),
    Case("signature in capitals", lambda e: header_of(signed(e), capitalised_signature), 400),
    Case("another endpoint's secret", lambda e: signed(e, secret="whsec_another_endpoint"), 400),
    Case("body changed after signing", tampered, 400),
    Case("whitespace added after signing", lambda e: Delivery(body(e) + b"\n", signed(e).signature), 400),
    Case("signed 10 minutes ago", lambda e: signed(e, at=int(time.time()) - 600), 400),
    Case("signed a day ahead", lambda e: signed(e, at=int(time.time()) + 86_400), 400),
    Case("signed a year ahead", lambda e: signed(e, at=int(time.time()) + 365 * 86_400), 400),
    Case(
        "signed a minute ahead: clock skew", lambda e: signed(e, at=int(time.time()) + 60), 200, credited=True
    ),
    Case("signed 4 minutes ago", lambda e: signed(e, at=int(time.time()) - 240), 200, credited=True),
    # -- the body's bytes -------------------------------------------------------------------------------
    Case("plain body", signed, 200, credited=True),
    Case(
        "base64 body, signed over its bytes",
        lambda e: Delivery(body(e), sign(body(e)), "base64"),
        200,
        credited=True,
    ),
    Case(
        "base64 body, signed over its base64",
        lambda e: Delivery(body(e), sign(base64.b64encode(body(e))), "base64"),
        400,
    ),
    Case(
        "flagged base64 but not base64",
        lambda e: Delivery(b"%% not base64 %%", sign(body(e)), "bad-base64"),
        400,
        code="invalid_body",
    ),
    Case("not UTF-8", lambda e: Delivery(b"\xff\xfe" + body(e), sign(body(e)), "base64"), 400),
    Case("1 MB body, signed", padded_to_one_megabyte, 400),
    Case("empty body, signed", lambda e: Delivery(b"", sign(b"")), 400),
    # -- signed, but not a Stripe event -----------------------------------------------------------------
    Case("not JSON", lambda e: Delivery(b"credit me", sign(b"credit me")), 400),
    Case("a JSON array", lambda e: signed([e]), 400),
    Case("a JSON string", lambda e: signed("checkout.session.completed"), 400),
    Case("JSON that is not an event", lambda e: signed({"amount": 5000, "userId": "alice"}), 400),
    Case("event without an id", lambda e: signed({k: v for k, v in e.items() if k != "id"}), 400),
    Case(
        "event whose type is not a string",
        lambda e: signed(e | {"type": ["checkout.session.completed"]}),
        400,
    ),
    Case("a thin v2 event", thin_event, 400),
    # -- a signed event this deployment does not credit: 200, so Stripe stops retrying -------------------
    Case("unknown type", lambda e: signed(e | {"type": "payment_intent.succeeded"}), 200),
    Case("expired type for a paid session", lambda e: signed(e | {"type": "checkout.session.expired"}), 200),
    Case("session that is not an object", lambda e: signed(e | {"data": {"object": "cs_test_1"}}), 200),
    Case("metadata missing", lambda e: signed(changed(e, metadata={})), 200),
    Case("metadata not an object", lambda e: signed(changed(e, metadata="userId=alice")), 200),
    Case("userId missing", lambda e: signed(with_metadata(e, userId=None)), 200),
    Case("paymentId missing", lambda e: signed(with_metadata(e, paymentId=None)), 200),
    Case("paymentId not a ULID", lambda e: signed(with_metadata(e, paymentId="pay-1")), 200),
    Case("amount missing", lambda e: signed(with_metadata(e, amount=None)), 200),
    Case("amount not a number", lambda e: signed(with_metadata(e, amount="fifty")), 200),
    Case("amount negative", lambda e: signed(with_metadata(e, amount="-5000")), 200),
    Case("amount with a superscript digit", lambda e: signed(with_metadata(e, amount="5000\u00b2")), 200),
    Case(
        "amount in Arabic-Indic digits",
        lambda e: signed(with_metadata(e, amount="\u0665\u0660\u0660\u0660")),
        200,
    ),
    Case("amount disagrees with amount_total", lambda e: signed(with_metadata(e, amount="10000")), 200),
    Case("amount_total not a pack", lambda e: signed(changed(e, amount_total=4999)), 200),
    Case("amount_total missing", lambda e: signed(changed(e, amount_total=None)), 200),
    Case("amount_total a string", lambda e: signed(changed(e, amount_total="5000")), 200),
    Case("wrong currency", lambda e: signed(changed(e, currency="eur")), 200),
    Case("payment_status unpaid", lambda e: signed(changed(e, payment_status="unpaid")), 200),
    Case("payment_status missing", lambda e: signed(changed(e, payment_status=None)), 200),
    Case("livemode event in a test-mode deployment", lambda e: signed(live(e)), 200),
    # -- replays of a delivery that was credited ---------------------------------------------------------
    Case(
        "replay signed an hour ago",
        lambda e: signed(e, at=int(time.time()) - 3600),
        400,
        delivered_before=True,
    ),
    Case("replay signed now, as Stripe retries", signed, 200, delivered_before=True),
    Case(
        "replay as base64", lambda e: Delivery(body(e), sign(body(e)), "base64"), 200, delivered_before=True
    ),
]


def post(delivery: Delivery) -> HttpResponse:
    request = webhook_request(delivery.payload, delivery.signature, base64_body=delivery.encoding == "base64")
    if delivery.encoding == "bad-base64":
        request |= {"body": delivery.payload.decode(), "isBase64Encoded": True}
    return invoke(stripe_webhook, request)


@pytest.fixture
def paid(stripe_emulator: StripeEmulator) -> Event:
    """alice's paid checkout.session.completed for a $50 pack, not yet delivered; alice and bob already
    hold a deposit each, so an unchanged ledger is not merely an empty one."""
    for user, amount in (("alice", 1000), ("bob", 10000)):
        ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    *_, completed = stripe_emulator.pay(start_checkout("alice", PRICE))
    return completed


def expected_after(before: Ledger, event: Event, credited: bool) -> Ledger:
    if not credited:
        return before
    balance, rows = before["alice"]
    payment_id = event["data"]["object"]["metadata"]["paymentId"]
    return before | {"alice": (balance + PRICE, sorted([*rows, (payment_id, PRICE)]))}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_delivery_gets_its_status_and_the_ledger_moves_only_for_a_real_one(paid: Event, case: Case) -> None:
    if case.delivered_before:
        assert post(signed(paid)).status == 200
    before = ledger_of(*USERS)

    response = post(case.delivery(copy.deepcopy(paid)))

    assert response.status == case.status, response.body
    if case.status == 200:
        assert response.body == {"received": True}
    else:
        assert response.body["error"]["code"] == case.code
    assert ledger_of(*USERS) == expected_after(before, paid, case.credited)


def test_the_table_has_at_least_25_rows_and_unique_ids() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture
def live_deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STRIPE_LIVEMODE", "true")
    settings.stripe_livemode.cache_clear()
    yield
    monkeypatch.undo()
    settings.stripe_livemode.cache_clear()


@pytest.mark.usefixtures("live_deployment")
def test_a_live_deployment_credits_live_events_and_not_test_ones(paid: Event) -> None:
    before = ledger_of(*USERS)

    test_mode = post(signed(paid))

    assert (test_mode.status, ledger_of(*USERS)) == (200, before)
    assert post(signed(live(paid))).status == 200
    assert ledger_of(*USERS) == expected_after(before, paid, credited=True)


@pytest.mark.usefixtures("live_deployment")
def test_a_live_deployment_does_not_credit_a_test_session_from_the_success_page(paid: Event) -> None:
    before = ledger_of(*USERS)
    path = {"sessionId": paid["data"]["object"]["id"]}

    response = invoke(
        create_checkout, api_event("GET", "/api/checkout/{sessionId}", user="alice", path_parameters=path)
    )

    assert (response.status, response.body["credited"]) == (200, False)
    assert ledger_of(*USERS) == before


@pytest.mark.parametrize("value", ["yes", "1", "live"])
def test_a_livemode_setting_that_is_not_true_or_false_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STRIPE_LIVEMODE", value)
    settings.stripe_livemode.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match="STRIPE_LIVEMODE"):
            settings.stripe_livemode()
    finally:
        monkeypatch.undo()
        settings.stripe_livemode.cache_clear()

"""The local Stripe API emulator, driven through the real stripe SDK over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import stripe
from stripe.params.checkout import SessionCreateParams

from devstack.stripe_emulator import (
    FIXTURES,
    InvalidTransitionError,
    SignedEvent,
    StripeEmulator,
    UnknownCheckoutSessionError,
)

API_KEY = "sk_test_51EmulatorSuiteKey"
SUCCESS_URL = "https://credits.example/dashboard/credits/?checkout=success&session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://credits.example/dashboard/credits/?checkout=cancelled"
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


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK backs off at least half a second between retries; the suite needs no such wait.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


def sdk(
    emulator: StripeEmulator,
    *,
    api_key: str = API_KEY,
    retries: int = 0,
    http_client: stripe.HTTPClient | None = None,
) -> stripe.StripeClient:
    """The client as the product makes it, pointed at the emulator."""
    return stripe.StripeClient(
        api_key,
        stripe_version=stripe.api_version,
        max_network_retries=retries,
        http_client=http_client,
        base_addresses={"api": emulator.api_base},
    )


def checkout_params(
    user_id: str = "user-1", unit_amount: int = 5000, quantity: int = 1
) -> SessionCreateParams:
    metadata = {"userId": user_id, "amount": "5000", "paymentId": "01JD0000000000000000000000"}
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": quantity,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": unit_amount,
                    "product_data": {"name": "5,000 Credits", "description": "Prepaid credits"},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": {**metadata, "source": "checkout"}},
        "client_reference_id": user_id,
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
    }


def create(
    client: stripe.StripeClient, options: stripe.RequestOptions | None = None, **overrides: Any
) -> stripe.checkout.Session:
    """A session made from the product's parameters; an override of None leaves that parameter out."""
    params = cast(SessionCreateParams, {**checkout_params(), **overrides})
    return client.v1.checkout.sessions.create(params, options=options)


def calls(emulator: StripeEmulator, method: str, path: str) -> int:
    return sum(1 for request in emulator.requests if (request.method, request.path) == (method, path))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- create, retrieve, shapes -------------------------------------------------------------------------


def test_a_created_session_is_retrieved_unchanged(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(checkout_params(unit_amount=2500, quantity=2))

    retrieved = client.v1.checkout.sessions.retrieve(session.id)

    assert retrieved.to_dict() == session.to_dict()
    assert session.id.startswith("cs_test_")
    assert (session.amount_subtotal, session.amount_total, session.currency) == (5000, 5000, "usd")
    assert (session.status, session.payment_status, session.payment_intent) == ("open", "unpaid", None)
    assert session.to_dict()["metadata"] == checkout_params()["metadata"]
    assert session.client_reference_id == "user-1"
    assert session.success_url == SUCCESS_URL
    assert session.cancel_url == CANCEL_URL
    assert session.url == f"{emulator.api_base}/checkout/{session.id}"
    assert session.expires_at == session.created + 24 * 60 * 60
    assert session.livemode is False
    assert abs(session.created - time.time()) < 5
    [created, _] = emulator.requests
    assert created.params["line_items"][0]["price_data"]["unit_amount"] == "2500"
    assert created.params["metadata"] == checkout_params()["metadata"]
    assert created.stripe_version == stripe.api_version


def test_a_session_an_event_and_a_payment_intent_carry_exactly_stripes_fields(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    [completed] = emulator.pay(session.id)

    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]}).to_dict()
    signed = emulator.sign(completed)
    event = stripe.Webhook.construct_event(signed.payload, signed.signature, emulator.webhook_secret)

    assert session.to_dict().keys() == SHAPES["checkout.session"].keys()
    assert retrieved.keys() == SHAPES["checkout.session"].keys()
    assert retrieved["payment_intent"].keys() == SHAPES["payment_intent"].keys()
    assert event.to_dict().keys() == SHAPES["event"].keys()
    assert event.data.object.to_dict().keys() == SHAPES["checkout.session"].keys()
    assert (event.object, event.api_version, event.livemode) == ("event", stripe.api_version, False)


def test_a_given_expires_at_is_kept_within_stripes_30_minutes_to_24_hours(
    client: stripe.StripeClient,
) -> None:
    now = int(time.time())

    session = create(client, expires_at=now + 3600)
    with pytest.raises(stripe.InvalidRequestError) as too_soon:
        create(client, expires_at=now + 60)
    with pytest.raises(stripe.InvalidRequestError) as too_late:
        create(client, expires_at=now + 2 * 24 * 60 * 60)

    assert session.expires_at == now + 3600
    assert too_soon.value.param == too_late.value.param == "expires_at"


def test_the_session_url_points_at_the_public_base_url() -> None:
    with StripeEmulator(api_key=API_KEY, public_base_url="https://checkout.example.test/") as emulator:
        session = create(sdk(emulator))

    assert session.url == f"https://checkout.example.test/checkout/{session.id}"


def test_an_unknown_session_is_a_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.retrieve("cs_test_unknown")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.param == "session"
    assert raised.value.user_message == "No such checkout.session: 'cs_test_unknown'"


def test_another_api_key_is_refused_with_the_key_masked(emulator: StripeEmulator) -> None:
    other_key = "sk_test_51SomeoneElsesKey9Xyz"

    with pytest.raises(stripe.AuthenticationError) as raised:
        create(sdk(emulator, api_key=other_key))

    assert raised.value.http_status == 401
    message = raised.value.user_message or ""
    assert message.startswith("Invalid API Key provided: sk_test_")
    assert message.endswith("*9Xyz")
    assert other_key not in message


@pytest.mark.parametrize(
    ("overrides", "param", "code"),
    [
        ({"success_url": None}, "success_url", "parameter_missing"),
        ({"mode": None}, "mode", "parameter_missing"),
        ({"shipping_rate": "shr_1"}, "shipping_rate", "parameter_unknown"),
        ({"metadata": {"userId": {"nested": "hash"}}}, "metadata[userId]", None),
    ],
)
def test_a_bad_create_is_a_400_naming_the_parameter(
    client: stripe.StripeClient, overrides: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create(client, **overrides)

    assert (raised.value.http_status, raised.value.param, raised.value.code) == (400, param, code)


@pytest.mark.parametrize("unit_amount", [0, -100])
def test_a_unit_amount_that_is_not_positive_is_refused(client: stripe.StripeClient, unit_amount: int) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(checkout_params(unit_amount=unit_amount))

    assert raised.value.http_status == 400
    assert raised.value.param == "line_items[0][price_data][unit_amount]"
    assert raised.value.error is not None
    assert raised.value.error.type == "invalid_request_error"


# -- idempotency --------------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_params_replay_the_first_session(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    first = client.v1.checkout.sessions.create(checkout_params(), options={"idempotency_key": "pay-1"})

    again = client.v1.checkout.sessions.create(checkout_params(), options={"idempotency_key": "pay-1"})

    assert again.id == first.id
    assert again.last_response is not None
    assert first.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.headers["Original-Request"] == first.last_response.request_id
    assert [session.id for session in client.v1.checkout.sessions.list()] == [first.id]


def test_the_same_idempotency_key_with_other_params_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    client.v1.checkout.sessions.create(checkout_params(), options={"idempotency_key": "pay-2"})

    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.checkout.sessions.create(
            checkout_params(unit_amount=1000), options={"idempotency_key": "pay-2"}
        )

    assert raised.value.http_status == 400
    assert raised.value.error is not None
    assert raised.value.error.type == "idempotency_error"


def test_a_request_that_fails_validation_leaves_its_idempotency_key_free(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        create(client, {"idempotency_key": "pay-3"}, success_url=None)

    session = client.v1.checkout.sessions.create(checkout_params(), options={"idempotency_key": "pay-3"})

    assert session.status == "open"


# -- list ---------------------------------------------------------------------------------------------


def test_auto_paging_walks_every_session_newest_first(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    created = [create(client, client_reference_id=f"user-{n}").id for n in range(25)]

    listed = [session.id for session in client.v1.checkout.sessions.list({"limit": 10}).auto_paging_iter()]

    assert listed == created[::-1]
    assert calls(emulator, "GET", "/v1/checkout/sessions") == 3


def test_paging_back_with_ending_before_walks_towards_the_newest(client: stripe.StripeClient) -> None:
    created = [create(client).id for _ in range(12)]

    page = client.v1.checkout.sessions.list({"limit": 5, "ending_before": created[0]})
    walked = [session.id for session in page.auto_paging_iter()]

    assert [session.id for session in page] == created[5:0:-1]
    assert walked == created[1:]


def test_list_filters_by_status_created_and_payment_intent(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    sessions = [create(client) for _ in range(6)]
    expired = [client.v1.checkout.sessions.expire(session.id).id for session in sessions[:2]]
    emulator.pay(sessions[2].id)
    paid = client.v1.checkout.sessions.retrieve(sessions[2].id)
    earliest, latest = sessions[0].created, sessions[-1].created

    def ids(params: stripe.params.checkout.SessionListParams) -> list[str]:
        return [session.id for session in client.v1.checkout.sessions.list(params).auto_paging_iter()]

    assert ids({"status": "expired"}) == expired[::-1]
    assert ids({"status": "complete"}) == [paid.id]
    assert ids({"status": "open"}) == [session.id for session in sessions[3:]][::-1]
    assert len(ids({"created": {"gte": earliest, "lte": latest}})) == 6
    assert ids({"created": {"gt": latest}}) == []
    assert ids({"created": {"lt": earliest}}) == []
    assert isinstance(paid.payment_intent, str)
    assert ids({"payment_intent": paid.payment_intent}) == [paid.id]


def test_a_limit_over_100_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.list({"limit": 101})

    assert raised.value.param == "limit"


# -- expire -------------------------------------------------------------------------------------------


def test_expiring_an_open_session_sends_checkout_session_expired(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    session = create(client)

    expired = client.v1.checkout.sessions.expire(session.id)

    assert (expired.status, expired.payment_status, expired.url) == ("expired", "unpaid", None)
    [event] = emulator.events
    assert event["type"] == "checkout.session.expired"
    assert event["data"]["object"]["id"] == session.id
    assert expired.last_response is not None
    assert event["request"] == {
        "id": expired.last_response.request_id,
        "idempotency_key": expired.last_response.idempotency_key,
    }
    wait_until(lambda: len(delivered) == 1)
    assert delivered[0].event == event


def test_only_an_open_session_can_be_expired(emulator: StripeEmulator, client: stripe.StripeClient) -> None:
    session = create(client)
    emulator.pay(session.id)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.expire(session.id)

    assert raised.value.http_status == 400
    assert raised.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. '
        "This Checkout Session has a status of `complete`."
    )
    assert [event["type"] for event in emulator.events] == ["checkout.session.completed"]


# -- the customer's side and signed events -------------------------------------------------------------


def test_paying_completes_the_session_with_a_signed_completed_event(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)

    [completed] = emulator.pay(session.id)

    signed = emulator.sign(completed)
    event = stripe.Webhook.construct_event(signed.payload, signed.signature, emulator.webhook_secret)
    assert event.type == "checkout.session.completed"
    assert event.data.object.id == session.id
    assert (event.data.object.status, event.data.object.payment_status) == ("complete", "paid")
    assert signed.headers["Stripe-Signature"] == signed.signature
    assert json.loads(signed.payload) == completed == emulator.events[-1]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(signed.payload, signed.signature, "whsec_another_secret")
    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})
    intent = retrieved.to_dict()["payment_intent"]
    assert (retrieved.status, retrieved.payment_status) == ("complete", "paid")
    assert (intent["status"], intent["amount"], intent["amount_received"]) == ("succeeded", 5000, 5000)
    assert intent["metadata"] == checkout_params()["payment_intent_data"]["metadata"]
    assert event.data.object.payment_intent == intent["id"]


def test_a_delayed_payment_completes_unpaid_then_settles_paid(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)

    events = emulator.pay_later(session.id) + emulator.settle(session.id)

    assert [(e["type"], e["data"]["object"]["payment_status"]) for e in events] == [
        ("checkout.session.completed", "unpaid"),
        ("checkout.session.async_payment_succeeded", "paid"),
    ]
    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})
    assert retrieved.payment_status == "paid"
    assert retrieved.to_dict()["payment_intent"]["status"] == "succeeded"


def test_a_delayed_payment_that_fails_leaves_the_session_complete_and_unpaid(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    emulator.pay_later(session.id)

    [failed] = emulator.fail_payment(session.id)

    assert failed["type"] == "checkout.session.async_payment_failed"
    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})
    assert (retrieved.status, retrieved.payment_status) == ("complete", "unpaid")
    assert retrieved.to_dict()["payment_intent"]["status"] == "requires_payment_method"


def test_a_declined_card_leaves_the_session_open_and_sends_no_event(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)

    events = emulator.decline(session.id)

    assert events == []
    assert emulator.events == []
    declined = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]}).to_dict()
    assert (declined["status"], declined["payment_status"]) == ("open", "unpaid")
    assert declined["payment_intent"]["last_payment_error"]["code"] == "card_declined"
    [completed] = emulator.pay(session.id)
    assert completed["data"]["object"]["payment_intent"] == declined["payment_intent"]["id"]


def test_only_the_transitions_checkout_allows_are_accepted(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    paid, expired, delayed = create(client), create(client), create(client)
    emulator.pay(paid.id)
    emulator.expire(expired.id)
    emulator.pay_later(delayed.id)
    emulator.settle(delayed.id)

    for action, session_id in [
        (emulator.pay, paid.id),
        (emulator.pay, expired.id),
        (emulator.pay_later, expired.id),
        (emulator.decline, paid.id),
        (emulator.expire, paid.id),
        (emulator.settle, paid.id),
        (emulator.settle, delayed.id),
        (emulator.fail_payment, delayed.id),
    ]:
        with pytest.raises(InvalidTransitionError):
            action(session_id)
    with pytest.raises(UnknownCheckoutSessionError):
        emulator.pay("cs_test_unknown")
    assert len(emulator.events) == 4


def test_deliver_receives_every_event_signed_in_order(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    paid, expired = create(client), create(client)

    emulator.pay(paid.id)
    client.v1.checkout.sessions.expire(expired.id)

    wait_until(lambda: len(delivered) == 2)
    assert [event.event["type"] for event in delivered] == [
        "checkout.session.completed",
        "checkout.session.expired",
    ]
    assert [event.event for event in delivered] == emulator.events
    for event in delivered:
        verified = stripe.Webhook.construct_event(event.payload, event.signature, emulator.webhook_secret)
        assert verified.id == event.event["id"]
        assert event.event["pending_webhooks"] == 1


# -- faults -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_retries")
def test_the_sdk_retries_through_two_500s_with_one_idempotency_key(emulator: StripeEmulator) -> None:
    emulator.fail_next(2, status=500)

    session = create(sdk(emulator, retries=2))

    creates = [r for r in emulator.requests if r.path == "/v1/checkout/sessions"]
    assert [(r.status, r.injected) for r in creates] == [(500, True), (500, True), (200, False)]
    assert len({r.idempotency_key for r in creates}) == 1
    assert [s.id for s in sdk(emulator).v1.checkout.sessions.list()] == [session.id]


@pytest.mark.usefixtures("fast_retries")
def test_more_500s_than_retries_is_an_api_error(emulator: StripeEmulator) -> None:
    emulator.fail_next(3, status=500)

    with pytest.raises(stripe.APIError) as raised:
        create(sdk(emulator, retries=2))

    assert raised.value.http_status == 500
    assert calls(emulator, "POST", "/v1/checkout/sessions") == 3


@pytest.mark.usefixtures("fast_retries")
def test_a_429_is_a_rate_limit_error_retried_only_when_stripe_says_so(emulator: StripeEmulator) -> None:
    emulator.fail_next(1, status=429)

    with pytest.raises(stripe.RateLimitError) as raised:
        create(sdk(emulator, retries=2))
    emulator.fail_next(1, status=429, should_retry=True)
    session = create(sdk(emulator, retries=2))

    assert raised.value.http_status == 429
    assert raised.value.error is not None
    assert raised.value.error.code == "rate_limit"
    assert session.status == "open"
    assert [r.status for r in emulator.requests] == [429, 429, 200]


@pytest.mark.usefixtures("fast_retries")
def test_an_answer_slower_than_the_sdk_timeout_is_a_connection_error(emulator: StripeEmulator) -> None:
    emulator.fail_next(1, status=None, delay=0.5)
    impatient = sdk(emulator, http_client=stripe.RequestsClient(timeout=0.1))

    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.checkout.sessions.retrieve("cs_test_slow")


@pytest.mark.usefixtures("fast_retries")
def test_a_retry_after_a_timeout_gets_the_session_the_slow_request_made(emulator: StripeEmulator) -> None:
    emulator.fail_next(1, status=None, delay=0.75)
    impatient = sdk(emulator, retries=1, http_client=stripe.RequestsClient(timeout=0.25))

    session = impatient.v1.checkout.sessions.create(checkout_params(), options={"idempotency_key": "pay-9"})

    wait_until(lambda: len(emulator.requests) == 2)
    assert [s.id for s in sdk(emulator).v1.checkout.sessions.list()] == [session.id]
    assert sorted(r.replayed for r in emulator.requests[:2]) == [False, True]


# -- the server ---------------------------------------------------------------------------------------


def test_concurrent_creates_each_make_one_session(emulator: StripeEmulator) -> None:
    client = emulator.client()

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda n: create(client, client_reference_id=f"user-{n}").id, range(32)))

    assert len(set(ids)) == 32
    listed = {session.id for session in client.v1.checkout.sessions.list({"limit": 100})}
    assert listed == set(ids)


def test_the_checkout_url_serves_a_placeholder_page_with_the_amount(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)
    assert session.url is not None
    url = urlsplit(session.url)

    connection = http.client.HTTPConnection(url.netloc, timeout=5)
    connection.request("GET", url.path)
    response = connection.getresponse()
    page = response.read().decode()
    connection.close()

    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "Stripe Checkout emulator (local)" in page
    assert "50.00 USD" in page


def test_a_stopped_emulator_refuses_connections() -> None:
    with StripeEmulator(api_key=API_KEY) as emulator:
        client = sdk(emulator)
        create(client)

    with pytest.raises(stripe.APIConnectionError):
        create(client)

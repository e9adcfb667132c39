"""The local Stripe API emulator, driven through the real stripe SDK over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser
from typing import Any, cast
from urllib.parse import urljoin

import pytest
import stripe
from stripe.params.checkout import SessionCreateParams

from devstack.drain import DrainTimeoutError
from devstack.stripe_emulator import (
    CHECKOUT_PAGE_TITLE,
    DECLINED_MESSAGE,
    FIXTURES,
    InvalidTransitionError,
    SignedEvent,
    StripeEmulator,
    UnknownCheckoutSessionError,
    fixture,
)
from tests.waiting import wait_until

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
    *_, completed = emulator.pay(session.id)

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
        ({"adaptive_pricing": {"enabled": "sometimes"}}, "adaptive_pricing[enabled]", None),
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
    emulator.drain()
    assert len(delivered) == 1
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
    assert [event["type"] for event in emulator.events] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


# -- the customer's side and signed events -------------------------------------------------------------


def test_paying_completes_the_session_with_a_signed_completed_event(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)

    *_, completed = emulator.pay(session.id)

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

    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [
        ("checkout.session.completed", "complete"),
        ("charge.succeeded", "succeeded"),
        ("payment_intent.succeeded", "succeeded"),
        ("checkout.session.async_payment_succeeded", "complete"),
    ]
    assert [
        events[0]["data"]["object"]["payment_status"],
        events[-1]["data"]["object"]["payment_status"],
    ] == [
        "unpaid",
        "paid",
    ]
    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})
    assert retrieved.payment_status == "paid"
    assert retrieved.to_dict()["payment_intent"] == events[2]["data"]["object"]
    assert events[1]["data"]["object"]["id"] == events[2]["data"]["object"]["latest_charge"]


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
    *_, completed = emulator.pay(session.id)
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
    # Paid: a charge, its PaymentIntent, the session; expired; settled: the session, then the same three.
    assert len(emulator.events) == 3 + 1 + 1 + 3


def test_drain_waits_for_an_api_requests_events_handed_over_after_its_answer() -> None:
    released = threading.Event()
    delivered: list[SignedEvent] = []

    def held(signed: SignedEvent) -> None:
        released.wait(timeout=60)
        delivered.append(signed)

    with StripeEmulator(api_key=API_KEY, deliver=held) as emulator:
        client = sdk(emulator)
        session = create(client)
        expired = client.v1.checkout.sessions.expire(session.id)

        with pytest.raises(DrainTimeoutError, match=f"checkout.session.expired {emulator.events[0]['id']}"):
            emulator.drain(timeout=0.2)
        released.set()
        emulator.drain()

        assert expired.status == "expired"
        assert [signed.event for signed in delivered] == emulator.events


def test_deliver_receives_every_event_signed_in_order(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    paid, expired = create(client), create(client)

    emulator.pay(paid.id)
    client.v1.checkout.sessions.expire(expired.id)

    emulator.drain()
    assert [event.event["type"] for event in delivered] == [
        "charge.succeeded",
        "payment_intent.succeeded",
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

    wait_until(lambda: len(emulator.requests) == 2, "the slow request answered after the retry")
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


def test_a_stopped_emulator_refuses_connections() -> None:
    with StripeEmulator(api_key=API_KEY) as emulator:
        client = sdk(emulator)
        create(client)

    with pytest.raises(stripe.APIConnectionError):
        create(client)


# -- the hosted Checkout page -------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# A browser's request without the browser: redirects are returned, not followed, and no proxy is used.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: str

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json"
        return json.loads(self.body)


def http(method: str, url: str, *, as_json: bool = False) -> Answer:
    """One request as a browser's form post (or, `as_json`, a script's) makes it."""
    headers = {"Accept": "application/json"} if as_json else {"Accept": "text/html,*/*;q=0.8"}
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=5) as response:
            return Answer(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers, exc.read().decode())


class Page(HTMLParser):
    """What a person (or a screen reader) gets from a page: its text, forms, buttons and links."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: dict[str, list[dict[str, str | None]]] = {}
        self.forms: list[tuple[str, str, str]] = []
        self.links: list[tuple[str, str]] = []
        self._texts: list[str] = []
        self._form: dict[str, str | None] = {}
        self._button: list[str] | None = None
        self._link: tuple[str, list[str]] | None = None
        self._in_style = False
        self.feed(source)
        self.close()
        self.text = " ".join(" ".join(self._texts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.setdefault(tag, []).append(dict(attrs))
        self._in_style = tag == "style"
        if tag == "form":
            self._form = dict(attrs)
        elif tag == "button":
            self._button = []
        elif tag == "a":
            self._link = (dict(attrs).get("href") or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            label = " ".join(self._button).strip()
            self.forms.append((self._form.get("method") or "", self._form.get("action") or "", label))
            self._button = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], " ".join(self._link[1]).strip()))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._in_style = False
            return
        self._texts.append(data)
        if self._button is not None:
            self._button.append(data)
        if self._link is not None:
            self._link[1].append(data)


def visit(url: str) -> tuple[Answer, Page]:
    answer = http("GET", url)
    return answer, Page(answer.body)


def page_url(session: stripe.checkout.Session) -> str:
    assert session.url is not None
    return session.url


def success_url(session_id: str) -> str:
    return SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", session_id)


def test_the_checkout_page_says_it_is_an_emulator_and_shows_the_product_amount_and_four_buttons(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    session = create(client)

    answer, page = visit(page_url(session))

    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.attributes["html"] == [{"lang": "en"}]
    assert "main" in page.tags
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.attributes["meta"]
    notice = "Local Stripe Checkout emulator — no real payment is taken."
    assert page.text.startswith(f"Pay · {CHECKOUT_PAGE_TITLE} {notice} 5,000 Credits Prepaid credits")
    assert "Total due 50.00 USD" in page.text
    assert "Prepaid credits" in page.text
    assert page.forms == [
        ("post", f"{session.id}/pay", "Pay"),
        ("post", f"{session.id}/pay-later", "Pay later"),
        ("post", f"{session.id}/decline", "Decline"),
        ("post", f"{session.id}/cancel", "Cancel"),
    ]
    assert [urljoin(page_url(session), action) for _, action, _ in page.forms] == [
        f"{page_url(session)}/{action}" for action in ("pay", "pay-later", "decline", "cancel")
    ]
    assert "pending at first, then it succeeds 5 seconds on" in page.text
    assert all(button["type"] == "submit" for button in page.attributes["button"])
    assert not {"script", "img", "link", "iframe"} & set(page.tags)
    assert DECLINED_MESSAGE not in page.text
    assert [(r.method, r.path) for r in emulator.requests] == [("POST", "/v1/checkout/sessions")]


@pytest.mark.parametrize(
    ("currency", "unit_amount", "quantity", "shown"),
    [
        ("usd", 5000, 1, ["50.00 USD"]),
        ("eur", 1250, 2, ["5,000 Credits \N{MULTIPLICATION SIGN} 2 25.00 EUR", "Total due 25.00 EUR"]),
        ("jpy", 5000, 1, ["5,000 JPY"]),
        ("kwd", 5000, 1, ["5.000 KWD"]),
    ],
)
def test_the_page_shows_the_amount_in_the_session_currency(
    client: stripe.StripeClient, currency: str, unit_amount: int, quantity: int, shown: list[str]
) -> None:
    params = checkout_params(unit_amount=unit_amount, quantity=quantity)
    params["line_items"][0]["price_data"]["currency"] = currency
    session = client.v1.checkout.sessions.create(params)

    _, page = visit(page_url(session))

    for text in shown:
        assert text in page.text


def test_pay_completes_the_session_and_sends_the_customer_to_the_success_url(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    session = create(client)

    answer = http("POST", f"{page_url(session)}/pay")

    assert answer.status == 303
    assert answer.headers["Location"] == success_url(session.id)
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    emulator.drain()
    assert [signed.event["type"] for signed in delivered] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert all(r.path.startswith("/v1/") for r in emulator.requests)


def test_pay_later_completes_unpaid_then_settles_after_settle_after() -> None:
    delivered: list[SignedEvent] = []
    with StripeEmulator(api_key=API_KEY, deliver=delivered.append, settle_after=0.05) as emulator:
        session = create(sdk(emulator))

        answer = http("POST", f"{page_url(session)}/pay-later")
        wait_until(lambda: len(emulator.events) == 4, "the scheduled settlement's events")
        emulator.drain()

        assert answer.status == 303
        assert answer.headers["Location"] == success_url(session.id)
        assert [e.event["type"] for e in delivered] == [
            "checkout.session.completed",
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.async_payment_succeeded",
        ]
        assert [
            delivered[0].event["data"]["object"]["payment_status"],
            delivered[-1].event["data"]["object"]["payment_status"],
        ] == [
            "unpaid",
            "paid",
        ]
        assert sdk(emulator).v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_delayed_payment_settled_or_failed_by_hand_is_not_settled_again() -> None:
    with StripeEmulator(api_key=API_KEY, settle_after=0.3) as emulator:
        session = create(sdk(emulator))
        http("POST", f"{page_url(session)}/pay-later")
        emulator.fail_payment(session.id)

        # The timer starts once the answer is sent, so it is waited for to start and then to end.
        wait_until(lambda: bool(settlement_threads()), "the settlement timer to start")
        wait_until(lambda: not settlement_threads(), "the settlement timer to end")

        assert [event["type"] for event in emulator.events] == [
            "checkout.session.completed",
            "checkout.session.async_payment_failed",
        ]


def settlement_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "stripe-emulator-settle" and t.is_alive()]


def test_stop_cancels_a_pending_settlement_at_once() -> None:
    emulator = StripeEmulator(api_key=API_KEY, settle_after=60).start()
    session = create(sdk(emulator))
    http("POST", f"{page_url(session)}/pay-later")
    wait_until(lambda: bool(settlement_threads()), "the settlement timer to start")

    started = time.monotonic()
    emulator.stop()

    assert time.monotonic() - started < 1
    assert not settlement_threads()
    assert [event["type"] for event in emulator.events] == ["checkout.session.completed"]


def test_decline_shows_the_card_declined_message_sends_no_event_and_allows_another_try(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    session = create(client)

    answer = http("POST", f"{page_url(session)}/decline")
    _, page = visit(answer.headers["Location"])

    assert answer.status == 303
    assert answer.headers["Location"] == f"{page_url(session)}?declined=1"
    assert DECLINED_MESSAGE == "Your card was declined. Try again or use another card."
    assert DECLINED_MESSAGE in page.text
    assert {"class": "alert", "role": "alert"} in page.attributes["p"]
    assert [label for _, _, label in page.forms] == ["Pay", "Pay later", "Decline", "Cancel"]
    declined = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]}).to_dict()
    assert (declined["status"], declined["payment_status"]) == ("open", "unpaid")
    assert declined["payment_intent"]["last_payment_error"]["code"] == "card_declined"
    assert emulator.events == []
    assert http("POST", f"{page_url(session)}/pay").status == 303
    emulator.drain()
    assert len(delivered) == 3


def test_cancel_sends_the_customer_to_the_cancel_url_and_changes_nothing(
    emulator: StripeEmulator, client: stripe.StripeClient, delivered: list[SignedEvent]
) -> None:
    session = create(client)

    answer = http("POST", f"{page_url(session)}/cancel")

    assert answer.status == 303
    assert answer.headers["Location"] == CANCEL_URL
    assert client.v1.checkout.sessions.retrieve(session.id).to_dict() == session.to_dict()
    assert emulator.events == []
    emulator.drain()
    assert delivered == []


@pytest.mark.parametrize(
    ("action", "status", "payment_status", "redirect"),
    [
        ("pay", "complete", "paid", "success"),
        ("pay-later", "complete", "unpaid", "success"),
        ("decline", "open", "unpaid", "declined"),
        ("cancel", "open", "unpaid", "cancel"),
    ],
)
def test_each_action_answers_json_when_asked(
    client: stripe.StripeClient, action: str, status: str, payment_status: str, redirect: str
) -> None:
    session = create(client)
    redirects = {
        "success": success_url(session.id),
        "declined": f"{page_url(session)}?declined=1",
        "cancel": CANCEL_URL,
    }

    answer = http("POST", f"{page_url(session)}/{action}", as_json=True)

    assert answer.status == 200
    assert answer.json() == {
        "sessionId": session.id,
        "status": status,
        "paymentStatus": payment_status,
        "redirect": redirects[redirect],
    }
    assert client.v1.checkout.sessions.retrieve(session.id).status == status


def test_a_session_that_can_no_longer_be_paid_is_a_409(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    paid, expired = create(client), create(client)
    http("POST", f"{page_url(paid)}/pay")
    emulator.expire(expired.id)

    as_page = http("POST", f"{page_url(paid)}/pay")
    as_json = http("POST", f"{page_url(paid)}/pay-later", as_json=True)
    declined = http("POST", f"{page_url(expired)}/decline", as_json=True)

    assert as_page.status == 409
    page = Page(as_page.body)
    assert "This Checkout Session is already complete: it can no longer be paid." in page.text
    assert (page_url(paid), "Back to the Checkout page") in page.links
    assert as_json.status == 409
    assert as_json.json() == {
        "error": {"message": "This Checkout Session is already complete: it can no longer be paid."}
    }
    assert (declined.status, declined.json()["error"]["message"]) == (
        409,
        "This Checkout Session has expired: it can no longer be paid.",
    )
    assert [event["type"] for event in emulator.events] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.expired",
    ]


def test_a_closed_session_page_says_so_and_links_back_to_the_site(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    paid, pending, expired = create(client), create(client), create(client)
    urls = {session.id: page_url(session) for session in (paid, pending, expired)}
    emulator.pay(paid.id)
    emulator.pay_later(pending.id)
    emulator.expire(expired.id)

    pages = {session_id: visit(url) for session_id, url in urls.items()}

    for answer, page in pages.values():
        assert answer.status == 200
        assert page.forms == []
    paid_page, pending_page, expired_page = (pages[s.id][1] for s in (paid, pending, expired))
    assert "This Checkout Session is complete 5,000 Credits · 50.00 USD The payment succeeded." in (
        paid_page.text
    )
    assert paid_page.links == [(success_url(paid.id), "Return to the site")]
    assert "The payment is processing" in pending_page.text
    assert pending_page.links == [(success_url(pending.id), "Return to the site")]
    assert "This Checkout Session has expired" in expired_page.text
    assert expired_page.links == [(CANCEL_URL, "Return to the site")]


def test_an_unknown_session_or_page_is_a_404_and_a_wrong_method_a_405(emulator: StripeEmulator) -> None:
    base = f"{emulator.api_base}/checkout"

    page = http("GET", f"{base}/cs_test_unknown")
    action = http("POST", f"{base}/cs_test_unknown/pay", as_json=True)
    other = http("POST", f"{base}/cs_test_unknown/refund")
    wrong_method = http("GET", f"{base}/cs_test_unknown/pay")

    assert page.status == 404
    assert "Checkout Session not found" in Page(page.body).text
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert action.status == 404
    assert action.json()["error"]["message"].startswith("No such Checkout Session: cs_test_unknown.")
    assert other.status == 404
    assert (wrong_method.status, wrong_method.headers["Allow"]) == (405, "POST")
    assert emulator.requests == []


def test_a_resigned_event_is_the_same_payload_signed_afresh(emulator: StripeEmulator) -> None:
    event = fixture("event")
    an_hour_ago = int(time.time()) - 3600
    stale = emulator.sign(event, timestamp=an_hour_ago)

    fresh = stale.resigned()

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(stale.payload, stale.signature, emulator.webhook_secret)
    verified = stripe.Webhook.construct_event(fresh.payload, fresh.signature, emulator.webhook_secret)
    assert verified.id == event["id"]
    assert fresh.payload == stale.payload
    assert fresh.event == stale.event
    assert fresh.headers == stale.headers | {"Stripe-Signature": fresh.signature}
    assert int(fresh.signature.split(",")[0].removeprefix("t=")) >= an_hour_ago + 3600 - 5
    assert stale.resigned(an_hour_ago) == stale
    assert emulator.webhook_secret not in repr(fresh)
    by_hand = SignedEvent(stale.event, stale.payload, stale.signature, stale.headers)
    assert by_hand.resigned() is by_hand

"""A local Stripe API for Checkout and what follows a payment, served on 127.0.0.1 to the real stripe SDK.
Never deployed.

The API side answers the calls the product makes (create, retrieve, list and expire a Checkout Session;
retrieve a PaymentIntent, Charge, Refund, Dispute, Invoice or Event; list a payment's Charges; create or
cancel a Refund; list Events) with form-encoded requests in and Stripe-shaped JSON out: every object is a
deep copy of Stripe's own example (`stripe_fixtures.json`, or for an invoice every field of the SDK's
`stripe.Invoice`) with real values filled in, errors carry Stripe's `{"error": {...}}` body and
HTTP status, idempotency keys are honoured, and faults (5xx, 429, slow answers) can be injected.

The customer's side is played in code: `pay`, `pay_later` then `settle` or `fail_payment`, `decline` and
`expire` move a session as Checkout would and return the events Stripe would send, in its order (a
payment's `charge.succeeded` and `payment_intent.succeeded`, then the session's event); a paid session has
its PaymentIntent and Charge (`charge_of`). After the payment, `refund` (as `POST /v1/refunds`),
`start_refunds_as`, `refund_action` (`fail_refund`, `cancel_refund`) make every refund status Stripe has;
`open_dispute` (a chargeback, or with `inquiry=True` an inquiry), `prevent_dispute`, `dispute_action`
(`escalate`, `submit`, `win`, `lose`, `appeal`; `close_dispute` is win or lose) and `dispute_of` make
every dispute status. Each event is also signed with the emulator's webhook secret and handed to the
optional `deliver` callable (for real delivery over HTTP, a `devstack.webhook_delivery.WebhookSender`;
`SignedEvent.resigned()` signs a retry afresh). An API request's events are handed over after its answer,
from the server's thread: `drain()` waits until every event published so far has been handed over (and,
for a sender, delivered; see `devstack.drain`).

    with StripeEmulator() as emulator:
        client = stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.api_base})
        session = client.v1.checkout.sessions.create({...})
        *_, completed = emulator.pay(session.id)
        signed = emulator.sign(completed)  # signed.payload, signed.signature: what Stripe would POST
        client.v1.refunds.create({"charge": emulator.charge_of(session.id), "amount": 1000})

Or by a person, on the hosted Checkout page at the session's `url` (`GET /checkout/{id}`): plain HTML
forms, no API key, that post to `/checkout/{id}/pay`, `/pay-later`, `/decline` or `/cancel` and answer
`303 See Other` to where Checkout sends the customer: the `success_url` (its `{CHECKOUT_SESSION_ID}`
filled in) after paying, the page again after a decline, the `cancel_url` after cancelling (no event).
"Pay later" settles by itself `settle_after` seconds on. Asked for JSON, the same posts answer
`200 {"sessionId", "status", "paymentStatus", "redirect"}` instead, for scripts; a session that can no
longer be paid is a 409 and an unknown one a 404, each with `{"error": {"message"}}`:

    curl -s -X POST -H 'Accept: application/json' "$API_BASE/checkout/$SESSION_ID/pay"

What Stripe's API cannot do is a test control under `/_emulator/` (see `controls`, `disputes`, `refunds`):

    curl -s -X POST "$API_BASE/_emulator/charges/$CHARGE_ID/dispute" -d action=inquire  # or open, prevent
    curl -s -X POST "$API_BASE/_emulator/charges/$CHARGE_ID/dispute" -d action=escalate # submit, win, lose...
    curl -s -X POST "$API_BASE/_emulator/charges/$CHARGE_ID/refunds" -d status=pending  # or requires_action
    curl -s -X POST "$API_BASE/_emulator/refunds/$REFUND_ID" -d action=fail             # or succeed, cancel

One module per Stripe resource (`checkout_sessions`, `payment_intents`, `charges`, `refunds`, `disputes`,
`events`, `invoices`: a Checkout payment's paid invoice, and the receipt and invoice pages, and
`pricing` for promotion codes and Stripe Tax on a session's totals), plus `http` (the API's HTTP
layer: routing, idempotency keys, faults), `forms` (parameters), `errors`, `hosted_page` (the
Checkout page), `controls` (test controls), `store` (the state) and `fixtures` (Stripe's examples).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import stripe

from devstack.drain import DRAIN_TIMEOUT_SECONDS, Drains, DrainTimeoutError
from devstack.stripe_emulator import (
    charges,
    checkout_sessions,
    controls,
    customers,
    disputes,
    events,
    invoices,
    payment_intents,
    refunds,
)
from devstack.stripe_emulator.checkout_sessions import (
    LIST_URL,
    MIN_SESSION_LIFETIME_SECONDS,
    SESSION_LIFETIME_SECONDS,
)
from devstack.stripe_emulator.errors import (
    InvalidTransitionError,
    StripeApiError,
    UnknownCheckoutSessionError,
    UnknownObjectError,
    mask_api_key,
)
from devstack.stripe_emulator.events import Deliver, RequestContext, SignedEvent, Signer, signed_event
from devstack.stripe_emulator.fixtures import FIXTURES, JsonObject, fixture, new_id
from devstack.stripe_emulator.forms import parse_form
from devstack.stripe_emulator.hosted_page import (
    CHECKOUT_ACTIONS,
    CHECKOUT_PAGE_NOTICE,
    CHECKOUT_PAGE_TEMPLATE,
    CHECKOUT_PAGE_TITLE,
    DECLINED_MESSAGE,
    HostedCheckout,
)
from devstack.stripe_emulator.http import ApiRequest, ApiServer, Fault, Handler, Response, Route, StripeApi
from devstack.stripe_emulator.store import Store

__all__ = [
    "CHECKOUT_ACTIONS",
    "CHECKOUT_PAGE_NOTICE",
    "CHECKOUT_PAGE_TEMPLATE",
    "CHECKOUT_PAGE_TITLE",
    "DECLINED_MESSAGE",
    "DEFAULT_API_KEY",
    "DEFAULT_SETTLE_AFTER_SECONDS",
    "FIXTURES",
    "LIST_URL",
    "MIN_SESSION_LIFETIME_SECONDS",
    "SESSION_LIFETIME_SECONDS",
    "ApiRequest",
    "Deliver",
    "InvalidTransitionError",
    "JsonObject",
    "SignedEvent",
    "Signer",
    "StripeApiError",
    "StripeEmulator",
    "UnknownCheckoutSessionError",
    "UnknownObjectError",
    "fixture",
    "mask_api_key",
    "parse_form",
]

DEFAULT_API_KEY = "sk_test_emulator"
DEFAULT_SETTLE_AFTER_SECONDS = 5.0
_EMULATED_ROUTES = (
    "POST /v1/checkout/sessions, GET /v1/checkout/sessions, GET /v1/checkout/sessions/{id}, "
    "POST /v1/checkout/sessions/{id}/expire, GET /v1/payment_intents/{id}, GET /v1/charges/{id}, "
    "POST /v1/refunds, GET /v1/refunds, GET /v1/refunds/{id}, POST /v1/refunds/{id}/cancel, "
    "GET /v1/disputes/{id}, GET /v1/charges?payment_intent=, GET /v1/invoices/{id}, "
    "GET /v1/events, GET /v1/events/{id}, "
    "POST /v1/customers, GET /v1/customers/{id}, DELETE /v1/customers/{id}, GET /v1/payment_methods/{id}, "
    "POST /v1/payment_methods/{id}/detach, POST /v1/payment_intents (off-session)"
)

_log = logging.getLogger(__name__)


class StripeEmulator:
    """Stripe's API for Checkout and after, and the hosted Checkout page, on 127.0.0.1 from a daemon thread.

    `stop()` or leaving the `with` ends it and cancels the settlements the page scheduled. Thread-safe: one
    lock guards the objects, events, request log, faults, idempotency keys and pending settlements.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        webhook_secret: str | None = None,
        port: int = 0,
        public_base_url: str | None = None,
        deliver: Deliver | None = None,
        settle_after: float = DEFAULT_SETTLE_AFTER_SECONDS,
    ) -> None:
        if settle_after < 0:
            raise ValueError("settle_after must not be negative")
        self._api_key = api_key
        self._webhook_secret = webhook_secret or new_id("whsec_", 32)
        self._deliver = deliver
        self._settle_after = settle_after
        self._settlements: list[threading.Timer] = []
        self._lock = threading.Lock()
        # Signalled on the emulator's lock whenever an event has been handed to `deliver`.
        self._handed_over = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._store = Store(delivered=deliver is not None)
        self._api = StripeApi(api_key, self._lock, self._stopping, self._routes(), _EMULATED_ROUTES)
        self._server = ApiServer(("127.0.0.1", port), self._answer, self._deliver_all)
        self._public_base_url = (public_base_url or self.api_base).rstrip("/")
        self._store.public_base_url = self._public_base_url
        self._page = HostedCheckout(
            self._lock, self._store, self._public_base_url, settle_after, self._schedule_settlement
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # Checked this often for a stop, so stopping takes no longer than a test can afford.
            kwargs={"poll_interval": 0.05},
            name="stripe-emulator",
            daemon=True,
        )
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """The base address for the SDK: `StripeClient(..., base_addresses={"api": emulator.api_base})`."""
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def public_base_url(self) -> str:
        return self._public_base_url

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def webhook_secret(self) -> str:
        return self._webhook_secret

    @property
    def settle_after(self) -> float:
        """Seconds after "Pay later" on the Checkout page until that payment succeeds."""
        return self._settle_after

    def start(self) -> Self:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending settlements; a request in an injected delay is woken and answered."""
        self._stopping.set()
        if self._started:
            self._server.shutdown()
            self._thread.join()
            self._started = False
        self._cancel_settlements()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(
        self,
        *,
        max_network_retries: int | None = None,
        http_client: stripe.HTTPClient | None = None,
        stripe_version: str | None = None,
    ) -> stripe.StripeClient:
        """A `stripe.StripeClient` that talks to this emulator with its API key."""
        return stripe.StripeClient(
            self._api_key,
            stripe_version=stripe_version,
            max_network_retries=max_network_retries,
            http_client=http_client,
            base_addresses={"api": self.api_base},
        )

    # -- what tests read and control ---------------------------------------------------------------------

    @property
    def events(self) -> list[JsonObject]:
        """Every event produced so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._store.events)

    @property
    def requests(self) -> list[ApiRequest]:
        """Every API request answered so far (the Checkout page and its buttons aside), oldest first."""
        with self._lock:
            return list(self._api.requests)

    def fail_next(
        self,
        count: int = 1,
        status: int | None = 500,
        *,
        delay: float = 0.0,
        should_retry: bool | None = None,
    ) -> None:
        """Make the next `count` API requests fail: each waits `delay` seconds, then answers `status`.

        `status` 5xx answers an `api_error`, 429 a `rate_limit`, 409 a `lock_timeout`; with `status=None` the
        request is carried out normally after the delay (a slow Stripe). `should_retry` sets Stripe's
        `Stripe-Should-Retry` header, which the SDK obeys over its own rules. No idempotent result is saved
        for an injected failure, so the SDK's retry with the same key is carried out afresh.
        """
        if count < 1 or delay < 0:
            raise ValueError("count must be positive and delay not negative")
        with self._lock:
            self._api.faults.extend([Fault(status, delay, should_retry)] * count)

    def reset(self) -> None:
        """Forget every session, event, request, pending fault and idempotency key; cancel settlements."""
        self._cancel_settlements()
        with self._handed_over:
            self._store.clear()
            self._api.clear()
            self._handed_over.notify_all()

    def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until every event published so far has been handed to `deliver`, then drain `deliver` too
        when it can be (a `WebhookSender`: each event delivered or given up), all within `timeout` seconds.

        Settlements scheduled by the Checkout page and not yet due are not waited for (see `devstack.drain`).
        Raises `DrainTimeoutError`, naming the events still pending, when the time runs out.
        """
        deadline = time.monotonic() + timeout
        with self._handed_over:
            if not self._handed_over.wait_for(lambda: not self._store.undelivered, timeout):
                pending = ", ".join(f"{kind} {id_}" for id_, kind in self._store.undelivered.items())
                raise DrainTimeoutError(
                    f"the Stripe emulator did not hand these events to deliver in {timeout:g} s: " + pending
                )
        if isinstance(self._deliver, Drains):
            self._deliver.drain(max(0.0, deadline - time.monotonic()))

    def sign(self, event: Mapping[str, Any], timestamp: int | None = None) -> SignedEvent:
        """`event` as Stripe would post it now (or at `timestamp`), signed with the webhook secret.

        `resigned()` on the result signs the same bytes again with a fresh timestamp, for a retry.
        """
        payload = json.dumps(event, indent=2).encode()
        return signed_event(dict(event), payload, self._signature, timestamp)

    def _signature(self, payload: bytes, timestamp: int | None) -> str:
        return str(
            stripe.WebhookSignature.generate_signature_header(
                payload.decode(), self._webhook_secret, timestamp=timestamp
            )
        )

    # -- the customer's side of Checkout ---------------------------------------------------------------

    def pay(self, session_id: str) -> list[JsonObject]:
        """The customer pays by card: the session completes, paid -> `[checkout.session.completed]`."""
        with self._lock:
            events = checkout_sessions.pay(self._store, session_id)
        self._deliver_all(events)
        return events

    def pay_later(self, session_id: str) -> list[JsonObject]:
        """The customer pays by bank debit: the session completes unpaid -> `[checkout.session.completed]`.

        Nothing settles it by itself: call `settle` or `fail_payment` (the Checkout page's "Pay later"
        schedules `settle` after `settle_after` seconds).
        """
        with self._lock:
            events = checkout_sessions.pay_later(self._store, session_id)
        self._deliver_all(events)
        return events

    def settle(self, session_id: str) -> list[JsonObject]:
        """A delayed payment succeeds: the session is paid -> `[checkout.session.async_payment_succeeded]`."""
        with self._lock:
            events = checkout_sessions.settle(self._store, session_id)
        self._deliver_all(events)
        return events

    def fail_payment(self, session_id: str) -> list[JsonObject]:
        """A delayed payment fails: the session stays unpaid -> `[checkout.session.async_payment_failed]`."""
        with self._lock:
            events = checkout_sessions.fail_payment(self._store, session_id)
        self._deliver_all(events)
        return events

    def apply_promotion_code(self, session_id: str, code: str) -> JsonObject:
        """The customer enters a promotion code (pricing.TEST_PROMOTION_CODES) on Checkout -> the session."""
        with self._lock:
            return copy.deepcopy(checkout_sessions.apply_promotion_code(self._store, session_id, code))

    def decline(self, session_id: str) -> list[JsonObject]:
        """The card is declined: the session stays open for another try, Checkout sends no event -> `[]`."""
        with self._lock:
            return checkout_sessions.decline(self._store, session_id)

    def expire(self, session_id: str) -> list[JsonObject]:
        """The session expires unpaid, as at its `expires_at` -> `[checkout.session.expired]`."""
        with self._lock:
            record = checkout_sessions.record_in(self._store, session_id, "expire", status="open")
            events = [checkout_sessions.expire(self._store, record, request=None)]
        self._deliver_all(events)
        return events

    # -- after the payment: refunds and disputes --------------------------------------------------------

    def charge_of(self, session_id: str) -> str:
        """The id of the charge a paid (or pending) Checkout Session's payment made."""
        with self._lock:
            intent = checkout_sessions.record_of(self._store, session_id).payment_intent
            if intent is None or intent["latest_charge"] not in self._store.charges:
                raise InvalidTransitionError(f"Checkout Session {session_id} has no charge: it was not paid")
            return str(intent["latest_charge"])

    def refund(
        self,
        charge: str,
        amount: int | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[JsonObject]:
        """Refund the charge (`ch_...`, or a PaymentIntent's `pi_...`) as `POST /v1/refunds` would.

        -> `[charge.refunded, refund.created]`; a refund Stripe refuses raises its `StripeApiError`.
        """
        params: JsonObject = {"payment_intent" if charge.startswith("pi_") else "charge": charge}
        if amount is not None:
            params["amount"] = str(amount)
        if reason is not None:
            params["reason"] = reason
        if metadata:
            params["metadata"] = dict(metadata)
        with self._lock:
            _, sent = refunds.create(self._store, params, None)
        self._deliver_all(sent)
        return sent

    def start_refunds_as(self, charge: str, status: str = "pending") -> None:
        """Make the charge's refunds from now on start `pending` or `requires_action` (or, again,
        `succeeded`), as a refund the bank has not settled yet or one waiting for the customer's details."""
        with self._lock:
            refunds.start_refunds_as(self._store, charge, status)

    def refund_action(self, refund: str, action: str, failure_reason: str | None = None) -> list[JsonObject]:
        """Move the refund (`re_...`): `succeed`, `fail` (with `failure_reason`) or `cancel` -> the events
        (see `refunds.act`); a move Stripe would not make raises InvalidTransitionError."""
        with self._lock:
            sent = refunds.act(self._store, refund, action, failure_reason)
        self._deliver_all(sent)
        return sent

    def fail_refund(
        self, refund: str, failure_reason: str = refunds.DEFAULT_FAILURE_REASON
    ) -> list[JsonObject]:
        """The refund is returned by the bank -> `[refund.failed, refund.updated, charge.refund.updated]`."""
        return self.refund_action(refund, "fail", failure_reason)

    def cancel_refund(self, refund: str) -> list[JsonObject]:
        """The pending (or waiting) refund is canceled -> `[refund.updated, charge.refund.updated]`."""
        return self.refund_action(refund, "cancel")

    def open_dispute(
        self,
        charge: str,
        amount: int | None = None,
        reason: str = disputes.DEFAULT_REASON,
        *,
        inquiry: bool = False,
    ) -> list[JsonObject]:
        """The cardholder disputes the charge (all of it unless `amount`): a chargeback ->
        `[charge.dispute.created, charge.dispute.funds_withdrawn]`, or with `inquiry` an inquiry, which
        withdraws nothing -> `[charge.dispute.created]`."""
        with self._lock:
            sent = disputes.open_dispute(
                self._store, charge, amount, reason, action="inquire" if inquiry else "open"
            )
        self._deliver_all(sent)
        return sent

    def prevent_dispute(
        self,
        charge: str,
        amount: int | None = None,
        reason: str = disputes.DEFAULT_REASON,
        *,
        case_type: str = "resolution",
    ) -> list[JsonObject]:
        """A dispute stopped before it became a chargeback: status `prevented`, resolved (the cardholder
        refunded, as by Visa RDR) or, with `case_type="block"`, blocked (no money moves) ->
        `[charge.dispute.created, charge.dispute.closed]`."""
        actions = {"resolution": "prevent", "block": "block"}
        if case_type not in actions:
            raise ValueError(f"a prevented dispute's case_type is resolution or block, not {case_type!r}")
        with self._lock:
            sent = disputes.open_dispute(self._store, charge, amount, reason, action=actions[case_type])
        self._deliver_all(sent)
        return sent

    def charge_back(
        self, charge: str, amount: int | None = None, reason: str = disputes.DEFAULT_REASON
    ) -> list[JsonObject]:
        """A chargeback under a new dispute id while the charge's inquiry stays open (never closed) ->
        `[charge.dispute.created, charge.dispute.funds_withdrawn]`."""
        with self._lock:
            sent = disputes.open_dispute(self._store, charge, amount, reason, action="charge_back")
        self._deliver_all(sent)
        return sent

    def dispute_action(self, dispute: str, action: str) -> list[JsonObject]:
        """Move the dispute (`dp_...`) one step: `escalate`, `submit`, `win`, `lose` or `appeal` (see
        `disputes`) -> the events Stripe sends; a step Stripe would not take raises InvalidTransitionError."""
        with self._lock:
            sent = disputes.act(self._store, dispute, action)
        self._deliver_all(sent)
        return sent

    def close_dispute(self, dispute: str, *, won: bool) -> list[JsonObject]:
        """The dispute (`dp_...`) is won or lost: `dispute_action(dispute, "win" or "lose")`."""
        return self.dispute_action(dispute, "win" if won else "lose")

    def dispute_of(self, charge: str) -> str:
        """The id of the charge's latest dispute, the one its test control moves."""
        with self._lock:
            return disputes.dispute_of_charge(self._store, charge)

    def save_card(self, customer: str, test_method: str = "pm_card_visa") -> list[JsonObject]:
        """The customer saves one of Stripe's test cards (`customers.TEST_CARDS`), as Checkout's setup mode
        would -> `[payment_method.attached]`."""
        with self._lock:
            sent = customers.attach(self._store, test_method, customer)
        self._deliver_all(sent)
        return sent

    def detach_card(self, payment_method: str) -> list[JsonObject]:
        """Detach a saved card as the Dashboard (or another integration) would, without this product ->
        `[payment_method.detached]`."""
        with self._lock:
            customers.detach(self._store, payment_method, None)
            sent = [self._store.events[-1]]
        self._deliver_all(sent)
        return copy.deepcopy(sent)

    def delete_customer(self, customer: str) -> list[JsonObject]:
        """Delete a customer as the Dashboard would -> `[customer.deleted]`."""
        with self._lock:
            customers.delete_customer(self._store, customer, None)
            sent = [self._store.events[-1]]
        self._deliver_all(sent)
        return copy.deepcopy(sent)

    def _dispute_control(
        self, charge: str, action: str, amount: int | None, reason: str
    ) -> tuple[JsonObject, list[JsonObject]]:
        """`POST /_emulator/charges/{charge}/dispute`: the charge's latest dispute after `action`, events."""
        with self._lock:
            if action in disputes.OPENING:
                sent = disputes.open_dispute(self._store, charge, amount, reason, action=action)
            else:
                sent = disputes.act(self._store, disputes.dispute_of_charge(self._store, charge), action)
            dispute = self._store.disputes[disputes.dispute_of_charge(self._store, charge)]
            return copy.deepcopy(dispute), sent

    def _refund_control(
        self, refund: str, action: str, failure_reason: str | None
    ) -> tuple[JsonObject, list[JsonObject]]:
        """The `/_emulator/refunds/{refund}` control: the refund after `action`, and the events."""
        with self._lock:
            sent = refunds.act(self._store, refund, action, failure_reason)
            return copy.deepcopy(self._store.refunds[refund]), sent

    def _refunds_start_control(self, charge: str, status: str) -> JsonObject:
        """The `/_emulator/charges/{charge}/refunds` control: what the charge's refunds start as now."""
        with self._lock:
            refunds.start_refunds_as(self._store, charge, status)
        return {"charge": charge, "refunds_start_as": status}

    def _schedule_settlement(self, session_id: str) -> None:
        """Settle the delayed payment `settle_after` seconds from now, in a timer thread `stop()` cancels."""
        timer = threading.Timer(self._settle_after, self._settle_scheduled, args=(session_id,))
        timer.name = "stripe-emulator-settle"
        timer.daemon = True
        with self._lock:
            if self._stopping.is_set():
                return
            self._settlements = [pending for pending in self._settlements if pending.is_alive()]
            self._settlements.append(timer)
            timer.start()

    def _settle_scheduled(self, session_id: str) -> None:
        try:
            self.settle(session_id)
        except (UnknownCheckoutSessionError, InvalidTransitionError) as exc:
            # Settled, failed or forgotten by hand in the meantime: nothing is left to do.
            _log.info("scheduled settlement skipped: %s", exc)
        except Exception:
            _log.exception("settling Checkout Session %s failed", session_id)

    def _cancel_settlements(self) -> None:
        with self._lock:
            settlements, self._settlements = self._settlements, []
        for timer in settlements:
            timer.cancel()
        for timer in settlements:
            if timer is not threading.current_thread():
                timer.join()

    def _deliver_all(self, events: Sequence[JsonObject]) -> None:
        """Sign each event as it is sent, as Stripe does, and hand it to `deliver` (lock not held)."""
        if self._deliver is not None:
            for event in events:
                try:
                    self._deliver(self.sign(event))
                finally:
                    with self._handed_over:
                        self._store.undelivered.pop(event["id"], None)
                        self._handed_over.notify_all()

    # -- HTTP --------------------------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """The answer to one HTTP request (`headers` named in lower case); its events are delivered after."""
        url = urlsplit(target)
        if url.path.startswith("/checkout/"):
            return self._page.answer(method, url, headers, body)
        if url.path.startswith(("/receipts/", "/invoices/")):
            with self._lock:
                return invoices.answer_page(self._store, method, url.path)
        if url.path.startswith(controls.PREFIX):
            return controls.answer(
                method,
                url,
                headers,
                body,
                controls.Controls(self._dispute_control, self._refund_control, self._refunds_start_control),
            )
        return self._api.respond(method, url, headers, body)

    def _routes(self) -> list[Route]:
        """Each API route and its handler: the resource module's function, run with the lock held."""
        store = self._store
        sessions = r"/v1/checkout/sessions"
        session = sessions + r"/(?P<session_id>[^/]+)"

        def create_session() -> Handler:
            return lambda params, _request: checkout_sessions.create(store, params, self._public_base_url)

        def list_sessions() -> Handler:
            return lambda params, _request: checkout_sessions.list_sessions(store, params)

        def expire_session(session_id: str) -> Handler:
            return lambda params, request: checkout_sessions.expire_by_api(store, session_id, params, request)

        def retrieve_session(session_id: str) -> Handler:
            return lambda params, _request: checkout_sessions.retrieve(store, session_id, params)

        def retrieve_payment_intent(intent_id: str) -> Handler:
            return lambda params, _request: payment_intents.retrieve(store, intent_id, params)

        def retrieve_charge(charge_id: str) -> Handler:
            return lambda params, _request: charges.retrieve(store, charge_id, params)

        def list_charges() -> Handler:
            return lambda params, _request: invoices.list_charges(store, params)

        def retrieve_invoice(invoice_id: str) -> Handler:
            return lambda params, _request: invoices.retrieve(store, invoice_id, params)

        def create_refund() -> Handler:
            def create(params: JsonObject, request: RequestContext) -> JsonObject:
                refund, sent = refunds.create(store, params, request)
                request.events.extend(sent)
                return refund

            return create

        def cancel_refund(refund_id: str) -> Handler:
            return lambda params, request: refunds.cancel_by_api(store, refund_id, params, request)

        def list_refunds() -> Handler:
            return lambda params, _request: refunds.list_refunds(store, params)

        def retrieve_refund(refund_id: str) -> Handler:
            return lambda params, _request: refunds.retrieve(store, refund_id, params)

        def retrieve_dispute(dispute_id: str) -> Handler:
            return lambda params, _request: disputes.retrieve(store, dispute_id, params)

        def list_events() -> Handler:
            return lambda params, _request: events.list_events(store.events, params)

        def retrieve_event(event_id: str) -> Handler:
            return lambda params, _request: events.retrieve(store.events, event_id, params)

        def create_customer() -> Handler:
            return lambda params, _request: customers.create_customer(store, params)

        def retrieve_customer(customer_id: str) -> Handler:
            return lambda _params, _request: customers.retrieve_customer(store, customer_id)

        def delete_customer(customer_id: str) -> Handler:
            return lambda _params, request: customers.delete_customer(store, customer_id, request)

        def retrieve_payment_method(method_id: str) -> Handler:
            return lambda _params, _request: customers.retrieve_payment_method(store, method_id)

        def detach_payment_method(method_id: str) -> Handler:
            return lambda _params, request: customers.detach(store, method_id, request)

        def create_payment_intent() -> Handler:
            return lambda params, request: payment_intents.create_off_session(store, params, request)

        one = r"/(?P<{}>[^/]+)"
        return [
            Route("POST", re.compile(r"/v1/customers"), create_customer),
            Route("GET", re.compile(r"/v1/customers" + one.format("customer_id")), retrieve_customer),
            Route("DELETE", re.compile(r"/v1/customers" + one.format("customer_id")), delete_customer),
            Route(
                "GET", re.compile(r"/v1/payment_methods" + one.format("method_id")), retrieve_payment_method
            ),
            Route(
                "POST",
                re.compile(r"/v1/payment_methods" + one.format("method_id") + "/detach"),
                detach_payment_method,
            ),
            Route("POST", re.compile(r"/v1/payment_intents"), create_payment_intent),
            Route("POST", re.compile(sessions), create_session),
            Route("GET", re.compile(sessions), list_sessions),
            Route("POST", re.compile(session + "/expire"), expire_session),
            Route("GET", re.compile(session), retrieve_session),
            Route(
                "GET", re.compile(r"/v1/payment_intents" + one.format("intent_id")), retrieve_payment_intent
            ),
            Route("GET", re.compile(r"/v1/charges" + one.format("charge_id")), retrieve_charge),
            Route("GET", re.compile(r"/v1/charges"), list_charges),
            Route("GET", re.compile(r"/v1/invoices" + one.format("invoice_id")), retrieve_invoice),
            Route("POST", re.compile(r"/v1/refunds"), create_refund),
            Route("GET", re.compile(r"/v1/refunds"), list_refunds),
            Route("POST", re.compile(r"/v1/refunds" + one.format("refund_id") + "/cancel"), cancel_refund),
            Route("GET", re.compile(r"/v1/refunds" + one.format("refund_id")), retrieve_refund),
            Route("GET", re.compile(r"/v1/disputes" + one.format("dispute_id")), retrieve_dispute),
            Route("GET", re.compile(r"/v1/events"), list_events),
            Route("GET", re.compile(r"/v1/events" + one.format("event_id")), retrieve_event),
        ]

"""Steps of a top-up, driven through the real handlers and the Stripe emulator."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devstack.stripe_emulator import SignedEvent, StripeEmulator
from functions.create_checkout.app import lambda_handler as create_checkout
from functions.stripe_webhook.app import eventbridge_handler
from functions.stripe_webhook.app import lambda_handler as stripe_webhook
from tests.lambda_events import HttpResponse, LambdaContext, api_event, invoke
from wallet import ledger
from wallet.models import CreditTransaction


def start_checkout(user: str, amount: int) -> str:
    """Open a Checkout Session for `user` through POST /api/checkout; its id."""
    response = invoke(
        create_checkout, api_event("POST", "/api/checkout", user=user, body=json.dumps({"amount": amount}))
    )
    assert response.status == 201, response.body
    session_id: str = response.body["sessionId"]
    return session_id


def deliver(event: SignedEvent, *, base64_body: bool = False) -> HttpResponse:
    """POST one signed event to the webhook handler, as Stripe would."""
    return post_webhook(event.payload, event.signature, base64_body=base64_body)


EVENTBRIDGE_SAMPLE = (
    Path(__file__).resolve().parents[1] / "events" / "eventbridge" / "checkout.session.completed.json"
)


def eventbridge_envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """The Stripe event as Amazon EventBridge delivers it from the partner event source: the sample's
    envelope (`source`, `account`, ...), with the event as `detail`, its type as `detail-type` and an
    envelope id of its own, as each event EventBridge receives has."""
    envelope: dict[str, Any] = json.loads(EVENTBRIDGE_SAMPLE.read_text())
    return envelope | {"id": str(uuid.uuid4()), "detail-type": event["type"], "detail": dict(event)}


def deliver_by_eventbridge(event: SignedEvent | Mapping[str, Any]) -> HttpResponse:
    """Invoke the EventBridge door with one Stripe event, read as the webhook's answer would be: 200 when
    the function returned (EventBridge is done with it), 500 when it raised (Lambda retries it)."""
    stripe_event = event.event if isinstance(event, SignedEvent) else event
    return invoke_eventbridge(eventbridge_envelope(stripe_event))


def invoke_eventbridge(envelope: dict[str, Any]) -> HttpResponse:
    try:
        answer = eventbridge_handler(envelope, LambdaContext())
    except Exception as failed:
        return HttpResponse(500, {"error": type(failed).__name__}, {})
    return HttpResponse(200, answer, {})


Door = Callable[[SignedEvent], HttpResponse]
DOORS: dict[str, Door] = {
    "webhook": lambda event: deliver(event),
    "eventbridge": deliver_by_eventbridge,
}
"""The two ways a Stripe event reaches the function, for tests that must hold through either."""


def post_webhook(payload: bytes, signature: str | None, *, base64_body: bool = False) -> HttpResponse:
    """POST any body to the webhook handler, with `signature` as its Stripe-Signature header if given."""
    return invoke(stripe_webhook, webhook_request(payload, signature, base64_body=base64_body))


def webhook_request(
    payload: bytes | SignedEvent, signature: str | None = None, *, base64_body: bool = False
) -> dict[str, Any]:
    """The API Gateway event of one webhook delivery."""
    if isinstance(payload, SignedEvent):
        payload, signature = payload.payload, payload.signature
    request = api_event("POST", "/api/webhooks/stripe", user=None, body=payload, base64_body=base64_body)
    request["headers"].pop("stripe-signature", None)
    if signature is not None:
        request["headers"]["stripe-signature"] = signature
    return request


def variant(emulator: StripeEmulator, event: dict[str, Any], **changes: Any) -> SignedEvent:
    """The event with changes to its session (or, for `type`, to itself), signed afresh."""
    changed = copy.deepcopy(event)
    if "type" in changes:
        changed["type"] = changes.pop("type")
    changed["data"]["object"].update(changes)
    return emulator.sign(changed)


Ledger = dict[str, tuple[int, list[tuple[str, int]]]]


def ledger_of(*users: str) -> Ledger:
    """Each user's balance and deposit rows (id, amount): what "the ledger is unchanged" compares."""
    return {
        user: (
            ledger.get_balance(user),
            sorted((row.transaction_id, int(row.amount)) for row in CreditTransaction.query(user)),
        )
        for user in users
    }

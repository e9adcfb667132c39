"""Steps of a top-up, driven through the real handlers and the Stripe emulator."""

from __future__ import annotations

import copy
import json
from typing import Any

from devstack.stripe_emulator import SignedEvent, StripeEmulator
from functions.create_checkout.app import lambda_handler as create_checkout
from functions.stripe_webhook.app import lambda_handler as stripe_webhook
from tests.lambda_events import HttpResponse, api_event, invoke
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

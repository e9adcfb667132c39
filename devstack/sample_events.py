"""Writes events/stripe/*.json and the webhook's API Gateway sample from a run of the Stripe emulator.

    python -m devstack.sample_events

Each Checkout Session goes through the product's own `create_checkout_session`, so the samples carry
the metadata the product sends and the shapes of Stripe's objects at the pinned API version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.stripe_emulator import StripeEmulator
from wallet.packs import Pack
from wallet.payments import API_VERSION, create_checkout_session

EVENTS = Path(__file__).resolve().parent.parent / "events"
SITE_URL = "http://127.0.0.1:3000"


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def main() -> None:
    with StripeEmulator() as emulator:
        client = emulator.client(stripe_version=API_VERSION)

        def new_session() -> str:
            return create_checkout_session("user-123", Pack(5000, 5000), "usd", SITE_URL, client).session_id

        *_, paid = emulator.pay(new_session())
        pending = new_session()
        [unpaid] = emulator.pay_later(pending)
        *_, succeeded = emulator.settle(pending)
        failing = new_session()
        emulator.pay_later(failing)
        [failed] = emulator.fail_payment(failing)
        [expired] = emulator.expire(new_session())

    samples = {
        "checkout.session.completed.json": paid,
        "checkout.session.completed.unpaid.json": unpaid,
        "checkout.session.async_payment_succeeded.json": succeeded,
        "checkout.session.async_payment_failed.json": failed,
        "checkout.session.expired.json": expired,
    }
    (EVENTS / "stripe").mkdir(exist_ok=True)
    for name, event in samples.items():
        _write(EVENTS / "stripe" / name, event)
    # The webhook's sample request carries the paid event; its signature is a placeholder (see README).
    webhook = json.loads((EVENTS / "api_post_stripe_webhook.json").read_text())
    webhook["body"] = json.dumps(paid)
    webhook["headers"]["content-length"] = str(len(webhook["body"].encode()))
    _write(EVENTS / "api_post_stripe_webhook.json", webhook)


if __name__ == "__main__":
    main()

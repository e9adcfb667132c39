"""moto's DynamoDB and the Stripe emulator in this process, the paid events they lead to, and quiet output."""

from __future__ import annotations

import copy
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from ulid import ULID

from bench import environment
from devstack.dynamodb import DynamoDBServer
from devstack.stripe_emulator import SignedEvent, StripeEmulator


class Servers:
    """Both servers on 127.0.0.1 from daemon threads; leaving the `with` stops them."""

    def __init__(self) -> None:
        self.dynamodb = DynamoDBServer()
        self.stripe = StripeEmulator(api_key=environment.API_KEY, webhook_secret=environment.WEBHOOK_SECRET)
        self._template: dict[str, Any] | None = None

    def __enter__(self) -> Self:
        self.dynamodb.start()
        self.stripe.start()
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb.endpoint_url
        os.environ["STRIPE_API_BASE"] = self.stripe.api_base
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stripe.stop()
        self.dynamodb.stop()

    def fresh(self) -> None:
        """Empty tables built from template.yaml, and a Stripe with no sessions or request log."""
        from wallet import hot_accounts

        self.dynamodb.reset()
        self.dynamodb.create_tables(environment.TABLES)
        hot_accounts.forget()
        self.stripe.reset()
        self._template = None

    def paid_event(self, user_id: str, amount: int) -> dict[str, Any]:
        """A `checkout.session.completed` event for a new payment of `amount` (a pack's price) by `user_id`.

        The first is made by really paying a Checkout Session on the emulator; the rest are copies of it
        with a new payment id, so that preparing many costs no Stripe calls.
        """
        from wallet import marker, settings

        if self._template is None:
            self._template = self._pay(user_id, amount)
        event = copy.deepcopy(self._template)
        event["id"] = f"evt_bench{ULID()}"
        session = event["data"]["object"]
        metadata = {"userId": user_id, "amount": str(amount), "paymentId": str(ULID())}
        metadata[marker.METADATA_KEY] = marker.mark(
            settings.fulfilment_keys()[0],
            user_id=user_id,
            payment_id=metadata["paymentId"],
            credits=amount,
            amount=amount,
            currency=session["currency"],
        )
        session["metadata"] = metadata
        session["client_reference_id"] = user_id
        session["amount_total"] = session["amount_subtotal"] = amount
        return event

    def sign(self, event: dict[str, Any]) -> SignedEvent:
        return self.stripe.sign(event)

    def _pay(self, user_id: str, amount: int) -> dict[str, Any]:
        from wallet import payments, settings

        prices = settings.price_list()
        pack = prices.pack(amount)
        assert pack is not None, f"{amount} is not the price of a pack"
        new = payments.create_checkout_session(user_id, pack, prices.currency, settings.site_url())
        *_, completed = self.stripe.pay(new.session_id)
        return completed


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """The handlers' log lines and metrics go to /dev/null: written, as on Lambda, but not shown."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

"""Auto top-up: what the trigger costs per dip (DynamoDB calls, Stripe calls), how many charges a burst of
spends across the threshold makes, and the time from the crossing spend to the deposit through the local
stream poller, the trigger, the emulator and the webhook."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ulid import ULID

from bench.local import Servers
from bench.report import Row
from bench.roundtrips import DynamoDBCalls

SECTION = "Auto top-up (trigger from the balance stream)"
BURST = 50


def run(servers: Servers) -> list[Row]:
    from devstack.balance_stream import BalanceStream, TriggerContext
    from functions.auto_top_up.app import stream_handler
    from functions.stripe_webhook.app import lambda_handler as stripe_webhook
    from tests.checkout_flow import webhook_request
    from tests.lambda_events import invoke
    from wallet import auto_top_up, ledger, payments

    servers.fresh()
    payments.stripe_client.cache_clear()
    stream = BalanceStream(
        servers.dynamodb.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stream_handler, TriggerContext()
    )

    def with_card(user: str, balance: int) -> None:
        ledger.add_credits(user, balance, source="stripe_payment", payment_id=str(ULID()), currency="usd")
        customer = auto_top_up.customer_of(user, payments.create_customer)
        [attached] = servers.stripe.save_card(customer)
        invoke(stripe_webhook, webhook_request(servers.sign(attached)))
        auto_top_up.configure(user, enabled=True, threshold=500, amount=1000)
        stream.drain()

    def spend(user: str, amount: int) -> None:
        ledger.spend(
            user, amount, idempotency_key=str(ULID()), description=None, actor="bench", currency="usd"
        )

    def payments_made() -> list[dict[str, object]]:
        return [e for e in servers.stripe.events if e["type"] == "payment_intent.succeeded"]

    # One dip: the crossing spend's records through the trigger, counted.
    with_card("bench-dip", 600)
    spend("bench-dip", 200)
    records = stream.records()
    calls = DynamoDBCalls()
    before = len(servers.stripe.requests)
    started = time.perf_counter()
    try:
        stream.deliver(records)
        stream.deliver(stream.records())  # the trigger's own writes come back through the stream
        operations = list(calls.operations)
    finally:
        calls.close()
    stripe_calls = len(servers.stripe.requests) - before
    [paid] = payments_made()
    invoke(stripe_webhook, webhook_request(servers.sign(paid)))
    elapsed_ms = (time.perf_counter() - started) * 1000
    dip = Row(
        SECTION,
        "Trigger: one dip (the crossing spend and its own writes' records)",
        f"DynamoDB {len(operations)} ({', '.join(operations)}), Stripe {stripe_calls}",
        # The claim's own record is read once more: a crash between claim and charge is resumed from it.
        budget="DynamoDB <= 4 (read, claim, record the intent; the claim's record read once), Stripe = 1",
        holds=len(operations) <= 4 and stripe_calls == 1,
    )
    latency = Row(
        SECTION,
        "Crossing spend's records to deposit (poller, trigger, emulator, webhook; in process)",
        f"{elapsed_ms:.0f} ms",
    )

    # A burst: 50 spends at once across the threshold.
    servers.stripe.reset()
    with_card("bench-burst", 2000)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: spend("bench-burst", 40), range(BURST)))
    delivered = stream.drain()
    charges = len(payments_made())
    burst = Row(
        SECTION,
        f"Burst: {BURST} concurrent spends across the threshold ({delivered} stream records)",
        f"{charges} charge(s)",
        budget="exactly 1",
        holds=charges == 1,
    )
    return [dip, burst, latency]

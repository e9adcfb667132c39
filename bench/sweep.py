"""The sweep over Stripe's event log: calls per replayed event and throughput, on the emulator and moto.

Credits are measured on a backlog of a few hundred: moto copies every table a transaction touches
(`transact_write_items` deep-copies it for rollback), so its cost per deposit grows with the table and
5,000 of them would measure moto. The 5,000-event throughput run replays unpaid completions (a bank
debit still settling): the same path through Stripe's list, the webhook's code and the checkpoint,
without a ledger write.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from bench.local import Servers
from bench.report import Row
from bench.roundtrips import DynamoDBCalls

if TYPE_CHECKING:
    from wallet.reconciliation import SweepReport

SECTION = "The sweep over Stripe's event log"
LOST = 300
NEW = 50
THROUGHPUT = 5000
USERS = 50


def run(servers: Servers) -> list[Row]:
    servers.fresh()
    _checkouts(servers, LOST, paid=True)
    calls = DynamoDBCalls()
    try:
        first, _, first_stripe, first_dynamodb = _measure(servers, calls)
        _checkouts(servers, NEW, paid=True)
        hourly, _, hourly_stripe, hourly_dynamodb = _measure(servers, calls)
        _, _, idle_stripe, idle_dynamodb = _measure(servers, calls)
        _checkouts(servers, THROUGHPUT, paid=False)
        backlog, seconds, backlog_stripe, backlog_dynamodb = _measure(servers, calls)
    finally:
        calls.close()
    if (first.credited, hourly.credited, backlog.replayed) != (LOST, NEW, THROUGHPUT):
        raise RuntimeError(
            f"the sweep credited {first.credited}, {hourly.credited}; replayed {backlog.replayed}"
        )
    # A paid checkout is two events the sweep replays: its payment_intent.succeeded (ignored: no call)
    # and its checkout.session.completed (one credit).
    first_pages, hourly_pages = math.ceil(first.replayed / 100), math.ceil(hourly.replayed / 100)
    return [
        Row(
            SECTION,
            f"First run: {LOST} lost checkouts credited, {first.replayed} events (walks back to the oldest, "
            "then forward)",
            f"per event: Stripe {first_stripe / first.replayed:.3f}, DynamoDB "
            f"{first_dynamodb / first.replayed:.3f} ({first_stripe}, {first_dynamodb})",
            budget="Stripe <= 2 per 100 events + 1; DynamoDB <= 1 per credit + 2 per 100 events + 4",
            holds=first_stripe <= 2 * first_pages + 1 and first_dynamodb <= LOST + 2 * first_pages + 4,
        ),
        Row(
            SECTION,
            f"Hourly run: {NEW} new lost checkouts after the checkpoint, {hourly.replayed} events",
            f"per event: Stripe {hourly_stripe / hourly.replayed:.3f}, DynamoDB "
            f"{hourly_dynamodb / hourly.replayed:.3f} ({hourly_stripe}, {hourly_dynamodb})",
            budget="Stripe <= 1 per 100 events; DynamoDB <= 1 per credit + 1 per 100 events + 2",
            holds=hourly_stripe <= hourly_pages and hourly_dynamodb <= NEW + hourly_pages + 2,
        ),
        Row(
            SECTION,
            "Hourly run with nothing new",
            f"Stripe {idle_stripe}, DynamoDB {idle_dynamodb}",
            budget="Stripe 1, DynamoDB <= 2",
            holds=idle_stripe == 1 and idle_dynamodb <= 2,
        ),
        Row(
            SECTION,
            f"Throughput: {THROUGHPUT:,} events replayed from the checkpoint (unpaid completions)",
            f"{THROUGHPUT / seconds:,.0f} events/s ({seconds:.1f} s); Stripe {backlog_stripe}, "
            f"DynamoDB {backlog_dynamodb}",
            holds=None,
        ),
    ]


def _checkouts(servers: Servers, count: int, *, paid: bool) -> None:
    """`count` Checkout Sessions paid by card (or by bank debit, still settling) whose webhooks were lost."""
    from wallet import payments, settings

    prices = settings.price_list()
    pack = prices.packs[0]
    for n in range(count):
        user = f"bench-sweep-{n % USERS}"
        new = payments.create_checkout_session(user, pack, prices.currency, settings.site_url())
        (servers.stripe.pay if paid else servers.stripe.pay_later)(new.session_id)


def _measure(servers: Servers, calls: DynamoDBCalls) -> tuple[SweepReport, float, int, int]:
    from wallet import reconciliation

    calls.operations.clear()
    before = len(servers.stripe.requests)
    started = time.perf_counter()
    report = reconciliation.sweep(lambda: 900.0)
    seconds = time.perf_counter() - started
    return report, seconds, len(servers.stripe.requests) - before, len(calls.operations)

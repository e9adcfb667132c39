"""The sweep over Stripe's event log: calls per replayed event and throughput, on the emulator and moto."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bench.local import Servers
from bench.report import Row
from bench.roundtrips import DynamoDBCalls

if TYPE_CHECKING:
    from wallet.reconciliation import SweepReport

SECTION = "The sweep over Stripe's event log"
BACKLOG = 5000
STEADY = 500
USERS = 50


def run(servers: Servers) -> list[Row]:
    servers.fresh()
    _lost_checkouts(servers, BACKLOG)
    calls = DynamoDBCalls()
    try:
        first = _measure(servers, calls)
        _lost_checkouts(servers, STEADY)
        steady = _measure(servers, calls)
        idle = _measure(servers, calls)
    finally:
        calls.close()
    report, seconds, stripe, dynamodb = first
    steady_report, steady_seconds, steady_stripe, steady_dynamodb = steady
    _, _, idle_stripe, idle_dynamodb = idle
    if report.credited != BACKLOG or steady_report.credited != STEADY:
        raise RuntimeError(f"the sweep credited {report.credited} and {steady_report.credited}")
    return [
        Row(
            SECTION,
            f"First run: {BACKLOG:,} lost checkouts (walk back to the oldest, then forward)",
            f"{BACKLOG / seconds:,.0f} events/s ({seconds:.1f} s); Stripe {stripe}, DynamoDB {dynamodb}",
            holds=None,
        ),
        Row(
            SECTION,
            "First run: Stripe calls per replayed event",
            f"{stripe / BACKLOG:.3f}",
            budget="<= 0.021 (pages of 100, both ways)",
            holds=stripe / BACKLOG <= 0.021,
        ),
        Row(
            SECTION,
            f"Hourly run: {STEADY} new events from the checkpoint",
            f"{STEADY / steady_seconds:,.0f} events/s; Stripe {steady_stripe / STEADY:.3f}/event, "
            f"DynamoDB {steady_dynamodb / STEADY:.3f}/event ({steady_stripe}, {steady_dynamodb})",
            budget="Stripe <= 0.011, DynamoDB <= 1.02 per event (a credit each, a checkpoint a page)",
            holds=steady_stripe / STEADY <= 0.011 and steady_dynamodb / STEADY <= 1.02,
        ),
        Row(
            SECTION,
            "Hourly run with nothing new",
            f"Stripe {idle_stripe}, DynamoDB {idle_dynamodb}",
            budget="Stripe 1, DynamoDB <= 2",
            holds=idle_stripe == 1 and idle_dynamodb <= 2,
        ),
    ]


def _lost_checkouts(servers: Servers, count: int) -> None:
    """`count` paid Checkout Sessions whose webhooks never arrived: each a `checkout.session.completed`."""
    from wallet import payments, settings

    prices = settings.price_list()
    pack = prices.packs[0]
    for n in range(count):
        new = payments.create_checkout_session(
            f"bench-sweep-{n % USERS}", pack, prices.currency, settings.site_url()
        )
        servers.stripe.pay(new.session_id)


def _measure(servers: Servers, calls: DynamoDBCalls) -> tuple[SweepReport, float, int, int]:
    from wallet import reconciliation

    calls.operations.clear()
    before = len(servers.stripe.requests)
    started = time.perf_counter()
    report = reconciliation.sweep(lambda: 900.0)
    seconds = time.perf_counter() - started
    return report, seconds, len(servers.stripe.requests) - before, len(calls.operations)

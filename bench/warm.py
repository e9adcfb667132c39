"""Warm latency: each handler invoked in this process against the bare calls it makes, side by side."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from ulid import ULID

from bench import bare, environment
from bench.local import Servers, median
from bench.report import Row, within

SECTION = "Warm (handler in-process vs the bare calls it makes, same servers)"
BUDGET = 1.30
ROUNDS = 5
WARM_UP = 10


@dataclass(frozen=True)
class Comparison:
    handler_ms: float
    bare_ms: float
    ratio: float
    lowest: float
    highest: float
    iterations: int


def compare(
    handler: Callable[[int], None],
    bare_call: Callable[[int], None],
    iterations: int,
    prepare: Callable[[range], None] | None = None,
) -> Comparison:
    """`iterations` per round of each, alternating which goes first, so drift and caching favour neither.

    Each call is given its number; `prepare`, untimed, readies the numbers of the round to come.
    """
    if prepare:
        prepare(range(WARM_UP))
    for n in range(WARM_UP):
        handler(n)
        bare_call(n)
    ratios: list[float] = []
    handler_all: list[float] = []
    bare_all: list[float] = []
    for first in range(WARM_UP, WARM_UP + ROUNDS * iterations, iterations):
        numbers = range(first, first + iterations)
        if prepare:
            prepare(numbers)
        handler_times: list[float] = []
        bare_times: list[float] = []
        for n in numbers:
            pair = [(handler, handler_times), (bare_call, bare_times)]
            for call, times in pair if n % 2 == 0 else reversed(pair):
                started = time.perf_counter()
                call(n)
                times.append((time.perf_counter() - started) * 1000)
        ratios.append(median(handler_times) / median(bare_times))
        handler_all += handler_times
        bare_all += bare_times
    handler_ms, bare_ms = median(handler_all), median(bare_all)
    return Comparison(
        handler_ms, bare_ms, handler_ms / bare_ms, min(ratios), max(ratios), iterations * ROUNDS
    )


def run(servers: Servers) -> list[Row]:
    from functions.create_checkout.app import lambda_handler as create_checkout
    from functions.get_balance.app import lambda_handler as get_balance
    from functions.spend.app import lambda_handler as spend
    from functions.stripe_webhook.app import lambda_handler as stripe_webhook
    from tests.checkout_flow import webhook_request
    from tests.lambda_events import api_event, invoke
    from wallet import ledger, models, payments
    from wallet.models import CreditBalance, CreditTransaction

    servers.fresh()
    balance_table = environment.TABLES["CreditBalanceTable"]
    transaction_table = environment.TABLES["CreditTransactionTable"]
    balance_client = CreditBalance._get_connection().connection.client
    history_client = CreditTransaction._get_connection().connection.client
    ledger_client = models.connection().client
    rows = []

    def checked(handler: Callable[..., Any], event: dict[str, Any], expected: int) -> None:
        response = invoke(handler, event)
        if response.status != expected:
            raise RuntimeError(f"{event['routeKey']} answered {response.status}: {response.body}")

    # A balance page as most users see it: a full page of history and more behind it.
    reader = "bench-warm-reader"
    for _ in range(25):
        ledger.add_credits(reader, 1000, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    balance_event = api_event("GET", "/api/balance", user=reader)
    reads = bare.statement(balance_table, transaction_table, reader)
    clients = {"query": history_client, "get_item": balance_client}

    def bare_statement(_: int) -> None:
        for operation, params in reads:
            getattr(clients[operation], operation)(**params)

    # Every credit needs an event of its own, signed just before its round so that none goes stale.
    credits: dict[int, dict[str, Any]] = {}
    writer = "bench-warm-writer"

    def sign_credits(numbers: range) -> None:
        credits.update({n: webhook_request(servers.sign(servers.paid_event(writer, 1000))) for n in numbers})

    def handler_credit(n: int) -> None:
        checked(stripe_webhook, credits.pop(n), 200)

    def bare_credit(_: int) -> None:
        ledger_client.transact_write_items(**_deposit(balance_table, transaction_table, writer, str(ULID())))

    duplicate = webhook_request(servers.sign(servers.paid_event(writer, 1000)))
    checked(stripe_webhook, duplicate, 200)
    duplicate_payment = json.loads(duplicate["body"])["data"]["object"]["metadata"]["paymentId"]

    def bare_duplicate(_: int) -> None:
        try:
            ledger_client.transact_write_items(
                **_deposit(balance_table, transaction_table, writer, duplicate_payment)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
        else:
            raise RuntimeError("the same payment was deposited twice")

    # A shopper per checkout: each user may open CHECKOUTS_PER_HOUR an hour (wallet.rate_limits).
    checkouts: dict[int, dict[str, Any]] = {}

    def checkout_events(numbers: range) -> None:
        body = json.dumps({"amount": 1000})
        checkouts.update(
            {n: api_event("POST", "/api/checkout", user=f"{writer}-{n}", body=body) for n in numbers}
        )

    sdk = payments.stripe_client()
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime())

    def bare_checkout(n: int) -> None:
        # The hourly count the route keeps, as one bare UpdateItem.
        ledger_client.update_item(
            TableName=environment.TABLES["CreditGuardTable"],
            Key={"userId": {"S": f"{writer}-bare-{n}"}, "guardId": {"S": "rate#checkouts"}},
            UpdateExpression="SET requestsHour = :hour ADD requests :one",
            ExpressionAttributeValues={":one": {"N": "1"}, ":hour": {"S": hour}},
        )
        payment_id = str(ULID())
        params = bare.checkout_params(writer, 1000, payment_id, "usd", environment.SETTINGS["SITE_URL"])
        # The key with each call, as payments passes it: the container's client holds none.
        options = {"api_key": environment.API_KEY, "idempotency_key": payment_id}
        sdk.v1.checkout.sessions.create(params, options=options)  # type: ignore[arg-type]

    # Spends: each with a key of its own, from a balance that covers them all.
    spender = "bench-warm-spender"
    ledger.add_credits(spender, 10_000_000, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    guard_table = environment.TABLES["CreditGuardTable"]
    spends: dict[int, dict[str, Any]] = {}

    def spend_events(numbers: range) -> None:
        for n in numbers:
            event = api_event(
                "POST",
                "/api/users/{userId}/spend",
                path_parameters={"userId": spender},
                body=json.dumps({"amount": 1}),
            )
            event["headers"]["idempotency-key"] = f"warm-{n}"
            spends[n] = event

    def bare_spend(n: int) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ledger_client.transact_write_items(
            **bare.spend(
                balance_table,
                transaction_table,
                guard_table,
                user_id=spender,
                key=f"bare-{n}",
                transaction_id=str(ULID()),
                amount=1,
                currency="usd",
                now=now,
                expires_at=int(time.time()) + 7 * 86400,
            )
        )
        ledger_client.get_item(TableName=balance_table, Key={"userId": {"S": spender}}, ConsistentRead=True)

    cases = [
        (
            "GET /api/balance",
            "Query + GetItem",
            lambda _: checked(get_balance, balance_event, 200),
            bare_statement,
            100,
            None,
        ),
        ("Webhook: a credit", "TransactWriteItems", handler_credit, bare_credit, 60, sign_credits),
        (
            "Service: a spend",
            "TransactWriteItems + GetItem",
            lambda n: checked(spend, spends.pop(n), 201),
            bare_spend,
            60,
            spend_events,
        ),
        (
            "Webhook: a duplicate delivery",
            "TransactWriteItems, cancelled",
            lambda _: checked(stripe_webhook, duplicate, 200),
            bare_duplicate,
            60,
            None,
        ),
        (
            "POST /api/checkout",
            "Stripe: create Checkout Session",
            lambda n: checked(create_checkout, checkouts.pop(n), 201),
            bare_checkout,
            100,
            checkout_events,
        ),
    ]
    for measure, against, handler, bare_call, iterations, prepare in cases:
        result = compare(handler, bare_call, iterations, prepare)
        spread = f"rounds {result.lowest:.2f}-{result.highest:.2f}; {result.iterations} each"
        rows.append(
            Row(
                SECTION,
                measure,
                f"{result.handler_ms:.2f} ms",
                f"{against}: {result.bare_ms:.2f} ms",
                f"{result.ratio:.2f}x ({spread})",
                f"<= {BUDGET:.2f}x",
                within(result.ratio, BUDGET),
            )
        )
    return rows


def _deposit(balance_table: str, transaction_table: str, user_id: str, payment_id: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return bare.deposit(
        balance_table,
        transaction_table,
        user_id=user_id,
        payment_id=payment_id,
        amount=1000,
        currency="usd",
        now=now,
        session_id="cs_test_bench",
        payment_intent_id="pi_bench",
        event_id=f"evt_bench{payment_id}",
    )

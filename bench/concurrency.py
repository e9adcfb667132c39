"""Concurrency: exactly-once credits under racing deliveries, every deposit counted, and deliveries per
second through the local stack's HTTP path."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ulid import ULID

from bench import environment
from bench.local import Servers, median, percentile
from bench.report import Row

SECTION = "Concurrency"
DUPLICATES = 64
DEPOSITS = 1000
DEPOSIT_THREADS = 16
HTTP_DISTINCT = 300
HTTP_REDELIVERIES = 100
HTTP_THREADS = 8
# Lambda containers per function in the stack: the webhook's deliveries run this many at a time.
HTTP_CONTAINERS = 3
HTTP_TIME_LIMIT_SECONDS = 60.0
AMOUNTS = (1000, 5000, 10000)


def ledger_rows(servers: Servers) -> list[Row]:
    from wallet import ledger
    from wallet.ledger import Credit
    from wallet.models import CreditTransaction

    servers.fresh()

    def deposit(user_id: str, amount: int, payment_id: str) -> Credit:
        return ledger.add_credits(
            user_id, amount, source="stripe_payment", payment_id=payment_id, currency="usd"
        )

    payment_id = str(ULID())
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=DUPLICATES) as pool:
        outcomes = Counter(pool.map(lambda _: deposit("bench-racer", 1000, payment_id), range(DUPLICATES)))
    elapsed = time.perf_counter() - started
    rows = CreditTransaction.count("bench-racer")
    balance = ledger.get_balance("bench-racer")
    once = outcomes == {Credit.CREDITED: 1, Credit.ALREADY_CREDITED: DUPLICATES - 1}
    duplicates = Row(
        SECTION,
        f"{DUPLICATES} concurrent deliveries of one payment (ledger)",
        f"{outcomes[Credit.CREDITED]} credited, {outcomes[Credit.ALREADY_CREDITED]} already credited, "
        f"{rows} row, balance {balance} ({elapsed:.1f} s)",
        budget="exactly 1 credit",
        holds=once and rows == 1 and balance == 1000,
    )

    amounts = [AMOUNTS[i % len(AMOUNTS)] for i in range(DEPOSITS)]
    payments = [(str(ULID()), amount) for amount in amounts]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=DEPOSIT_THREADS) as pool:
        outcomes = Counter(pool.map(lambda p: deposit("bench-saver", p[1], p[0]), payments))
    elapsed = time.perf_counter() - started
    balance = ledger.get_balance("bench-saver")
    rows = CreditTransaction.count("bench-saver")
    distinct = Row(
        SECTION,
        f"{DEPOSITS:,} distinct deposits from {DEPOSIT_THREADS} threads (ledger)",
        f"balance {balance:,} = sum {sum(amounts):,}, {rows:,} rows; {DEPOSITS / elapsed:.0f} credits/s",
        budget="balance == sum",
        # moto ignores ClientRequestToken: a deposit that committed after a read timeout is retried and
        # answered "already credited" (DynamoDB answers it with success); it still counts once.
        holds=sum(outcomes.values()) == DEPOSITS and balance == sum(amounts) and rows == DEPOSITS,
    )
    return [duplicates, distinct]


def http_rows(servers: Servers) -> list[Row]:
    """Signed events POSTed to `python -m devstack` from a thread pool; then the balance it shows."""
    from tests.devstack_process import DevStackProcess

    servers.fresh()
    user = "bench-http"
    events = [servers.paid_event(user, AMOUNTS[i % len(AMOUNTS)]) for i in range(HTTP_DISTINCT)]
    shuffle = random.Random(20261126)
    # Stripe may deliver an event more than once, and a retry may race the first attempt.
    deliveries = events + [shuffle.choice(events) for _ in range(HTTP_REDELIVERIES)]
    shuffle.shuffle(deliveries)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    settings = {
        "STRIPE_WEBHOOK_SECRET": environment.WEBHOOK_SECRET,
        # The events are marked with the bench's key (bench.local); the stack must verify with the same.
        "FULFILMENT_KEYS": environment.SETTINGS["FULFILMENT_KEYS"],
        "PYTHONDONTWRITEBYTECODE": "1",
        "DEVSTACK_CONTAINERS_PER_FUNCTION": str(HTTP_CONTAINERS),
    }
    with DevStackProcess(settings) as stack:
        url = f"{stack.url}/api/webhooks/stripe"
        signed = [servers.sign(event) for event in deliveries]
        deadline = time.monotonic() + HTTP_TIME_LIMIT_SECONDS
        lock = threading.Lock()
        delivered: list[tuple[dict[str, Any], int, float]] = []

        def post(index: int) -> None:
            if time.monotonic() > deadline:
                return
            request = urllib.request.Request(  # noqa: S310 - a local http URL
                url, data=signed[index].payload, headers=signed[index].headers, method="POST"
            )
            started = time.perf_counter()
            try:
                with opener.open(request, timeout=30) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            with lock:
                delivered.append((deliveries[index], status, time.perf_counter() - started))

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=HTTP_THREADS) as pool:
            list(pool.map(post, range(len(signed))))
        elapsed = time.perf_counter() - started
        balance = _balance(opener, stack.url, user)
        ready = stack.ready_after

    statuses = Counter(status for _, status, _ in delivered)
    credited = {event["id"]: int(event["data"]["object"]["amount_total"]) for event, _, _ in delivered}
    latencies = [seconds * 1000 for _, _, seconds in delivered]
    expected = sum(credited.values())
    return [
        Row(
            SECTION,
            f"Webhook deliveries over HTTP, {HTTP_THREADS} threads, "
            f"{HTTP_CONTAINERS} containers (make run stack)",
            f"{len(delivered) / elapsed:.0f} deliveries/s: {len(delivered)} in {elapsed:.1f} s, "
            f"p50 {median(latencies):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms",
            f"{len(credited)} distinct events, {len(delivered) - len(credited)} redelivered",
        ),
        Row(
            SECTION,
            "  ... balance after them (GET /api/balance)",
            f"{balance:,} = sum of distinct events {expected:,}; statuses {dict(statuses)}",
            f"stack ready in {ready:.1f} s",
            budget="balance == sum, all 200",
            holds=balance == expected and set(statuses) == {200},
        ),
    ]


def _balance(opener: urllib.request.OpenerDirector, base: str, user: str) -> int:
    token_request = urllib.request.Request(  # noqa: S310 - a local http URL
        f"{base}/local/token", data=json.dumps({"userId": user}).encode(), method="POST"
    )
    with opener.open(token_request, timeout=30) as response:
        token = json.loads(response.read())["token"]
    balance_request = urllib.request.Request(  # noqa: S310 - a local http URL
        f"{base}/api/balance", headers={"Authorization": f"Bearer {token}"}
    )
    with opener.open(balance_request, timeout=30) as response:
        return int(json.loads(response.read())["balance"])


SPEND_BURST = 200
SPEND_AMOUNT = 100
SPEND_BALANCE = 10_000
SPEND_THREADS = 16


def spend_burst_rows(servers: Servers) -> list[Row]:
    """200 signed spends of 100 at once against a balance of 10,000, through `python -m devstack`."""
    from devstack.sigv4 import ServiceCredentials, signed_headers
    from tests.devstack_process import DevStackProcess

    credentials = ServiceCredentials("AKIABENCHSPENDS00001", "bench-spend-secret")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    user = "bench-spender"
    settings = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "DEVSTACK_CONTAINERS_PER_FUNCTION": str(HTTP_CONTAINERS),
        "DEVSTACK_SERVICE_ACCESS_KEY_ID": credentials.access_key_id,
        "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": credentials.secret_access_key,
    }

    def call(base: str, path: str, body: dict[str, Any] | None, key: str | None = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} | ({"Idempotency-Key": key} if key else {})
        url = f"{base}{path}"
        signed = signed_headers(
            "POST" if body is not None else "GET", url, data, credentials, headers=headers
        )
        request = urllib.request.Request(  # noqa: S310 - a local http URL
            url, data=data if body is not None else None, headers=signed, method="POST" if body else "GET"
        )
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    with DevStackProcess(settings) as stack:
        status, body = call(
            stack.url, f"/api/users/{user}/adjustments", {"amount": SPEND_BALANCE, "reason": "bench"}, "grant"
        )
        if status != 201:
            raise RuntimeError(f"the grant answered {status}: {body}")
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=SPEND_THREADS) as pool:
            answers = list(
                pool.map(
                    lambda n: call(stack.url, f"/api/users/{user}/spend", {"amount": SPEND_AMOUNT}, f"b-{n}"),
                    range(SPEND_BURST),
                )
            )
        elapsed = time.perf_counter() - started
        _, after = call(stack.url, f"/api/users/{user}/balance", None)

    statuses = Counter(status for status, _ in answers)
    lowest = min(
        [body["balance"] for status, body in answers if status == 201]
        + [body["error"]["balance"] for status, body in answers if status == 402]
    )
    expected = SPEND_BALANCE // SPEND_AMOUNT
    return [
        Row(
            SECTION,
            f"{SPEND_BURST} signed spends of {SPEND_AMOUNT} at once on a balance of {SPEND_BALANCE:,}, "
            f"{SPEND_THREADS} threads, {HTTP_CONTAINERS} containers (make run stack)",
            f"{statuses[201]} spent, {statuses[402]} refused (402), balance {after['balance']}, lowest seen "
            f"{lowest}; {len(answers) / elapsed:.0f} spends/s",
            budget=f"exactly {expected} succeed, balance 0, never negative",
            holds=statuses == {201: expected, 402: SPEND_BURST - expected}
            and after["balance"] == 0
            and lowest >= 0,
        )
    ]

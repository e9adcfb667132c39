"""Holds beside a plain spend: the DynamoDB calls of a hold and of a capture (one TransactWriteItems each,
as a spend), and the latency of each through `python -m devstack`, signed as a backend signs, p50 and p99.

The three are taken in turn in every round, so the growth of moto's tables (it copies a table on each
transaction) and the machine's drift weigh on each alike.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from ulid import ULID

from bench.local import Servers, percentile
from bench.report import Row
from bench.roundtrips import DynamoDBCalls

SECTION = "Holds (a hold and its capture beside a plain spend)"
ROUNDS = 150
WARM_UP = 10
# A hold or a capture is one transaction, as a spend: their p50 within this of a spend's.
BUDGET = 1.5


def run(servers: Servers) -> list[Row]:
    return _round_trips(servers) + _latency()


def _round_trips(servers: Servers) -> list[Row]:
    from functions.spend.app import lambda_handler as spend
    from tests.lambda_events import api_event, invoke
    from wallet import ledger

    servers.fresh()
    user = "bench-holder"
    ledger.add_credits(user, 100_000, source="stripe_payment", payment_id=str(ULID()), currency="usd")

    def event(resource: str, body: dict[str, Any], key: str, **path: str) -> dict[str, Any]:
        made = api_event("POST", resource, path_parameters={"userId": user, **path}, body=json.dumps(body))
        made["headers"]["idempotency-key"] = key
        return made

    calls = DynamoDBCalls()
    rows = []
    try:
        for name, resource, body, path, expected in [
            ("a spend", "/api/users/{userId}/spend", {"amount": 100}, {}, 201),
            ("a hold", "/api/users/{userId}/holds", {"amount": 500, "expiresInSeconds": 600}, {}, 201),
        ]:
            calls.operations.clear()
            answer = invoke(spend, event(resource, body, f"bench-{name}", **path))
            if answer.status != expected:
                raise RuntimeError(f"{name} answered {answer.status}: {answer.body}")
            rows.append(_calls_row(f"Service: {name}", calls.operations))
            if name == "a hold":
                hold_id = answer.body["holdId"]
        calls.operations.clear()
        answer = invoke(
            spend,
            event(
                "/api/users/{userId}/holds/{holdId}/capture", {"amount": 300}, "bench-capture", holdId=hold_id
            ),
        )
        if answer.status != 201:
            raise RuntimeError(f"a capture answered {answer.status}: {answer.body}")
        rows.append(_calls_row("Service: a capture", calls.operations))
    finally:
        calls.close()
    return rows


def _calls_row(measure: str, operations: list[str]) -> Row:
    writes = operations.count("TransactWriteItems")
    return Row(
        SECTION,
        f"{measure}: DynamoDB calls (one invocation of the real handler)",
        f"{len(operations)} ({', '.join(operations)})",
        budget="TransactWriteItems = 1, no other write",
        holds=writes == 1 and not {"PutItem", "UpdateItem", "DeleteItem"} & set(operations),
    )


def _latency() -> list[Row]:
    from devstack.sigv4 import ServiceCredentials, signed_headers
    from tests.devstack_process import DevStackProcess

    credentials = ServiceCredentials("AKIABENCHHOLDS000001", "bench-holds-secret")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    settings = {
        "DEVSTACK_SERVICE_ACCESS_KEY_ID": credentials.access_key_id,
        "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": credentials.secret_access_key,
    }
    user = "bench-holder"

    def post(base: str, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any], float]:
        data = json.dumps(body).encode()
        url = f"{base}{path}"
        headers = signed_headers(
            "POST",
            url,
            data,
            credentials,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - local
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, json.loads(exc.read())
        return status, answer, (time.perf_counter() - started) * 1000

    times: dict[str, list[float]] = {"spend": [], "hold": [], "capture": []}
    with DevStackProcess(settings) as stack:
        base = stack.url
        status, answer, _ = post(
            base, f"/api/users/{user}/adjustments", {"amount": 10_000_000, "reason": "bench"}, "grant"
        )
        if status != 201:
            raise RuntimeError(f"the grant answered {status}: {answer}")
        for n in range(WARM_UP + ROUNDS):
            spent = post(base, f"/api/users/{user}/spend", {"amount": 100}, f"spend-{n}")
            held = post(
                base, f"/api/users/{user}/holds", {"amount": 500, "expiresInSeconds": 600}, f"hold-{n}"
            )
            if held[0] != 201:
                raise RuntimeError(f"a hold answered {held[0]}: {held[1]}")
            captured = post(
                base,
                f"/api/users/{user}/holds/{held[1]['holdId']}/capture",
                {"amount": 300},
                f"capture-{n}",
            )
            if (spent[0], captured[0]) != (201, 201):
                raise RuntimeError(f"a spend or capture answered {spent[0]}, {captured[0]}")
            if n >= WARM_UP:
                times["spend"].append(spent[2])
                times["hold"].append(held[2])
                times["capture"].append(captured[2])
    spend_p50 = percentile(times["spend"], 0.5)
    rows = [
        Row(
            SECTION,
            f"a plain spend through make run's stack, {ROUNDS} signed requests",
            f"p50 {spend_p50:.1f} ms, p99 {percentile(times['spend'], 0.99):.1f} ms",
        )
    ]
    for name in ("hold", "capture"):
        p50, p99 = percentile(times[name], 0.5), percentile(times[name], 0.99)
        rows.append(
            Row(
                SECTION,
                f"a {name} through make run's stack, {ROUNDS} signed requests, beside the spend's",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                against=f"spend p50 {spend_p50:.1f} ms",
                ratio=f"{p50 / spend_p50:.2f}x",
                budget=f"p50 <= {BUDGET:.2f}x a spend's (one transaction each)",
                holds=p50 <= BUDGET * spend_p50,
            )
        )
    return rows


if __name__ == "__main__":
    from bench import environment
    from bench.local import quiet_stdout

    environment.apply()
    with Servers() as servers, quiet_stdout():
        found = run(servers)
    for row in found:
        print(f"{row.verdict:>6}  {row.measure}: {row.result}  {row.ratio} {row.budget}")

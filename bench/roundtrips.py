"""Round trips per request: DynamoDB calls counted on botocore's clients, Stripe's in the emulator's log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bench.local import Servers
from bench.report import Row

SECTION = "Round trips (one invocation of the real handler)"


class DynamoDBCalls:
    """Counts the API calls made on every DynamoDB client the functions use, for as long as it is open."""

    EVENT = "before-call.dynamodb"

    def __init__(self) -> None:
        from wallet import models
        from wallet.models import CreditBalance, CreditGuard, CreditTransaction

        # Every client the ledger's writes and each model's reads could go through (one, when shared).
        candidates = [
            models.connection().client,
            CreditBalance._get_connection().connection.client,
            CreditTransaction._get_connection().connection.client,
            CreditGuard._get_connection().connection.client,
        ]
        self.clients = list({id(client): client for client in candidates}.values())
        self.operations: list[str] = []
        for client in self.clients:
            client.meta.events.register(self.EVENT, self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def close(self) -> None:
        for client in self.clients:
            client.meta.events.unregister(self.EVENT, self._count)


def run(servers: Servers) -> list[Row]:
    from functions.create_checkout.app import lambda_handler as create_checkout
    from functions.get_balance.app import lambda_handler as get_balance
    from functions.spend.app import lambda_handler as spend
    from functions.stripe_webhook.app import lambda_handler as stripe_webhook
    from tests.checkout_flow import webhook_request
    from tests.lambda_events import api_event, invoke

    servers.fresh()
    calls = DynamoDBCalls()
    user = "bench-round-trips"

    def measure(handler: Callable[..., Any], event: dict[str, Any]) -> tuple[int, list[str], int, Any]:
        calls.operations.clear()
        before = len(servers.stripe.requests)
        response = invoke(handler, event)
        return response.status, list(calls.operations), len(servers.stripe.requests) - before, response.body

    try:
        status, dynamodb, stripe, body = measure(
            create_checkout, api_event("POST", "/api/checkout", user=user, body=json.dumps({"amount": 5000}))
        )
        _expect(status, 201, "POST /api/checkout", body)
        checkout = _row(
            "POST /api/checkout",
            dynamodb,
            stripe,
            "Stripe = 1, DynamoDB = 1 (the user's hourly count)",
            stripe == 1 and dynamodb == ["UpdateItem"],
        )

        *_, completed = servers.stripe.pay(body["sessionId"])
        signed = servers.sign(completed)
        status, dynamodb, stripe, body = measure(stripe_webhook, webhook_request(signed))
        _expect(status, 200, "webhook credit", body)
        credit = _row(
            "Webhook: a credit",
            dynamodb,
            stripe,
            "DynamoDB = 1, Stripe = 0",
            len(dynamodb) == 1 and not stripe,
        )

        status, dynamodb, stripe, body = measure(stripe_webhook, webhook_request(signed.resigned()))
        _expect(status, 200, "webhook duplicate", body)
        duplicate = _row(
            "Webhook: a duplicate delivery",
            dynamodb,
            stripe,
            "DynamoDB = 1",
            len(dynamodb) == 1 and not stripe,
        )

        status, dynamodb, stripe, body = measure(get_balance, api_event("GET", "/api/balance", user=user))
        _expect(status, 200, "GET /api/balance", body)
        balance = _row(
            "GET /api/balance", dynamodb, stripe, "DynamoDB <= 2", len(dynamodb) <= 2 and not stripe
        )

        path = {"sessionId": completed["data"]["object"]["id"]}
        status, dynamodb, stripe, body = measure(
            create_checkout, api_event("GET", "/api/checkout/{sessionId}", user=user, path_parameters=path)
        )
        _expect(status, 200, "GET /api/checkout/{sessionId}", body)
        back = _row(
            "GET /api/checkout/{id} of a credited session",
            dynamodb,
            stripe,
            "Stripe = 0, DynamoDB = 1 (Query bySession)",
            stripe == 0 and dynamodb == ["Query"],
        )

        spend_event = _service_event(api_event, user, {"amount": 100}, "bench-order-1")
        status, dynamodb, stripe, body = measure(spend, spend_event)
        _expect(status, 201, "a spend", body)
        spent = _row(
            "Service: a spend",
            dynamodb,
            stripe,
            "TransactWriteItems = 1 (+ GetItem for the balance answered), Stripe = 0",
            dynamodb == ["TransactWriteItems", "GetItem"] and not stripe,
        )
        status, dynamodb, stripe, body = measure(spend, spend_event)
        _expect(status, 201, "a replayed spend", body)
        replayed = _row(
            "Service: a replayed spend",
            dynamodb,
            stripe,
            "1 call + at most 1 read",
            len(dynamodb) <= 2 and dynamodb[0] == "TransactWriteItems" and not stripe,
        )
        session = completed["data"]["object"]
        charge = {
            "id": "ch_bench",
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": session["amount_total"] // 2,
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "metadata": session["metadata"],
        }
        # The dispute is of another payment: each is the first reversal of its payment, the common case.
        disputed = servers.paid_event(user, 1000)
        disputed["data"]["object"]["payment_intent"] = "pi_bench_disputed"
        _expect(
            invoke(stripe_webhook, webhook_request(servers.sign(disputed))).status, 200, "a deposit", None
        )
        dispute = {
            "id": "dp_bench",
            "object": "dispute",
            "amount": 1000,
            "charge": "ch_bench_disputed",
            "currency": session["currency"],
            "payment_intent": "pi_bench_disputed",
            "status": "needs_response",
        }
        reversals = []
        for kind, data_object, measure_name in [
            ("charge.refunded", charge, "Webhook: a refund"),
            ("charge.dispute.created", dispute, "Webhook: a dispute"),
        ]:
            event = {
                "id": f"evt_bench_{kind}",
                "object": "event",
                "type": kind,
                "data": {"object": data_object},
            }
            status, dynamodb, stripe, body = measure(stripe_webhook, webhook_request(servers.sign(event)))
            _expect(status, 200, kind, body)
            reversals.append(
                _row(
                    measure_name,
                    dynamodb,
                    stripe,
                    "<= 1 read + 1 TransactWriteItems, Stripe = 0",
                    dynamodb == ["Query", "TransactWriteItems"] and not stripe,
                )
            )
    finally:
        calls.close()
    return [credit, duplicate, balance, checkout, back, spent, replayed, *reversals]


def _service_event(
    api_event: Callable[..., dict[str, Any]], user: str, body: Any, key: str
) -> dict[str, Any]:
    event = api_event(
        "POST", "/api/users/{userId}/spend", path_parameters={"userId": user}, body=json.dumps(body)
    )
    event["headers"]["idempotency-key"] = key
    return event


def _row(measure: str, dynamodb: list[str], stripe: int, budget: str, holds: bool | None) -> Row:
    operations = f" ({', '.join(dynamodb)})" if dynamodb else ""
    return Row(
        SECTION, measure, f"DynamoDB {len(dynamodb)}{operations}, Stripe {stripe}", budget=budget, holds=holds
    )


def _expect(status: int, expected: int, what: str, body: Any) -> None:
    if status != expected:
        raise RuntimeError(f"{what} answered {status}, not {expected}: {body}")

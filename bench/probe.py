"""One cold start, run as `python -m bench.probe FUNCTION VARIANT [MODULE]` in a fresh process.

The clock starts at the probe's first line, before anything but `time` is imported; it stops once the
first request (read from stdin) is answered. Prints one line, `BENCH-PROBE {json}`, on stdout.

Variants: `handler` (the function as deployed), `libraries` (only the libraries the function truly
needs, making the same calls by hand), `naive` (everything imported eagerly, then the function) and
`snapstart` (the function, then the SnapStart hooks it registered with `snapshot_restore_py`, run as a
snapshot and a restore would run them, before the first request). MODULE is the handler's module:
`functions.FUNCTION.app` in the source tree, `app` in a built function.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()
STARTED_CPU = time.process_time()

# Timed from here: a handler needs json and importlib as much as the libraries-only baseline does.
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

# typing costs milliseconds to import, so it is left to the code being timed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Call = Callable[[dict[str, Any]], int]

PREFIX = "BENCH-PROBE "
# What a handler written without care for cold starts imports at the top, whether it needs it or not.
NAIVE_IMPORTS = (
    "boto3",
    "botocore.session",
    "requests",
    "pydantic",
    "stripe",
    "pynamodb.models",
    "ulid",
    "aws_xray_sdk.core",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.data_masking",
    "aws_lambda_powertools.utilities.feature_flags",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.jmespath_utils",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.serialization",
    "aws_lambda_powertools.utilities.streaming",
)


class Context:
    """The fields of Lambda's context object that the handlers read."""

    function_name = "bench-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench-function"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench-function"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def handler(function: str, name: str) -> Call:
    module = importlib.import_module(name)

    def call(request: dict[str, Any]) -> int:
        return int(module.lambda_handler(request["event"], Context())["statusCode"])

    return call


def naive(function: str, module: str) -> Call:
    for name in NAIVE_IMPORTS:
        importlib.import_module(name)
    return handler(function, module)


def libraries(function: str, _module: str) -> Call:
    """Powertools, pynamodb and ulid (and Stripe's SDK for the two functions that talk to Stripe)."""
    from aws_lambda_powertools import Logger, Tracer, event_handler  # noqa: F401
    from pynamodb import models, transactions  # noqa: F401
    from pynamodb.connection import Connection
    from ulid import ULID

    from bench import bare

    balance_table = os.environ["CREDIT_BALANCE_TABLE"]
    transaction_table = os.environ["CREDIT_TRANSACTION_TABLE"]

    def user_of(event: dict[str, Any]) -> str:
        return str(event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"])

    if function == "get_balance":

        def balance(request: dict[str, Any]) -> int:
            client = Connection().client
            for operation, params in bare.statement(
                balance_table, transaction_table, user_of(request["event"])
            ):
                getattr(client, operation)(**params)
            return 200

        return balance

    import stripe

    if function == "stripe_webhook":

        def credit(request: dict[str, Any]) -> int:
            event = request["event"]
            payload = event["body"].encode()
            verified = stripe.Webhook.construct_event(
                payload, event["headers"]["stripe-signature"], os.environ["STRIPE_WEBHOOK_SECRET"]
            ).to_dict()
            session = verified["data"]["object"]
            metadata = session["metadata"]
            ULID.from_str(metadata["paymentId"])
            Connection().client.transact_write_items(
                **bare.deposit(
                    balance_table,
                    transaction_table,
                    user_id=metadata["userId"],
                    payment_id=metadata["paymentId"],
                    amount=int(metadata["amount"]),
                    currency=session["currency"],
                    now=request["now"],
                    session_id=session["id"],
                    payment_intent_id=session.get("payment_intent"),
                    event_id=verified["id"],
                )
            )
            return 200

        return credit

    def checkout(request: dict[str, Any]) -> int:
        event = request["event"]
        amount = int(json.loads(event["body"])["amount"])
        client = stripe.StripeClient(
            os.environ["STRIPE_SECRET_KEY"],
            stripe_version=request["stripe_version"],
            max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=8),
            base_addresses={"api": os.environ["STRIPE_API_BASE"]},
        )
        # The user's hourly count of checkouts (wallet.rate_limits), as one bare UpdateItem.
        Connection().client.update_item(
            TableName=os.environ["CREDIT_GUARD_TABLE"],
            Key={
                "userId": {"S": user_of(event)},
                "guardId": {"S": "rate#checkouts"},
            },
            UpdateExpression="SET requestsHour = :hour ADD requests :one",
            ExpressionAttributeValues={":one": {"N": "1"}, ":hour": {"S": time.strftime("%Y-%m-%dT%H")}},
        )
        payment_id = str(ULID())
        params = bare.checkout_params(
            user_of(event), amount, payment_id, os.environ["CURRENCY"], os.environ["SITE_URL"]
        )
        session = client.v1.checkout.sessions.create(params, options={"idempotency_key": payment_id})
        return 201 if session.url else 502

    return checkout


VARIANTS = {"handler": handler, "libraries": libraries, "naive": naive, "snapstart": handler}


def snapshot_and_restore() -> tuple[float, float]:
    """Runs the hooks registered with the runtime's snapshot_restore_py (the benchmark's stand-in), as
    Lambda runs them before taking the snapshot and after restoring it; their CPU milliseconds."""
    import snapshot_restore_py as runtime  # type: ignore[import-not-found]

    started = time.process_time()
    for hook, args, kwargs in runtime.before_snapshot:
        hook(*args, **kwargs)
    snapshotted = time.process_time()
    for hook, args, kwargs in runtime.after_restore:
        hook(*args, **kwargs)
    return (snapshotted - started) * 1000, (time.process_time() - snapshotted) * 1000


def dynamodb_clients() -> int:
    """How many botocore DynamoDB clients the process built; each loads the service model anew."""
    import gc

    return sum(
        1
        for o in gc.get_objects()
        if type(o).__name__ == "DynamoDB" and type(o).__module__ == "botocore.client"
    )


def peak_mb() -> float:
    """This program's peak resident memory: VmHWM, as Linux carries ru_maxrss over from before exec."""
    try:
        with open("/proc/self/status") as status:  # noqa: PTH123 - importing pathlib would add to the peak
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    function, variant = sys.argv[1], sys.argv[2]
    module = sys.argv[3] if len(sys.argv) > 3 else f"functions.{function}.app"
    request = json.loads(sys.stdin.read())
    call = VARIANTS[variant](function, module)
    imported, imported_cpu = time.perf_counter(), time.process_time()
    snapshot_cpu_ms = restore_cpu_ms = 0.0
    if variant == "snapstart":
        snapshot_cpu_ms, restore_cpu_ms = snapshot_and_restore()
    # The first request is timed from here: after the restore, with SnapStart.
    ready, ready_cpu = time.perf_counter(), time.process_time()
    status = call(request)
    answered, answered_cpu = time.perf_counter(), time.process_time()
    result = {
        "imports_ms": (imported - STARTED) * 1000,
        "first_request_ms": (answered - ready) * 1000,
        "imports_cpu_ms": (imported_cpu - STARTED_CPU) * 1000,
        "first_request_cpu_ms": (answered_cpu - ready_cpu) * 1000,
        "snapshot_cpu_ms": snapshot_cpu_ms,
        "restore_cpu_ms": restore_cpu_ms,
        "status": status,
        "peak_mb": peak_mb(),
        "modules": len(sys.modules),
        "dynamodb_clients": dynamodb_clients(),
    }
    sys.stdout.flush()
    print(PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""The settings the benchmark runs the functions with, and a description of the machine it runs on."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "CreditBalanceTable": "bench-credit-balance",
    "CreditTransactionTable": "bench-credit-transaction",
    "CreditGuardTable": "bench-credit-guard",
}
API_KEY = "sk_test_emulator"
WEBHOOK_SECRET = "whsec_bench_secret"  # noqa: S105 - the local emulator's, not a real one
# The smallest memory size Lambda offers, which the handlers' peak memory is held against.
LAMBDA_SMALLEST_MB = 128
# As template.yaml sets them on AWS; traces off, as there is no X-Ray daemon to send them to.
SETTINGS = {
    "CREDIT_BALANCE_TABLE": TABLES["CreditBalanceTable"],
    "CREDIT_TRANSACTION_TABLE": TABLES["CreditTransactionTable"],
    "CREDIT_GUARD_TABLE": TABLES["CreditGuardTable"],
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "credits",
    "POWERTOOLS_METRICS_NAMESPACE": "Credits",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "false",
    "SITE_URL": "https://credits.example.test",
    "CURRENCY": "usd",
    "CREDIT_PACKS": "1000,5000,10000",
    "STRIPE_SECRET_KEY": API_KEY,
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "FULFILMENT_KEYS": "bench-fulfilment-key-0123456789abcdef",
    # What CloudFront sends the page API; the sample page events carry it.
    "ORIGIN_SECRET": "sample-origin-secret",
    # The principal the sample service events are signed by: a backend and an operator here.
    "SERVICE_CALLER_ARNS": "arn:aws:iam::123456789012:user/api-service",
    "OPERATOR_ARNS": "arn:aws:iam::123456789012:user/api-service",
}
# Settings from a developer's shell that would point the functions somewhere else.
CLEARED = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "STRIPE_SECRET_KEY_ARN",
    "STRIPE_WEBHOOK_SECRET_ARN",
    "FULFILMENT_KEYS_ARN",
    "ORIGIN_SECRET_ARN",
    "STRIPE_API_BASE",
    "AWS_SESSION_TOKEN",
)
PACKAGES = ("aws-lambda-powertools", "pynamodb", "stripe", "python-ulid", "botocore", "moto")


def apply() -> None:
    """Set before any wallet module reads its settings, and before any AWS client exists."""
    for name in CLEARED:
        os.environ.pop(name, None)
    os.environ.update(SETTINGS)


def machine() -> dict[str, str]:
    return {
        "CPU": _cpu_model(),
        "Cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable",
        "Memory": _memory(),
        "Python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "OS": platform.platform(),
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Packages": ", ".join(f"{name} {_version(name)}" for name in PACKAGES),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return "unknown"
    for line in lines:
        key, _, value = line.partition(":")
        if key == "MemTotal":
            return f"{int(value.split()[0]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"

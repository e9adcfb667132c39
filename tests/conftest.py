"""Test settings and the serialized moto DynamoDB server shared by every test that needs a table."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before any wallet module reads its settings, and before any AWS client exists.
TABLE_NAMES = {
    "CreditBalanceTable": "test-credit-balance",
    "CreditTransactionTable": "test-credit-transaction",
    "CreditGuardTable": "test-credit-guard",
}
os.environ.update(
    {
        "CREDIT_BALANCE_TABLE": TABLE_NAMES["CreditBalanceTable"],
        "CREDIT_TRANSACTION_TABLE": TABLE_NAMES["CreditTransactionTable"],
        "CREDIT_GUARD_TABLE": TABLE_NAMES["CreditGuardTable"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_SERVICE_NAME": "credits-test",
        "POWERTOOLS_METRICS_NAMESPACE": "CreditsTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "false",
        "SITE_URL": "https://credits.example.test",
        "CURRENCY": "usd",
        "CREDIT_PACKS": "1000,5000,10000",
        "STRIPE_SECRET_KEY": "sk_test_emulator",
        "STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        # The partner event source of the EventBridge sample (events/eventbridge/).
        "STRIPE_EVENT_SOURCE": "aws.partner/stripe.com/ed_test_61RMKdN8zDe7KJ2m516RMJxZzCSQaKkjg0jHdmoIlTpI",
        # The webhook's read-only key; the emulator takes the one key.
        "STRIPE_READ_KEY": "sk_test_emulator",
        # The fulfilment mark's key (wallet.marker).
        "FULFILMENT_KEYS": "test-fulfilment-key-0123456789abcdef",
        # What CloudFront sends the page API; the sample page events (events/api_*.json) carry it.
        "ORIGIN_SECRET": "sample-origin-secret",
        # The principal the sample service events (events/api_post_spend.json and the like) are signed by.
        "SERVICE_CALLER_ARNS": "arn:aws:iam::123456789012:user/api-service",
        "OPERATOR_ARNS": "arn:aws:iam::123456789012:user/api-service",
        # The wallet's own events (wallet.wallet_events) and the default low balance threshold.
        "WALLET_EVENT_BUS": "test-wallet-events",
        "LOW_BALANCE_THRESHOLD": "500",
    }
)
for name in (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "STRIPE_SECRET_KEY_ARN",
    "STRIPE_WEBHOOK_SECRET_ARN",
    "STRIPE_READ_KEY_ARN",
    "FULFILMENT_KEYS_ARN",
    "ORIGIN_SECRET_ARN",
    "STRIPE_API_BASE",
):
    os.environ.pop(name, None)

from devstack.dynamodb import DynamoDBServer  # noqa: E402 - after the environment is set
from devstack.stripe_emulator import StripeEmulator  # noqa: E402
from tests.lambda_pool import Containers  # noqa: E402


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[DynamoDBServer]:
    with DynamoDBServer() as server:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = server.endpoint_url
        yield server


@pytest.fixture
def tables(dynamodb_server: DynamoDBServer) -> DynamoDBServer:
    """Fresh, empty tables built from template.yaml for one test."""
    from wallet import hot_accounts

    dynamodb_server.reset()
    # Hotness is remembered as never reverting; emptied tables are the one place it does.
    hot_accounts.forget()
    dynamodb_server.create_tables(TABLE_NAMES)
    return dynamodb_server


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[StripeEmulator]:
    """The local Stripe API, which the real SDK talks to over HTTP; it signs the events it sends."""
    from wallet import payments

    emulator = StripeEmulator(
        api_key=os.environ["STRIPE_SECRET_KEY"], webhook_secret=os.environ["STRIPE_WEBHOOK_SECRET"]
    )
    with emulator:
        os.environ["STRIPE_API_BASE"] = emulator.api_base
        payments.stripe_client.cache_clear()
        yield emulator
        payments.stripe_client.cache_clear()


@pytest.fixture(scope="session")
def containers(dynamodb_server: DynamoDBServer, stripe_emulator: StripeEmulator) -> Iterator[Containers]:
    """Up to eight warm Lambda containers per function, in their own processes, for requests that must
    really overlap."""
    pool = Containers(8)
    yield pool
    pool.close()

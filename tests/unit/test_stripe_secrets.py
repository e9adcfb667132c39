"""Stripe's keys: from the environment locally, from one Secrets Manager secret when deployed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from wallet import settings


@pytest.fixture
def secret_arn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        parameters.clear_caches()
        arn = boto3.client("secretsmanager").create_secret(
            Name="credits/stripe",
            SecretString=json.dumps(
                {"STRIPE_SECRET_KEY": "sk_test_deployed", "STRIPE_WEBHOOK_SECRET": "whsec_deployed"}
            ),
        )["ARN"]
        monkeypatch.setenv("STRIPE_SECRET_ARN", arn)
        yield arn
        parameters.clear_caches()


@pytest.mark.usefixtures("secret_arn")
def test_deployed_functions_read_both_keys_from_the_secret() -> None:
    assert settings.stripe_secret_key() == "sk_test_deployed"
    assert settings.stripe_webhook_secret() == "whsec_deployed"


def test_the_secret_is_read_once_and_cached(secret_arn: str) -> None:
    settings.stripe_secret_key()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"STRIPE_SECRET_KEY": "sk_test_rotated"})
    )

    assert settings.stripe_secret_key() == "sk_test_deployed"


def test_a_secret_without_the_key_fails_naming_it(secret_arn: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"other": "x"})
    )

    with pytest.raises(settings.SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        settings.stripe_webhook_secret()


def test_locally_the_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_local")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")

    assert settings.stripe_secret_key() == "sk_test_local"
    with pytest.raises(settings.SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        settings.stripe_webhook_secret()

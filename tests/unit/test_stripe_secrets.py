"""Stripe's keys: from the environment locally, from two Secrets Manager secrets when deployed.

The API key and the webhook signing secret live in separate secrets so the public webhook's role can
read the signing secret without ever being able to read the key that moves money.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, tzinfo

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from wallet import settings


@pytest.fixture
def secret_arns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    with mock_aws():
        parameters.clear_caches()
        client = boto3.client("secretsmanager")
        arns = {
            "STRIPE_SECRET_KEY_ARN": client.create_secret(
                Name="credits/stripe-api-key", SecretString="sk_test_deployed"
            )["ARN"],
            "STRIPE_WEBHOOK_SECRET_ARN": client.create_secret(
                Name="credits/stripe-webhook-secret", SecretString="whsec_deployed"
            )["ARN"],
        }
        for name, arn in arns.items():
            monkeypatch.setenv(name, arn)
        yield arns
        parameters.clear_caches()


@pytest.mark.usefixtures("secret_arns")
def test_deployed_functions_read_each_key_from_its_own_secret() -> None:
    assert settings.stripe_secret_key() == "sk_test_deployed"
    assert settings.stripe_webhook_secret() == "whsec_deployed"


def test_the_webhook_needs_only_the_signing_secret(
    monkeypatch: pytest.MonkeyPatch, secret_arns: dict[str, str]
) -> None:
    # As the webhook function is deployed: only the signing secret's ARN in its environment.
    monkeypatch.delenv("STRIPE_SECRET_KEY_ARN")

    assert settings.stripe_webhook_secret() == "whsec_deployed"
    with pytest.raises(settings.SettingsError, match="STRIPE_SECRET_KEY"):
        settings.stripe_secret_key()


def test_the_secret_is_read_once_and_cached(secret_arns: dict[str, str]) -> None:
    settings.stripe_secret_key()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arns["STRIPE_SECRET_KEY_ARN"], SecretString="sk_test_rotated"
    )

    assert settings.stripe_secret_key() == "sk_test_deployed"


def test_an_empty_secret_fails_naming_what_to_fill(secret_arns: dict[str, str]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arns["STRIPE_WEBHOOK_SECRET_ARN"], SecretString="  "
    )

    with pytest.raises(settings.SettingsError, match=r"STRIPE_WEBHOOK_SECRET_ARN .*STRIPE_WEBHOOK_SECRET"):
        settings.stripe_webhook_secret()


def test_locally_the_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_local")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")

    assert settings.stripe_secret_key() == "sk_test_local"
    with pytest.raises(settings.SettingsError, match="STRIPE_WEBHOOK_SECRET"):
        settings.stripe_webhook_secret()


def test_a_secret_that_cannot_be_read_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, secret_arns: dict[str, str]
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY_ARN", secret_arns["STRIPE_SECRET_KEY_ARN"] + "-gone")

    with pytest.raises(settings.SettingsError, match="STRIPE_SECRET_KEY_ARN names could not be read"):
        settings.stripe_secret_key()


class SixMinutesLater(datetime):
    """The clock Powertools' secret cache reads, past the settings' max_age of 5 minutes."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> SixMinutesLater:
        return cls.fromtimestamp(time.time() + settings.SECRET_MAX_AGE_SECONDS + 60, tz)


def test_a_rotated_api_key_is_used_once_the_secret_cache_expires_without_a_restart(
    secret_arns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm container that has called Stripe with the deployed key
    from wallet import payments

    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    warm = payments.calling(None)
    # When the key is rotated in Secrets Manager
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_arns["STRIPE_SECRET_KEY_ARN"], SecretString="sk_test_rotated"
    )
    within_cache_time = payments.calling(None)
    monkeypatch.setattr(parameters.base, "datetime", SixMinutesLater)
    after_cache_time = payments.calling(None)

    # Then the same container, with the same client, calls with the new key once the cached secret expired
    assert within_cache_time[0] is warm[0] is after_cache_time[0]
    assert warm[1]["api_key"] == within_cache_time[1]["api_key"] == "sk_test_deployed"
    assert after_cache_time[1]["api_key"] == "sk_test_rotated"

"""Rotating the X-Origin-Verify value as docs/DEPLOY.md orders it never refuses a request that came through
CloudFront: not one CloudFront still sends with the old value, nor one a function whose cached secret is a
step behind meets with the new value (secrets are cached for up to SECRET_MAX_AGE_SECONDS, so each step
waits that long before the next).

The steps: 1. put the new value (Secrets Manager makes it AWSCURRENT and the old one AWSPREVIOUS); 2. after
5 minutes, deploy with OriginSecretVersionId set to the new version, so CloudFront sends it; 3. rotate
again only once CloudFront's distribution is Deployed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, tzinfo

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from functions.get_balance.app import lambda_handler as get_balance
from tests.lambda_events import api_event, invoke
from wallet import settings

pytestmark = pytest.mark.usefixtures("tables")

OLD = "old-origin-value-0123456789abcdef0123456789abcdef"
NEW = "new-origin-value-0123456789abcdef0123456789abcdef"
LATER = 0.0


class Later(datetime):
    """Powertools' clock, moved past the secret cache's age."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Later:
        return cls.fromtimestamp(time.time() + LATER, tz)


@pytest.fixture
def origin_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("ORIGIN_SECRET", raising=False)
    monkeypatch.setattr(parameters.base, "datetime", Later)
    clock = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0] + LATER)
    with mock_aws():
        parameters.clear_caches()
        settings._PREVIOUS.clear()
        arn = boto3.client("secretsmanager").create_secret(Name="credits/origin", SecretString=OLD)["ARN"]
        monkeypatch.setenv("ORIGIN_SECRET_ARN", arn)
        yield arn
        parameters.clear_caches()
        settings._PREVIOUS.clear()


def five_minutes_pass() -> None:
    global LATER
    LATER += settings.SECRET_MAX_AGE_SECONDS + 1


@pytest.fixture(autouse=True)
def clock_starts_now() -> None:
    global LATER
    LATER = 0.0


def status_through_cloudfront(sent: str) -> int:
    """A page request as CloudFront sends it, with `sent` as X-Origin-Verify."""
    return invoke(get_balance, api_event("GET", "/api/packs", headers={"x-origin-verify": sent})).status


def put_new_value(arn: str) -> str:
    """Step 1: the new value becomes AWSCURRENT; the answer's VersionId is what step 2 deploys."""
    return boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=NEW)["VersionId"]


def test_before_a_rotation_only_the_value_cloudfront_sends_is_taken(origin_secret: str) -> None:
    assert status_through_cloudfront(OLD) == 200
    assert status_through_cloudfront(NEW) == 403
    assert status_through_cloudfront("") == 403


def test_step_1_a_function_still_holding_the_old_value_takes_what_cloudfront_still_sends(
    origin_secret: str,
) -> None:
    assert status_through_cloudfront(OLD) == 200  # warm: the old value cached

    put_new_value(origin_secret)

    # Within the cache's age the function knows only the old value, which is what CloudFront sends.
    assert status_through_cloudfront(OLD) == 200


def test_step_1_a_function_that_read_the_new_value_still_takes_the_old_one(origin_secret: str) -> None:
    put_new_value(origin_secret)
    five_minutes_pass()

    assert status_through_cloudfront(OLD) == 200
    assert status_through_cloudfront(NEW) == 200
    assert status_through_cloudfront("another-value") == 403


def test_step_2_while_cloudfronts_edges_switch_both_values_are_taken(origin_secret: str) -> None:
    version = put_new_value(origin_secret)
    five_minutes_pass()
    # The deploy with OriginSecretVersionId=version: some edges send the new value, some still the old.
    assert version

    assert status_through_cloudfront(NEW) == 200
    assert status_through_cloudfront(OLD) == 200


def test_the_next_rotation_drops_the_value_two_rotations_old(origin_secret: str) -> None:
    put_new_value(origin_secret)
    boto3.client("secretsmanager").put_secret_value(SecretId=origin_secret, SecretString="third-" + NEW)
    five_minutes_pass()

    assert status_through_cloudfront("third-" + NEW) == 200
    assert status_through_cloudfront(NEW) == 200
    assert status_through_cloudfront(OLD) == 403

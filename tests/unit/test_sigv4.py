"""AWS_IAM routes: the gateway checks SigV4 as API Gateway does, with botocore's signer on both sides,
and no function runs for a request it refuses."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest

from devstack.auth import LocalIssuer
from devstack.gateway import Gateway, Request, Route, route_pattern
from devstack.sigv4 import ServiceCredentials, signed_headers
from tests import container_functions

HOST = "127.0.0.1:3000"
CREDENTIALS = ServiceCredentials("AKIALOCALTEST0000001", "local-secret-for-tests")
FORBIDDEN = (403, {"message": "Forbidden"})


def iam_route(method: str, path: str) -> Route:
    return Route(
        method=method,
        path=path,
        function="SpendFunction",
        module="tests.container_functions",
        handler="echo",
        authorization="AWS_IAM",
        memory_mb=128,
        pattern=route_pattern(path),
    )


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    routes = [
        iam_route("POST", "/api/users/{userId}/spend"),
        iam_route("GET", "/api/users/{userId}/balance"),
    ]
    container_functions.SEEN.clear()
    gateway = Gateway(
        LocalIssuer("urn:credits:test"),
        lambda: "",
        routes,
        service_credentials=CREDENTIALS,
        region="us-east-1",
    )
    yield gateway
    gateway.close()


def signed(
    method: str,
    target: str,
    body: bytes = b"",
    credentials: ServiceCredentials = CREDENTIALS,
    extra: dict[str, str] | None = None,
) -> Request:
    """The request as a service sends it: SigV4 headers made by botocore over these exact bytes."""
    signing = signed_headers(method, f"http://{HOST}{target}", body, credentials, headers=extra)
    headers = {"host": HOST, "content-type": "application/json"} | {k.lower(): v for k, v in signing.items()}
    return Request(method, target, headers, body, "127.0.0.1")


def send(gateway: Gateway, request: Request) -> tuple[int, object]:
    response = gateway.respond(request)
    return response.status, json.loads(response.body)


def test_a_good_signature_reaches_the_function_with_the_iam_principal(gateway: Gateway) -> None:
    # Given a spend signed with the local service credentials
    request = signed("POST", "/api/users/alice/spend?note=a%20b", b'{"amount": 100}')

    # When the gateway receives it
    status, body = send(gateway, request)

    # Then the function gets it, with requestContext.authorizer.iam as API Gateway sends it
    assert status == 200
    assert isinstance(body, dict)
    assert body["authorizer"] == {
        "iam": {
            "accessKey": CREDENTIALS.access_key_id,
            "accountId": "000000000000",
            "callerId": CREDENTIALS.user_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": "arn:aws:iam::000000000000:user/local-service",
            "userId": CREDENTIALS.user_id,
        }
    }
    assert body["body"] == '{"amount": 100}'


def test_a_get_without_a_body_passes_too(gateway: Gateway) -> None:
    assert send(gateway, signed("GET", "/api/users/alice/balance"))[0] == 200


def changed_body(request: Request) -> Request:
    return Request(request.method, request.target, request.headers, b'{"amount": 1}', request.source_ip)


def changed_path(request: Request) -> Request:
    target = request.target.replace("/alice/", "/mallory/")
    return Request(request.method, target, request.headers, request.body, request.source_ip)


def changed_query(request: Request) -> Request:
    return Request(request.method, request.target + "x", request.headers, request.body, request.source_ip)


def changed_date(request: Request) -> Request:
    headers = dict(request.headers) | {"x-amz-date": request.headers["x-amz-date"][:-2] + "59"}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


def changed_signed_header(request: Request) -> Request:
    headers = dict(request.headers) | {"idempotency-key": "another-key"}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


def changed_host(request: Request) -> Request:
    headers = dict(request.headers) | {"host": "127.0.0.1:3001"}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


def no_signature(request: Request) -> Request:
    headers = {k: v for k, v in request.headers.items() if k != "authorization"}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


def malformed(request: Request) -> Request:
    headers = dict(request.headers) | {"authorization": request.headers["authorization"][:-10]}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


def bearer_token(request: Request) -> Request:
    token = LocalIssuer("urn:credits:test").issue("alice")
    headers = dict(request.headers) | {"authorization": f"Bearer {token}"}
    return Request(request.method, request.target, headers, request.body, request.source_ip)


@pytest.mark.parametrize(
    "tamper",
    [
        changed_body,
        changed_path,
        changed_query,
        changed_date,
        changed_signed_header,
        changed_host,
        no_signature,
        malformed,
        bearer_token,
    ],
)
def test_a_request_changed_after_signing_gets_403_and_runs_nothing(gateway: Gateway, tamper: object) -> None:
    # Given a request that was signed, then changed (or never signed)
    assert callable(tamper)
    request = tamper(
        signed("POST", "/api/users/alice/spend?note=1", b'{"amount": 100}', extra={"Idempotency-Key": "k-1"})
    )

    # When it arrives, then API Gateway's 403 answers it and the function never ran
    assert send(gateway, request) == FORBIDDEN
    assert container_functions.SEEN == []


@pytest.mark.parametrize(
    "credentials",
    [
        ServiceCredentials(CREDENTIALS.access_key_id, "not-the-secret"),
        ServiceCredentials("AKIAUNKNOWN000000000", CREDENTIALS.secret_access_key),
    ],
    ids=["wrong secret", "unknown access key"],
)
def test_other_credentials_get_403(gateway: Gateway, credentials: ServiceCredentials) -> None:
    request = signed("POST", "/api/users/alice/spend", b'{"amount": 100}', credentials)

    assert send(gateway, request) == FORBIDDEN
    assert container_functions.SEEN == []


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_signature_more_than_five_minutes_off_gets_403(gateway: Gateway, minutes: int) -> None:
    then = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=minutes)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        request = signed("POST", "/api/users/alice/spend", b'{"amount": 100}')

    assert send(gateway, request) == FORBIDDEN
    assert container_functions.SEEN == []


def test_a_signature_four_minutes_old_still_passes(gateway: Gateway) -> None:
    then = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=4)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        request = signed("POST", "/api/users/alice/spend", b'{"amount": 100}')

    assert send(gateway, request)[0] == 200


def test_a_signed_body_hash_that_is_not_the_bodys_gets_403(gateway: Gateway) -> None:
    # Given a client that signs the declared hash of another body: botocore trusts a declared hash
    request = signed(
        "POST", "/api/users/alice/spend", b'{"amount": 100}', extra={"X-Amz-Content-SHA256": "0" * 64}
    )

    # Then the gateway checks it against the body it received
    assert "x-amz-content-sha256" in request.headers["authorization"]
    assert send(gateway, request) == FORBIDDEN
    assert container_functions.SEEN == []


def test_credentials_come_from_the_environment_or_are_made_for_the_run() -> None:
    configured = ServiceCredentials.from_settings(
        {"DEVSTACK_SERVICE_ACCESS_KEY_ID": "AKIAEXAMPLE", "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": "s3cret"}
    )
    made, other = ServiceCredentials.from_settings({}), ServiceCredentials.from_settings({})

    assert (configured.access_key_id, configured.secret_access_key, configured.generated) == (
        "AKIAEXAMPLE",
        "s3cret",
        False,
    )
    assert made.generated
    assert (made.access_key_id[:4], len(made.access_key_id)) == ("AKIA", 20)
    assert made.secret_access_key != other.secret_access_key


def test_a_made_pair_is_kept_for_the_next_run_and_a_configured_pair_wins(tmp_path: Path) -> None:
    kept = tmp_path / ".devstack" / "service-credentials.json"

    first, second = ServiceCredentials.from_settings({}, kept), ServiceCredentials.from_settings({}, kept)
    pair = {"DEVSTACK_SERVICE_ACCESS_KEY_ID": "AKIAEXAMPLE", "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": "s3cret"}
    configured = ServiceCredentials.from_settings(pair, kept)

    assert (second.access_key_id, second.secret_access_key) == (first.access_key_id, first.secret_access_key)
    assert second.generated
    assert configured.access_key_id == "AKIAEXAMPLE"
    assert kept.stat().st_mode & 0o777 == 0o600


def test_an_unreadable_kept_pair_is_replaced(tmp_path: Path) -> None:
    kept = tmp_path / "service-credentials.json"
    kept.write_text("not json")

    made = ServiceCredentials.from_settings({}, kept)

    assert made.access_key_id.startswith("AKIALOCAL")
    assert ServiceCredentials.from_settings({}, kept).secret_access_key == made.secret_access_key


def test_a_refused_signature_is_logged_with_the_key_to_use(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    stale = ServiceCredentials("AKIALOCALSTALE000001", "a-secret-from-an-earlier-run")

    with caplog.at_level(logging.WARNING, logger="devstack.gateway"):
        answer = send(gateway, signed("GET", "/api/users/alice/balance", credentials=stale))

    assert answer == FORBIDDEN
    warned = [record.getMessage() for record in caplog.records]
    assert any("unknown access key" in line and CREDENTIALS.access_key_id in line for line in warned), warned

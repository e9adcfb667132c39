"""`make run`'s one SigV4 principal is on both lists by default, so the README's signed curl calls spend
and adjust as they are; a stack told to list another principal refuses it 403."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import DevStackProcess

CREDENTIALS = ServiceCredentials("AKIASERVICECALLERS01", "service-callers-test-secret")
SETTINGS = {
    "DEVSTACK_SERVICE_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
    "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def signed(
    stack: DevStackProcess, route: str, user: str, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    url = f"{stack.url}/api/users/{user}/{route}"
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    request = urllib.request.Request(
        url, data=data, headers=signed_headers("POST", url, data, CREDENTIALS, headers=headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_local_principal_may_adjust_and_spend_by_default(stack: DevStackProcess) -> None:
    user = f"callers-{uuid.uuid4().hex[:8]}"

    adjusted = signed(stack, "adjustments", user, {"amount": 500, "reason": "welcome credits"})
    spent = signed(stack, "spend", user, {"amount": 200})

    assert adjusted[0] == 201, adjusted
    assert spent[0] == 201, spent
    assert spent[1]["balance"] == 300


def test_a_stack_listing_another_operator_refuses_the_local_principal_an_adjustment() -> None:
    operator = "arn:aws:iam::000000000000:role/support-operator"
    with DevStackProcess(SETTINGS | {"OPERATOR_ARNS": operator}) as stack:
        status, body = signed(stack, "adjustments", "mallory", {"amount": 10_000, "reason": "free credits"})

    assert status == 403
    assert body["error"]["code"] == "caller_not_allowed"
    assert "arn:aws:iam::000000000000:user/local-service" in body["error"]["message"]

"""Grants through `make run`'s process: the projector the stack feeds from the transactions' stream
indexes a grant's expiry as soon as it is written, and `make expire-grants` sweeps the index."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.devstack_process import DevStackProcess
from tests.integration.test_holds_devstack import SETTINGS, Ledger, signed
from tests.waiting import WAIT_SECONDS, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def test_a_grant_is_indexed_by_the_stack_s_projector_and_the_sweep_leaves_it_till_it_expires(
    stack: DevStackProcess,
) -> None:
    user = f"granted-{uuid.uuid4().hex[:8]}"
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = {"credits": 500, "reason": "promo", "expiresAt": expires.isoformat().replace("+00:00", "Z")}
    assert signed(stack, f"{user}/grants", body)[0] == 201
    ledger = Ledger(stack)

    def indexed() -> int | None:
        item = ledger.client.get_item(
            TableName=ledger.tables["CREDIT_GUARD_TABLE"],
            Key={"userId": {"S": user}, "guardId": {"S": "grants"}},
            ConsistentRead=True,
        ).get("Item", {})
        return int(item["grantsNextExpiry"]["N"]) if "grantsNextExpiry" in item else None

    wait_until(lambda: indexed() is not None, "the projector to index the grant's expiry")
    done = subprocess.run(
        [sys.executable, "-m", "devstack.expire_grants"],
        env=stack.environment,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )

    assert indexed() == int(expires.timestamp())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Expired 0 credits in 0 rows over 0 accounts"), done.stdout
    assert ledger.stored(user) == (500, 0)

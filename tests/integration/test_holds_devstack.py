"""Holds through `make run`'s process, signed as a backend signs them: a one-second hold expired by
`make expire-holds`, and many threads holding, spending, capturing, releasing, replaying, clawing back and
expiring on a few users at once. In the end every stored balance is at least zero unless a claw-back took
it below, `balance + held` is the sum of each user's rows, `held` is the sum of their active holds, and
no hold was settled twice."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from calendar import timegm
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import DevStackProcess
from tests.waiting import WAIT_SECONDS, wait_until

CREDENTIALS = ServiceCredentials("AKIAHOLDSDEVSTACK001", "holds-devstack-test-secret")
SETTINGS = {
    "DEVSTACK_SERVICE_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
    "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
}
SETTLED_ROWS = {"spend", "hold_released", "hold_expired"}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    with DevStackProcess(SETTINGS) as running:
        yield running


def signed(
    stack: DevStackProcess, path: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, Any]:
    url = f"{stack.url}/api/users/{path}"
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key or str(uuid.uuid4())}
    request = urllib.request.Request(
        url, data=data, headers=signed_headers("POST", url, data, CREDENTIALS, headers=headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return response.status, json.loads(response.read()) | {"replayed": replayed}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def expire_holds(stack: DevStackProcess) -> str:
    """`make expire-holds` against this stack."""
    done = subprocess.run(
        [sys.executable, "-m", "devstack.expire_holds"],
        env=stack.environment,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def seconds(iso: str) -> int:
    return timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


class Ledger:
    """The stack's tables, read directly, as `make audit` reads them."""

    def __init__(self, stack: DevStackProcess) -> None:
        environment = json.loads(stack.run_file.read_text(encoding="utf-8"))["environment"]
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=environment["AWS_ENDPOINT_URL_DYNAMODB"],
            region_name=environment["AWS_DEFAULT_REGION"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        self.tables = environment

    def _query(self, table: str, user: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.client.get_paginator("query").paginate(
            TableName=self.tables[table],
            KeyConditionExpression="userId = :u",
            ExpressionAttributeValues={":u": {"S": user}},
            ConsistentRead=True,
        ):
            items += page["Items"]
        return items

    def rows(self, user: str) -> list[dict[str, Any]]:
        return self._query("CREDIT_TRANSACTION_TABLE", user)

    def holds(self, user: str) -> list[dict[str, Any]]:
        return [g for g in self._query("CREDIT_GUARD_TABLE", user) if g["guardId"]["S"].startswith("hold#")]

    def stored(self, user: str) -> tuple[int, int]:
        item = self.client.get_item(
            TableName=self.tables["CREDIT_BALANCE_TABLE"], Key={"userId": {"S": user}}, ConsistentRead=True
        )["Item"]
        return int(item["balance"]["N"]), int(item.get("held", {"N": "0"})["N"])


def test_a_one_second_hold_is_expired_by_make_expire_holds_and_then_refused_409(
    stack: DevStackProcess,
) -> None:
    user = f"holder-{uuid.uuid4().hex[:8]}"
    assert signed(stack, f"{user}/adjustments", {"amount": 1000, "reason": "welcome"})[0] == 201
    status, made = signed(stack, f"{user}/holds", {"amount": 400, "expiresInSeconds": 1})
    assert status == 201, made
    wait_until(lambda: time.time() > seconds(made["expiresAt"]), "the one-second hold to pass its time")

    said = expire_holds(stack)
    late = signed(stack, f"{user}/holds/{made['holdId']}/release", {})

    assert said.startswith("Expired 1 hold past their time"), said
    assert late[0] == 409
    assert late[1]["error"]["hold"]["state"] == "expired"
    assert Ledger(stack).stored(user) == (1000, 0)


def test_holds_spends_settlements_claw_backs_and_expiries_at_once_add_up(stack: DevStackProcess) -> None:
    rng = random.Random(20261204)
    run = uuid.uuid4().hex[:6]
    users = [f"meter-{run}-{n}" for n in range(4)]
    clawed = set(users[2:])  # the others never see a claw-back: their stored balance never goes below zero
    for user in users:
        assert signed(stack, f"{user}/adjustments", {"amount": 20_000, "reason": "start"})[0] == 201
    made: dict[str, list[str]] = defaultdict(list)
    settled: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[str] = []

    def note(what: str, status: int, body: Any, expected: set[int]) -> None:
        if status not in expected:
            with lock:
                failures.append(f"{what}: {status} {body}"[:300])

    def one(step: int) -> None:
        user = users[step % len(users)]
        choice = rng.random()
        if choice < 0.35 or not made[user]:
            seconds_ = rng.choice([1, 2, 600])
            body = {"amount": rng.randint(1, 3000), "expiresInSeconds": seconds_}
            key = f"hold-{run}-{step}"
            for _ in range(2 if step % 7 == 0 else 1):  # some sent twice: the second is a replay
                status, answer = signed(stack, f"{user}/holds", body, key)
                note("hold", status, answer, {201, 402})
                if status == 201 and not answer["replayed"]:
                    with lock:
                        made[user].append(answer["holdId"])
        elif choice < 0.55:
            status, answer = signed(stack, f"{user}/spend", {"amount": rng.randint(1, 1500)})
            note("spend", status, answer, {201, 402})
        elif choice < 0.9:
            hold_id = rng.choice(made[user])
            capture = rng.random() < 0.5
            route = "capture" if capture else "release"
            body = {"amount": rng.randint(1, 50)} if capture else {}
            key = f"{route}-{run}-{step}"
            for _ in range(2 if step % 5 == 0 else 1):
                status, answer = signed(stack, f"{user}/holds/{hold_id}/{route}", body, key)
                # A capture of more than was held is 400; a hold settled already, or expired, is 409.
                note(route, status, answer, {200, 201, 400, 409})
                if status in (200, 201) and not answer["replayed"]:
                    with lock:
                        settled[hold_id] += 1
        elif user in clawed:
            status, answer = signed(
                stack, f"{user}/adjustments", {"amount": -rng.randint(1, 8000), "reason": "x"}
            )
            note("claw-back", status, answer, {201})
        else:
            status, answer = signed(stack, f"{user}/spend", {"amount": rng.randint(1, 500)})
            note("spend", status, answer, {201, 402})

    sweeping = threading.Event()

    def sweep() -> None:
        while not sweeping.is_set():
            expire_holds(stack)

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(one, range(240)))
    finally:
        sweeping.set()
        sweeper.join()

    assert failures == []
    assert max(settled.values(), default=0) <= 1, "a hold was settled twice"
    ledger = Ledger(stack)
    short = [
        int(hold["holdExpiresAt"]["N"])
        for user in users
        for hold in ledger.holds(user)
        if int(hold["holdExpiresAt"]["N"]) < time.time() + 60
    ]
    wait_until(lambda: time.time() > max(short, default=0), "the short holds to pass their time")
    expire_holds(stack)
    for user in users:
        available, held = ledger.stored(user)
        rows, user_holds = ledger.rows(user), ledger.holds(user)
        active = [h for h in user_holds if h["state"]["S"] == "active"]
        assert available + held == sum(int(row["amount"]["N"]) for row in rows), user
        assert held == sum(int(h["amount"]["N"]) for h in active), user
        assert all(int(h["holdExpiresAt"]["N"]) > time.time() for h in active), user
        if user not in clawed:
            assert available >= 0, user
        endings = Counter(
            row["holdId"]["S"] for row in rows if row["type"]["S"] in SETTLED_ROWS and "holdId" in row
        )
        assert set(endings.values()) <= {1}, f"{user}: a hold settled twice"
        assert set(endings) == {
            h["guardId"]["S"].removeprefix("hold#") for h in user_holds if h not in active
        }
        assert sorted(made[user]) == sorted(h["guardId"]["S"].removeprefix("hold#") for h in user_holds)
    assert sum(settled.values()) > 10

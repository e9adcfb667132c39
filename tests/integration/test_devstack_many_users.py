"""Many users at once through `make run`'s process, across every route: each answer is its caller's.

A Lambda container serves one event at a time, and Powertools' resolver keeps the current event at class
level on that promise. Users top up at the same moment (open a checkout, pay on the emulator, whose
webhook deliveries run alongside, poll the success route, read the balance) and every answer must be
the caller's own: the balance names the caller, their own session is found, no valid token is refused,
and in the end each balance is what that user paid. Once template.yaml has the service routes
(AWS_IAM), a signed GET /api/users/{userId}/balance joins in, and must name the user in its path.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.gateway import routes
from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import DevStackProcess
from tests.integration.test_devstack import Shopper, call
from tests.waiting import wait_until

USERS = 16
TOP_UPS_PER_USER = 4
BALANCE_READS_PER_STEP = 3
AMOUNT = 1000
# A bound on the run, not a speed assertion: a stuck stack fails with what it did so far.
TIME_LIMIT_SECONDS = 120
SERVICE = ServiceCredentials("AKIALOCALCROWDTEST01", "crowd-test-secret")
SERVICE_BALANCE = ("GET", "/api/users/{userId}/balance", "AWS_IAM")
HAS_SERVICE_ROUTES = SERVICE_BALANCE in {(r.method, r.path, r.authorization) for r in routes()}


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStackProcess]:
    settings = {
        "DEVSTACK_CONTAINERS_PER_FUNCTION": "3",
        "DEVSTACK_SERVICE_ACCESS_KEY_ID": SERVICE.access_key_id,
        "DEVSTACK_SERVICE_SECRET_ACCESS_KEY": SERVICE.secret_access_key,
    }
    with DevStackProcess(settings) as running:
        yield running


def service_balance(stack: DevStackProcess, user: str) -> tuple[int, object]:
    """The service route's answer for `user`, signed as a backend service signs it."""
    url = f"{stack.url}/api/users/{user}/balance"
    request = urllib.request.Request(url, headers=signed_headers("GET", url, b"", SERVICE))
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.wrong: list[str] = []

    def check(self, user: str, what: str, ok: bool, answer: object) -> None:
        with self._lock:
            self.requests += 1
            if not ok:
                self.wrong.append(f"{user} {what}: {answer!r}"[:300])


def shop(stack: DevStackProcess, user: str, tally: Tally, deadline: float) -> int:
    """Top up a few times while reading the balance; what this user paid."""
    shopper = Shopper(stack, user)
    paid = 0

    def read_balance() -> None:
        status, body = call("GET", f"{stack.url}/api/balance", token=shopper.token)
        mine = status == 200 and isinstance(body, dict) and body.get("userId") == user
        tally.check(user, "GET /api/balance", mine, (status, body))
        if HAS_SERVICE_ROUTES:
            status, body = service_balance(stack, user)
            mine = status == 200 and isinstance(body, dict) and body.get("userId") == user
            tally.check(user, "GET /api/users/{userId}/balance", mine, (status, body))

    for _ in range(TOP_UPS_PER_USER):
        if time.monotonic() > deadline:
            break
        status, session = call("POST", f"{stack.url}/api/checkout", {"amount": AMOUNT}, shopper.token)
        tally.check(user, "POST /api/checkout", status == 201, (status, session))
        if status != 201:
            continue
        read_balance()
        status, page = call("POST", f"{session['url']}/pay")
        tally.check(user, "pay on the emulator", status == 200, (status, page))
        paid += AMOUNT
        for _ in range(BALANCE_READS_PER_STEP):
            read_balance()
            status, seen = shopper.session(session["sessionId"])
            own = status == 200 and isinstance(seen, dict) and seen.get("amount") == AMOUNT
            tally.check(user, "GET /api/checkout/{id}", own, (status, seen))
    return paid


def test_every_answer_belongs_to_its_caller_under_concurrent_users(stack: DevStackProcess) -> None:
    # Given many signed-in users topping up at the same moment
    users = [f"crowd-{n}" for n in range(USERS)]
    tally = Tally()
    deadline = time.monotonic() + TIME_LIMIT_SECONDS

    # When they all buy, pay, poll and read their balances at once
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        paid = dict(zip(users, pool.map(lambda user: shop(stack, user, tally, deadline), users), strict=True))

    # Then no answer was another user's, no valid token was refused, and each was credited what they paid
    def balances() -> dict[str, int]:
        return {user: Shopper(stack, user).balance()["balance"] for user in users}

    kinds = Counter(wrong.split(":")[0] for wrong in tally.wrong)
    assert tally.wrong == [], f"{len(tally.wrong)} of {tally.requests} answers wrong: {kinds}"
    wait_until(
        lambda: balances() == paid, lambda: f"each balance to be what was paid: {balances()} != {paid}"
    )
    assert tally.requests >= USERS * TOP_UPS_PER_USER * (2 + 2 * BALANCE_READS_PER_STEP)

"""SnapStart: the snapshot holds no secret, no connection and no randomness that restored containers share."""

from __future__ import annotations

import gc
import json
import os
import random
import socket
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ulid

from tests.fresh_process import ROOT
from wallet import models, payments, snapstart

Hook = Callable[[], None]


class Runtime:
    """What the Lambda runtime's snapshot_restore_py records: the hooks, in order."""

    def __init__(self) -> None:
        self.before_snapshot: list[Hook] = []
        self.after_restore: list[Hook] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("snapshot_restore_py")
        module.register_before_snapshot = self.before_snapshot.append  # type: ignore[attr-defined]
        module.register_after_restore = self.after_restore.append  # type: ignore[attr-defined]
        return module


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    payments.stripe_client.cache_clear()
    models.connection.cache_clear()
    yield
    payments.stripe_client.cache_clear()
    models.connection.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()


def test_without_a_snapstart_runtime_nothing_is_registered() -> None:
    assert snapstart.register(snapstart.prime_ledger) is False


def test_with_one_the_primes_run_before_the_snapshot_and_refresh_after_each_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = Runtime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime.module())

    assert snapstart.register(snapstart.prime_ledger, snapstart.prime_stripe) is True

    assert runtime.before_snapshot == [
        snapstart.BeforeSnapshot((snapstart.prime_ledger, snapstart.prime_stripe))
    ]
    assert runtime.after_restore == [snapstart.refresh]


def test_before_the_snapshot_the_primes_run_in_order_then_what_init_built_is_frozen() -> None:
    ran: list[str] = []
    before = snapstart.BeforeSnapshot((lambda: ran.append("ledger"), lambda: ran.append("stripe")))
    try:
        before()

        assert ran == ["ledger", "stripe"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_primes_fetch_no_secret_and_open_no_connection(
    monkeypatch: pytest.MonkeyPatch, fresh_clients: None
) -> None:
    # Given a deployed function's settings, with no key in the environment and no network at all
    monkeypatch.setenv("STRIPE_SECRET_KEY_ARN", "arn:aws:secretsmanager:us-east-1:000000000000:secret:stripe")
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")

    def refuse(*_: Any) -> None:
        raise AssertionError("a connection was opened before the snapshot")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    # When everything is primed, as before a snapshot
    for prime in (snapstart.prime_ledger, snapstart.prime_stripe, snapstart.prime_secrets):
        prime()

    # Then the clients are built, and the Stripe client holds no key
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    assert models.connection().client.meta.service_model.service_name == "dynamodb"
    assert "secrets" in DEFAULT_PROVIDERS
    assert payments.stripe_client()._requestor._options.api_key == ""


def test_containers_restored_from_one_snapshot_draw_different_random_numbers() -> None:
    snapshot = random.getstate()

    def restored(refresh: bool) -> float:
        random.setstate(snapshot)
        if refresh:
            snapstart.refresh()
        return random.random()

    assert restored(refresh=False) == restored(refresh=False)
    assert restored(refresh=True) != restored(refresh=True)


def test_ulids_get_a_generator_that_remembers_nothing_from_before_the_snapshot() -> None:
    before = ulid.default_generator
    ulid.ULID()

    snapstart.refresh()

    assert ulid.default_generator is not before
    assert ulid.ULID() > ulid.ULID.from_timestamp(0)


REGISTERED = """
import json, sys, types
hooks = {"before": [], "after": []}
runtime = types.ModuleType("snapshot_restore_py")
runtime.register_before_snapshot = lambda hook: hooks["before"].extend(p.__name__ for p in hook.primes)
runtime.register_after_restore = lambda hook: hooks["after"].append(hook.__name__)
sys.modules["snapshot_restore_py"] = runtime
import functions.%s.app
print(json.dumps(hooks))
"""


@pytest.mark.parametrize(
    ("function", "primes"),
    [
        ("get_balance", ["prime_ledger"]),
        ("stripe_webhook", ["prime_ledger", "prime_secrets"]),
        ("create_checkout", ["prime_ledger", "prime_stripe", "prime_secrets"]),
        ("reconcile", ["prime_ledger", "prime_stripe", "prime_secrets"]),
        ("project_grants", ["prime_ledger"]),
    ],
)
def test_each_function_registers_what_it_uses_and_the_refresh(function: str, primes: list[str]) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers/shared"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", REGISTERED % function],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"before": primes, "after": ["refresh"]}

"""SnapStart's runtime hooks: what every container would build alike is built once, before the snapshot;
what each container must own is made fresh after a restore.

Before the snapshot nothing is sent anywhere, so the snapshot holds no open connection and no fetched
secret: the botocore clients are built (service models loaded, endpoints resolved) and the Stripe client
holds no key, which each request reads from the cached secret. Then what init built is collected once and
frozen out of the garbage collector's sight: it lives as long as the container, and a collection that
walked it would otherwise land in the first request (`gc.freeze`).

After a restore, each container gets randomness of its own. `random` was seeded once at init, so every
container restored from one snapshot would draw the same numbers (the SDKs' retry jitter among them);
python-ulid draws from os.urandom, which the kernel keeps unique across restores, but its generator keeps
the last timestamp and randomness it issued, so it is replaced too.

Outside Lambda (tests, `make run`) there is no `snapshot_restore_py` and nothing is registered.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass

Hook = Callable[[], None]


def prime_ledger() -> None:
    """The ledger's botocore DynamoDB client."""
    from wallet import models

    models.connection().client  # noqa: B018 - built on first access


def prime_stripe() -> None:
    """The Stripe client, keyless, and the SDK modules its Checkout Sessions service loads on first use.
    Auto top-up imports wallet.payments only where a charge or a card route needs it, to keep it out of
    an init without SnapStart; this brings it, and the SDK, into the snapshot all the same."""
    from wallet import payments

    payments.stripe_client().v1.checkout.sessions  # noqa: B018 - loaded on first access


def prime_secrets() -> None:
    """Where a Stripe key comes from Secrets Manager (STRIPE_SECRET_KEY_ARN, STRIPE_WEBHOOK_SECRET_ARN),
    its client; no secret is read."""
    if not any(
        os.environ.get(name, "").strip() for name in ("STRIPE_SECRET_KEY_ARN", "STRIPE_WEBHOOK_SECRET_ARN")
    ):
        return
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    # The provider parameters.get_secret would otherwise create on its first call.
    DEFAULT_PROVIDERS.setdefault("secrets", SecretsProvider())


@dataclass(frozen=True, slots=True)
class BeforeSnapshot:
    """The primes, in order, then the heap settled: one hook, whatever order the runtime runs hooks in."""

    primes: tuple[Hook, ...]

    def __call__(self) -> None:
        for prime in self.primes:
            prime()
        gc.collect()
        gc.freeze()


def refresh() -> None:
    """After a restore: randomness that no other container restored from the same snapshot shares."""
    import random

    import ulid

    random.seed()  # from os.urandom
    ulid.default_generator = ulid.ULIDGenerator()


def register(*primes: Hook) -> bool:
    """Run `primes` before the snapshot and `refresh` after each restore; False where there is no
    SnapStart runtime to register with."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(BeforeSnapshot(primes))
    register_after_restore(refresh)
    return True

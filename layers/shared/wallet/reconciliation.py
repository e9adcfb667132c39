"""The reconciliation sweep: credit paid Checkout Sessions whose webhook never arrived, so a lost webhook
loses no money. It lists recent paid sessions from Stripe and fulfils each through the same `fulfil`
as the webhook; sessions already credited change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from stripe import StripeClient

from wallet import payments
from wallet.fulfilment import Result, fulfil

# Stripe retries a webhook for up to three days; a session older than that has had every chance.
LOOKBACK = timedelta(hours=72)
# Stop with this much time left, so a long page does not run into the function's time limit.
SAFETY_MARGIN_SECONDS = 20.0


@dataclass
class SweepReport:
    paid_sessions: int = 0
    credited: int = 0
    already_credited: int = 0
    rejected: int = 0
    not_ours: int = 0
    finished: bool = True
    """False when the sweep stopped for time before reaching the end of the list."""


def sweep(
    seconds_left: Callable[[], float],
    now: float | None = None,
    client: StripeClient | None = None,
) -> SweepReport:
    """Fulfil every paid session of the last 72 hours, stopping in time when `seconds_left` runs low."""
    since = int((time.time() if now is None else now) - LOOKBACK.total_seconds())
    report = SweepReport()
    for session in payments.paid_checkout_sessions(since, client):
        if seconds_left() < SAFETY_MARGIN_SECONDS:
            report.finished = False
            break
        report.paid_sessions += 1
        if "paymentId" not in session.metadata:
            # Another integration on the same Stripe account: not this product's to credit.
            report.not_ours += 1
            continue
        outcome = fulfil(session)
        if outcome.result is Result.CREDITED:
            report.credited += 1
        elif outcome.result is Result.ALREADY_CREDITED:
            report.already_credited += 1
        else:
            report.rejected += 1
    return report

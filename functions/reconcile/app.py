"""Hourly, from EventBridge Scheduler: credit paid Checkout Sessions whose webhook never arrived."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import reconciliation, snapstart

logger = Logger()
tracer = Tracer()
metrics = Metrics()
snapstart.register(snapstart.prime_ledger, snapstart.prime_stripe, snapstart.prime_secrets)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = reconciliation.sweep(lambda: context.get_remaining_time_in_millis() / 1000)
    # A credit here is a payment whose webhook was lost: worth a look even though no money was lost.
    metrics.add_metric(name="SweepCredited", unit=MetricUnit.Count, value=report.credited)
    metrics.add_metric(name="RejectedFulfilments", unit=MetricUnit.Count, value=report.rejected)
    if report.credited or report.rejected or not report.finished:
        logger.warning("reconciliation sweep found work", extra=asdict(report))
    else:
        logger.info("reconciliation sweep done", extra=asdict(report))
    return asdict(report)

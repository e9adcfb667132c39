"""From EventBridge Scheduler: hourly, replay Stripe's event log so no lost webhook loses money; every
minute (`{"task": "holds"}`), expire the holds past their time; hourly (`{"task": "grants"}`), expire
what is left of the grants past their expiry; daily (`{"task": "audit"}`), prove that every balance is
the sum of its rows and of its grants. Invoked by hand once after an upgrade (`{"task": "migrate"}`):
upgrade the items earlier releases wrote, resuming from its checkpoint when invoked again."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import snapstart

logger = Logger()
tracer = Tracer()
metrics = Metrics()
snapstart.register(snapstart.prime_ledger, snapstart.prime_stripe, snapstart.prime_secrets)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    seconds_left = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
    if event.get("task") == "audit":
        return _audit(seconds_left)
    if event.get("task") == "holds":
        return _expire_holds(seconds_left)
    if event.get("task") == "grants":
        return _expire_grants(seconds_left)
    if event.get("task") == "migrate":
        return _migrate(seconds_left)
    return _sweep(seconds_left)


def _sweep(seconds_left: Any) -> dict[str, Any]:
    from wallet import reconciliation

    report = reconciliation.sweep(seconds_left)
    metrics.add_metric(name="EventsReplayed", unit=MetricUnit.Count, value=report.replayed)
    # A credit or a reversal here is a webhook that was lost: worth a look even though nothing was lost.
    metrics.add_metric(name="SweepCredited", unit=MetricUnit.Count, value=report.credited)
    metrics.add_metric(name="SweepReversed", unit=MetricUnit.Count, value=report.reversed)
    metrics.add_metric(name="SweepFailures", unit=MetricUnit.Count, value=report.failed + report.gone)
    metrics.add_metric(name="RejectedFulfilments", unit=MetricUnit.Count, value=report.rejected)
    summary = asdict(report)
    if report.failed or report.gone or report.rejected:
        logger.error("sweep could not act on some events", extra=summary)
    elif report.credited or report.reversed or not report.finished:
        logger.warning("sweep found work", extra=summary)
    else:
        logger.info("sweep done", extra=summary)
    return summary


def _expire_holds(seconds_left: Any) -> dict[str, Any]:
    from wallet import holds, settings

    report = holds.expire_due(seconds_left, currency=settings.price_list().currency)
    metrics.add_metric(name="HoldsExpired", unit=MetricUnit.Count, value=report.expired)
    summary = asdict(report)
    if report.failed:
        logger.error("some holds past their time could not be expired", extra=summary)
    else:
        logger.info("holds sweep done", extra=summary)
    return summary


def _expire_grants(seconds_left: Any) -> dict[str, Any]:
    from wallet import grants_due, settings

    report = grants_due.expire_due(seconds_left, currency=settings.price_list().currency)
    metrics.add_metric(name="GrantCreditsExpired", unit=MetricUnit.Count, value=report.credits)
    metrics.add_metric(name="GrantExpiryFailures", unit=MetricUnit.Count, value=report.failed)
    summary = asdict(report)
    if report.failed:
        logger.error("some accounts' grants past their expiry could not be expired", extra=summary)
    else:
        logger.info("grants sweep done", extra=summary)
    return summary


def _audit(seconds_left: Any) -> dict[str, Any]:
    from wallet import audit

    report = audit.audit(seconds_left)
    drifts = len(report.drifts) + len(report.grant_drifts) + len(report.held_drifts)
    metrics.add_metric(name="LedgerDrift", unit=MetricUnit.Count, value=drifts)
    # Active holds an hour past their time: the minute's sweep is not running, their credits stay held.
    metrics.add_metric(name="HoldsOverdue", unit=MetricUnit.Count, value=report.overdue_holds)
    summary = asdict(report)
    if drifts:
        logger.error(
            "balances differ from the sum of their rows, of their grants or of their active holds",
            extra=summary,
        )
    elif report.overdue_holds:
        logger.error(
            "active holds are past their time by more than an hour: is the holds sweep running?",
            extra=summary,
        )
    elif not report.finished:
        logger.info("ledger audit stopped for time; the next run resumes from its checkpoint", extra=summary)
    else:
        logger.info("ledger audit done", extra=summary)
    return summary


def _migrate(seconds_left: Any) -> dict[str, Any]:
    from wallet import migrate

    report = migrate.migrate(seconds_left)
    summary = asdict(report)
    if report.finished:
        logger.info("migration done", extra=summary)
    else:
        logger.warning("migration stopped for time; invoke it again to resume", extra=summary)
    return summary

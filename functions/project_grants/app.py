"""The grants' projector, from the transactions table's stream: for each batch's accounts (a hot
account's sub-balance rows count as their user's), fold the settled rows into the stored grants
(wallet.projection) until caught up, and keep the account's next expiry in the grants' index
(wallet.grants_due), from the stored grants and the new rows' own expiries. An account that failed has
its records reported back (partial batch response), so Lambda delivers them, and those after them, again.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet import grants_due, snapstart
from wallet.errors import LedgerBusyError, LedgerUnavailableError

logger = Logger()
tracer = Tracer()
metrics = Metrics()
snapstart.register(snapstart.prime_ledger)
# The projector's clock (Unix seconds); tests move it past the rows' settling.
clock = time.time


def accounts_of(records: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[int]]]:
    """Each account in the batch: its records' sequence numbers and the grant expiries its new rows carry."""
    found: dict[str, tuple[list[str], list[int]]] = {}
    for record in records:
        change = record.get("dynamodb") or {}
        user = grants_due.owner(str(change["Keys"]["userId"]["S"]))
        sequences, expiries = found.setdefault(user, ([], []))
        sequences.append(str(change["SequenceNumber"]))
        expires = ((change.get("NewImage") or {}).get("grantExpiresAt") or {}).get("N")
        if expires is not None:
            expiries.append(int(expires))
    return found


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def stream_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    seconds_left = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
    now = clock()
    failed: list[str] = []
    accounts = accounts_of(event.get("Records", []))
    for user, (sequences, expiries) in accounts.items():
        try:
            grants_due.follow(user, now, expiries, seconds_left)
        except (LedgerUnavailableError, LedgerBusyError):
            logger.exception("an account's grants could not be projected", extra={"sequences": sequences})
            failed += sequences
    metrics.add_metric(name="GrantAccountsProjected", unit=MetricUnit.Count, value=len(accounts))
    if failed:
        metrics.add_metric(name="GrantProjectionFailures", unit=MetricUnit.Count, value=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}

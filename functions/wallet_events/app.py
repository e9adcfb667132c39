"""The wallet's events (wallet.wallet_events), from three streams: the transactions table's new rows, the
balance table's changes (its second reader, beside the auto top-up trigger), and the guard table's
dispute notices; and, from the balance changes, the users' low balance emails (wallet.email_alerts).
One batch's events go to the bus in PutEvents of up to 10; a record whose event was not accepted, or
could not be built, or whose email could not be sent, is reported back (partial batch response), so
Lambda delivers it, and those after it, again."""

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.types import TypeDeserializer

from wallet import account, email_alerts, event_bus, settings, wallet_events
from wallet.errors import LedgerUnavailableError
from wallet.event_bus import PutEvents
from wallet.wallet_events import WalletEvent

logger = Logger()
tracer = Tracer()
metrics = Metrics()
deserializer = TypeDeserializer()
# Made on first use; the local stack puts its stand-ins for the bus and for SES here.
bus_client: PutEvents | None = None
mail_client: Any = None


def client() -> PutEvents:
    global bus_client
    if bus_client is None:
        bus_client = boto3.client("events")
    return bus_client


def mail() -> Any:
    """Amazon SES (v2), for the users' low balance emails."""
    global mail_client
    if mail_client is None:
        mail_client = boto3.client("sesv2")
    return mail_client


def events_of(record: dict[str, Any]) -> list[WalletEvent]:
    change = record.get("dynamodb") or {}
    new, old = _image(change.get("NewImage")), _image(change.get("OldImage"))
    source, tables = record.get("eventSourceARN", ""), settings.tables()
    if f":table/{tables.transaction_table}/" in source:
        if record.get("eventName") != "INSERT" or new is None:
            return []
        return wallet_events.from_row(new, _balance_of)
    if f":table/{tables.guard_table}/" in source:
        if (
            record.get("eventName") != "INSERT"
            or new is None
            or not str(new["guardId"]).startswith("notice#")
        ):
            return []
        return wallet_events.from_notice(new, _balance_of)
    sequence = str(change["SequenceNumber"])
    _email_if_low(old, new, sequence)
    # When DynamoDB wrote the record (Unix seconds): the same on every delivery.
    created = change.get("ApproximateCreationDateTime")
    at = (
        None
        if created is None
        else datetime.fromtimestamp(float(created), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    return wallet_events.from_balance_change(old, new, sequence, settings.low_balance_threshold(), at)


def _email_if_low(old: dict[str, Any] | None, new: dict[str, Any] | None, sequence: str) -> None:
    """The user's own low balance email, once per dip (wallet.email_alerts); none without a sender."""
    sender = settings.alert_sender()
    threshold = email_alerts.dips(old, new)
    if sender is None or threshold is None or new is None:
        return
    user, available = str(new["userId"]), int(new.get("balance", 0))
    subject, text = email_alerts.message(available, threshold, settings.site_url())

    def send(to: str, subject: str, text: str) -> None:
        mail().send_email(
            FromEmailAddress=sender,
            Destination={"ToAddresses": [to]},
            Content={"Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": text}}}},
        )

    if email_alerts.notify_once(user, sequence, str(new["emailAlertAddress"]), subject, text, send):
        metrics.add_metric(name="LowBalanceEmailsSent", unit=MetricUnit.Count, value=1)


def _balance_of(user_id: str) -> tuple[int, int]:
    read = account.balances(user_id)
    return read.balance, read.held


def _image(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if not image:
        return None
    return {name: deserializer.deserialize(value) for name, value in image.items()}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def stream_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records", [])
    built: list[tuple[str, list[WalletEvent]]] = []
    failed: list[str] = []
    for record in records:
        sequence = str(record["dynamodb"]["SequenceNumber"])
        try:
            built.append((sequence, events_of(record)))
        except LedgerUnavailableError:
            logger.exception("a record's balance, guard or email failed", extra={"sequence": sequence})
            failed.append(sequence)
    events = [one for _, of_record in built for one in of_record]
    not_sent = event_bus.publish(events, client(), settings.wallet_event_bus()) if events else set()
    failed += [sequence for sequence, of_record in built if any(one.id in not_sent for one in of_record)]
    metrics.add_metric(name="WalletEventsPublished", unit=MetricUnit.Count, value=len(events) - len(not_sent))
    if failed:
        metrics.add_metric(name="WalletEventsNotPublished", unit=MetricUnit.Count, value=len(failed))
        logger.warning("wallet events not published; their records go again", extra={"records": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}

"""The CreditBalance stream, read from moto and handed to the auto top-up trigger as Lambda's event source
mapping would: in order per shard, in batches, at least once, a failed record and those after it
retried (the partial batch response), and given up after a few attempts (on AWS: the on-failure
destination)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3

from devstack.dynamodb import REGION

BATCH_SIZE = 100
MAX_ATTEMPTS = 3
POLL_SECONDS = 0.25

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerContext:
    """The Lambda context the trigger's handler reads (Powertools logs its fields)."""

    function_name: str = "AutoTopUpTriggerFunction"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "devstack-balance-stream"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:AutoTopUpTriggerFunction"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class BalanceStream:
    def __init__(
        self, endpoint_url: str, table_name: str, handler: Handler, context: Any, batch_size: int = BATCH_SIZE
    ) -> None:
        self._client = boto3.client(
            "dynamodbstreams",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
        self._dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
        self._table_name = table_name
        self._handler = handler
        self._context = context
        self._batch_size = batch_size
        self._checkpoints: dict[str, str] = {}
        self._stream_arn: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invocations = 0
        self.given_up: list[dict[str, Any]] = []

    @classmethod
    def for_trigger(cls, endpoint_url: str, table_name: str) -> BalanceStream:
        """The stream feeding the trigger's handler, imported once the functions' settings are set."""
        from functions.auto_top_up.app import stream_handler

        return cls(endpoint_url, table_name, stream_handler, TriggerContext())

    def records(self) -> list[dict[str, Any]]:
        """The records committed since the last read, in Lambda's event shape."""
        arn = self._dynamodb.describe_table(TableName=self._table_name)["Table"]["LatestStreamArn"]
        if arn != self._stream_arn:  # the table was made again: start from its beginning
            self._stream_arn, self._checkpoints = arn, {}
        shards = self._client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        found: list[dict[str, Any]] = []
        for shard in shards:
            shard_id = shard["ShardId"]
            # A fresh iterator from the last record seen, each poll: moto rebuilds a table (its stream
            # included) when a transaction is cancelled, and an old iterator would read the old copy.
            after = self._checkpoints.get(shard_id)
            iterator = self._client.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard_id,
                **(
                    {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                    if after
                    else {"ShardIteratorType": "TRIM_HORIZON"}
                ),
            )["ShardIterator"]
            records = self._client.get_records(ShardIterator=iterator)["Records"]
            if records:
                self._checkpoints[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            found += [_lambda_record(record, arn) for record in records]
        return found

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke the handler with `records` in batches; a failed record and those after it go again."""
        pending = list(records)
        while pending:
            batch, pending = pending[: self._batch_size], pending[self._batch_size :]
            for attempt in range(1, MAX_ATTEMPTS + 1):
                failed_at = self._invoke(batch)
                if failed_at is None:
                    break
                batch = batch[failed_at:]
                if attempt == MAX_ATTEMPTS:
                    logger.error("gave up on %d stream records", len(batch))
                    self.given_up += batch

    def drain(self) -> int:
        """Deliver everything committed so far, and what that delivery committed in turn; how many."""
        total = 0
        while records := self.records():
            self.deliver(records)
            total += len(records)
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="balance-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.deliver(self.records())
            except Exception:  # the poller outlives a bad poll, as the real one does
                logger.exception("polling the balance stream failed")

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """The index of the first record to deliver again, or None when the whole batch succeeded."""
        self.invocations += 1
        try:
            response = self._handler({"Records": batch}, self._context)
        except Exception:
            logger.exception("the stream handler failed; the batch goes again")
            return 0
        failures = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        return next((i for i, number in enumerate(numbers) if number in failures), None)


def _lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}

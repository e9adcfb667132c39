"""The CreditBalance stream, read from moto and handed to the auto top-up trigger as Lambda's event source
mapping would: in order per shard, in batches, at least once, a failed record and those after it
retried (the partial batch response), and given up after a few attempts (on AWS: the on-failure
destination).

Started, a poller thread reads the stream every `POLL_SECONDS`; `drain(timeout)` then waits for it to
settle (see `devstack.drain`). Not started, `drain()` reads and delivers from the caller's thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3

from devstack.drain import DRAIN_TIMEOUT_SECONDS, DrainTimeoutError
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
        # The poller's progress, for `drain`: polls begun and finished, and what the last one found.
        self._polled = threading.Condition()
        self._polls_begun = 0
        self._polls_finished = 0
        self._last_poll: int | str = 0
        self._delivered = 0
        self._poll_now = threading.Event()
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

    def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> int:
        """Deliver everything committed so far, and what that delivery committed in turn; how many.

        With the poller started, wait (up to `timeout` seconds) for a poll begun after this call to find
        nothing new, and count what the poller delivered meanwhile; `DrainTimeoutError` if it never does.
        """
        if self._thread is None:
            total = 0
            while records := self.records():
                self.deliver(records)
                total += len(records)
            return total
        if self._stop.is_set():  # stopped: nothing more will be delivered, so nothing is waited for
            return 0
        with self._polled:
            since, delivered_before = self._polls_begun, self._delivered
            self._poll_now.set()
            settled = self._polled.wait_for(
                lambda: self._polls_finished > since and self._last_poll == 0, timeout
            )
            if not settled:
                raise DrainTimeoutError(
                    f"the balance stream of {self._table_name} did not settle in {timeout:g} s: "
                    f"{self._polls_finished - since} polls since the drain began, the last one "
                    + (
                        f"found {self._last_poll} records"
                        if isinstance(self._last_poll, int)
                        else f"failed: {self._last_poll}"
                    )
                )
            return self._delivered - delivered_before

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="balance-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poll_now.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            # Polled every POLL_SECONDS, or at once when a drain asks.
            self._poll_now.wait(POLL_SECONDS)
            self._poll_now.clear()
            if self._stop.is_set():
                return
            with self._polled:
                self._polls_begun += 1
            found: int | str
            try:
                records = self.records()
                self.deliver(records)
                found = len(records)
            except Exception as exc:  # the poller outlives a bad poll, as the real one does
                logger.exception("polling the balance stream failed")
                found = f"{type(exc).__name__}: {exc}"
            with self._polled:
                self._polls_finished += 1
                self._last_poll = found
                self._delivered += found if isinstance(found, int) else 0
                self._polled.notify_all()

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

"""moto's DynamoDB server, in-process, with its requests taken one at a time.

moto does not isolate concurrent transactions: against its threaded server, concurrent
TransactWriteItems on one key now and then lose or double an ADD. Real DynamoDB isolates them, so
the local stack and the tests serialize moto's requests to get the semantics the product relies on.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import boto3
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server
from werkzeug.wsgi import get_input_stream

from devstack.serving import BackgroundServer
from devstack.template import table_definitions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REGION = "us-east-1"

# moto backs up every table a transaction touches with a deep copy, streams included: a table's stream
# would be copied whole on every transaction (slower with each write) and replaced on a rollback, which
# strands the readers of the old copy. Streams are shared by the copies instead.
StreamShard.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]

# moto applies a cancelled transaction's other items before rolling them back, and their records would
# stay in the shared stream: a row that was never committed would become a wallet event. DynamoDB writes
# a transaction's records only if it commits, so a transaction's records are held until it has, and
# dropped if it is cancelled.
_transaction = threading.local()
_moto_stream_add = StreamShard.add
_moto_transact = DynamoDBBackend.transact_write_items


def _stream_add(shard: StreamShard, old: Any, new: Any) -> None:
    held: list[tuple[StreamShard, Any, Any]] | None = getattr(_transaction, "records", None)
    if held is not None:
        held.append((shard, old, new))
        return
    _moto_stream_add(shard, old, new)


def _transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    committed: list[tuple[StreamShard, Any, Any]] = []
    _transaction.records = committed
    try:
        _moto_transact(backend, transact_items)
    finally:
        _transaction.records = None
    for shard, old, new in committed:
        _moto_stream_add(shard, old, new)


StreamShard.add = _stream_add  # type: ignore[method-assign,assignment]
DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign,assignment]


class SerializedApp:
    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        streams: Callable[..., Iterable[bytes]] | None = None,
        conflicts: ItemConflicts | None = None,
    ) -> None:
        self._app = app
        self._streams = streams or app
        self._lock = threading.Lock()
        self._conflicts = conflicts

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # DynamoDB Streams shares the endpoint: its calls are told apart by their X-Amz-Target.
        streams = environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDBStreams")

        def serve() -> list[bytes]:
            with self._lock:
                return list((self._streams if streams else self._app)(environ, start_response))

        return serve() if self._conflicts is None else self._conflicts(environ, start_response, serve)


TRANSACT_WRITE = "DynamoDB_20120810.TransactWriteItems"
TRANSACT_GET = "DynamoDB_20120810.TransactGetItems"
# A transactional write costs 2 WCU per item of up to 1 KB (DynamoDB's transactions guide).
TRANSACTIONAL_WCU_PER_ITEM = 2


class ItemConflicts:
    """DynamoDB's item-level isolation, which moto (serialized) never shows: while a TransactWriteItems is
    in flight (from its arrival to its answer) its items are held, and a TransactWriteItems or
    TransactGetItems that touches one of them is cancelled with TransactionConflict, as DynamoDB
    documents. Off unless enabled (the bench compares designs with it); it also counts each partition's
    transactional write units, to show where one account's writes land.

    Modelled: write-write and read-after-write conflicts of transactions. Not modelled: single-item
    writes that meet a transaction (the ledger writes money only in transactions), throttling."""

    def __init__(self) -> None:
        self.enabled = False
        self.hold_seconds = 0.0
        self._keys: dict[str, list[str]] = {}
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.write_units: Counter[tuple[str, str]] = Counter()

    def enable(self, hold_seconds: float = 0.0) -> None:
        """Model conflicts from now on; `hold_seconds` keeps a committed transaction's items held a little
        longer, as DynamoDB's two phases take milliseconds that moto does not."""
        with self._lock:
            self.enabled, self.hold_seconds = True, hold_seconds
            self.counts.clear()
            self.write_units.clear()

    def disable(self) -> None:
        with self._lock:
            self.enabled = False

    def key_names(self, table: str, names: list[str]) -> None:
        self._keys[table] = names

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any], app: Callable[[], list[bytes]]
    ) -> list[bytes]:
        """The request cancelled for a conflict, or `app`'s answer, its items held meanwhile."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not self.enabled or target not in (TRANSACT_WRITE, TRANSACT_GET):
            return app()
        body = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(body)
        items = [self._item(entry) for entry in json.loads(body).get("TransactItems", [])]
        writes = target == TRANSACT_WRITE
        with self._lock:
            clashes = [item in self._held for item in items]
            if any(clashes):
                self.counts["conflicts"] += 1
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
                return _cancelled(clashes)
            if writes:
                self._held.update(items)
                self.counts["transactions"] += 1
        try:
            answer = app()
            if writes and self.hold_seconds:
                time.sleep(self.hold_seconds)
        finally:
            if writes:
                with self._lock:
                    self._held.difference_update(items)
        if writes:
            with self._lock:
                for table, key in items:
                    self.write_units[(table, json.loads(key)[0])] += TRANSACTIONAL_WCU_PER_ITEM
        return answer

    def _item(self, entry: dict[str, Any]) -> tuple[str, str]:
        [(action, request)] = entry.items()
        table = request["TableName"]
        source = request["Item"] if action == "Put" else request["Key"]
        names = self._keys.get(table) or sorted(source)
        # The partition key first: the write units are counted per partition.
        return table, json.dumps([next(iter(source[name].values())) for name in names if name in source])


def _cancelled(clashes: list[bool]) -> list[bytes]:
    reasons = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        if clash
        else {"Code": "None"}
        for clash in clashes
    ]
    codes = ", ".join(reason["Code"] for reason in reasons)
    return [
        json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific "
                f"reasons [{codes}]",
                "CancellationReasons": reasons,
            }
        ).encode()
    ]


class DynamoDBServer(BackgroundServer):
    """moto's DynamoDB on 127.0.0.1; `stop()` (or leaving the `with`) ends it. `conflicts` models
    DynamoDB's transaction conflicts when enabled."""

    def __init__(self, port: int = 0) -> None:
        self.conflicts = ItemConflicts()
        app = SerializedApp(
            create_backend_app("dynamodb"), create_backend_app("dynamodbstreams"), self.conflicts
        )
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        super().__init__(server, "moto-dynamodb")

    @property
    def endpoint_url(self) -> str:
        return self.url

    def client(self) -> DynamoDBClient:
        # moto accepts any credentials; these keep botocore from looking for real ones.
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )

    def create_tables(self, names: dict[str, str]) -> None:
        """Create the template's tables; `names` maps each logical id to the table name to use."""
        client = self.client()
        for logical_id, definition in table_definitions().items():
            client.create_table(TableName=names[logical_id], **definition)
            self.conflicts.key_names(
                names[logical_id], [key["AttributeName"] for key in definition["KeySchema"]]
            )

    def reset(self) -> None:
        """Drop every table and item, as a fresh server would have."""
        client = self.client()
        for name in client.list_tables()["TableNames"]:
            client.delete_table(TableName=name)

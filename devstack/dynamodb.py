"""moto's DynamoDB server, in-process, with its requests taken one at a time.

moto does not isolate concurrent transactions: against its threaded server, concurrent
TransactWriteItems on one key now and then lose or double an ADD. Real DynamoDB isolates them, so
the local stack and the tests serialize moto's requests to get the semantics the product relies on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import boto3
from moto.dynamodb.models.table import StreamShard
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from devstack.serving import BackgroundServer
from devstack.template import table_definitions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REGION = "us-east-1"

# moto backs up every table a transaction touches with a deep copy, streams included: a table's stream
# would be copied whole on every transaction (slower with each write) and replaced on a rollback, which
# strands the readers of the old copy. Streams are shared by the copies instead. moto applies a cancelled
# transaction's other items before rolling them back, so their records may reach the stream: the
# trigger reads the balance item again before it acts, so such a record costs at most one read.
StreamShard.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]


class SerializedApp:
    def __init__(
        self, app: Callable[..., Iterable[bytes]], streams: Callable[..., Iterable[bytes]] | None = None
    ) -> None:
        self._app = app
        self._streams = streams or app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # DynamoDB Streams shares the endpoint: its calls are told apart by their X-Amz-Target.
        streams = environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDBStreams")
        with self._lock:
            return list((self._streams if streams else self._app)(environ, start_response))


class DynamoDBServer(BackgroundServer):
    """moto's DynamoDB on 127.0.0.1; `stop()` (or leaving the `with`) ends it."""

    def __init__(self, port: int = 0) -> None:
        app = SerializedApp(create_backend_app("dynamodb"), create_backend_app("dynamodbstreams"))
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

    def reset(self) -> None:
        """Drop every table and item, as a fresh server would have."""
        client = self.client()
        for name in client.list_tables()["TableNames"]:
            client.delete_table(TableName=name)

"""Injects DynamoDB error responses into a botocore client, in place of the real ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

PREFIX = "com.amazonaws.dynamodb.v20120810#"

THROTTLED = (
    400,
    {"__type": PREFIX + "ThrottlingException", "message": "Rate of requests exceeds the allowed throughput."},
)
INTERNAL_ERROR = (500, {"__type": PREFIX + "InternalServerError", "message": "Internal server error"})
TRANSACTION_CONFLICT = (
    400,
    {
        "__type": PREFIX + "TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, TransactionConflict]",
        "CancellationReasons": [
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        ],
    },
)


# Not an answer at all: reading DynamoDB's answer times out, as over a stalled connection.
TIMED_OUT = None
Fault = tuple[int, dict[str, Any]] | None


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


@contextmanager
def failing(
    client: Any, operation: str, fault: Fault, times: int | None = None, *, after_sending: bool = False
) -> Iterator[list[str]]:
    """Answer `operation` with `fault` (the first `times` calls, or all); yields the calls it answered.

    `after_sending`: the request still reaches DynamoDB and is carried out; only its answer is lost.
    """
    answered: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if times is not None and len(answered) >= times:
            return None
        answered.append(operation)
        if after_sending:
            URLLib3Session().send(request)
        if fault is TIMED_OUT:
            raise ReadTimeoutError(endpoint_url=request.url)
        status, body = fault
        headers = {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register(event, answer)
    try:
        yield answered
    finally:
        client.meta.events.unregister(event, answer)

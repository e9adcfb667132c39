"""The hot-account bench's transactions back up only their items: a cancelled one leaves every item, and
the table, as it was; a committed one writes all of its items."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from bench import hot_account

REGION = "us-east-1"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # moto's own method is put back after the test.
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items)
    hot_account._transactions_back_up_their_items()
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="balances",
            KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.create_table(
            TableName="rows",
            KeySchema=[
                {"AttributeName": "userId", "KeyType": "HASH"},
                {"AttributeName": "rowId", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "userId", "AttributeType": "S"},
                {"AttributeName": "rowId", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName="balances", Item={"userId": {"S": "u1"}, "balance": {"N": "5"}})
        yield dynamodb


def _debit(amount: int, row: str, guard: str = "u1") -> list[dict[str, Any]]:
    return [
        {
            "Update": {
                "TableName": "balances",
                "Key": {"userId": {"S": "u1"}},
                "UpdateExpression": "ADD balance :minus",
                "ExpressionAttributeValues": {":minus": {"N": str(-amount)}},
            }
        },
        {"Put": {"TableName": "rows", "Item": {"userId": {"S": "u1"}, "rowId": {"S": row}}}},
        {
            "ConditionCheck": {
                "TableName": "balances",
                "Key": {"userId": {"S": guard}},
                "ConditionExpression": "attribute_exists(userId)",
            }
        }
        if guard != "u1"
        else {"Put": {"TableName": "balances", "Item": {"userId": {"S": "u2"}}}},
    ]


def _state(client: Any) -> tuple[list[Any], list[Any]]:
    return (
        sorted(str(item) for item in client.scan(TableName="balances")["Items"]),
        client.scan(TableName="rows")["Items"],
    )


def test_a_cancelled_transaction_leaves_every_item_and_the_table_as_they_were(client: Any) -> None:
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    tables = dict(backend.tables)
    before = _state(client)

    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=_debit(2, "r1", guard="absent"))

    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _state(client) == before
    partitions = {key.value for key in backend.tables["rows"].items}
    assert "u1" not in partitions, "an emptied partition is left behind"
    assert all(backend.tables[name] is table for name, table in tables.items()), "a table was replaced"


def test_a_committed_transaction_writes_all_of_its_items(client: Any) -> None:
    client.transact_write_items(TransactItems=_debit(2, "r1"))

    balances, rows = _state(client)
    assert client.get_item(TableName="balances", Key={"userId": {"S": "u1"}})["Item"]["balance"] == {"N": "3"}
    assert len(balances) == 2
    assert rows == [{"userId": {"S": "u1"}, "rowId": {"S": "r1"}}]

"""The local DynamoDB's streams carry a transaction's records only when it commits, as DynamoDB's do: a
cancelled TransactWriteItems must not leave a row's record behind, or the wallet would announce a
deposit that never happened (wallet.wallet_events)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.balance_stream import BalanceStream, TriggerContext
from devstack.dynamodb import DynamoDBServer
from tests.conftest import TABLE_NAMES


def test_a_cancelled_transaction_leaves_no_stream_record_and_a_committed_one_leaves_its_own(
    tables: DynamoDBServer,
) -> None:
    client = boto3.client("dynamodb", endpoint_url=tables.endpoint_url)
    rows, balances = TABLE_NAMES["CreditTransactionTable"], TABLE_NAMES["CreditBalanceTable"]
    stream = BalanceStream(tables.endpoint_url, rows, lambda event, context: {}, TriggerContext())

    def deposit(transaction_id: str, condition: str) -> None:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": rows,
                        "Item": {"userId": {"S": "u"}, "transactionId": {"S": transaction_id}},
                    }
                },
                {
                    "Update": {
                        "TableName": balances,
                        "Key": {"userId": {"S": "u"}},
                        "UpdateExpression": "ADD balance :one",
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )

    # Given a transaction cancelled by its second item's condition, after moto applied its first
    with pytest.raises(ClientError, match="TransactionCanceled"):
        deposit("never", "attribute_exists(balance)")
    # When one that commits follows
    deposit("committed", "attribute_not_exists(balance)")

    # Then the rows' stream holds the committed row alone
    assert [r["dynamodb"]["NewImage"]["transactionId"]["S"] for r in stream.records()] == ["committed"]

"""The DynamoDB requests the ledger makes, written out by hand: the floor each handler is held against.

Standard library only: the cold-start probe imports it inside the processes it times.
"""

from __future__ import annotations

from typing import Any

# One page of history plus one, which tells whether another page exists (wallet.ledger).
PAGE_QUERY_LIMIT = 21


def statement(balance_table: str, transaction_table: str, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """GET /api/balance's two reads: the newest page of history, then the balance."""
    query = {
        "TableName": transaction_table,
        "KeyConditionExpression": "#0 = :0",
        "Limit": PAGE_QUERY_LIMIT,
        "ScanIndexForward": False,
        "ExpressionAttributeNames": {"#0": "userId"},
        "ExpressionAttributeValues": {":0": {"S": user_id}},
        "ReturnConsumedCapacity": "TOTAL",
    }
    get = {
        "TableName": balance_table,
        "Key": {"userId": {"S": user_id}},
        "ConsistentRead": True,
        "ReturnConsumedCapacity": "TOTAL",
    }
    return [("query", query), ("get_item", get)]


def deposit(
    balance_table: str,
    transaction_table: str,
    *,
    user_id: str,
    payment_id: str,
    amount: int,
    currency: str,
    now: str,
    session_id: str,
    payment_intent_id: str | None,
    event_id: str,
) -> dict[str, Any]:
    """A credit's one TransactWriteItems: the deposit row if its id is new, and the balance's ADD."""
    item = {
        "userId": {"S": user_id},
        "transactionId": {"S": payment_id},
        "amount": {"N": str(amount)},
        "createdAt": {"S": now},
        "paymentId": {"S": payment_id},
        "source": {"S": "stripe_payment"},
        "stripeEventId": {"S": event_id},
        "stripeSessionId": {"S": session_id},
        "type": {"S": "deposit"},
    }
    if payment_intent_id:
        item["stripePaymentIntentId"] = {"S": payment_intent_id}
    return {
        "TransactItems": [
            {
                "Put": {
                    "TableName": transaction_table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists (#0)",
                    "ExpressionAttributeNames": {"#0": "transactionId"},
                }
            },
            {
                "Update": {
                    "TableName": balance_table,
                    "Key": {"userId": {"S": user_id}},
                    "UpdateExpression": "SET #0 = :0, #1 = :1 ADD #2 :2",
                    "ExpressionAttributeNames": {"#0": "currency", "#1": "updatedAt", "#2": "balance"},
                    "ExpressionAttributeValues": {
                        ":0": {"S": currency},
                        ":1": {"S": now},
                        ":2": {"N": str(amount)},
                    },
                }
            },
        ],
        "ReturnConsumedCapacity": "TOTAL",
    }


def checkout_params(
    user_id: str, amount: int, payment_id: str, currency: str, site_url: str
) -> dict[str, Any]:
    """The Checkout Session POST /api/checkout asks Stripe for, for a pack whose credits equal its price."""
    metadata = {"userId": user_id, "amount": str(amount), "paymentId": payment_id}
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount,
                    "product_data": {"name": f"{amount:,} Credits"},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": user_id,
        "success_url": f"{site_url}/dashboard/credits/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{site_url}/dashboard/credits/?checkout=cancelled",
    }


def spend(
    balance_table: str,
    transaction_table: str,
    guard_table: str,
    *,
    user_id: str,
    key: str,
    transaction_id: str,
    amount: int,
    currency: str,
    now: str,
    expires_at: int,
) -> dict[str, Any]:
    """A spend's one TransactWriteItems: the key's guard if new, the row, and the balance's ADD of
    -amount on condition that it covers the amount."""
    guard = {
        "userId": {"S": user_id},
        "guardId": {"S": f"key#{key}"},
        "amount": {"N": str(-amount)},
        "createdAt": {"S": now},
        "expiresAt": {"N": str(expires_at)},
        "fingerprint": {"S": "0" * 64},
        "transactionId": {"S": transaction_id},
    }
    row = {
        "userId": {"S": user_id},
        "transactionId": {"S": transaction_id},
        "actor": {"S": "arn:aws:iam::123456789012:user/api-service"},
        "amount": {"N": str(-amount)},
        "createdAt": {"S": now},
        "source": {"S": "service"},
        "type": {"S": "spend"},
    }
    return {
        "TransactItems": [
            {
                "Put": {
                    "TableName": guard_table,
                    "Item": guard,
                    "ConditionExpression": "attribute_not_exists (#0)",
                    "ExpressionAttributeNames": {"#0": "guardId"},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Put": {
                    "TableName": transaction_table,
                    "Item": row,
                    "ConditionExpression": "attribute_not_exists (#0)",
                    "ExpressionAttributeNames": {"#0": "transactionId"},
                }
            },
            {
                "Update": {
                    "TableName": balance_table,
                    "Key": {"userId": {"S": user_id}},
                    "UpdateExpression": "SET #0 = :0, #1 = :1 ADD #2 :2",
                    "ConditionExpression": "#2 >= :3",
                    "ExpressionAttributeNames": {"#0": "currency", "#1": "updatedAt", "#2": "balance"},
                    "ExpressionAttributeValues": {
                        ":0": {"S": currency},
                        ":1": {"S": now},
                        ":2": {"N": str(-amount)},
                        ":3": {"N": str(amount)},
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ],
        "ReturnConsumedCapacity": "TOTAL",
    }

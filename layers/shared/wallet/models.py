"""DynamoDB items of the ledger. The tables themselves are defined once, in template.yaml."""

from __future__ import annotations

import contextlib
from functools import cache

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.models import Model

from wallet.settings import tables

# Fail fast inside a Lambda's time limit; botocore retries throttling and 5xx with back-off.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5


@cache
def connection() -> Connection:
    """The ledger's one DynamoDB connection, made on first use; region and endpoint from the environment."""
    return Connection(
        connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS, read_timeout_seconds=READ_TIMEOUT_SECONDS
    )


class _LedgerModel(Model):
    @classmethod
    def _get_connection(cls) -> TableConnection:
        # pynamodb gives each model its own botocore session and client, ~60 ms each on a cold start;
        # every table of the ledger goes through one.
        table = super()._get_connection()
        if table.connection is not connection():
            with contextlib.suppress(ValueError):  # already known to the shared connection
                connection().add_meta_table(table.get_meta_table())
            table.connection = connection()
        return table


class CreditBalance(_LedgerModel):
    class Meta:
        table_name = tables().balance_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    balance = NumberAttribute(default=0)
    currency = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt", null=True)


class CreditTransaction(_LedgerModel):
    class Meta:
        table_name = tables().transaction_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    # A ULID, so the sort order is the time order; a deposit's id is its paymentId.
    transaction_id = UnicodeAttribute(range_key=True, attr_name="transactionId")
    type = UnicodeAttribute()
    amount = NumberAttribute()
    source = UnicodeAttribute()
    payment_id = UnicodeAttribute(attr_name="paymentId")
    stripe_session_id = UnicodeAttribute(attr_name="stripeSessionId", null=True)
    stripe_payment_intent_id = UnicodeAttribute(attr_name="stripePaymentIntentId", null=True)
    stripe_event_id = UnicodeAttribute(attr_name="stripeEventId", null=True)
    created_at = UnicodeAttribute(attr_name="createdAt")

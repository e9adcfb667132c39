"""DynamoDB items of the ledger. The tables themselves are defined once, in template.yaml."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from wallet.settings import tables

# Fail fast inside a Lambda's time limit; botocore retries throttling and 5xx with back-off.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5


class _Meta:
    connect_timeout_seconds = CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds = READ_TIMEOUT_SECONDS


class CreditBalance(Model):
    class Meta(_Meta):
        table_name = tables().balance_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    balance = NumberAttribute(default=0)
    currency = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt", null=True)


class CreditTransaction(Model):
    class Meta(_Meta):
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

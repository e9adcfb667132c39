"""DynamoDB items of the ledger. The tables themselves are defined once, in template.yaml."""

from __future__ import annotations

import contextlib
from functools import cache

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import Connection, TableConnection
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
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


class LedgerModel(Model):
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


# pynamodb declares Index.__init_subclass__ without types.
class BalancesByCustomer(GlobalSecondaryIndex["CreditBalance"]):  # type: ignore[no-untyped-call]
    """Sparse: only users with a Stripe Customer, so a saved card's event finds its user in one query."""

    class Meta:
        index_name = "byStripeCustomer"
        projection = KeysOnlyProjection()

    stripe_customer_id = UnicodeAttribute(hash_key=True, attr_name="stripeCustomerId")


class CreditBalance(LedgerModel):
    class Meta:
        table_name = tables().balance_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    # Available: what may be spent now. The user's balance is this plus `held`.
    balance = NumberAttribute(default=0)
    # The sum of the user's active holds (wallet.holds); absent on items written before holds: 0.
    held = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt", null=True)
    # A hot account (wallet.hot_accounts): its spends are spread over this many sub-balances, from the
    # moment (Unix seconds) it was made hot; set once, never changed or removed.
    shards = NumberAttribute(null=True)
    sharded_at = NumberAttribute(attr_name="shardedAt", null=True)
    # Deposits not yet folded into the account's grants (wallet.projection): a deposit's id is its payment
    # id, made when the payment was, so it may commit long after rows with later ids; this set, written in
    # the deposit's own transaction, is how the projection meets it exactly once.
    new_grants = UnicodeSetAttribute(attr_name="newGrants", null=True)
    # How many times the balance changed (absent before it was counted): every balance write adds 1 in
    # its own update, so an expiry can condition on the account not having changed since it read it.
    changes = NumberAttribute(null=True)
    # Set once the account has had a grant that expires: the balance page then reads its grants.
    grants_expire = BooleanAttribute(attr_name="grantsExpire", null=True)

    # The backend's low balance threshold for this user (wallet.alerts), in credits; absent: the default.
    low_balance_threshold = NumberAttribute(attr_name="lowBalanceThreshold", null=True)
    # The user's own low balance email (wallet.email_alerts): its threshold in credits and the address
    # their token carried when they turned it on; both absent: off.
    email_alert_threshold = NumberAttribute(attr_name="emailAlertThreshold", null=True)
    email_alert_address = UnicodeAttribute(attr_name="emailAlertAddress", null=True)

    # Auto top-up, opt-in: the settings, the saved card, and where the current dip stands.
    stripe_customer_id = UnicodeAttribute(attr_name="stripeCustomerId", null=True)
    payment_method_id = UnicodeAttribute(attr_name="paymentMethodId", null=True)
    card_brand = UnicodeAttribute(attr_name="cardBrand", null=True)
    card_last4 = UnicodeAttribute(attr_name="cardLast4", null=True)
    card_exp_month = NumberAttribute(attr_name="cardExpMonth", null=True)
    card_exp_year = NumberAttribute(attr_name="cardExpYear", null=True)
    # Cards replaced by a newer one, still attached at Stripe until the trigger detaches them.
    cards_to_detach = UnicodeSetAttribute(attr_name="cardsToDetach", null=True)
    # When the last card was removed or replaced (Unix seconds), and every card removed or replaced: an
    # older `payment_method.attached`, or one of such a card, never saves it again.
    card_removed_at = NumberAttribute(attr_name="cardRemovedAt", null=True)
    removed_cards = UnicodeSetAttribute(attr_name="cardsRemoved", null=True)
    auto_top_up = BooleanAttribute(attr_name="autoTopUp", null=True)
    auto_top_up_threshold = NumberAttribute(attr_name="autoTopUpThreshold", null=True)
    # A pack's price in minor units.
    auto_top_up_amount = NumberAttribute(attr_name="autoTopUpAmount", null=True)
    auto_top_up_status = UnicodeAttribute(attr_name="autoTopUpStatus", null=True)
    auto_top_up_reason = UnicodeAttribute(attr_name="autoTopUpReason", null=True)
    # The dip being refilled: its payment id, claimed once by a conditional update, so a burst of changes
    # makes one charge; and its PaymentIntent once Stripe made it. Both go when its deposit lands.
    auto_top_up_episode = UnicodeAttribute(attr_name="autoTopUpEpisode", null=True)
    auto_top_up_intent = UnicodeAttribute(attr_name="autoTopUpIntent", null=True)
    auto_top_up_episode_amount = NumberAttribute(attr_name="autoTopUpEpisodeAmount", null=True)
    # When each charge Stripe made in the last 24 hours was made (Unix seconds): the sliding daily limit.
    auto_top_up_charges = ListAttribute[float](
        of=NumberAttribute,  # type: ignore[arg-type]  # pynamodb types `of` as the element's value type
        attr_name="autoTopUpCharges",
        null=True,
    )
    # While paused at the daily limit: when the oldest of those charges leaves the 24 hours (Unix seconds).
    auto_top_up_resumes_at = NumberAttribute(attr_name="autoTopUpResumesAt", null=True)
    # Written before the sliding daily limit: charges counted since a window's start. Read only by
    # wallet.migrate, which turns them into `autoTopUpCharges`.
    auto_top_up_count = NumberAttribute(attr_name="autoTopUpCount", null=True)
    auto_top_up_window = NumberAttribute(attr_name="autoTopUpWindow", null=True)

    balances_by_customer = BalancesByCustomer()


# pynamodb declares Index.__init_subclass__ without types.
class DepositsByPaymentIntent(GlobalSecondaryIndex["CreditTransaction"]):  # type: ignore[no-untyped-call]
    """Sparse: only deposits carry a PaymentIntent, so the deposit behind a charge is one query away."""

    class Meta:
        index_name = "byPaymentIntent"
        projection = IncludeProjection(["type", "amount", "amountPaid"])

    stripe_payment_intent_id = UnicodeAttribute(hash_key=True, attr_name="stripePaymentIntentId")


# pynamodb declares Index.__init_subclass__ without types.
class DepositsBySession(GlobalSecondaryIndex["CreditTransaction"]):  # type: ignore[no-untyped-call]
    """Sparse: only Checkout deposits carry a session, so the success page's return is one query away."""

    class Meta:
        index_name = "bySession"
        projection = IncludeProjection(["amount"])

    stripe_session_id = UnicodeAttribute(hash_key=True, attr_name="stripeSessionId")


class CreditTransaction(LedgerModel):
    """One row per balance change, never updated: `balance == sum(amount)` over a user's rows."""

    class Meta:
        table_name = tables().transaction_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    # A ULID, so the sort order is the time order; a deposit's id is its paymentId.
    transaction_id = UnicodeAttribute(range_key=True, attr_name="transactionId")
    type = UnicodeAttribute()
    # Signed: a deposit or a won dispute adds, a spend, refund or dispute takes; an adjustment either.
    amount = NumberAttribute()
    source = UnicodeAttribute()
    # A deposit's own payment; for a refund or a dispute, the deposit it takes back from.
    payment_id = UnicodeAttribute(attr_name="paymentId", null=True)
    stripe_session_id = UnicodeAttribute(attr_name="stripeSessionId", null=True)
    stripe_payment_intent_id = UnicodeAttribute(attr_name="stripePaymentIntentId", null=True)
    stripe_event_id = UnicodeAttribute(attr_name="stripeEventId", null=True)
    # A Checkout deposit's paid invoice (InvoicesEnabled); absent on deposits made without one.
    stripe_invoice_id = UnicodeAttribute(attr_name="stripeInvoiceId", null=True)
    # A deposit's price in minor units, so a dispute takes its share without asking Stripe.
    amount_paid = NumberAttribute(attr_name="amountPaid", null=True)
    # The tax inside `amountPaid` (Stripe Tax), so a grant's cost basis is what its credits cost net of
    # tax; absent where no tax was collected, and on deposits made before it was kept.
    amount_tax = NumberAttribute(attr_name="amountTax", null=True)
    description = UnicodeAttribute(null=True)
    # Who made the change: a service's or an operator's IAM ARN.
    actor = UnicodeAttribute(null=True)
    # A hold's rows (its `hold`, its capture's `spend`, its release or expiry): the hold and what it held.
    hold_id = UnicodeAttribute(attr_name="holdId", null=True)
    reserved = NumberAttribute(null=True)
    # A grant's expiry (Unix seconds): a `grant` row's, or a deposit's when paid credits expire.
    grant_expires_at = NumberAttribute(attr_name="grantExpiresAt", null=True)
    # An `expired` row's grant (the transaction id of the row that made it).
    grant_id = UnicodeAttribute(attr_name="grantId", null=True)
    created_at = UnicodeAttribute(attr_name="createdAt")

    deposits_by_payment_intent = DepositsByPaymentIntent()
    deposits_by_session = DepositsBySession()


# pynamodb declares Index.__init_subclass__ without types.
class ActiveHolds(GlobalSecondaryIndex["CreditGuard"]):  # type: ignore[no-untyped-call]
    """Sparse: only active holds carry `expiryBucket` (their expiry minute and a shard), so the expiry
    sweep reads one minute's holds in a few queries and never a settled one."""

    class Meta:
        index_name = "activeHolds"
        projection = KeysOnlyProjection()

    expiry_bucket = UnicodeAttribute(hash_key=True, attr_name="expiryBucket")
    hold_expires_at = NumberAttribute(range_key=True, attr_name="holdExpiresAt")


# pynamodb declares Index.__init_subclass__ without types.
class GrantsDue(GlobalSecondaryIndex["CreditGuard"]):  # type: ignore[no-untyped-call]
    """Sparse: only an account's `grants` item with a grant that has credits left carries `grantsBucket`
    (the day of its soonest expiry, or of its last indexing if later, and a shard), so the grants' sweep
    reads a day's accounts in a few queries (wallet.grants_due)."""

    class Meta:
        index_name = "grantsDue"
        projection = KeysOnlyProjection()

    grants_bucket = UnicodeAttribute(hash_key=True, attr_name="grantsBucket")
    grants_next_expiry = NumberAttribute(range_key=True, attr_name="grantsNextExpiry")


class CreditGuard(LedgerModel):
    """The exactly-once guard of a balance change whose row id cannot be its cause, written in the same
    transaction as the row: `key#<caller>#<Idempotency-Key>` holds a service call's first answer;
    `payment#<id>` holds what refunds and disputes have done to a payment so far; `hold#<id>` is a hold
    (wallet.holds) and its state: active until captured, released or expired, once; `rate#<kind>` counts a
    user's requests of a kind this hour."""

    class Meta:
        table_name = tables().guard_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    guard_id = UnicodeAttribute(range_key=True, attr_name="guardId")
    # Idempotency keys: a fingerprint of the first request, and the row it made.
    fingerprint = UnicodeAttribute(null=True)
    transaction_id = UnicodeAttribute(attr_name="transactionId", null=True)
    amount = NumberAttribute(null=True)
    # Payments: their refunds and disputes as Stripe last told (wallet.payment_state, as JSON), the
    # credits the ledger has taken back for them, and a version that moves with every change.
    state = UnicodeAttribute(null=True)
    taken = NumberAttribute(null=True)
    version = NumberAttribute(null=True)
    # Guards written before refunds and disputes were kept per id: credits refunded and disputed.
    refunded = NumberAttribute(null=True)
    disputed = NumberAttribute(null=True)
    # Holds: the amount held is `amount`, `state` is active, captured, released or expired.
    captured = NumberAttribute(null=True)
    description = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    hold_expires_at = NumberAttribute(attr_name="holdExpiresAt", null=True)
    expiry_bucket = UnicodeAttribute(attr_name="expiryBucket", null=True)
    created_at = UnicodeAttribute(attr_name="createdAt", null=True)
    expires_at = TTLAttribute(attr_name="expiresAt", null=True)
    # A user's hourly count of one kind of request (`rate#<kind>`, wallet.rate_limits), in names no other
    # item uses, so the role that counts can write nothing else.
    requests = NumberAttribute(null=True)
    requests_hour = UnicodeAttribute(attr_name="requestsHour", null=True)
    # A dispute notice (`notice#<dispute>#<status>`): who claimed it, when, and when it was published.
    notice_claim = UnicodeAttribute(attr_name="noticeClaim", null=True)
    notice_claimed_at = NumberAttribute(attr_name="noticeClaimedAt", null=True)
    notice_sent_at = NumberAttribute(attr_name="noticeSentAt", null=True)
    # Which payment the dispute takes from and by when it must be answered (Unix seconds; 0: no answer
    # allowed), for the wallet's `dispute.needs_response` event (wallet.wallet_events).
    notice_payment_id = UnicodeAttribute(attr_name="noticePaymentId", null=True)
    notice_due_by = NumberAttribute(attr_name="noticeDueBy", null=True)
    # The sign-up grant (`signup`): when it was given, in a name no other item uses, so the role that
    # gives it can write nothing else of a guard.
    signed_up_at = UnicodeAttribute(attr_name="signedUpAt", null=True)
    # The grants' projection (`grants`, wallet.projection): its account's soonest expiry (Unix seconds)
    # and the index bucket it is found in (wallet.grants_due).
    grants_bucket = UnicodeAttribute(attr_name="grantsBucket", null=True)
    grants_next_expiry = NumberAttribute(attr_name="grantsNextExpiry", null=True)

    active_holds = ActiveHolds()
    grants_due = GrantsDue()

"""What the sweep remembers between runs, in the guard table under the reserved key `#sweep` (a user id
is a JWT `sub` or a service's path parameter, never `#`-prefixed), so its role can be granted exactly
those items (`dynamodb:LeadingKeys`):

- `checkpoint`: the last event of Stripe's log the sweep acted on, and when Stripe made it;
- `walk#back`: on the first run, how far back the walk to the oldest event has gone;
- `failed#<event id>`: an event whose replay failed, retried by every run until it succeeds or Stripe
  forgets it (30 days, when the row expires too);
- `holds#checkpoint`: the last minute whose expiring holds the minute's hold sweep has all settled
  (wallet.holds).
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import TableConnection

from wallet.models import CreditGuard, LedgerModel
from wallet.settings import tables

SWEEP_KEY = "#sweep"
CHECKPOINT = "checkpoint"
WALK_BACK = "walk#back"
FAILED = "failed#"


class SweepRecord(LedgerModel):
    class Meta:
        table_name = tables().guard_table

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId", default=SWEEP_KEY)
    guard_id = UnicodeAttribute(range_key=True, attr_name="guardId")
    event_id = UnicodeAttribute(attr_name="eventId", null=True)
    event_created = NumberAttribute(attr_name="eventCreated", null=True)
    event_type = UnicodeAttribute(attr_name="eventType", null=True)
    # The failure's kind (an exception class name): never a message, which could carry data.
    reason = UnicodeAttribute(null=True)
    attempts = NumberAttribute(null=True)
    # The holds' checkpoint: a minute, as Unix seconds // 60.
    swept_minute = NumberAttribute(attr_name="sweptMinute", null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt", null=True)
    expires_at = TTLAttribute(attr_name="expiresAt", null=True)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        # The shared connection keeps the first schema it is given per table: the guard table's must be
        # CreditGuard's, with its index of active holds, whichever of the two is used first.
        CreditGuard._get_connection()
        return super()._get_connection()

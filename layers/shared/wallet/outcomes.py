"""What acting on a Stripe event came to: one vocabulary for the webhook, the success page and the sweep."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    AWAITING_PAYMENT = "awaiting_payment"
    """Not paid yet: a delayed payment method is still settling, or the customer has not paid."""
    REJECTED = "rejected"
    """Not something this deployment can act on, and a retry cannot fix it: a person must look. A paid
    session or payment that does not add up, or a refund or dispute whose amounts or currency do not."""
    NOT_CREDITED = "not_credited"
    """The payment failed or the session expired: nothing to credit."""
    IGNORED = "ignored"
    """An event type the product does not act on, or a status it deliberately leaves alone."""
    UNKNOWN_STATUS = "unknown_status"
    """A refund or dispute in a status the pinned API version does not list: nothing changed, logged with
    its value, counted and alarmed (Stripe added a status this code does not know yet)."""
    CLAWED_BACK = "clawed_back"
    """A refund or dispute took back credits."""
    RESTORED = "restored"
    """Credits came back: a dispute won, an inquiry closed, a refund that failed."""
    NOTHING_MORE = "nothing_more"
    """A refund or dispute the ledger already reflects: repeated, stale, or settled."""
    NOT_OURS = "not_ours"
    """A refund or dispute of a charge with no deposit here: another integration's, or one this
    deployment rejected and so never credited."""
    AUTO_TOP_UP_FAILED = "auto_top_up_failed"
    """An auto top-up's payment failed or needs the customer: auto top-up is off with a reason."""
    CARD_SAVED = "card_saved"
    """A card attached to one of our customers is now the user's saved card."""
    CARD_GONE = "card_gone"
    """The user's saved card was detached at Stripe (not by this product): forgotten, and auto top-up is
    off with a reason."""


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    session_id: str | None = None
    user_id: str | None = None
    payment_id: str | None = None
    credits: int | None = None
    reason: str | None = None
    row_type: str | None = None
    """The ledger row the event wrote, if any (`deposit`, `refund`, `inquiry`, `dispute`, ...)."""
    needs_response: bool = False
    """This delivery gave the notice that a dispute stage needs the merchant's answer (once per stage)."""

    @property
    def credited(self) -> bool:
        return self.result in (Result.CREDITED, Result.ALREADY_CREDITED)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    event_id: str
    event_type: str
    outcome: Outcome

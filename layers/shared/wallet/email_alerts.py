"""A user's own low balance email: off by default; when on, one email through Amazon SES each time the
balance dips below the user's threshold, to the address the user's token carried when they turned it on.

The setting lives on the balance item (`emailAlertThreshold`, `emailAlertAddress`), so the balance
stream's images carry it beside the balance; the wallet events function, the stream's second reader,
sends the email (no third reader). A dip begins with the one committed change that takes what may be
spent from at or above the threshold to below it, as `balance.low` does (wallet.wallet_events). Sending
is a side effect a redelivered record would repeat, so each dip has its own guard: `mail#<record>` on the
guard table, claimed by a conditional put before the email is sent and marked sent after, as dispute
notices are (wallet.once): a claim left by a crash is taken over after CLAIM_SECONDS, so an
email may be sent twice after a crash, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.expressions.update import Action

from wallet.amounts import spelled
from wallet.errors import InvalidAmountError, LedgerUnavailableError, NoVerifiedEmailError
from wallet.models import CreditBalance, CreditGuard
from wallet.once import act_once

MIN_THRESHOLD = 1
MAX_THRESHOLD = 100_000_000
# Long past the stream's 24 hours of redeliveries.
KEPT = timedelta(days=7)

Send = Callable[[str, str, str], None]
"""(to, subject, text) -> None, raising when the email was not accepted."""


class MailUnavailableError(LedgerUnavailableError):
    """The email could not be sent: the record is delivered again."""


@dataclass(frozen=True)
class EmailAlert:
    enabled: bool
    threshold: int | None
    email: str | None


def view(user_id: str) -> EmailAlert:
    try:
        item = CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return EmailAlert(False, None, None)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not read the email alert") from exc
    threshold = item.email_alert_threshold
    return EmailAlert(
        threshold is not None, None if threshold is None else int(threshold), item.email_alert_address
    )


def configure(user_id: str, *, enabled: object, threshold: object, email: str | None) -> EmailAlert:
    """Turn the email on at `threshold` credits, to `email`, or off. A bad value raises before anything
    is written: InvalidAmountError for the threshold, NoVerifiedEmailError without an address."""
    if not isinstance(enabled, bool):
        raise InvalidAmountError(f"enabled must be true or false, not {enabled!r}"[:120])
    actions: list[Action]
    if not enabled:
        actions = [CreditBalance.email_alert_threshold.remove(), CreditBalance.email_alert_address.remove()]
        saved = EmailAlert(False, None, None)
    else:
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise InvalidAmountError(_refusal(threshold))
        if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
            raise InvalidAmountError(_refusal(threshold))
        if not email:
            raise NoVerifiedEmailError("your sign-in carries no verified email address to send to")
        actions = [
            CreditBalance.email_alert_threshold.set(threshold),
            CreditBalance.email_alert_address.set(email),
        ]
        saved = EmailAlert(True, threshold, email)
    try:
        CreditBalance(user_id).update(actions=actions)
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the ledger could not save the email alert") from exc
    return saved


def _refusal(threshold: object) -> str:
    bounds = f"from {MIN_THRESHOLD} to {MAX_THRESHOLD}"
    return f"threshold must be a whole number of credits {bounds}, not {spelled(threshold)}"


def dips(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> int | None:
    """The threshold this change dipped below, when it began a dip of the user's email alert; else None."""
    if not old or not new or "#" in str(new["userId"]) or new.get("shards") is not None:
        return None
    threshold, address = new.get("emailAlertThreshold"), new.get("emailAlertAddress")
    if threshold is None or not address:
        return None
    before_threshold = old.get("emailAlertThreshold")
    was_low = before_threshold is not None and int(old.get("balance", 0)) < int(before_threshold)
    return int(threshold) if not was_low and int(new.get("balance", 0)) < int(threshold) else None


def message(available: int, threshold: int, site_url: str) -> tuple[str, str]:
    page = f"{site_url}/dashboard/credits/"
    subject = f"Your credit balance is low: {available:,} credits"
    text = (
        f"Your balance is {available:,} credits, below the {threshold:,} you asked us to tell you about.\n\n"
        f"To top up, buy a pack on your credits page: {page}\n"
        f"To stop these emails, or change the amount, use the low balance email form on the same page.\n"
    )
    return subject, text


def notify_once(user_id: str, dip: str, to: str, subject: str, text: str, send: Send) -> bool:
    """Send the dip's email unless another delivery did (or is doing it now): True when this one sent it."""
    guard = CreditGuard(
        user_id,
        f"mail#{dip}",
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        expires_at=datetime.now(UTC) + KEPT,
    )

    def mail() -> None:
        try:
            send(to, subject, text)
        except Exception as exc:  # any failure to send: the claim is given back, the redelivery sends it
            raise MailUnavailableError("the low balance email could not be sent") from exc

    return act_once(guard, mail, "the ledger could not claim the email")

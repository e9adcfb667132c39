"""The domain's errors. Kept apart from the modules that raise them so that any function can map them
to HTTP without importing Stripe or DynamoDB code."""

from __future__ import annotations

from datetime import date


class InvalidAmountError(ValueError):
    """An amount that is not a positive whole number of minor units, or not one of the packs."""


class InvalidPageError(ValueError):
    """A page size outside 1..100, or a cursor the API did not issue."""


class LedgerUnavailableError(RuntimeError):
    """DynamoDB failed; nothing was written and the caller may try again."""


class LedgerBusyError(LedgerUnavailableError):
    """Concurrent transactions on the same items kept cancelling this one (TransactionConflict); nothing
    was written."""


class PaymentsUnavailableError(RuntimeError):
    """Stripe could not be reached or refused the request; the user may try again."""


class CheckoutSessionNotFoundError(LookupError):
    """No Checkout Session with that id exists for this user."""


class InvalidEventError(ValueError):
    """A webhook body that is not a Stripe event signed with this endpoint's secret."""


class InsufficientCreditsError(ValueError):
    """A spend or a hold larger than the available balance (the balance less its active holds); nothing
    was taken."""

    def __init__(self, available: int, held: int = 0) -> None:
        what = "balance" if not held else f"available balance (the balance less {held} held)"
        super().__init__(f"The {what} of {available} does not cover this.")
        self.balance = available + held
        self.available = available


class HoldNotFoundError(LookupError):
    """No hold with that id exists for this user."""


class HoldNotActiveError(ValueError):
    """A capture or release of a hold already settled: captured, released or expired. `hold` describes it
    as the API answers it."""

    def __init__(self, state: str, hold: dict[str, object]) -> None:
        super().__init__(f"This hold is {state}; it cannot be settled again.")
        self.state = state
        self.hold = hold


class IdempotencyKeyReusedError(ValueError):
    """An Idempotency-Key already used for a different request of the same user."""


class DepositNotRecordedError(RuntimeError):
    """A refund of one of our payments whose deposit is not recorded yet: a later delivery applies it."""


class TooManyLookupsError(RuntimeError):
    """A user asked Stripe about more uncredited Checkout Sessions this hour than a person returning
    from Checkout ever would."""


class PaymentDeclinedError(RuntimeError):
    """An off-session payment that cannot succeed as it is: the card refused it (`decline_code` says why),
    its bank wants the customer to confirm it, or the card or customer is gone at Stripe."""

    def __init__(self, code: str, decline_code: str | None = None) -> None:
        super().__init__(f"the payment was refused: {code}" + (f" ({decline_code})" if decline_code else ""))
        self.code = code
        self.decline_code = decline_code


class PaymentAttemptFailedError(PaymentsUnavailableError):
    """An off-session payment that failed for a passing reason (Stripe busy or unreachable, the card
    network's processing error): the same charge may be tried again. `answered` when Stripe said this
    attempt failed, so the next one is a new request; otherwise its outcome is unknown and the next must
    repeat it (the same idempotency key)."""

    def __init__(self, code: str, *, answered: bool) -> None:
        super().__init__(f"the payment attempt failed: {code}")
        self.code = code
        self.answered = answered


class NoPaymentMethodError(ValueError):
    """Auto top-up asked for without a saved card to charge."""


class TooManyCheckoutsError(RuntimeError):
    """One user opened more checkouts this hour than `rate_limits.CHECKOUTS_PER_HOUR`."""


class TooManyCardSetupsError(RuntimeError):
    """One user opened more card setups this hour than `rate_limits.CARD_SETUPS_PER_HOUR`."""


class ShardsAlreadySetError(ValueError):
    """An account already hot with another number of sub-balances: the number never changes, as an
    Idempotency-Key's sub-balance is chosen by it."""

    def __init__(self, shards: int) -> None:
        super().__init__(f"This account already spreads its spends over {shards} sub-balances.")
        self.shards = shards


class InvalidShardsError(ValueError):
    """A number of sub-balances outside the bounds a hot account takes."""


class InvalidRangeError(ValueError):
    """An export's date range that is not two dates, in order, within the bounds."""


class InvalidPeriodError(ValueError):
    """A report's period that is not a month (YYYY-MM), or a month not yet begun."""


class ExportTooLargeError(ValueError):
    """An export whose CSV would not fit in one response: a shorter range does."""

    def __init__(self, limit: int, fits_through: date | None) -> None:
        self.limit = limit
        self.fits_through = fits_through
        through = f"; the days up to {fits_through} fit" if fits_through else ""
        super().__init__(
            f"The export is larger than {limit / 1_000_000:g} MB, the most one answer holds: "
            f"export a shorter range{through}."
        )


class DepositNotFoundError(LookupError):
    """No deposit of this id for the signed-in user (another user's is answered the same)."""


class TooManyReceiptsError(RuntimeError):
    """A user asked Stripe for more receipts and invoices this hour than a person would."""


class EmailAlertsOffError(ValueError):
    """The stack sends no email: no verified sender was deployed (AlertSenderEmail)."""


class NoVerifiedEmailError(ValueError):
    """The user's token carries no verified email address to send to."""


class InvalidExpiryError(ValueError):
    """A grant's expiry that is not a time with its zone, is not in the future, or lies past the bound."""

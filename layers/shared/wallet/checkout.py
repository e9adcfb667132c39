"""Buying a pack: open a Checkout Session for it, and, back from Checkout, see it through to credits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wallet import payments, settings
from wallet.amounts import spelled
from wallet.errors import CheckoutSessionNotFoundError, InvalidAmountError
from wallet.payments import NewCheckout

if TYPE_CHECKING:
    from wallet.outcomes import Result

SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")


@dataclass(frozen=True, slots=True)
class CheckoutStatus:
    status: str | None
    payment_status: str | None
    credited: bool
    credits: int | None
    result: Result


def start_checkout(
    user_id: str, amount: object, *, save_card: bool = False, currency: object = None
) -> NewCheckout:
    """A Checkout Session for the pack priced `amount`, or for an amount the customer chose within the
    price list's bounds; the price list is the only source of prices. `currency`, when sent, must be the
    price list's. `save_card` keeps the card for auto top-up, on the user's one Stripe Customer."""
    prices = settings.price_list()
    if currency is not None and currency != prices.currency:
        raise InvalidAmountError(
            f"currency must be {prices.currency}, the price list's, not {spelled(currency)}"
        )
    pack = prices.offer(amount)
    if pack is None:
        raise InvalidAmountError(prices.refusal(amount))
    # Imported here: the count is the only DynamoDB call of a plain checkout, made on the route, not at init.
    from wallet import rate_limits
    from wallet.errors import TooManyCheckoutsError

    rate_limits.count(user_id, "checkouts", rate_limits.CHECKOUTS_PER_HOUR, TooManyCheckoutsError)
    customer = None
    if save_card:
        # Imported here: a plain checkout needs no DynamoDB, and its cold start skips pynamodb.
        from wallet.auto_top_up import customer_of

        customer = customer_of(user_id, payments.create_customer)
    return payments.create_checkout_session(
        user_id,
        pack,
        prices.currency,
        settings.site_url(),
        save_card_for=customer,
        terms=settings.checkout_terms(),
    )


def complete_checkout(user_id: str, session_id: str) -> CheckoutStatus:
    """Where a user's Checkout Session stands, crediting it now if it is paid and the webhook is late."""
    if not SESSION_ID.fullmatch(session_id):
        raise CheckoutSessionNotFoundError(session_id)
    # Imported here: opening a session (POST) needs no DynamoDB, and its cold start skips pynamodb.
    from wallet import session_lookups
    from wallet.fulfilment import fulfil
    from wallet.outcomes import Result

    # Credited already: the ledger knows, Stripe need not be asked.
    credited = session_lookups.credited_session(session_id)
    if credited is not None:
        if credited.user_id != user_id:
            raise CheckoutSessionNotFoundError(session_id)
        return CheckoutStatus("complete", "paid", True, credited.credits, Result.ALREADY_CREDITED)
    session_lookups.count_stripe_lookup(user_id)
    session = payments.retrieve_checkout_session(session_id)
    # Another user's session is answered exactly like one that does not exist.
    if session.metadata.get("userId") != user_id:
        raise CheckoutSessionNotFoundError(session_id)
    outcome = fulfil(session)
    credits = session.metadata.get("amount", "")
    return CheckoutStatus(
        status=session.status,
        payment_status=session.payment_status,
        credited=outcome.credited,
        credits=int(credits) if credits.isascii() and credits.isdigit() else None,
        result=outcome.result,
    )

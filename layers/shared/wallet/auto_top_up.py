"""Auto top-up: a saved card refills the balance when a committed change leaves it below the user's
threshold, once per dip, at most a few times a day, and only for users who turned it on.

The state lives on the user's `CreditBalance` item. A dip (an "episode") is claimed by one conditional
update that sets its payment id, so a burst of changes, or a change seen twice, makes one claim; the
Stripe idempotency key is derived from it, so a retry after a crash makes the same one charge. The
episode ends when its deposit lands (or the payment fails). Nothing here knows of Lambda or HTTP.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, UpdateError
from ulid import ULID

from wallet import settings
from wallet.amounts import MAX_AMOUNT, spelled
from wallet.errors import (
    InvalidAmountError,
    LedgerUnavailableError,
    NoPaymentMethodError,
    PaymentAttemptFailedError,
    PaymentDeclinedError,
)
from wallet.models import CreditBalance

# The settings and card routes load none of these: only a charge, a credit or a failed payment does
# (each where it is made), so the Stripe SDK and the ledger are not part of every init.
if TYPE_CHECKING:
    from wallet.ledger import Credit
    from wallet.payments import ChargeFailure, OffSessionCharge, PaymentIntent, SavedCard

SOURCE = "auto_top_up"
WINDOW_SECONDS = 24 * 60 * 60
MIN_THRESHOLD = 1
"""The lowest threshold: 1 credit, "when the balance runs out"; 0 would never be crossed by a spend."""
MAX_THRESHOLD = MAX_AMOUNT
"""The highest threshold a user may set: the one bound on amounts; the pack chosen bounds it further
(at most its credits, see `configure`)."""

Charge = Callable[["OffSessionCharge"], str]


class Status(StrEnum):
    OFF = "off"
    ON = "on"
    FAILED = "failed"
    LIMIT_REACHED = "limit_reached"


class Decision(StrEnum):
    """What the trigger did with one committed change."""

    NOT_ENABLED = "not_enabled"
    ABOVE_THRESHOLD = "above_threshold"
    IN_PROGRESS = "in_progress"
    """This dip's charge is already made (or being made by another delivery): nothing more."""
    CHARGED = "charged"
    DECLINED = "declined"
    """A final failure: the card refused, needs its holder, or is gone; it is off with the reason."""
    GAVE_UP = "gave_up"
    """A passing failure, still there after ATTEMPTS tries: it is off with the reason."""
    LIMIT_REACHED = "limit_reached"
    """The daily limit was reached now: paused until the oldest charge of the 24 hours leaves them."""
    PAUSED = "paused"
    """Still paused at the daily limit: nothing written, nothing charged."""


# What a bank's decline_code means, in words the page shows; any other is spelt out from its code.
DECLINE_CAUSES = {
    "insufficient_funds": "it has insufficient funds",
    "lost_card": "it was reported lost",
    "stolen_card": "it was reported stolen",
    "expired_card": "it has expired",
    "do_not_honor": "the bank refused it without saying why",
    "generic_decline": "the bank refused it without saying why",
    "fraudulent": "the bank suspects fraud",
    "card_velocity_exceeded": "it is over its spending limit",
    "withdrawal_count_limit_exceeded": "it is over its spending limit",
    "incorrect_cvc": "its security code was wrong",
    "pickup_card": "the bank asks for it back",
    "card_not_supported": "it does not support this kind of payment",
}
# Transient failures are tried this many times, backing off between (seconds), before it turns off;
# none starts after RETRY_BUDGET_SECONDS, so the last one ends inside the trigger's 60 s, however slow
# Stripe is (each attempt is up to 3 tries of 8 s in the SDK), and the record is consumed.
ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
RETRY_BUDGET_SECONDS = 30.0


def failure_reason(failure: ChargeFailure, card: Card | None, *, attempts: int = ATTEMPTS) -> str:
    """Why auto top-up turned off, for the page: the card, the cause, and what to do."""
    card_words = f"{(card.brand or 'card').upper()} ending {card.last4}" if card and card.last4 else "card"
    named, cause = f"Your {card_words}", failure.code.replace("_", " ")
    again = "Save another card, then turn auto top-up on again."
    if not failure.final:
        return (
            f"The automatic payment with your {card_words} failed "
            f"{'once' if attempts == 1 else f'{attempts} times'} for a passing reason "
            f"({cause}). Turn auto top-up on again to retry."
        )
    if failure.code == "authentication_required":
        return (
            f"{named}: the bank asked you to confirm the payment, which an automatic top-up cannot do. Buy "
            "credits once by hand with this card (or save another), then turn auto top-up on again."
        )
    if failure.code == "expired_card":
        return f"{named} has expired. {again}"
    if failure.code == "card_decline_rate_limit_exceeded":
        return (
            f"{named} was declined too many times in a row, so the bank blocks more tries for 24 hours. Wait "
            f"a day or save another card, then turn auto top-up on again."
        )
    if failure.code == "card_gone":
        return f"{named} is no longer on file with our payment provider (removed there). {again}"
    if failure.code == "customer_gone":
        return f"Your payment details are no longer on file with our payment provider. {again}"
    if failure.code == "card_declined" or failure.decline_code:
        code = failure.decline_code or "generic_decline"
        return f"{named} was declined: {DECLINE_CAUSES.get(code, code.replace('_', ' '))}. {again}"
    return f"The automatic payment with your {card_words} failed ({cause}). {again}"


def limit_reason(limit: int, resumes_at: int) -> str:
    # Rounded up to the minute: the time shown is never before the pause ends.
    until = datetime.fromtimestamp(math.ceil(resumes_at / 60) * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Auto top-up charged your card {limit} times in 24 hours, its daily limit, and is paused "
        f"until {until}. After that it tops up again the next time your balance changes, or at once when "
        "you save these settings."
    )


def paused_until(charges: list[float], now: float, limit: int) -> int | None:
    """When the daily limit lets the next charge be made, if it does not now: a sliding 24 hours of the
    charges Stripe made, so no run of charges, however it falls around a clock's day, passes `limit`."""
    recent = sorted(t for t in charges if now - t < WINDOW_SECONDS)
    if len(recent) < limit:
        return None
    return math.ceil(recent[-limit] + WINDOW_SECONDS)


@dataclass(frozen=True, slots=True)
class Card:
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True, slots=True)
class AutoTopUp:
    """What the user sees of their auto top-up."""

    enabled: bool
    threshold: int | None
    amount: int | None
    card: Card | None
    status: Status
    reason: str | None
    resumes_at: int | None = None
    """While paused at the daily limit: when it may charge again (Unix seconds)."""


@dataclass(frozen=True, slots=True)
class Credited:
    result: Credit
    user_id: str
    payment_id: str
    credits: int


def view(user_id: str, now: Callable[[], float] = time.time) -> AutoTopUp:
    """The user's auto top-up settings and saved card; all off for a user who never set it."""
    item = _read(user_id)
    return _view(item, now()) if item else AutoTopUp(False, None, None, None, Status.OFF, None)


def configure(
    user_id: str, *, enabled: bool, threshold: int, amount: int, now: Callable[[], float] = time.time
) -> AutoTopUp:
    """Turn auto top-up on or off with a threshold and a pack; on needs a saved card.

    One charge of the pack must end any dip, so the threshold may not be above the pack's credits: a
    balance below it is lifted to it or above by the one charge (see README, "Auto top-up"). Turning it on
    while the balance is already below the threshold is itself a committed change of the balance item,
    so the trigger sees it and tops up at once; while the daily limit still holds, it stays paused and
    says until when.
    """
    prices = settings.price_list()
    pack = prices.offer(amount)
    if pack is None:
        raise InvalidAmountError(prices.refusal(amount))
    # A spend never takes the balance below 0, so a threshold of 0 would be on and never refill.
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD
    ):
        raise InvalidAmountError(
            f"threshold must be a whole number of credits from {MIN_THRESHOLD} to "
            f"{min(MAX_THRESHOLD, pack.credits)} "
            f"for the {amount} pack, not {spelled(threshold)}"
        )
    if threshold > pack.credits:
        larger = [str(p.amount) for p in prices.packs if p.credits >= threshold]
        choose = f"a pack of {' or '.join(larger)}, or " if larger else ""
        raise InvalidAmountError(
            f"threshold {threshold} is above the {pack.credits} credits of the {amount} pack, so one charge "
            f"could not lift a balance above it: choose {choose}a threshold of at most {pack.credits}"
        )
    item = _read(user_id)
    paused = (
        paused_until(list(item.auto_top_up_charges or []), now(), settings.auto_top_up_daily_limit())
        if enabled and item is not None
        else None
    )
    actions: list[Any] = [
        CreditBalance.auto_top_up.set(enabled),
        CreditBalance.auto_top_up_threshold.set(threshold),
        CreditBalance.auto_top_up_amount.set(amount),
    ]
    if paused is None:
        actions += [
            CreditBalance.auto_top_up_status.set(Status.ON if enabled else Status.OFF),
            CreditBalance.auto_top_up_reason.remove(),
            CreditBalance.auto_top_up_resumes_at.remove(),
        ]
    else:
        limit = settings.auto_top_up_daily_limit()
        actions += [
            CreditBalance.auto_top_up_status.set(Status.LIMIT_REACHED),
            CreditBalance.auto_top_up_reason.set(limit_reason(limit, paused)),
            CreditBalance.auto_top_up_resumes_at.set(paused),
        ]
    # A dip in flight keeps its episode whatever is saved: only its own payment's end (a deposit or a
    # failure) ends it, so saving again never charges the same dip twice.
    # The card must still be there when the update lands, not only when it was read.
    condition = CreditBalance.payment_method_id.exists() if enabled else None
    try:
        CreditBalance(user_id).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _condition_failed(exc):
            raise NoPaymentMethodError("Save a card before turning auto top-up on.") from exc
        raise LedgerUnavailableError("the auto top-up settings could not be saved") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the auto top-up settings could not be saved") from exc
    return view(user_id, now)


def customer_of(user_id: str, create: Callable[[str], str]) -> str:
    """The user's one Stripe Customer, made with `create` on first need and remembered."""
    item = _read(user_id)
    if item is not None and item.stripe_customer_id:
        return item.stripe_customer_id
    customer_id = create(user_id)
    try:
        CreditBalance(user_id).update(
            actions=[CreditBalance.stripe_customer_id.set(CreditBalance.stripe_customer_id | customer_id)]
        )
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the Stripe customer could not be remembered") from exc
    item = _read(user_id)
    return item.stripe_customer_id if item and item.stripe_customer_id else customer_id


def save_card(card: SavedCard, created: int | None = None) -> str | None:
    """Remember a card attached to one of our customers as the user's saved card; the user, or None
    when the customer is not one of ours or the news is older than the user's last removal of a card
    (`created`: the event's). One index query, no Stripe call: a card it replaces is left for the
    trigger to detach (the webhook holds no key that may)."""
    if not card.customer_id or not card.payment_method_id:
        return None
    owners = _owners(card.customer_id)
    if not owners:
        return None
    user_id = owners[0]
    item = _read(user_id)
    if item is None or item.payment_method_id == card.payment_method_id:
        return user_id
    when = int(created if created is not None else time.time())
    actions: list[Any] = [
        CreditBalance.payment_method_id.set(card.payment_method_id),
        CreditBalance.card_brand.set(card.brand or "card"),
        CreditBalance.card_last4.set(card.last4 or ""),
        CreditBalance.card_exp_month.set(card.exp_month or 0),
        CreditBalance.card_exp_year.set(card.exp_year or 0),
    ]
    if item.payment_method_id:
        actions += [
            CreditBalance.cards_to_detach.add({item.payment_method_id}),
            CreditBalance.removed_cards.add({item.payment_method_id}),
            CreditBalance.card_removed_at.set(when),
        ]
    # Saved only if the card it replaces is still the one read, and no removal came after this news.
    unchanged = (
        CreditBalance.payment_method_id == item.payment_method_id
        if item.payment_method_id
        else CreditBalance.payment_method_id.does_not_exist()
    )
    # Seconds are coarse: news from the very second of a removal saves a card, unless it is one removed.
    newer = (CreditBalance.card_removed_at.does_not_exist() | (CreditBalance.card_removed_at <= when)) & ~(
        CreditBalance.removed_cards.contains(card.payment_method_id)
    )
    return user_id if _update(user_id, actions, unchanged & newer) else None


def card_detached(payment_method_id: str, customer_id: str | None, created: int | None) -> str | None:
    """A card detached at Stripe: if it is the user's saved card (detached elsewhere: the Dashboard,
    another integration), auto top-up turns off with a reason; a replaced card is simply done with.
    The user, or None when the card is none of ours or already forgotten."""
    if not customer_id or not payment_method_id:
        return None
    owners = _owners(customer_id)
    item = _read(owners[0]) if owners else None
    if item is None:
        return None
    if payment_method_id in (item.cards_to_detach or set()):
        _update(item.user_id, [CreditBalance.cards_to_detach.delete({payment_method_id})], None)
        return None
    if item.payment_method_id != payment_method_id:
        return None
    from wallet.payments import ChargeFailure

    reason = failure_reason(ChargeFailure("card_gone", None, final=True), _card(item))
    forgotten = _update(
        item.user_id,
        [
            *_forget_card_actions(),
            CreditBalance.removed_cards.add({payment_method_id}),
            CreditBalance.card_removed_at.set(int(created if created is not None else time.time())),
            CreditBalance.auto_top_up_status.set(Status.FAILED),
            CreditBalance.auto_top_up_reason.set(reason.replace("Save another card", "Save a card")),
        ],
        CreditBalance.payment_method_id == payment_method_id,
    )
    return item.user_id if forgotten else None


def detach_replaced_cards(user_id: str, detach: Callable[[str], None]) -> int:
    """Detach at Stripe the cards a newer one replaced, so Stripe keeps only the card the page shows;
    how many. One Stripe could not detach now stays listed for the next change of the balance item."""
    item = _read(user_id)
    if item is None:
        return 0
    done = 0
    for method in sorted(item.cards_to_detach or set()):
        if method != item.payment_method_id:  # else saved again since: it is the current card
            detach(method)
        _update(user_id, [CreditBalance.cards_to_detach.delete({method})], None)
        done += 1
    return done


def remove_card(user_id: str, detach: Callable[[str], None], now: Callable[[], float] = time.time) -> None:
    """Detach the saved card, and any it replaced still attached, at Stripe and forget them here; auto
    top-up turns off with it."""
    item = _read(user_id)
    if item is None or not (item.payment_method_id or item.cards_to_detach):
        return
    methods = ([item.payment_method_id] if item.payment_method_id else []) + sorted(
        item.cards_to_detach or set()
    )
    for method in methods:
        detach(method)
    try:
        CreditBalance(user_id).update(
            actions=[
                *_forget_card_actions(),
                CreditBalance.removed_cards.add(set(methods)),
                CreditBalance.cards_to_detach.remove(),
                CreditBalance.card_removed_at.set(int(now())),
                CreditBalance.auto_top_up_status.set(Status.OFF),
                CreditBalance.auto_top_up_reason.remove(),
            ]
        )
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the saved card could not be removed") from exc


def _owners(customer_id: str) -> list[str]:
    try:
        return [item.user_id for item in CreditBalance.balances_by_customer.query(customer_id, limit=1)]
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the owner of the card could not be found") from exc


def _forget_card_actions() -> list[Any]:
    return [
        CreditBalance.payment_method_id.remove(),
        CreditBalance.card_brand.remove(),
        CreditBalance.card_last4.remove(),
        CreditBalance.card_exp_month.remove(),
        CreditBalance.card_exp_year.remove(),
        CreditBalance.auto_top_up.set(False),
    ]


def may_need_top_up(item: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether a balance item, as a change left it (attribute names as stored), may need a top-up;
    False settles it without a read."""
    if item.get("autoTopUp") is not True:
        return False
    if item.get("autoTopUpIntent"):
        return False  # this dip's charge is made; its deposit ends it
    if item.get("autoTopUpEpisode"):
        return True  # claimed but maybe not charged: a crash between the two is resumed
    resumes_at = item.get("autoTopUpResumesAt")
    if resumes_at is not None and int(resumes_at) > (time.time() if now is None else now):
        return False  # paused at the daily limit, and saying until when
    # The stored balance is what may be spent now, active holds left out: a hold makes a dip as a spend does.
    # A hot account's sub-balances are never below zero, so a main item at or above the threshold settles
    # it; one below it is decided on the whole account (top_up_if_low reads the sub-balances).
    return int(item.get("balance") or 0) < int(item.get("autoTopUpThreshold") or 0)


def top_up_if_low(
    user_id: str,
    *,
    charge: Charge | None = None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Decision:
    """Charge the saved card once for this dip if what the account may spend (its main item and, when it
    is hot, its sub-balances) is below the threshold and it is on."""
    item = _read(user_id)
    if item is None or not item.auto_top_up or not item.payment_method_id or not item.stripe_customer_id:
        return Decision.NOT_ENABLED
    fresh = not item.auto_top_up_episode
    if item.auto_top_up_episode:
        if item.auto_top_up_intent:
            return Decision.IN_PROGRESS
        episode = item.auto_top_up_episode  # claimed, then the charge was lost: make it, same key
    else:
        from wallet import account

        # The whole account: a hot account's main item may be low while its sub-balances hold plenty.
        if account.spendable(user_id, item) >= int(item.auto_top_up_threshold or 0):
            return Decision.ABOVE_THRESHOLD
        claimed = _claim_episode(item, now())
        if isinstance(claimed, Decision):  # a StrEnum: test it before str
            return claimed
        episode = claimed
    # The pack the dip was claimed for: a retry of its charge is the same request, whatever was saved since.
    amount = int(item.auto_top_up_episode_amount or item.auto_top_up_amount or 0)
    pack = settings.price_list().offer(amount)
    if pack is None:
        _fail(user_id, episode, "Your auto top-up pack is no longer sold. Choose one and turn it on again.")
        return Decision.DECLINED
    if fresh and int(item.auto_top_up_threshold or 0) > pack.credits:
        # Saved before one charge had to end a dip: refuse to chain charges instead.
        _fail(
            user_id,
            episode,
            f"Your threshold is above the {pack.credits} credits of your pack, so one charge could not "
            "refill it. Choose a larger pack or a lower threshold, then turn auto top-up on again.",
        )
        return Decision.DECLINED
    from wallet import marker, payments
    from wallet.payments import ChargeFailure, OffSessionCharge

    make = charge or payments.charge_off_session
    request = OffSessionCharge(
        customer_id=item.stripe_customer_id,
        payment_method_id=item.payment_method_id,
        amount=pack.amount,
        currency=settings.price_list().currency,
        metadata={
            "userId": user_id,
            "paymentId": episode,
            "amount": str(pack.credits),
            "source": SOURCE,
            # The same mark a Checkout Session carries, so one rule decides what either credits.
            marker.METADATA_KEY: marker.mark(
                settings.fulfilment_keys()[0],
                user_id=user_id,
                payment_id=episode,
                credits=pack.credits,
                amount=pack.amount,
                currency=settings.price_list().currency,
            ),
        },
        idempotency_key=f"auto-top-up-{episode}",
    )
    answered = 0  # attempts Stripe answered as failed: each next one is a new request, with its own key
    started = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        key = request.idempotency_key + (f"-{answered}" if answered else "")
        try:
            intent_id = make(dataclasses.replace(request, idempotency_key=key))
        except PaymentDeclinedError as exc:
            failure = ChargeFailure(exc.code, exc.decline_code, final=True)
            _fail(user_id, episode, failure_reason(failure, _card(item)))
            return Decision.DECLINED
        except PaymentAttemptFailedError as exc:
            backoff = BACKOFF_SECONDS * 2 ** (attempt - 1)
            if attempt == ATTEMPTS or time.monotonic() - started + backoff > RETRY_BUDGET_SECONDS:
                failure = ChargeFailure(exc.code, None, final=False)
                _fail(user_id, episode, failure_reason(failure, _card(item), attempts=attempt))
                return Decision.GAVE_UP
            answered += exc.answered
            sleep(backoff)
            continue
        _record_charge(item, episode, intent_id, now())
        return Decision.CHARGED
    raise AssertionError("unreachable: the last attempt returns")


def _record_charge(item: CreditBalance, episode: str, intent_id: str, now: float) -> None:
    """The charge Stripe made, counted once in the daily limit's 24 hours with its PaymentIntent."""
    recent = [t for t in (item.auto_top_up_charges or []) if now - t < WINDOW_SECONDS]
    _update(
        item.user_id,
        [
            CreditBalance.auto_top_up_intent.set(intent_id),
            CreditBalance.auto_top_up_charges.set([*recent, int(now)]),
        ],
        (CreditBalance.auto_top_up_episode == episode) & CreditBalance.auto_top_up_intent.does_not_exist(),
    )


def _claim_episode(item: CreditBalance, now: float) -> str | Decision:
    """Claim this dip with one conditional update: its new payment id, or why there is none."""
    limit = settings.auto_top_up_daily_limit()
    unclaimed = CreditBalance.auto_top_up_episode.does_not_exist() & (CreditBalance.auto_top_up == True)  # noqa: E712 - a condition expression, not a comparison
    resumes_at = paused_until(list(item.auto_top_up_charges or []), now, limit)
    if resumes_at is not None:
        if item.auto_top_up_resumes_at is not None and int(item.auto_top_up_resumes_at) == resumes_at:
            return Decision.PAUSED  # already says so: writing again would only feed the stream
        paused = _update(
            item.user_id,
            [
                CreditBalance.auto_top_up_status.set(Status.LIMIT_REACHED),
                CreditBalance.auto_top_up_reason.set(limit_reason(limit, resumes_at)),
                CreditBalance.auto_top_up_resumes_at.set(resumes_at),
            ],
            unclaimed,
        )
        return Decision.LIMIT_REACHED if paused else Decision.IN_PROGRESS
    episode = str(ULID())
    claimed = _update(
        item.user_id,
        [
            CreditBalance.auto_top_up_episode.set(episode),
            CreditBalance.auto_top_up_episode_amount.set(int(item.auto_top_up_amount or 0)),
            CreditBalance.auto_top_up_status.set(Status.ON),
            CreditBalance.auto_top_up_reason.remove(),
            CreditBalance.auto_top_up_resumes_at.remove(),
        ],
        # The balance still as read (below the threshold): no ledger change since, each of which sets
        # `updatedAt` and reaches the trigger in turn. Not the balance itself: IAM's dynamodb:Attributes
        # covers names in conditions too, and this role must never be allowed to write the balance.
        unclaimed
        & (
            CreditBalance.updated_at == item.updated_at
            if item.updated_at
            else CreditBalance.updated_at.does_not_exist()
        ),
    )
    return episode if claimed else Decision.IN_PROGRESS


def credit(intent: PaymentIntent, event_id: str | None = None) -> Credited | str:
    """A succeeded auto top-up becomes a `deposit` through the exactly-once ledger, and its dip ends;
    a reason when the PaymentIntent is an auto top-up this deployment cannot credit."""
    from wallet import fulfilment, ledger

    rejected = fulfilment.payment_verdict(intent)
    if rejected:
        return rejected
    user_id, payment_id = intent.metadata["userId"], intent.metadata["paymentId"]
    credits = int(intent.metadata["amount"])
    result = ledger.add_credits(
        user_id,
        credits,
        source=SOURCE,
        payment_id=payment_id,
        currency=settings.price_list().currency,
        stripe_payment_intent_id=intent.id,
        stripe_event_id=event_id,
        amount_paid=intent.amount_received or intent.amount,
    )
    # After the deposit, so a crash between the two is finished by Stripe's next delivery.
    _update(
        user_id,
        [
            CreditBalance.auto_top_up_episode.remove(),
            CreditBalance.auto_top_up_episode_amount.remove(),
            CreditBalance.auto_top_up_intent.remove(),
        ],
        CreditBalance.auto_top_up_episode == payment_id,
    )
    return Credited(result, user_id, payment_id, credits)


def payment_failed(intent: PaymentIntent) -> str | None:
    """A finally failed or authentication-required auto top-up turns it off with a reason; the user, or
    None when it is not this deployment's current auto top-up or the failure may pass (the trigger
    tries again)."""
    user_id, payment_id = intent.metadata.get("userId", ""), intent.metadata.get("paymentId", "")
    if intent.metadata.get("source") != SOURCE or not user_id or not payment_id:
        return None
    from wallet import payments
    from wallet.payments import ChargeFailure

    if intent.status == "requires_action":
        failure = ChargeFailure("authentication_required", None, final=True)
    else:
        failure = payments.charge_failure(
            code=intent.failure_code or "card_declined",
            decline_code=intent.decline_code,
            # A failed payment's error is the card's unless it says otherwise.
            error_type=intent.failure_type or "card_error",
            status=None,
            param=None,
        )
    if not failure.final:
        return None
    item = _read(user_id)
    failed = _fail(user_id, payment_id, failure_reason(failure, _card(item) if item else None))
    return user_id if failed else None


def is_auto_top_up(intent: PaymentIntent) -> bool:
    return intent.metadata.get("source") == SOURCE


def _fail(user_id: str, episode: str, reason: str) -> bool:
    """Auto top-up off with a reason, ending this episode; False when the episode was already over."""
    return _update(
        user_id,
        [
            CreditBalance.auto_top_up.set(False),
            CreditBalance.auto_top_up_status.set(Status.FAILED),
            CreditBalance.auto_top_up_reason.set(reason),
            CreditBalance.auto_top_up_episode.remove(),
            CreditBalance.auto_top_up_episode_amount.remove(),
            CreditBalance.auto_top_up_intent.remove(),
        ],
        CreditBalance.auto_top_up_episode == episode,
    )


def _update(user_id: str, actions: list[Any], condition: Any) -> bool:
    """One conditional update of the balance item: False when its condition did not hold."""
    try:
        CreditBalance(user_id).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise LedgerUnavailableError("the auto top-up state could not be updated") from exc
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the auto top-up state could not be updated") from exc
    return True


def _condition_failed(exc: UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _read(user_id: str) -> CreditBalance | None:
    try:
        return CreditBalance.get(user_id, consistent_read=True)
    except DoesNotExist:
        return None
    except PynamoDBException as exc:
        raise LedgerUnavailableError("the auto top-up settings could not be read") from exc


def _card(item: CreditBalance) -> Card | None:
    if not item.payment_method_id:
        return None
    return Card(
        item.card_brand,
        item.card_last4,
        None if item.card_exp_month is None else int(item.card_exp_month),
        None if item.card_exp_year is None else int(item.card_exp_year),
    )


def _view(item: CreditBalance, now: float) -> AutoTopUp:
    card = _card(item)
    status = Status(item.auto_top_up_status) if item.auto_top_up_status else Status.OFF
    threshold = None if item.auto_top_up_threshold is None else int(item.auto_top_up_threshold)
    amount = None if item.auto_top_up_amount is None else int(item.auto_top_up_amount)
    paused = status is Status.LIMIT_REACHED and item.auto_top_up_resumes_at is not None
    resumes_at = int(item.auto_top_up_resumes_at) if paused else None
    reason: str | None = item.auto_top_up_reason
    if resumes_at is not None and resumes_at <= now:
        # The pause is over: it is on, and tops up with the next change, as its reason said.
        status, reason, resumes_at = Status.ON, None, None
    return AutoTopUp(bool(item.auto_top_up), threshold, amount, card, status, reason, resumes_at)

"""Settings read from the environment once, validated, and named in every error.

Each function reads one group, so a function never needs settings it does not use: get_balance
runs without any Stripe setting, the webhook without the Stripe API key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from wallet.amounts import MAX_AMOUNT, spelled
from wallet.packs import Pack, base_credits, parse_packs
from wallet.principals import InvalidPrincipalError, principals
from wallet.totals import Terms

DEFAULT_PACKS = "1000,5000,10000"
# "Other amount": what a customer may type, in minor units ($5 to $1,000 by default).
DEFAULT_CUSTOM_AMOUNT_MIN = 500
DEFAULT_CUSTOM_AMOUNT_MAX = 100_000
# Secrets Manager is read again after this long, so a rotated Stripe key is picked up without a deploy.
SECRET_MAX_AGE_SECONDS = 300


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message names it."""


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set; see .env.example for what it holds")
    return value


@dataclass(frozen=True, slots=True)
class TableSettings:
    balance_table: str
    transaction_table: str
    guard_table: str


@cache
def tables() -> TableSettings:
    return TableSettings(
        balance_table=required("CREDIT_BALANCE_TABLE"),
        transaction_table=required("CREDIT_TRANSACTION_TABLE"),
        guard_table=required("CREDIT_GUARD_TABLE"),
    )


@dataclass(frozen=True, slots=True)
class PriceList:
    currency: str
    packs: tuple[Pack, ...]
    custom_min: int = DEFAULT_CUSTOM_AMOUNT_MIN
    """The least "Other amount" a customer may choose, in minor units."""
    custom_max: int = DEFAULT_CUSTOM_AMOUNT_MAX

    def pack(self, amount: int) -> Pack | None:
        return next((pack for pack in self.packs if pack.amount == amount), None)

    def offer(self, amount: object) -> Pack | None:
        """What `amount` buys: a pack at its price, else an amount of the customer's choosing from
        custom_min to custom_max at the packs' base rate; None for anything else (not whole included)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            return None
        pack = self.pack(amount)
        if pack is None and self.custom_min <= amount <= self.custom_max:
            pack = Pack(amount, base_credits(amount, self.packs))
        return pack

    def refusal(self, amount: object) -> str:
        """Why `amount` buys nothing, naming what would."""
        packs = ", ".join(str(a) for a in self.amounts)
        return (
            f"amount must be a pack's price, one of {packs}, or a whole number from {self.custom_min} to "
            f"{self.custom_max} (minor units of {self.currency.upper()}), not {spelled(amount)}"
        )

    @property
    def amounts(self) -> list[int]:
        return [pack.amount for pack in self.packs]


@cache
def price_list() -> PriceList:
    currency = os.environ.get("CURRENCY", "usd").strip().lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise SettingsError(f"CURRENCY must be a three-letter currency code such as usd, not {currency!r}")
    try:
        packs = parse_packs(os.environ.get("CREDIT_PACKS", DEFAULT_PACKS))
    except ValueError as exc:
        raise SettingsError(f"CREDIT_PACKS is malformed: {exc}") from None
    low = _minor_units("CUSTOM_AMOUNT_MIN", DEFAULT_CUSTOM_AMOUNT_MIN)
    high = _minor_units("CUSTOM_AMOUNT_MAX", DEFAULT_CUSTOM_AMOUNT_MAX)
    if low > high:
        raise SettingsError(f"CUSTOM_AMOUNT_MIN ({low}) is above CUSTOM_AMOUNT_MAX ({high})")
    if base_credits(low, packs) < 1:
        raise SettingsError(f"CUSTOM_AMOUNT_MIN ({low}) buys no whole credit at the packs' base rate")
    return PriceList(currency, packs, low, high)


def _minor_units(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip() or str(default)
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_AMOUNT:
        raise SettingsError(
            f"{name} must be a whole number of minor units from 1 to {MAX_AMOUNT}, not {value!r}"
        )
    return int(value)


@cache
def checkout_terms() -> Terms:
    """What Checkout may change of a session's total: Stripe Tax (TAX_ENABLED, TAX_BEHAVIOR) and promotion
    codes (PROMOTION_CODES_ENABLED). Never the credits: the mark fixes those (wallet.marker)."""
    tax = _flag("TAX_ENABLED")
    behavior = os.environ.get("TAX_BEHAVIOR", "").strip().lower() or "exclusive"
    if behavior not in ("exclusive", "inclusive"):
        raise SettingsError(f"TAX_BEHAVIOR must be exclusive or inclusive, not {behavior!r}")
    return Terms(behavior if tax else None, _flag("PROMOTION_CODES_ENABLED"))


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower() or "false"
    if value not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false, not {value!r}")
    return value == "true"


@cache
def site_url() -> str:
    url = required("SITE_URL").rstrip("/")
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
        raise SettingsError(f"SITE_URL must be an http(s) URL such as https://example.com, not {url!r}")
    return url


@cache
def stripe_livemode() -> bool:
    """Whether this deployment takes live payments; only sessions of its own mode are ever credited."""
    value = os.environ.get("STRIPE_LIVEMODE", "false").strip().lower() or "false"
    if value not in ("true", "false"):
        raise SettingsError(f"STRIPE_LIVEMODE must be true or false, not {value!r}")
    return value == "true"


def stripe_event_source() -> str:
    """The partner event source whose Stripe events Amazon EventBridge delivers (the StripeEventSource
    parameter, `aws.partner/stripe.com/ed_...`); empty when the webhook is the only door."""
    return os.environ.get("STRIPE_EVENT_SOURCE", "").strip()


def stripe_api_base() -> str | None:
    """Where the Stripe SDK sends API calls: Stripe itself unless the local stack's emulator is set."""
    return os.environ.get("STRIPE_API_BASE", "").strip() or None


def stripe_secret_key() -> str:
    """The Stripe API key: the key that can move money, which the public webhook never holds."""
    return _stripe_secret("STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY_ARN")


def stripe_read_key() -> str:
    """The key that reads a PaymentIntent, for a refund or dispute that arrives before its deposit (is the
    payment ours?): the webhook's own restricted key, which cannot move money; the sweep, which replays
    the same events and holds no such key, reads with its API key."""
    if any(os.environ.get(name, "").strip() for name in ("STRIPE_READ_KEY", "STRIPE_READ_KEY_ARN")):
        return _stripe_secret("STRIPE_READ_KEY", "STRIPE_READ_KEY_ARN")
    return stripe_secret_key()


def alarm_topic_arn() -> str | None:
    """The stack's alarm topic, where a dispute that needs a response is announced; unset in the local
    stack, which logs the notice instead (`wallet.dispute_notices`)."""
    return os.environ.get("ALARM_TOPIC_ARN", "").strip() or None


def stripe_webhook_secret() -> str:
    """The webhook signing secret: it verifies Stripe's signatures and can do nothing else."""
    return _stripe_secret("STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_ARN")


# -- who may call the service routes: the lists the template's ServiceCallerArns and OperatorArns give ---


@cache
def service_callers() -> frozenset[str]:
    """The backends that may spend credits and read balances (`wallet.principals` names)."""
    return _principal_list("SERVICE_CALLER_ARNS")


@cache
def operators() -> frozenset[str]:
    """The people's roles that may adjust a balance, up or down, and read balances."""
    return _principal_list("OPERATOR_ARNS")


def _principal_list(name: str) -> frozenset[str]:
    # Unset is a deployment error; set and empty lists no one, and every call is refused 403.
    if name not in os.environ:
        raise SettingsError(f"{name} is not set; see .env.example for what it holds")
    try:
        return principals(os.environ[name])
    except InvalidPrincipalError as exc:
        raise SettingsError(f"{name} must list IAM role or user ARNs: {exc}") from None


def origin_secrets() -> tuple[str, ...]:
    """The values CloudFront may send the page API as X-Origin-Verify: a request with none of them did not
    come through the site (and its WAF), but to the API's own URL. CloudFront sends the value a deploy
    resolved, so while a rotation reaches it the secret's previous version (AWSPREVIOUS) is taken too;
    locally, ORIGIN_SECRET (comma-separated during a rotation)."""
    arn = os.environ.get("ORIGIN_SECRET_ARN", "").strip()
    if not arn:
        return tuple(value.strip() for value in required("ORIGIN_SECRET").split(",") if value.strip())
    current = _stripe_secret("ORIGIN_SECRET", "ORIGIN_SECRET_ARN")
    previous = _previous_secret(arn)
    return (current, previous) if previous and previous != current else (current,)


# The previous version of a secret, by ARN: (when read, its value or None when it has none).
_PREVIOUS: dict[str, tuple[float, str | None]] = {}


def _previous_secret(arn: str) -> str | None:
    """The secret's AWSPREVIOUS value, read again after SECRET_MAX_AGE_SECONDS like the current one; None
    when it has none (never rotated). Cached here, as Powertools' cache keys a secret by name alone."""
    import time

    read_at, value = _PREVIOUS.get(arn, (float("-inf"), None))
    if time.monotonic() - read_at < SECRET_MAX_AGE_SECONDS:
        return value
    import boto3
    from botocore.exceptions import ClientError

    try:
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
        value = str(answer.get("SecretString", "")).strip() or None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise SettingsError(f"the secret ORIGIN_SECRET_ARN names could not be read: {exc}") from None
        value = None
    _PREVIOUS[arn] = (time.monotonic(), value)
    return value


# -- the fulfilment mark's keys: read by checkout, the webhook and the sweep alike ------------------------


def fulfilment_keys() -> tuple[str, ...]:
    """The keys of the mark that fixes what a Checkout Session credits (`wallet.marker`): the first marks
    new sessions, any verifies, so a rotation lists the new key first and keeps the old one until the
    sessions it marked have settled. Its own secret: neither Stripe secret is readable by all three.
    """
    keys = tuple(key.strip() for key in _stripe_secret("FULFILMENT_KEYS", "FULFILMENT_KEYS_ARN").split(","))
    if any(len(key) < 32 for key in keys):
        raise SettingsError(
            "FULFILMENT_KEYS must be one or more comma-separated keys of at least 32 characters"
        )
    return keys


@cache
def unmarked_sessions_until() -> int:
    """Sessions created before this Unix time may lack the mark (they were made before this version was
    deployed) and are checked against today's price list instead; later ones without it credit nothing.
    UNMARKED_SESSIONS_UNTIL is the upgrade's date (ISO 8601); unset, as on a new deployment, none may."""
    value = os.environ.get("UNMARKED_SESSIONS_UNTIL", "").strip()
    if not value:
        return 0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"UNMARKED_SESSIONS_UNTIL must be an ISO 8601 date such as 2026-12-01, not {value!r}"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


# -- end of the fulfilment mark's keys -------------------------------------------------------------------


def _stripe_secret(name: str, arn_name: str) -> str:
    """From the Secrets Manager secret `arn_name` names when deployed, else from the environment `name`.

    Each value has its own secret, so each function's role can read only the one it needs.
    """
    arn = os.environ.get(arn_name, "").strip()
    if not arn:
        return required(name)
    value = _secret(arn, arn_name)
    if not value:
        raise SettingsError(f"the secret {arn_name} names is empty: fill it with {name} (see the README)")
    return value


def _secret(arn: str, arn_name: str) -> str:
    # Imported here: only deployed functions read Secrets Manager, and boto3 is slow to import.
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        # The message is AWS's (no secret value in it): missing, no value yet, or access denied.
        raise SettingsError(f"the secret {arn_name} names could not be read: {exc}") from None
    if not isinstance(value, str):
        raise SettingsError(f"the secret {arn_name} names must hold a string, not binary data")
    return value.strip()


DEFAULT_AUTO_TOP_UP_DAILY_LIMIT = 3
# The sign-up grant's bounds: a promotional grant's (wallet.promotions.MAX_GRANT_CREDITS, MAX_EXPIRY_DAYS).
MAX_SIGNUP_CREDITS = 1_000_000


@cache
def signup_credits() -> int:
    """Free credits a new user receives once, on their first visit to the balance page; 0: none."""
    value = os.environ.get("SIGNUP_CREDITS", "").strip() or "0"
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_SIGNUP_CREDITS:
        raise SettingsError(
            f"SIGNUP_CREDITS must be a whole number from 0 to {MAX_SIGNUP_CREDITS}, not {value!r}"
        )
    return int(value)


@cache
def signup_credits_expire_days() -> int | None:
    """How many days after they are given the sign-up credits expire; None (0 or unset): never."""
    value = os.environ.get("SIGNUP_CREDITS_EXPIRE_DAYS", "").strip() or "0"
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_PAID_CREDITS_EXPIRE_DAYS:
        raise SettingsError(
            f"SIGNUP_CREDITS_EXPIRE_DAYS must be a whole number from 0 to {MAX_PAID_CREDITS_EXPIRE_DAYS}, "
            f"not {value!r}"
        )
    return int(value) or None


# A paid credit's life is bounded as a promotional grant's is (wallet.promotions.MAX_EXPIRY_DAYS).
MAX_PAID_CREDITS_EXPIRE_DAYS = 1_095


@cache
def paid_credits_expire_days() -> int | None:
    """How many days after it is credited a paid credit expires; None (0 or unset, the default): never."""
    value = os.environ.get("PAID_CREDITS_EXPIRE_DAYS", "").strip() or "0"
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_PAID_CREDITS_EXPIRE_DAYS:
        raise SettingsError(
            f"PAID_CREDITS_EXPIRE_DAYS must be a whole number from 0 to {MAX_PAID_CREDITS_EXPIRE_DAYS}, "
            f"not {value!r}"
        )
    return int(value) or None


@cache
def auto_top_up_daily_limit() -> int:
    """How many auto top-ups one user may be charged in any 24 hours before auto top-up pauses (stays on)."""
    value = os.environ.get("AUTO_TOP_UP_DAILY_LIMIT", "").strip() or str(DEFAULT_AUTO_TOP_UP_DAILY_LIMIT)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise SettingsError(f"AUTO_TOP_UP_DAILY_LIMIT must be a whole number of 1 or more, not {value!r}")
    return int(value)


@cache
def invoices_enabled() -> bool:
    """Whether Checkout makes a paid invoice for each top-up (InvoicesEnabled), collecting the customer's
    billing address and tax id for it; receipts are Stripe's either way."""
    value = os.environ.get("INVOICES_ENABLED", "false").strip().lower() or "false"
    if value not in ("true", "false"):
        raise SettingsError(f"INVOICES_ENABLED must be true or false, not {value!r}")
    return value == "true"


def alert_sender() -> str | None:
    """The SES-verified address low balance emails come from (wallet.email_alerts); None: no emails."""
    return os.environ.get("ALERT_SENDER", "").strip() or None


def wallet_event_bus() -> str:
    """The EventBridge bus the wallet's own events go to (wallet.wallet_events)."""
    return required("WALLET_EVENT_BUS")


# A threshold is credits; the largest any account is likely to hold keeps a typo from passing.
MAX_LOW_BALANCE_THRESHOLD = 100_000_000


@cache
def low_balance_threshold() -> int:
    """The default below which a balance is low (`balance.low`), for users with none of their own; 0: off."""
    value = os.environ.get("LOW_BALANCE_THRESHOLD", "").strip() or "0"
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_LOW_BALANCE_THRESHOLD:
        bounds = f"from 0 to {MAX_LOW_BALANCE_THRESHOLD:,}"
        raise SettingsError(f"LOW_BALANCE_THRESHOLD must be a whole number {bounds}, not {value!r}")
    return int(value)

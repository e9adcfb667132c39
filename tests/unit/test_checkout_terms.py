"""The terms a session carries, the mark over them, and what an amount of the customer's choosing buys."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from wallet import marker, settings
from wallet.packs import Pack, base_credits
from wallet.settings import PriceList
from wallet.totals import Terms, read_terms

KEY = "k" * 32


@pytest.mark.parametrize(
    "terms",
    [Terms(), Terms("exclusive"), Terms("inclusive"), Terms(promotion_codes=True), Terms("inclusive", True)],
)
def test_terms_read_back_as_written(terms: Terms) -> None:
    assert read_terms(terms.text()) == terms


@pytest.mark.parametrize(
    "text",
    ["tax=", "tax=vat", "promotion_codes,tax=exclusive", "tax=exclusive,tax=inclusive", "promo", ",", "tax"],
)
def test_terms_this_product_never_writes_are_refused(text: str) -> None:
    assert read_terms(text) is None


def test_a_mark_without_terms_is_the_mark_sessions_were_made_with_before_terms_existed() -> None:
    # The message as the mark's first version wrote it, computed here apart from wallet.marker
    message = json.dumps(["v1", "alice", "01J0000000000000000000000", 5000, 5000, "usd"]).encode()
    before = "v1." + hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()

    now = marker.mark(
        KEY,
        user_id="alice",
        payment_id="01J0000000000000000000000",
        credits=5000,
        amount=5000,
        currency="usd",
    )

    assert now == before


def test_terms_change_the_mark() -> None:
    fixed = {"user_id": "alice", "payment_id": "01J", "credits": 5000, "amount": 5000, "currency": "usd"}
    plain = marker.mark(KEY, **fixed)  # type: ignore[arg-type]
    with_codes = marker.mark(KEY, **fixed, terms="promotion_codes")  # type: ignore[arg-type]

    assert plain != with_codes
    assert not marker.holds(with_codes, [KEY], **fixed)  # type: ignore[arg-type]
    assert marker.holds(with_codes, [KEY], **fixed, terms="promotion_codes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("packs", "amount", "credits"),
    [
        # 1:1 packs: the amount itself
        ((Pack(1000, 1000), Pack(5000, 5000)), 1234, 1234),
        # bonus packs: the least generous, 1100 per 1000; 1234 x 1.1 = 1357.4, rounded down
        ((Pack(1000, 1100), Pack(5000, 6000)), 1234, 1357),
        # a pack that gives less than it costs sets the rate: 900 per 1000; 555 x 0.9 = 499.5 -> 499
        ((Pack(1000, 900), Pack(5000, 5000)), 555, 499),
    ],
)
def test_an_amount_of_the_customers_choosing_buys_at_the_least_generous_rate_rounded_down(
    packs: tuple[Pack, ...], amount: int, credits: int
) -> None:
    assert base_credits(amount, packs) == credits


@pytest.mark.parametrize(
    ("amount", "offered"),
    [
        (1000, Pack(1000, 1100)),
        (500, Pack(500, 550)),
        (100_000, Pack(100_000, 110_000)),
        (499, None),
        (100_001, None),
        (True, None),
        (1000.0, None),
        ("1000", None),
    ],
)
def test_the_price_list_offers_its_packs_and_amounts_within_its_bounds(amount: object, offered: Pack) -> None:
    prices = PriceList("usd", (Pack(1000, 1100), Pack(5000, 6000)), 500, 100_000)

    assert prices.offer(amount) == offered


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CUSTOM_AMOUNT_MIN", "5.00"),
        ("CUSTOM_AMOUNT_MIN", "0"),
        ("CUSTOM_AMOUNT_MAX", "-1"),
        ("CUSTOM_AMOUNT_MAX", "9007199254740992"),
        ("CUSTOM_AMOUNT_MIN", "200000"),  # above the default maximum
    ],
)
def test_malformed_custom_bounds_fail_at_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    settings.price_list.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match="CUSTOM_AMOUNT_M"):
            settings.price_list()
    finally:
        monkeypatch.undo()
        settings.price_list.cache_clear()


@pytest.mark.parametrize(
    ("name", "value"), [("TAX_ENABLED", "yes"), ("TAX_BEHAVIOR", "vat"), ("PROMOTION_CODES_ENABLED", "1")]
)
def test_malformed_checkout_terms_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("TAX_ENABLED", "true")
    monkeypatch.setenv(name, value)
    settings.checkout_terms.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match=name):
            settings.checkout_terms()
    finally:
        monkeypatch.undo()
        settings.checkout_terms.cache_clear()

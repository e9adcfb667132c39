"""The price list: CREDIT_PACKS and CURRENCY, parsed once and refused loudly when malformed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wallet import settings
from wallet.packs import Pack, label, parse_packs


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    settings.price_list.cache_clear()
    settings.site_url.cache_clear()
    yield
    settings.price_list.cache_clear()
    settings.site_url.cache_clear()


def test_plain_amounts_grant_as_many_credits() -> None:
    assert parse_packs("1000,5000,10000") == (Pack(1000, 1000), Pack(5000, 5000), Pack(10000, 10000))


def test_price_colon_credits_is_a_bonus_pack() -> None:
    assert parse_packs("1000, 5000:5500") == (Pack(1000, 1000), Pack(5000, 5500))


@pytest.mark.parametrize("spec", ["", "10.00", "ten", "1000,", "0", "1000:0", "-5", "1000,1000", "1000:abc"])
def test_a_malformed_credit_packs_setting_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    monkeypatch.setenv("CREDIT_PACKS", spec)

    with pytest.raises(settings.SettingsError, match="CREDIT_PACKS"):
        settings.price_list()


def test_the_default_price_list_is_10_50_and_100_dollars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDIT_PACKS")
    monkeypatch.delenv("CURRENCY")

    prices = settings.price_list()

    assert (prices.currency, prices.amounts) == ("usd", [1000, 5000, 10000])
    assert prices.pack(5000) == Pack(5000, 5000)
    assert prices.pack(5001) is None


@pytest.mark.parametrize("currency", ["dollars", "us", "12$", ""])
def test_a_malformed_currency_fails_naming_it(monkeypatch: pytest.MonkeyPatch, currency: str) -> None:
    monkeypatch.setenv("CURRENCY", currency)

    with pytest.raises(settings.SettingsError, match="CURRENCY"):
        settings.price_list()


@pytest.mark.parametrize("url", ["", "credits.example.com", "ftp://example.com", "https://"])
def test_a_missing_or_malformed_site_url_fails_naming_it(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SITE_URL", url)

    with pytest.raises(settings.SettingsError, match="SITE_URL"):
        settings.site_url()


def test_the_site_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_URL", "https://credits.example.com/")

    assert settings.site_url() == "https://credits.example.com"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1000, "usd", "$10"), (1250, "usd", "$12.50"), (100000, "eur", "€1,000"), (2500, "chf", "25 CHF")],
)
def test_pack_labels(amount: int, currency: str, expected: str) -> None:
    assert label(amount, currency) == expected

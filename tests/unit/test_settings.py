from __future__ import annotations

import pytest

from wallet import settings


@pytest.mark.parametrize("name", ["CREDIT_BALANCE_TABLE", "CREDIT_TRANSACTION_TABLE", "CREDIT_GUARD_TABLE"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_table_setting_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    settings.tables.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match=name):
            settings.tables()
    finally:
        monkeypatch.undo()
        settings.tables.cache_clear()


def test_table_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_BALANCE_TABLE", "balances")
    monkeypatch.setenv("CREDIT_TRANSACTION_TABLE", "transactions")
    monkeypatch.setenv("CREDIT_GUARD_TABLE", "guards")
    settings.tables.cache_clear()
    try:
        assert settings.tables() == settings.TableSettings("balances", "transactions", "guards")
    finally:
        monkeypatch.undo()
        settings.tables.cache_clear()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 0), ("2026-12-01", 1796083200), ("2026-12-01T12:00:00Z", 1796126400)],
)
def test_unmarked_sessions_until_is_the_upgrades_date_or_none(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("UNMARKED_SESSIONS_UNTIL", value)
    settings.unmarked_sessions_until.cache_clear()
    try:
        assert settings.unmarked_sessions_until() == expected
    finally:
        monkeypatch.undo()
        settings.unmarked_sessions_until.cache_clear()


def test_a_malformed_unmarked_sessions_until_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNMARKED_SESSIONS_UNTIL", "next week")
    settings.unmarked_sessions_until.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match="UNMARKED_SESSIONS_UNTIL"):
            settings.unmarked_sessions_until()
    finally:
        monkeypatch.undo()
        settings.unmarked_sessions_until.cache_clear()


def test_the_webhook_reads_payment_intents_with_its_own_key_and_the_sweep_with_its_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_sweep")
    monkeypatch.setenv("STRIPE_READ_KEY", "rk_test_webhook")
    webhook = settings.stripe_read_key()
    monkeypatch.delenv("STRIPE_READ_KEY")
    monkeypatch.delenv("STRIPE_READ_KEY_ARN", raising=False)
    sweep = settings.stripe_read_key()

    assert (webhook, sweep) == ("rk_test_webhook", "sk_test_sweep")


@pytest.mark.parametrize(("value", "days"), [("", None), ("0", None), ("1", 1), ("1095", 1095)])
def test_paid_credits_expire_after_the_days_set_or_never(
    monkeypatch: pytest.MonkeyPatch, value: str, days: int | None
) -> None:
    monkeypatch.setenv("PAID_CREDITS_EXPIRE_DAYS", value)
    settings.paid_credits_expire_days.cache_clear()
    try:
        assert settings.paid_credits_expire_days() == days
    finally:
        settings.paid_credits_expire_days.cache_clear()


@pytest.mark.parametrize("value", ["1096", "-1", "30.5", "a year", "\u0663"])
def test_paid_credits_expiry_past_its_bounds_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PAID_CREDITS_EXPIRE_DAYS", value)
    settings.paid_credits_expire_days.cache_clear()
    try:
        with pytest.raises(settings.SettingsError, match="PAID_CREDITS_EXPIRE_DAYS"):
            settings.paid_credits_expire_days()
    finally:
        settings.paid_credits_expire_days.cache_clear()

"""A principal is its account, kind and name: a listed role admits every session of it, and nothing else."""

from __future__ import annotations

import pytest

from wallet import settings
from wallet.principals import InvalidPrincipalError, principal, principals

ROLE = "arn:aws:iam::123456789012:role/checkout-backend"


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (ROLE, ROLE),
        ("arn:aws:iam::123456789012:role/services/eu/checkout-backend", ROLE),
        ("arn:aws:sts::123456789012:assumed-role/checkout-backend/i-0abc", ROLE),
        ("arn:aws:iam::123456789012:user/ops/jane", "arn:aws:iam::123456789012:user/jane"),
        ("arn:aws-cn:iam::123456789012:role/x", "arn:aws-cn:iam::123456789012:role/x"),
    ],
)
def test_a_role_its_sessions_and_its_path_are_one_principal(arn: str, expected: str) -> None:
    assert principal(arn) == expected


def test_another_account_or_another_role_is_another_principal() -> None:
    assert principal("arn:aws:iam::210987654321:role/checkout-backend") != ROLE
    assert principal("arn:aws:sts::123456789012:assumed-role/checkout-backend-2/s") != ROLE


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "checkout-backend",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:group/admins",
        "arn:aws:sts::123456789012:role/checkout-backend",
        "arn:aws:iam::123456789012:assumed-role/checkout-backend/s",
        "arn:aws:sts::123456789012:assumed-role/checkout-backend",
        "arn:aws:iam::12345:role/checkout-backend",
        "arn:aws:iam::123456789012:role/",
    ],
)
def test_anything_but_a_role_a_role_session_or_a_user_is_refused(arn: str) -> None:
    with pytest.raises(InvalidPrincipalError):
        principal(arn)


def test_a_list_is_comma_separated_and_an_empty_one_names_no_one() -> None:
    assert principals(f" {ROLE} , arn:aws:iam::123456789012:user/jane,") == {
        ROLE,
        "arn:aws:iam::123456789012:user/jane",
    }
    assert principals("") == frozenset()


@pytest.mark.parametrize("name", ["SERVICE_CALLER_ARNS", "OPERATOR_ARNS"])
def test_the_lists_must_be_set_and_hold_only_principals(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    read = settings.service_callers if name == "SERVICE_CALLER_ARNS" else settings.operators
    read.cache_clear()
    try:
        monkeypatch.delenv(name)
        with pytest.raises(settings.SettingsError, match=f"{name} is not set"):
            read()
        monkeypatch.setenv(name, f"{ROLE},arn:aws:iam::123456789012:root")
        with pytest.raises(settings.SettingsError, match=f"{name} must list IAM role or user ARNs"):
            read()
        monkeypatch.setenv(name, "")
        assert read() == frozenset()
    finally:
        read.cache_clear()

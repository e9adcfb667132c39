"""The local stack's choice of token issuer: its own, or an external OpenID provider's (JWT_ISSUER)."""

from __future__ import annotations

import pytest

from devstack.auth import LocalIssuer, TrustedIssuer
from devstack.stack import DEFAULTS, DevStack, StackError


def stack(**settings: str) -> DevStack:
    return DevStack(DEFAULTS | settings)


def test_without_jwt_issuer_the_stack_issues_its_own_tokens() -> None:
    issuer = stack()._issuer()

    assert type(issuer) is LocalIssuer


def test_jwt_issuer_needs_the_audience() -> None:
    with pytest.raises(StackError, match="JWT_AUDIENCE"):
        stack(JWT_ISSUER="https://id.example.test")._issuer()


def test_an_issuer_that_cannot_be_reached_is_a_clear_error() -> None:
    with pytest.raises(StackError, match=r"cannot use the OpenID provider http://127\.0\.0\.1:9"):
        stack(JWT_ISSUER="http://127.0.0.1:9", JWT_AUDIENCE="credits")._issuer()


def test_a_plain_http_issuer_elsewhere_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        TrustedIssuer.discover("http://id.example.test", "credits")

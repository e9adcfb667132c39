"""Signing in and out with an external OpenID Connect provider (the stack's JwtIssuer), in Chromium.

The provider is a fake one on 127.0.0.1 (tests/e2e/oidc_provider.py); the dev stack trusts it as the
HTTP API's JWT authorizer trusts JwtIssuer: JWT_ISSUER and JWT_AUDIENCE, keys from its discovery document.
Like the issue's deployment, it advertises no end-session endpoint, so the page has no logout URL.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Route, expect

from tests.devstack_process import DevStackProcess
from tests.e2e.conftest import CreditsPage, wait_in_page
from tests.e2e.oidc_provider import FakeOidcProvider

SIGNED_OUT = "You\u2019ve signed out."
SESSION_ENDED = "Your session has ended \u2014 sign in again."


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def devstack(provider: FakeOidcProvider) -> Iterator[DevStackProcess]:
    settings = {"JWT_ISSUER": provider.issuer, "JWT_AUDIENCE": provider.client_id}
    with DevStackProcess(settings) as stack:
        yield stack


@pytest.fixture(autouse=True)
def fresh_provider(provider: FakeOidcProvider) -> None:
    provider.token_lifetime = 3600
    provider.logouts.clear()


def sign_in_with_provider(credits: CreditsPage) -> None:
    page = credits.page
    credits.open()
    expect(page.get_by_label("User name")).to_be_hidden()
    page.get_by_role("button", name="Sign in", exact=True).click()


def balance_status(stack: DevStackProcess, token: str) -> int:
    request = urllib.request.Request(f"{stack.url}/api/balance", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sign_in_goes_through_the_provider_with_pkce(
    credits: CreditsPage, provider: FakeOidcProvider
) -> None:
    checked = provider.pkce_checked
    sign_in_with_provider(credits)

    expect(credits.page.get_by_text(f"Signed in as {provider.email}")).to_be_visible()
    credits.expect_balance("$0.00", rows=0)
    assert provider.pkce_checked == checked + 1
    expect(credits.page).not_to_have_url(re.compile(r"[?&]code="))
    assert balance_status(credits.stack, provider.issued[-1]) == 200


def test_sign_out_without_a_logout_url_clears_the_page_and_returns_to_sign_in(
    credits: CreditsPage, provider: FakeOidcProvider
) -> None:
    page = credits.page
    sign_in_with_provider(credits)
    credits.expect_balance("$0.00", rows=0)

    page.get_by_role("button", name="Sign out").click()

    expect(credits.status).to_have_text(SIGNED_OUT)
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_focused()
    expect(page.get_by_text(f"Signed in as {provider.email}")).to_be_hidden()
    expect(credits.balance).to_be_hidden()
    expect(page).to_have_url(f"{credits.stack.url}/dashboard/credits/")
    assert page.evaluate("sessionStorage.length") == 0
    assert provider.logouts == []
    credits.screenshot("oidc-signed-out")
    page.reload()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_text("Signed in as")).to_be_hidden()


def test_sign_out_with_an_end_session_endpoint_also_ends_the_providers_session(
    credits: CreditsPage, provider: FakeOidcProvider
) -> None:
    page = credits.page

    def with_logout_url(route: Route) -> None:
        source = route.fetch().text()
        route.fulfill(
            body=source.replace('"logoutUrl": ""', f'"logoutUrl": "{provider.issuer}/logout"'),
            content_type="text/javascript",
        )

    page.route("**/config.js", with_logout_url)
    sign_in_with_provider(credits)
    credits.expect_balance("$0.00", rows=0)

    # The provider redirects back to the page: the page is read only once that navigation has loaded
    # (the page's own address matches before it leaves, so the URL alone cannot say it is back).
    back = f"{credits.stack.url}/dashboard/credits/"
    with page.expect_navigation(url=back, wait_until="load"):
        page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(back)
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    # The page shows sign-in first, then goes to the provider's end-session endpoint.
    wait_in_page(page, lambda: bool(provider.logouts), "the provider's end-session endpoint reached")
    [logout] = provider.logouts
    assert logout["client_id"] == provider.client_id
    assert logout["post_logout_redirect_uri"] == f"{credits.stack.url}/dashboard/credits/"
    assert logout["id_token_hint"] == provider.issued[-1]
    assert page.evaluate("sessionStorage.length") == 0


def test_an_expired_token_returns_to_sign_in_and_the_api_refuses_it(
    credits: CreditsPage, provider: FakeOidcProvider
) -> None:
    page = credits.page
    provider.token_lifetime = -120

    sign_in_with_provider(credits)

    expect(credits.status).to_have_text(SESSION_ENDED)
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_text("Signed in as")).to_be_hidden()
    page.wait_for_load_state("load")
    assert page.evaluate("sessionStorage.getItem('credits.session')") is None
    assert balance_status(credits.stack, provider.issued[-1]) == 401

    provider.token_lifetime = 3600
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text(f"Signed in as {provider.email}")).to_be_visible()


def test_the_api_refuses_tokens_the_provider_did_not_sign(
    provider: FakeOidcProvider, devstack: DevStackProcess
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert balance_status(devstack, provider.id_token()) == 200
    assert balance_status(devstack, provider.id_token(key=other_key)) == 401

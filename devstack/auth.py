"""Local sign-in: tokens signed with a key made at start, checked as the HTTP API's JWT authorizer checks
them (signature, issuer, audience, expiry). The deployed API trusts the configured OpenID issuer instead."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.request
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "credits-local"
TOKEN_LIFETIME_SECONDS = 60 * 60
USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class UnauthorizedError(Exception):
    """No token, or one the authorizer would refuse."""


class LocalIssuer:
    def __init__(self, issuer: str, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = secrets.token_hex(8)

    def issue(self, user_id: str, lifetime: int = TOKEN_LIFETIME_SECONDS) -> str:
        if not USER_ID.fullmatch(user_id):
            raise ValueError("userId must be 1 to 64 letters, digits or _.@-")
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime,
            "token_use": "id",
            # As Cognito's ID token: the address, verified (a user id that is one is its own address).
            "email": user_id if "@" in user_id else f"{user_id}@users.credits.test",
            "email_verified": True,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._key_id})

    def verify(self, authorization: str | None) -> dict[str, str]:
        """The token's claims as API Gateway passes them on (every value a string), or UnauthorizedError."""
        if not authorization:
            raise UnauthorizedError("no Authorization header")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._signing_key(token),
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(str(exc)) from exc
        return {name: str(value) for name, value in claims.items()}

    def _signing_key(self, token: str) -> Any:
        if jwt.get_unverified_header(token).get("kid") != self._key_id:
            raise UnauthorizedError("unknown signing key")
        return self._key.public_key()


class TrustedIssuer(LocalIssuer):
    """An external OpenID Connect provider's tokens, checked as the HTTP API's JWT authorizer checks them.

    The dev stack uses it when JWT_ISSUER is set, as the deployed stack does with its JwtIssuer parameter:
    the signing keys come from the issuer's discovery document (jwks_uri), and the local token endpoint
    issues nothing.
    """

    def __init__(self, issuer: str, audience: str, discovery: dict[str, Any]) -> None:
        # No key of its own: LocalIssuer's __init__ would make one.
        self.issuer = issuer
        self.audience = audience
        self.discovery = discovery
        self._keys = jwt.PyJWKClient(str(discovery["jwks_uri"]), cache_keys=True)

    @classmethod
    def discover(cls, issuer: str, audience: str) -> TrustedIssuer:
        """Reads {issuer}/.well-known/openid-configuration, as API Gateway does."""
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        if not url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"JWT_ISSUER must be https (or a local http address), not {issuer!r}")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - scheme checked above
            discovery: dict[str, Any] = json.load(response)
        if discovery.get("issuer") != issuer or "jwks_uri" not in discovery:
            raise ValueError(f"{url} does not describe the issuer {issuer!r} with a jwks_uri")
        return cls(issuer, audience, discovery)

    def issue(self, user_id: str, lifetime: int = TOKEN_LIFETIME_SECONDS) -> str:
        raise ValueError("sign in with the OpenID provider: this stack trusts its tokens, it issues none")

    def _signing_key(self, token: str) -> Any:
        return self._keys.get_signing_key_from_jwt(token).key

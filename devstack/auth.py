"""Local sign-in: tokens signed with a key made at start, checked as the HTTP API's JWT authorizer checks
them (signature, issuer, audience, expiry). The deployed API trusts the configured OpenID issuer instead."""

from __future__ import annotations

import re
import secrets
import time
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
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._key_id})

    def verify(self, authorization: str | None) -> dict[str, str]:
        """The token's claims as API Gateway passes them on (every value a string), or UnauthorizedError."""
        if not authorization:
            raise UnauthorizedError("no Authorization header")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self._key_id:
                raise UnauthorizedError("unknown signing key")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(str(exc)) from exc
        return {name: str(value) for name, value in claims.items()}

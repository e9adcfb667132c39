"""A tiny OpenID Connect provider on 127.0.0.1 for the browser tests: discovery, an authorize endpoint
that signs the user straight in, a token endpoint that checks PKCE and issues RS256 ID tokens, JWKS, and
an optional end-session endpoint. Only what the credits page and the JWT check use."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class FakeOidcProvider:
    def __init__(self, client_id: str = "credits-e2e", email: str = "ada@example.test") -> None:
        self.client_id = client_id
        self.email = email
        self.token_lifetime = 3600
        self.end_session = False
        self.issued: list[str] = []
        self.logouts: list[dict[str, str]] = []
        self.pkce_checked = 0
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what the endpoints do -----------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }
        if self.end_session:
            document["end_session_endpoint"] = f"{self.issuer}/logout"
        return document

    def jwks(self) -> dict[str, Any]:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [key | {"kid": "e2e", "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict[str, str]) -> str:
        """Signs the user in at once: the redirect back to the page, with a code (or an error)."""
        redirect = query["redirect_uri"]
        if (
            query.get("response_type") != "code"
            or query.get("client_id") != self.client_id
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            return f"{redirect}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = query
        return f"{redirect}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str]) -> dict[str, Any] | None:
        """The token response for a valid code and verifier; None (invalid_grant) otherwise."""
        with self._lock:
            request = self._codes.pop(form.get("code", ""), None)
        if request is None or form.get("redirect_uri") != request["redirect_uri"]:
            return None
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != request["code_challenge"]:
            return None
        self.pkce_checked += 1
        id_token = self.id_token(nonce=request.get("nonce"), lifetime=self.token_lifetime)
        self.issued.append(id_token)
        return {"id_token": id_token, "access_token": id_token, "token_type": "Bearer", "expires_in": 3600}

    def id_token(
        self, nonce: str | None = None, lifetime: int = 3600, key: rsa.RSAPrivateKey | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": "user-ada",
            "email": self.email,
            "iat": now,
            "exp": now + lifetime,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, key or self._key, algorithm="RS256", headers={"kid": "e2e"})

    # --- lifetime ------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(provider: FakeOidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(HTTPStatus.OK, provider.discovery())
            elif url.path == "/jwks":
                self._json(HTTPStatus.OK, provider.jwks())
            elif url.path == "/authorize":
                self._redirect(provider.authorize(query))
            elif url.path == "/logout":
                provider.logouts.append(query)
                self._redirect(query["post_logout_redirect_uri"])
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            form = {name: values[0] for name, values in parse_qs(body).items()}
            if urlsplit(self.path).path != "/token" or form.get("grant_type") != "authorization_code":
                self._json(HTTPStatus.BAD_REQUEST, {"error": "unsupported_grant_type"})
                return
            tokens = provider.token(form)
            if tokens is None:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_grant"})
            else:
                self._json(HTTPStatus.OK, tokens)

        def _json(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            # The page fetches the token endpoint from its own origin.
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, location: str) -> None:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler

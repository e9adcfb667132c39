"""SigV4 for the AWS_IAM routes: the local gateway checks signatures as API Gateway does, and services,
tests and the benchmark sign their requests with `signed_headers`. Both sides are botocore's own signer,
so the canonical request is built by the same code that signs calls to AWS.

Locally there is one IAM principal, `local-service`, whose access key is made at the first start and
kept in .devstack/service-credentials.json (git-ignored) for the next ones, or read from
DEVSTACK_SERVICE_ACCESS_KEY_ID and DEVSTACK_SERVICE_SECRET_ACCESS_KEY, and printed by `make run`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
ACCOUNT_ID = "000000000000"
USER_NAME = "local-service"
# API Gateway refuses a request signed more than 5 minutes away from its own clock.
MAX_SKEW = timedelta(minutes=5)
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9\-;]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


class ForbiddenError(Exception):
    """The request is not signed by a known principal; API Gateway answers 403 before any function runs."""


@dataclass(frozen=True)
class ServiceCredentials:
    access_key_id: str
    secret_access_key: str
    generated: bool = False
    """Made for this run, so it may be printed: a configured secret is not."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], kept: Path | None = None) -> ServiceCredentials:
        """The configured key pair; else the one kept in `kept` by an earlier run, so that a key exported
        in another shell still signs after a restart; else a new one, kept there."""
        key_id = settings.get("DEVSTACK_SERVICE_ACCESS_KEY_ID", "").strip()
        secret = settings.get("DEVSTACK_SERVICE_SECRET_ACCESS_KEY", "").strip()
        if key_id and secret:
            return cls(key_id, secret)
        if kept is not None:
            try:
                saved = json.loads(kept.read_text(encoding="utf-8"))
                return cls(str(saved["accessKeyId"]), str(saved["secretAccessKey"]), generated=True)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # none yet, or unreadable: make a new pair
        made = cls("AKIALOCAL" + secrets.token_hex(6).upper()[:11], secrets.token_urlsafe(30), generated=True)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            pair = {"accessKeyId": made.access_key_id, "secretAccessKey": made.secret_access_key}
            kept.write_text(json.dumps(pair) + "\n", encoding="utf-8")
            kept.chmod(0o600)
        return made

    @property
    def user_id(self) -> str:
        """The principal's IAM unique id, an AIDA... name, stable for one access key."""
        return "AIDA" + hashlib.sha256(self.access_key_id.encode()).hexdigest()[:17].upper()

    @property
    def user_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:user/{USER_NAME}"

    def iam_authorizer(self) -> dict[str, Any]:
        """`requestContext.authorizer.iam` as API Gateway's HTTP API sends it for this principal."""
        return {
            "accessKey": self.access_key_id,
            "accountId": ACCOUNT_ID,
            "callerId": self.user_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": self.user_arn,
            "userId": self.user_id,
        }


def signed_headers(
    method: str,
    url: str,
    body: bytes,
    credentials: ServiceCredentials,
    region: str = "us-east-1",
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to send `method url` with `body`, signed for execute-api: `headers` (signed too),
    X-Amz-Date and Authorization."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), SERVICE, region)
    signer.add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    known: ServiceCredentials,
    region: str,
    now: datetime | None = None,
) -> ServiceCredentials:
    """The principal that signed this request, or ForbiddenError. `headers` have lower-case names."""
    found = AUTHORIZATION.fullmatch((headers.get("authorization") or "").strip())
    if found is None:
        raise ForbiddenError("no SigV4 Authorization header")
    if not hmac.compare_digest(found["key"], known.access_key_id):
        raise ForbiddenError("unknown access key")
    if (found["region"], found["service"]) != (region, SERVICE):
        raise ForbiddenError(f"signed for {found['region']}/{found['service']}, not {region}/{SERVICE}")
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise ForbiddenError("no valid X-Amz-Date header") from None
    if stamp[:8] != found["date"]:
        raise ForbiddenError("credential scope date is not the request's date")
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        raise ForbiddenError("signed more than 5 minutes away from now")
    names = found["headers"].split(";")
    if "host" not in names or any(name not in headers for name in names):
        raise ForbiddenError("a signed header is missing, or host is not signed")
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        raise ForbiddenError("x-amz-content-sha256 is not the body's hash")

    # Rebuild what the client signed: the received method, path, query, the headers it signed and the body.
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{target}",
        data=body,
        headers={name: headers[name] for name in names},
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(known.access_key_id, known.secret_access_key), SERVICE, region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    if not hmac.compare_digest(signer.signature(string_to_sign, request), found["signature"]):
        raise ForbiddenError("signature does not match")
    return known

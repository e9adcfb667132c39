"""IAM principals as the service routes see them: who signed a call, compared with who may make it.

API Gateway reports a role's caller as its session, `arn:aws:sts::111122223333:assumed-role/Name/session`,
while the lists name the role, `arn:aws:iam::111122223333:role/path/Name`. Both are one principal: a
role's name is unique in its account whatever its path, and its sessions come and go (a Lambda's
credentials, an ECS task's), so a principal is its account, its kind and its name, never its session.
"""

from __future__ import annotations

import re

_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>iam|sts)::(?P<account>\d{12}):"
    r"(?P<kind>role|user|assumed-role)/(?P<rest>[\x21-\x7e]+)"
)


class InvalidPrincipalError(ValueError):
    """A string that is not the ARN of an IAM role, a role's session or an IAM user."""


def principal(arn: str) -> str:
    """The one name of the role or user behind `arn`: `arn:<partition>:iam::<account>:role/<name>` (a
    role, or any session of it) or `...:user/<name>`, without the path."""
    found = _ARN.fullmatch(arn.strip())
    if found is None or (found["service"] == "sts") != (found["kind"] == "assumed-role"):
        raise InvalidPrincipalError(f"not the ARN of an IAM role, role session or user: {arn!r}")
    parts = found["rest"].split("/")
    if found["kind"] == "assumed-role":
        if len(parts) != 2 or not all(parts):
            raise InvalidPrincipalError(f"a role session's ARN is assumed-role/<role>/<session>: {arn!r}")
        kind, name = "role", parts[0]
    else:
        kind, name = found["kind"], parts[-1]
    if not name:
        raise InvalidPrincipalError(f"no name at the end of {arn!r}")
    return f"arn:{found['partition']}:iam::{found['account']}:{kind}/{name}"


def principals(listed: str) -> frozenset[str]:
    """The principals of a comma-separated list of role or user ARNs; an empty list names no one."""
    return frozenset(principal(arn) for arn in listed.split(",") if arn.strip())

"""Stripe's own example objects (`devstack/stripe_fixtures.json`), the mould of every emulated object."""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "stripe_fixtures.json"

JsonObject = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


@cache
def _fixtures() -> dict[str, JsonObject]:
    resources: dict[str, JsonObject] = json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]
    return resources


def fixture(name: str) -> JsonObject:
    """A deep copy of Stripe's example object `name`: `checkout.session`, `event`, `payment_intent`..."""
    return copy.deepcopy(_fixtures()[name])


def stripe_object(name: str, **values: Any) -> JsonObject:
    """Stripe's example `name` with `values` filled in; a value for a field Stripe does not have is a bug."""
    obj = fixture(name)
    if unknown := values.keys() - obj.keys():
        raise KeyError(f"{name} has no field {sorted(unknown)}")
    obj.update(values)
    return obj


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def json_bytes(body: JsonObject) -> bytes:
    return (json.dumps(body, indent=2) + "\n").encode()

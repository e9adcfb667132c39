"""Test controls: what Stripe's API cannot do, played over HTTP under `/_emulator/` (no API key, as the page).

    POST /_emulator/charges/{charge}/dispute  action=open [amount=...] [reason=...] | win | lose

answers `200` with the dispute as `GET /v1/disputes/{id}` shows it; an unknown charge is a 404, a dispute
that cannot move that way (open twice, close one that is closed or was never opened) a 409, a bad
parameter a 400, each with `{"error": {"message"}}`. The body is form-encoded (`curl -d`) or JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from urllib.parse import SplitResult, unquote

from devstack.stripe_emulator import disputes
from devstack.stripe_emulator.errors import InvalidTransitionError, StripeApiError, UnknownObjectError
from devstack.stripe_emulator.fixtures import JsonObject, json_bytes
from devstack.stripe_emulator.forms import parse_form
from devstack.stripe_emulator.http import Response

PREFIX = "/_emulator/"
_DISPUTE = re.compile(r"/_emulator/charges/(?P<charge>[^/]+)/dispute")
_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}

Dispute = Callable[[str, str, int | None, str], tuple[JsonObject, list[JsonObject]]]
"""(charge, action, amount, reason) -> the dispute and the events sent."""


def answer(
    method: str, url: SplitResult, headers: Mapping[str, str], body: bytes, dispute: Dispute
) -> Response:
    match = _DISPUTE.fullmatch(url.path)
    if match is None:
        return _error(
            404, f"Nothing is served at {url.path}. Test controls: POST {PREFIX}charges/{{charge}}/dispute"
        )
    if method != "POST":
        return _error(405, "Only POST is answered here.", {"Allow": "POST"})
    try:
        params = _params(headers, body)
        action = str(params.get("action", ""))
        if action not in disputes.ACTIONS:
            raise ValueError(f"action must be one of {', '.join(disputes.ACTIONS)}, not {action!r}")
        amount = params.get("amount")
        reason = str(params.get("reason", disputes.DEFAULT_REASON))
        if amount is not None and action != "open":
            raise ValueError("amount is given only to open a dispute")
        found, events = dispute(unquote(match["charge"]), action, _amount(amount), reason)
    except UnknownObjectError as exc:
        return _error(404, str(exc))
    except InvalidTransitionError as exc:
        return _error(409, str(exc))
    except (ValueError, TypeError, StripeApiError) as exc:
        return _error(400, str(exc))
    return Response(200, dict(_HEADERS), json_bytes(found), tuple(events))


def _amount(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"amount is a positive integer in the currency's smallest unit, not {value!r}")


def _params(headers: Mapping[str, str], body: bytes) -> JsonObject:
    if "json" in headers.get("content-type", "").lower():
        try:
            params = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise ValueError("the body is a JSON object")
        return params
    return parse_form(body.decode("utf-8", "replace"))


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, _HEADERS | dict(headers or {}), json_bytes({"error": {"message": message}}))

"""Test controls: what Stripe's API cannot do, played over HTTP under `/_emulator/` (no API key, as the page).

    POST /_emulator/charges/{charge}/dispute  action=inquire|open|prevent|block|charge_back
                                              [amount=...] [reason=...]
                                              action=escalate|submit|win|lose|appeal
    POST /_emulator/charges/{charge}/refunds  status=pending|requires_action|succeeded
    POST /_emulator/refunds/{refund}          action=succeed|cancel|fail [failure_reason=...]

The dispute control makes a new dispute of the charge (an inquiry, a chargeback, or one prevented
upstream) or moves its latest one (see `disputes` for every step), and answers `200` with that dispute as
`GET /v1/disputes/{id}` shows it. The charge's refunds control sets the status its refunds made from then
on start in (a refund the bank has yet to settle, or one waiting for the customer), and answers
`{"charge", "refunds_start_as"}`. The refund control settles, cancels or fails a refund (see `refunds`) and
answers `200` with the refund. An unknown charge or refund is a 404; a step Stripe would not take (open a
second dispute, lose an inquiry, cancel a succeeded refund) a 409; a bad parameter a 400; each with
`{"error": {"message"}}`. The body is form-encoded (`curl -d`) or JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote

from devstack.stripe_emulator import disputes, refunds
from devstack.stripe_emulator.errors import InvalidTransitionError, StripeApiError, UnknownObjectError
from devstack.stripe_emulator.fixtures import JsonObject, json_bytes
from devstack.stripe_emulator.forms import parse_form
from devstack.stripe_emulator.http import Response

PREFIX = "/_emulator/"
_DISPUTE = re.compile(r"/_emulator/charges/(?P<charge>[^/]+)/dispute")
_REFUNDS_START = re.compile(r"/_emulator/charges/(?P<charge>[^/]+)/refunds")
_REFUND = re.compile(r"/_emulator/refunds/(?P<refund>[^/]+)")
_ROUTES = (("dispute", _DISPUTE), ("refunds_start", _REFUNDS_START), ("refund", _REFUND))
_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
_SERVED = (
    f"POST {PREFIX}charges/{{charge}}/dispute, POST {PREFIX}charges/{{charge}}/refunds, "
    f"POST {PREFIX}refunds/{{refund}}"
)

Dispute = Callable[[str, str, int | None, str], tuple[JsonObject, list[JsonObject]]]
"""(charge, action, amount, reason) -> the charge's latest dispute and the events sent."""
Refund = Callable[[str, str, str | None], tuple[JsonObject, list[JsonObject]]]
"""(refund, action, failure_reason) -> the refund and the events sent."""
RefundsStart = Callable[[str, str], JsonObject]
"""(charge, status) -> what the charge's refunds start as now."""


@dataclass(frozen=True, slots=True)
class Controls:
    """What each control does to the emulator's state, the lock taken."""

    dispute: Dispute
    refund: Refund
    refunds_start: RefundsStart


def answer(
    method: str, url: SplitResult, headers: Mapping[str, str], body: bytes, controls: Controls
) -> Response:
    matches = [(name, pattern.fullmatch(url.path)) for name, pattern in _ROUTES]
    found = [(name, match) for name, match in matches if match is not None]
    if not found:
        return _error(404, f"Nothing is served at {url.path}. Test controls: {_SERVED}")
    if method != "POST":
        return _error(405, "Only POST is answered here.", {"Allow": "POST"})
    [(name, match)] = found
    try:
        params = _params(headers, body)
        if name == "dispute":
            result, events = _dispute(unquote(match["charge"]), params, controls.dispute)
        elif name == "refunds_start":
            result, events = _refunds_start(unquote(match["charge"]), params, controls.refunds_start), []
        else:
            result, events = _refund(unquote(match["refund"]), params, controls.refund)
    except UnknownObjectError as exc:
        return _error(404, str(exc))
    except InvalidTransitionError as exc:
        return _error(409, str(exc))
    except (ValueError, TypeError, StripeApiError) as exc:
        return _error(400, str(exc))
    return Response(200, dict(_HEADERS), json_bytes(result), tuple(events))


def _dispute(charge: str, params: JsonObject, dispute: Dispute) -> tuple[JsonObject, list[JsonObject]]:
    action = _one_of(params, "action", disputes.ACTIONS)
    _only(params, {"action", "amount", "reason"})
    if action not in disputes.OPENING and ("amount" in params or "reason" in params):
        raise ValueError(f"amount and reason are given only to {', '.join(disputes.OPENING)} a dispute")
    reason = str(params.get("reason", disputes.DEFAULT_REASON))
    return dispute(charge, action, _amount(params.get("amount")), reason)


def _refunds_start(charge: str, params: JsonObject, refunds_start: RefundsStart) -> JsonObject:
    status = _one_of(params, "status", refunds.STARTING_STATUSES)
    _only(params, {"status"})
    return refunds_start(charge, status)


def _refund(refund_id: str, params: JsonObject, refund: Refund) -> tuple[JsonObject, list[JsonObject]]:
    action = _one_of(params, "action", refunds.ACTIONS)
    _only(params, {"action", "failure_reason"})
    failure_reason = params.get("failure_reason")
    if failure_reason is not None and not isinstance(failure_reason, str):
        raise ValueError(f"failure_reason is one of {', '.join(refunds.FAILURE_REASONS)}")
    return refund(refund_id, action, failure_reason)


def _one_of(params: JsonObject, name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _only(params: JsonObject, known: set[str]) -> None:
    if unknown := params.keys() - known:
        raise ValueError(
            f"unknown parameter {', '.join(sorted(unknown))}: this control takes {', '.join(sorted(known))}"
        )


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

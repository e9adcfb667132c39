"""The API with bad input, table-driven, over HTTP through the dev stack's gateway and JWT authorizer.

The gateway runs in this process (devstack.gateway, as `make run` serves it) so that a token can be
signed with its own key for another audience: a subprocess's key is out of reach. Every row gives the
documented status and checks that nothing moved: the balances and rows of the users involved, and no
Checkout Session opened at Stripe.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ulid import ULID

from devstack.auth import LocalIssuer
from devstack.gateway import Gateway, GatewayServer
from devstack.stack import ISSUER
from devstack.stripe_emulator import StripeEmulator
from tests.checkout_flow import ledger_of, start_checkout
from wallet import ledger
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")

USERS = ("alice", "bob")


@dataclass(frozen=True)
class Api:
    url: str
    issuer: LocalIssuer

    def token(self, user: str = "alice", *, audience: str | None = None, lifetime: int = 600) -> str:
        if audience is None:
            return self.issuer.issue(user, lifetime=lifetime)
        other = LocalIssuer(self.issuer.issuer, audience=audience)
        # The gateway's own signing key: only the audience is wrong.
        other._key, other._key_id = self.issuer._key, self.issuer._key_id
        return other.issue(user, lifetime=lifetime)


@pytest.fixture(scope="module")
def api(dynamodb_server: object, stripe_emulator: StripeEmulator) -> Iterator[Api]:
    issuer = LocalIssuer(ISSUER)
    server = GatewayServer(Gateway(issuer, lambda: "")).start()
    yield Api(server.url, issuer)
    server.stop()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    authorization: str | None = None
    content_type: str = "application/json"


def send(api: Api, call: Call) -> tuple[int, Any]:
    headers = {"Content-Type": call.content_type}
    if call.authorization is not None:
        headers["Authorization"] = call.authorization
    request = urllib.request.Request(api.url + call.path, call.body, headers, method=call.method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw)


@dataclass(frozen=True)
class World:
    """What the rows refer to: the gateway, and bob's paid Checkout Session that nobody has credited yet."""

    api: Api
    bobs_paid_session: str

    def bearer(self, user: str = "alice", **kwargs: Any) -> str:
        return "Bearer " + self.api.token(user, **kwargs)


def checkout(body: bytes | str, content_type: str = "application/json") -> Callable[[World], Call]:
    raw = body.encode() if isinstance(body, str) else body
    return lambda w: Call("POST", "/api/checkout", raw, w.bearer(), content_type)


def balance(query: str) -> Callable[[World], Call]:
    return lambda w: Call("GET", f"/api/balance?{query}", authorization=w.bearer())


def session(session_id: str) -> Callable[[World], Call]:
    return lambda w: Call("GET", f"/api/checkout/{session_id}", authorization=w.bearer())


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def deeply_nested_cursor() -> str:
    return base64.urlsafe_b64encode(b"[" * 20_000).decode()


UNAUTHORIZED = {"message": "Unauthorized"}
ROUTES = [("POST", "/api/checkout"), ("GET", "/api/checkout/cs_test_abc"), ("GET", "/api/balance")]


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[World], Call]
    status: int
    code: str | None
    """The error code of the `{"error": {...}}` body, or None for the gateway's own `{"message"}` answer."""


CASES = [
    # -- the JWT authorizer, on every route that needs a user -------------------------------------------
    *[
        Case(f"{method} {path}: no token", lambda w, m=method, p=path: Call(m, p, b"{}"), 401, None)
        for method, path in ROUTES
    ],
    *[
        Case(
            f"{method} {path}: token for another audience",
            lambda w, m=method, p=path: Call(m, p, b"{}", w.bearer(audience="another-app")),
            401,
            None,
        )
        for method, path in ROUTES
    ],
    Case("expired token", lambda w: Call("GET", "/api/balance", None, w.bearer(lifetime=-60)), 401, None),
    Case(
        "token of another issuer's key",
        lambda w: Call("GET", "/api/balance", None, "Bearer " + LocalIssuer(ISSUER).issue("alice")),
        401,
        None,
    ),
    Case("Bearer without a token", lambda w: Call("POST", "/api/checkout", b"{}", "Bearer"), 401, None),
    Case(
        "token under the Basic scheme",
        lambda w: Call("GET", "/api/balance", None, "Basic " + w.api.token()),
        401,
        None,
    ),
    # -- POST /api/checkout bodies ----------------------------------------------------------------------
    Case("body not JSON", checkout("amount=5000", "application/x-www-form-urlencoded"), 400, "invalid_body"),
    Case("body empty", checkout(b""), 400, "invalid_body"),
    Case("body a JSON array", checkout("[5000]"), 400, "invalid_body"),
    Case("body a JSON string", checkout('"5000"'), 400, "invalid_body"),
    Case(
        "body not UTF-8", checkout(b'{"amount": 5000}\xff', "application/octet-stream"), 400, "invalid_body"
    ),
    Case("body over 8 KB", checkout(json.dumps({"amount": 5000, "note": "x" * 8200})), 400, "invalid_body"),
    Case("body over API Gateway's 10 MB", checkout(b" " * (10 * 1024 * 1024 + 1)), 413, None),
    Case("amount missing", checkout("{}"), 400, "invalid_amount"),
    Case("amount a string", checkout('{"amount": "5000"}'), 400, "invalid_amount"),
    Case("amount a float", checkout('{"amount": 5000.0}'), 400, "invalid_amount"),
    Case("amount a boolean", checkout('{"amount": true}'), 400, "invalid_amount"),
    Case("amount null", checkout('{"amount": null}'), 400, "invalid_amount"),
    Case("amount an object", checkout('{"amount": {"value": 5000}}'), 400, "invalid_amount"),
    Case(
        "amount deeply nested", checkout('{"amount": ' + "[" * 1500 + "]" * 1500 + "}"), 400, "invalid_amount"
    ),
    Case("amount below the custom bound", checkout('{"amount": 499}'), 400, "invalid_amount"),
    Case("amount above the custom bound", checkout('{"amount": 100001}'), 400, "invalid_amount"),
    Case("amount not whole cents", checkout('{"amount": 4999.5}'), 400, "invalid_amount"),
    Case("another currency", checkout('{"amount": 5000, "currency": "eur"}'), 400, "invalid_amount"),
    Case("currency not text", checkout('{"amount": 5000, "currency": 840}'), 400, "invalid_amount"),
    Case("amount negative", checkout('{"amount": -5000}'), 400, "invalid_amount"),
    Case("amount enormous", checkout('{"amount": 1' + "0" * 40 + "}"), 400, "invalid_amount"),
    # -- GET /api/checkout/{sessionId} ------------------------------------------------------------------
    Case("session id not a session id", session("not-a-session"), 404, "not_found"),
    Case("session id too long", session("cs_test_" + "a" * 300), 404, "not_found"),
    Case("session id with encoded slashes", session("cs_test_a%2F..%2F..%2Fv1%2Fcharges"), 404, "not_found"),
    Case("session id that does not exist", session("cs_test_doesnotexist"), 404, "not_found"),
    Case("another user's paid session", lambda w: session(w.bobs_paid_session)(w), 404, "not_found"),
    # -- GET /api/balance limits and cursors ------------------------------------------------------------
    *[
        Case(f"limit {name}", balance(f"limit={limit}"), 400, "invalid_page")
        for name, limit in [
            ("0", "0"),
            ("101", "101"),
            ("negative", "-1"),
            ("a word", "abc"),
            ("a fraction", "2.5"),
            ("empty", ""),
            ("in exponent form", "1e2"),
            ("a superscript digit", "%C2%B2"),
            ("an Arabic-Indic digit", "%D9%A3"),
            ("of 5000 digits", "9" * 5000),
        ]
    ],
    Case("limit given twice", balance("limit=5&limit=6"), 400, "invalid_page"),
    Case("cursor garbage", balance("cursor=garbage!"), 400, "invalid_page"),
    Case("cursor empty", balance("cursor="), 400, "invalid_page"),
    Case(
        "cursor without a transaction id", balance("cursor=" + cursor({"before": "x"})), 400, "invalid_page"
    ),
    Case("cursor naming no ULID", balance("cursor=" + cursor({"after": "../bob"})), 400, "invalid_page"),
    Case("cursor a JSON list", balance("cursor=" + cursor([str(ULID())])), 400, "invalid_page"),
    Case("cursor deeply nested", balance("cursor=" + deeply_nested_cursor()), 400, "invalid_page"),
    # -- what is not a route ----------------------------------------------------------------------------
    Case("DELETE /api/balance", lambda w: Call("DELETE", "/api/balance", None, w.bearer()), 404, None),
    Case("POST /api/packs", lambda w: Call("POST", "/api/packs", b"{}"), 404, None),
]


def stripe_sessions_created(emulator: StripeEmulator) -> int:
    return sum(1 for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions"))


@pytest.fixture
def world(api: Api, stripe_emulator: StripeEmulator) -> World:
    """alice and bob each hold two deposits; bob has also paid a session that is not credited yet."""
    for user in USERS:
        for amount in (1000, 5000):
            ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    bobs_session = start_checkout("bob", 10000)
    stripe_emulator.pay(bobs_session)
    return World(api, bobs_session)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_its_status_and_changes_nothing(
    world: World, stripe_emulator: StripeEmulator, case: Case
) -> None:
    before, sessions_before = ledger_of(*USERS), stripe_sessions_created(stripe_emulator)

    status, body = send(world.api, case.call(world))

    assert status == case.status, body
    if case.code is None:
        assert set(body) == {"message"}
    else:
        assert set(body) == {"error"}
        assert body["error"]["code"] == case.code
        assert isinstance(body["error"]["message"], str)
    assert ledger_of(*USERS) == before
    assert stripe_sessions_created(stripe_emulator) == sessions_before


def test_the_table_has_at_least_15_rows_and_unique_ids() -> None:
    assert len(CASES) >= 15
    assert len({case.id for case in CASES}) == len(CASES)


def test_a_token_for_another_audience_is_refused_where_a_token_for_this_one_is_not(world: World) -> None:
    ok, _ = send(world.api, Call("GET", "/api/balance", authorization=world.bearer()))
    refused, body = send(world.api, Call("GET", "/api/balance", authorization=world.bearer(audience="other")))

    assert (ok, refused, body) == (200, 401, UNAUTHORIZED)


def test_a_forged_cursor_pointing_into_another_users_history_shows_only_the_callers_own(world: World) -> None:
    alices = {row.transaction_id for row in CreditTransaction.query("alice")}
    bobs = sorted(row.transaction_id for row in CreditTransaction.query("bob"))
    before = ledger_of(*USERS)

    # A cursor to resume after bob's newest deposit, which is newer than all of alice's.
    status, body = send(world.api, balance("cursor=" + cursor({"after": bobs[-1]}))(world))

    assert status == 200
    assert body["userId"] == "alice"
    assert {t["id"] for t in body["transactions"]} == alices
    assert ledger_of(*USERS) == before

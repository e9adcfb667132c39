"""The service routes through the real spend handler: spends and adjustments with Idempotency-Key
semantics, no overdraft, every bad input refused with nothing changed, and no IAM identity refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from functions.spend.app import lambda_handler as spend_handler
from tests.lambda_events import HttpResponse, api_event, invoke
from tests.lambda_pool import Containers
from wallet import ledger, settings
from wallet.amounts import MAX_AMOUNT
from wallet.http import InvalidUserError, path_user_id
from wallet.models import CreditGuard, CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")
SERVICE = "arn:aws:iam::123456789012:user/api-service"


def deposit(user: str, amount: int) -> None:
    ledger.add_credits(user, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")


def request(
    route: str, user: str, body: Any = None, key: str | None = "key-1", **changes: Any
) -> dict[str, Any]:
    method = "GET" if route == "balance" else "POST"
    event = api_event(
        method,
        f"/api/users/{{userId}}/{route}",
        path_parameters={"userId": user},
        body=None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body)),
        **changes,
    )
    event["headers"].pop("idempotency-key", None)
    if key is not None:
        event["headers"]["idempotency-key"] = key
    return event


def spend(user: str, body: Any, key: str | None = "key-1") -> HttpResponse:
    return invoke(spend_handler, request("spend", user, body, key))


def adjust(user: str, body: Any, key: str | None = "key-1") -> HttpResponse:
    return invoke(spend_handler, request("adjustments", user, body, key))


def history(user: str) -> list[tuple[str, int]]:
    return sorted((row.type, int(row.amount)) for row in CreditTransaction.query(user, consistent_read=True))


def test_a_spend_answers_201_with_the_balance_and_writes_its_row() -> None:
    deposit("alice", 5000)

    response = spend("alice", {"amount": 250, "description": "1,000 tokens"})

    assert response.status == 201
    assert response.body == {
        "transactionId": response.body["transactionId"],
        "userId": "alice",
        "amount": 250,
        "balance": 4750,
        "currency": "usd",
    }
    assert "Idempotent-Replayed" not in response.headers
    [row] = [row for row in CreditTransaction.query("alice") if row.type == "spend"]
    assert (row.transaction_id, row.amount, row.description, row.actor) == (
        response.body["transactionId"],
        -250,
        "1,000 tokens",
        SERVICE,
    )


def test_a_replay_answers_the_first_answer_with_idempotent_replayed() -> None:
    deposit("alice", 5000)
    first = spend("alice", {"amount": 250})

    again = spend("alice", {"amount": 250})

    assert (again.status, again.body, again.headers.get("Idempotent-Replayed")) == (201, first.body, "true")
    assert history("alice") == [("deposit", 5000), ("spend", -250)]


def test_the_same_key_with_another_body_is_409_and_changes_nothing() -> None:
    deposit("alice", 5000)
    spend("alice", {"amount": 250})

    reused = spend("alice", {"amount": 300})

    assert (reused.status, reused.body["error"]["code"]) == (409, "idempotency_key_reused")
    assert ledger.get_balance("alice") == 4750


def test_a_spend_beyond_the_balance_is_402_with_the_balance() -> None:
    deposit("alice", 100)

    refused = spend("alice", {"amount": 101})

    assert refused.status == 402
    assert refused.body["error"]["code"] == "insufficient_credits"
    assert refused.body["error"]["balance"] == 100
    assert history("alice") == [("deposit", 100)]


def test_an_adjustment_either_way_with_its_reason() -> None:
    deposit("alice", 100)

    down = adjust("alice", {"amount": -300, "reason": "Duplicate credit"}, key="t-1")
    up = adjust("alice", {"amount": 50, "reason": "Goodwill"}, key="t-2")

    assert (down.status, down.body["amount"], down.body["balance"]) == (201, -300, -200)
    assert (up.status, up.body["balance"]) == (201, -150)
    rows = {int(row.amount): (row.description, row.actor) for row in CreditTransaction.query("alice")}
    assert rows[-300] == ("Duplicate credit", SERVICE)


def test_the_service_balance_route() -> None:
    deposit("alice", 700)

    response = invoke(spend_handler, request("balance", "alice", key=None))

    assert (response.status, response.body) == (
        200,
        {"userId": "alice", "currency": "usd", "balance": 700, "held": 0, "available": 700},
    )


BAD_SPENDS: list[tuple[str, Any, str]] = [
    ("not json", "{", "invalid_body"),
    ("a list", [250], "invalid_body"),
    ("no amount", {"description": "x"}, "invalid_body"),
    ("an unknown field", {"amount": 1, "userId": "bob"}, "invalid_body"),
    ("zero", {"amount": 0}, "invalid_amount"),
    ("negative", {"amount": -5}, "invalid_amount"),
    ("a fraction", {"amount": 2.5}, "invalid_amount"),
    ("a string amount", {"amount": "250"}, "invalid_amount"),
    ("true", {"amount": True}, "invalid_amount"),
    ("null", {"amount": None}, "invalid_amount"),
    ("one past the bound", {"amount": MAX_AMOUNT + 1}, "invalid_amount"),
    ("40 digits", {"amount": 10**40}, "invalid_amount"),
    ("an empty description", {"amount": 1, "description": " "}, "invalid_body"),
    ("a long description", {"amount": 1, "description": "x" * 501}, "invalid_body"),
    ("a numeric description", {"amount": 1, "description": 5}, "invalid_body"),
]


@pytest.mark.parametrize(("case", "body", "code"), BAD_SPENDS, ids=[case for case, _, _ in BAD_SPENDS])
def test_a_bad_spend_body_is_400_and_changes_nothing(case: str, body: Any, code: str) -> None:
    deposit("alice", 1000)

    response = spend("alice", body)

    assert (response.status, response.body["error"]["code"]) == (400, code), case
    assert history("alice") == [("deposit", 1000)]


BAD_ADJUSTMENTS: list[tuple[str, Any, str]] = [
    ("no reason", {"amount": 5}, "invalid_body"),
    ("an empty reason", {"amount": 5, "reason": ""}, "invalid_body"),
    ("zero", {"amount": 0, "reason": "x"}, "invalid_amount"),
    ("a fraction", {"amount": 0.5, "reason": "x"}, "invalid_amount"),
    ("a description instead", {"amount": 5, "description": "x"}, "invalid_body"),
    ("one past the bound", {"amount": MAX_AMOUNT + 1, "reason": "x"}, "invalid_amount"),
    ("one past the bound down", {"amount": -MAX_AMOUNT - 1, "reason": "x"}, "invalid_amount"),
    ("40 digits", {"amount": 10**40, "reason": "x"}, "invalid_amount"),
]


def test_an_amount_past_the_bound_is_refused_with_the_limit_in_the_message() -> None:
    deposit("alice", 1000)

    responses = [spend("alice", {"amount": 10**40}), adjust("alice", {"amount": 10**40, "reason": "x"})]

    for response in responses:
        assert response.status == 400
        assert (
            f"from {-MAX_AMOUNT if response is responses[1] else 1} to {MAX_AMOUNT}"
            in (response.body["error"]["message"])
        )
    assert history("alice") == [("deposit", 1000)]


def test_adjustments_may_reach_the_bound_but_not_pass_it_either_way() -> None:
    up = adjust("bob", {"amount": MAX_AMOUNT, "reason": "top"})
    past = adjust("bob", {"amount": 1, "reason": "one more"}, key="key-2")
    down = adjust("carol", {"amount": -MAX_AMOUNT, "reason": "bottom"})
    below = adjust("carol", {"amount": -1, "reason": "one less"}, key="key-2")

    assert (up.status, up.body["balance"], down.status, down.body["balance"]) == (
        201,
        MAX_AMOUNT,
        201,
        -MAX_AMOUNT,
    )
    for response in (past, below):
        assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
        assert str(MAX_AMOUNT) in response.body["error"]["message"]
    assert (history("bob"), history("carol")) == ([("adjustment", MAX_AMOUNT)], [("adjustment", -MAX_AMOUNT)])


@pytest.mark.parametrize(
    ("body", "spelling"),
    [({"amount": True}, "not true"), ({"amount": None}, "not null"), ({"amount": "250"}, 'not "250"')],
)
def test_a_refused_value_is_spelled_as_json_spells_it(body: Any, spelling: str) -> None:
    response = spend("alice", body)

    assert response.body["error"]["message"].endswith(spelling), response.body


@pytest.mark.parametrize(("case", "body", "code"), BAD_ADJUSTMENTS, ids=[c for c, _, _ in BAD_ADJUSTMENTS])
def test_a_bad_adjustment_is_400_and_changes_nothing(case: str, body: Any, code: str) -> None:
    deposit("alice", 1000)

    response = adjust("alice", body)

    assert (response.status, response.body["error"]["code"]) == (400, code), case
    assert history("alice") == [("deposit", 1000)]


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "missing_idempotency_key"),
        ("", "missing_idempotency_key"),
        ("x" * 256, "invalid_idempotency_key"),
        ("caf\u00e9", "invalid_idempotency_key"),
        ("tab\there", "invalid_idempotency_key"),
        (" padded ", "invalid_idempotency_key"),
    ],
)
def test_a_missing_or_malformed_idempotency_key_is_400_and_changes_nothing(
    key: str | None, code: str
) -> None:
    deposit("alice", 1000)

    responses = [spend("alice", {"amount": 1}, key), adjust("alice", {"amount": 1, "reason": "x"}, key)]

    assert [(r.status, r.body["error"]["code"]) for r in responses] == [(400, code)] * 2
    assert history("alice") == [("deposit", 1000)]


@pytest.mark.parametrize("user", ["x" * 256, "a b", "caf\u00e9"])
def test_a_malformed_user_id_in_the_path_is_400(user: str) -> None:
    response = spend(user, {"amount": 1})

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_user")


@pytest.mark.parametrize("user", ["a`b", 'a"b', "a#b", "a?b", "a/b", "a\\b"])
def test_a_user_id_no_route_can_take_once_decoded_is_404_as_documented(user: str) -> None:
    response = spend(user, {"amount": 1})

    assert (response.status, response.body["error"]["code"]) == (404, "not_found")
    assert user not in {row.user_id for row in CreditTransaction.scan()}


def test_a_user_id_naming_the_ledgers_own_records_is_refused() -> None:
    # "#sweep" holds the sweep's checkpoint in the guard table; IAM refuses any user write there too.
    with pytest.raises(InvalidUserError):
        path_user_id("#sweep")


@pytest.mark.parametrize("route", ["spend", "adjustments", "balance"])
def test_a_request_without_an_iam_identity_is_403_and_changes_nothing(route: str) -> None:
    deposit("alice", 1000)
    event = request(route, "alice", {"amount": 5, "reason": "x"} if route == "adjustments" else {"amount": 5})
    event["requestContext"]["identity"]["userArn"] = None

    response = invoke(spend_handler, event)

    assert (response.status, response.body["error"]["code"]) == (403, "forbidden")
    assert history("alice") == [("deposit", 1000)]


def test_a_jwt_signed_in_user_is_not_an_iam_identity() -> None:
    deposit("alice", 1000)
    event = request("spend", "alice", {"amount": 5})
    event["requestContext"]["identity"]["userArn"] = None
    event["requestContext"]["authorizer"] = {"claims": {"sub": "alice"}}

    assert invoke(spend_handler, event).status == 403


# --- Who may do what: spends from ServiceCallerArns, adjustments from OperatorArns -------------------------

BACKEND_ROLE = "arn:aws:iam::123456789012:role/services/checkout-backend"
OPERATOR_ROLE = "arn:aws:iam::123456789012:role/support-operator"


@pytest.fixture
def callers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A backend role may spend, an operator role may adjust; the sample events' user is on neither list."""
    monkeypatch.setenv("SERVICE_CALLER_ARNS", BACKEND_ROLE)
    monkeypatch.setenv("OPERATOR_ARNS", OPERATOR_ROLE)
    settings.service_callers.cache_clear()
    settings.operators.cache_clear()
    yield
    settings.service_callers.cache_clear()
    settings.operators.cache_clear()


def signed_by(event: dict[str, Any], arn: str) -> dict[str, Any]:
    event["requestContext"]["identity"]["userArn"] = arn
    return event


def guards(user: str) -> list[str]:
    return [guard.guard_id for guard in CreditGuard.query(user, consistent_read=True)]


@pytest.mark.usefixtures("callers")
@pytest.mark.parametrize(
    ("route", "body", "signer", "listed_in"),
    [
        ("spend", {"amount": 5}, OPERATOR_ROLE, "ServiceCallerArns"),
        ("spend", {"amount": 5}, SERVICE, "ServiceCallerArns"),
        ("adjustments", {"amount": 5000, "reason": "free credits"}, BACKEND_ROLE, "OperatorArns"),
        ("adjustments", {"amount": 5000, "reason": "free credits"}, SERVICE, "OperatorArns"),
        ("balance", None, SERVICE, "ServiceCallerArns or OperatorArns"),
    ],
)
def test_a_principal_not_listed_for_the_route_is_403_naming_the_list_and_writes_nothing(
    route: str, body: Any, signer: str, listed_in: str
) -> None:
    deposit("alice", 1000)

    response = invoke(spend_handler, signed_by(request(route, "alice", body), signer))

    assert (response.status, response.body["error"]["code"]) == (403, "caller_not_allowed")
    assert response.body["error"]["message"].endswith(f"it is not listed in {listed_in}.")
    assert history("alice") == [("deposit", 1000)]
    assert guards("alice") == []


@pytest.mark.usefixtures("callers")
def test_any_session_of_a_listed_role_may_make_its_calls_and_the_row_names_the_session() -> None:
    deposit("alice", 1000)
    backend = "arn:aws:sts::123456789012:assumed-role/checkout-backend/task-7f3a"
    operator = "arn:aws:sts::123456789012:assumed-role/support-operator/jane@example.com"

    spent = invoke(spend_handler, signed_by(request("spend", "alice", {"amount": 5}, key="k1"), backend))
    adjusted = invoke(
        spend_handler,
        signed_by(request("adjustments", "alice", {"amount": 7, "reason": "outage"}, key="k2"), operator),
    )
    read = invoke(spend_handler, signed_by(request("balance", "alice"), operator))

    assert (spent.status, adjusted.status, read.status) == (201, 201, 200)
    assert read.body["balance"] == 1002
    actors = sorted(row.actor for row in CreditTransaction.query("alice") if row.actor)
    assert actors == sorted([operator, backend])


@pytest.mark.usefixtures("callers")
def test_a_role_under_a_new_session_replays_its_own_key_instead_of_spending_again() -> None:
    deposit("alice", 1000)
    first_session = "arn:aws:sts::123456789012:assumed-role/checkout-backend/task-1"
    second_session = "arn:aws:sts::123456789012:assumed-role/checkout-backend/task-2"

    first = invoke(
        spend_handler, signed_by(request("spend", "alice", {"amount": 5}, key="order-1"), first_session)
    )
    again = invoke(
        spend_handler, signed_by(request("spend", "alice", {"amount": 5}, key="order-1"), second_session)
    )

    assert (first.status, again.status) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body["transactionId"] == first.body["transactionId"]
    assert history("alice") == [("deposit", 1000), ("spend", -5)]


def test_two_callers_with_the_same_key_for_one_user_each_spend_once(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "arn:aws:iam::123456789012:role/reports-backend"
    monkeypatch.setenv("SERVICE_CALLER_ARNS", f"{SERVICE},{other}")
    settings.service_callers.cache_clear()
    deposit("alice", 1000)
    try:
        mine = invoke(spend_handler, request("spend", "alice", {"amount": 5}, key="order-1"))
        theirs = invoke(
            spend_handler, signed_by(request("spend", "alice", {"amount": 9}, key="order-1"), other)
        )
    finally:
        settings.service_callers.cache_clear()

    # Before keys were scoped to their caller, the second was a 409: another body under the same key.
    assert (mine.status, theirs.status) == (201, 201)
    assert theirs.body["transactionId"] != mine.body["transactionId"]
    assert history("alice") == [("deposit", 1000), ("spend", -9), ("spend", -5)]
    assert sorted(guards("alice")) == [
        "key#arn:aws:iam::123456789012:role/reports-backend#order-1",
        "key#arn:aws:iam::123456789012:user/api-service#order-1",
    ]


def test_200_concurrent_spends_across_containers_spend_exactly_the_balance(containers: Containers) -> None:
    deposit("alice", 10_000)
    requests = [("spend", request("spend", "alice", {"amount": 100}, key=f"order-{n}")) for n in range(200)]
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(ledger.get_balance("alice"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answers = containers.invoke_all(requests)
    finally:
        done.set()
        watcher.join()

    statuses = [status for status, _ in answers]
    assert (statuses.count(201), statuses.count(402)) == (100, 100)
    assert min(body["balance"] for status, body in answers if status == 201) == 0
    assert all(body["error"]["balance"] >= 0 for status, body in answers if status == 402)
    assert ledger.get_balance("alice") == 0
    assert len([row for row in CreditTransaction.query("alice") if row.type == "spend"]) == 100
    assert seen
    assert min(seen) >= 0


def test_32_concurrent_requests_with_one_key_make_one_row(containers: Containers) -> None:
    deposit("alice", 10_000)
    requests = [("spend", request("spend", "alice", {"amount": 100}, key="one-key")) for _ in range(32)]

    answers = containers.invoke_all(requests)

    assert {status for status, _ in answers} == {201}
    assert len({body["transactionId"] for _, body in answers}) == 1
    assert history("alice") == [("deposit", 10_000), ("spend", -100)]


# --- Text and body bounds ------------------------------------------------------------------------------

# Written apart from the code: each character, and why it is refused in a field shown as one line.
REFUSED_CHARACTERS = [
    ("\x00", "U+0000"),  # NUL, a C0 control
    ("\t", "U+0009"),  # tab: a row is one line
    ("\n", "U+000A"),  # newline
    ("\r", "U+000D"),
    ("\x1b", "U+001B"),  # ESC, which starts terminal escapes in a log read on a terminal
    ("\x1f", "U+001F"),  # the last C0 control
    ("\x7f", "U+007F"),  # DEL
    ("\x80", "U+0080"),  # the first C1 control
    ("\x9f", "U+009F"),  # the last
    ("\u2028", "U+2028"),  # line separator
    ("\u2029", "U+2029"),  # paragraph separator
    ("\ud800", "U+D800"),  # a lone surrogate: JSON's "\ud800" alone, no character at all
]
# Unicode's bidirectional algorithm (UAX #9, table 2): the explicit formatting characters, which reorder
# what follows them wherever the text is shown.
REORDERING_CHARACTERS = [
    ("\u202a", "U+202A"),  # LEFT-TO-RIGHT EMBEDDING
    ("\u202b", "U+202B"),  # RIGHT-TO-LEFT EMBEDDING
    ("\u202c", "U+202C"),  # POP DIRECTIONAL FORMATTING
    ("\u202d", "U+202D"),  # LEFT-TO-RIGHT OVERRIDE
    ("\u202e", "U+202E"),  # RIGHT-TO-LEFT OVERRIDE
    ("\u2066", "U+2066"),  # LEFT-TO-RIGHT ISOLATE
    ("\u2067", "U+2067"),  # RIGHT-TO-LEFT ISOLATE
    ("\u2068", "U+2068"),  # FIRST STRONG ISOLATE
    ("\u2069", "U+2069"),  # POP DIRECTIONAL ISOLATE
]
TAKEN_TEXT = [
    " \u00a0 ",  # spaces around a no-break space: printable, trimmed
    "caf\u00e9 \u2014 \u00a1s\u00ed! \u6f22\u5b57",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family emoji: joined by U+200D, a format character
    "\u05e9\u05dc\u05d5\u05dd \u200f(2)",  # Hebrew with a RIGHT-TO-LEFT MARK: a mark, not an override
]


@pytest.mark.parametrize(
    ("character", "code_point"), REFUSED_CHARACTERS, ids=[c for _, c in REFUSED_CHARACTERS]
)
def test_a_description_or_reason_with_a_control_character_is_400_naming_the_field(
    character: str, code_point: str
) -> None:
    deposit("alice", 1000)
    text = f"a{character}b"

    spent = spend("alice", {"amount": 1, "description": text})
    adjusted = adjust("alice", {"amount": 1, "reason": text})

    for response, field in ((spent, "description"), (adjusted, "reason")):
        assert (response.status, response.body["error"]["code"]) == (400, "invalid_body")
        message = response.body["error"]["message"]
        assert message.startswith(f"{field} must be one line of printable text"), message
        assert f"character 2 is {code_point}" in message, message
    assert history("alice") == [("deposit", 1000)]


@pytest.mark.parametrize(
    ("character", "code_point"), REORDERING_CHARACTERS, ids=[c for _, c in REORDERING_CHARACTERS]
)
def test_a_description_or_reason_with_a_directional_override_is_400_naming_the_character(
    character: str, code_point: str
) -> None:
    deposit("alice", 1000)
    text = f"a{character}b"

    spent = spend("alice", {"amount": 1, "description": text})
    adjusted = adjust("alice", {"amount": 1, "reason": text})

    for response, field in ((spent, "description"), (adjusted, "reason")):
        assert (response.status, response.body["error"]["code"]) == (400, "invalid_body")
        message = response.body["error"]["message"]
        assert message.startswith(f"{field} must be one line of printable text"), message
        assert f"character 2 is {code_point}, a directional override" in message, message
    assert history("alice") == [("deposit", 1000)]


@pytest.mark.parametrize("text", TAKEN_TEXT)
def test_printable_text_of_any_script_is_taken_and_stored_trimmed(text: str) -> None:
    deposit("alice", 1000)

    response = spend("alice", {"amount": 1, "description": f"x{text}x"})

    assert response.status == 201, response.body
    [row] = [row for row in CreditTransaction.query("alice") if row.type == "spend"]
    assert row.description == f"x{text}x"


# The longest JSON escape of one character (RFC 8259, section 7): a surrogate pair, 12 bytes.
EMOJI_ESCAPED = "\\ud83d\\ude00"


def test_500_characters_sent_as_escapes_fit_in_every_body_and_501_are_refused_for_their_length() -> None:
    deposit("alice", 1000)
    longest = "\U0001f600" * 500
    spend_body = json.dumps({"amount": MAX_AMOUNT, "description": longest})
    adjust_body = json.dumps({"amount": -MAX_AMOUNT, "reason": longest})
    assert EMOJI_ESCAPED * 500 in spend_body
    assert EMOJI_ESCAPED * 500 in adjust_body
    assert len(spend_body.encode()) > 6000

    spent = spend("alice", json.dumps({"amount": 1, "description": longest}))
    refused = spend("alice", spend_body, key="key-2")
    adjusted = adjust("alice", adjust_body, key="key-3")
    too_long = spend("alice", json.dumps({"amount": 1, "description": longest + "x"}), key="key-4")

    assert spent.status == 201, spent.body
    # The largest amount is refused for the balance, not for the size of the body.
    assert (refused.status, refused.body["error"]["code"]) == (402, "insufficient_credits")
    assert adjusted.status == 201, adjusted.body
    assert (too_long.status, too_long.body["error"]["message"]) == (
        400,
        "description must be text of 1 to 500 characters.",
    )
    descriptions = {row.type: row.description for row in CreditTransaction.query("alice")}
    assert (descriptions["spend"], descriptions["adjustment"]) == (longest, longest)


# The README's "The service routes" states it; this test holds the code to it.
STATED_BODY_LIMIT = 8192


def test_a_body_of_the_stated_limit_is_taken_and_one_byte_more_is_refused_saying_the_limit() -> None:
    deposit("alice", 1000)
    opening, closing = '{"amount": 1', "}"
    padding = STATED_BODY_LIMIT - len(opening) - len(closing)

    at_limit = spend("alice", opening + " " * padding + closing)
    past_it = spend("alice", opening + " " * (padding + 1) + closing, key="key-2")

    assert at_limit.status == 201, at_limit.body
    assert (past_it.status, past_it.body["error"]) == (
        400,
        {"code": "invalid_body", "message": "The request body is larger than 8,192 bytes."},
    )
    assert history("alice") == [("deposit", 1000), ("spend", -1)]


def test_the_readme_states_the_body_and_text_limits() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

    assert "8,192 bytes" in readme
    assert "500 characters" in readme


@pytest.mark.parametrize(
    ("written", "quoted"),
    [
        ("1e2", "not 1e2"),
        ("1E+2", "not 1E+2"),
        ("100.0", "not 100.0"),
        ("2.50", "not 2.50"),
        ("1e400", "not 1e400"),
    ],
)
def test_a_number_with_a_fraction_or_exponent_is_refused_quoting_what_the_caller_wrote(
    written: str, quoted: str
) -> None:
    deposit("alice", 1000)

    spent = spend("alice", '{"amount": ' + written + "}")
    adjusted = adjust("alice", '{"amount": ' + written + ', "reason": "x"}')

    for response in (spent, adjusted):
        assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
        assert response.body["error"]["message"].endswith(quoted), response.body
    assert history("alice") == [("deposit", 1000)]


def test_an_amount_of_more_digits_than_python_converts_is_refused_as_an_amount_not_as_a_bad_body() -> None:
    deposit("alice", 1000)
    digits = "9" * 5000  # past int()'s default limit of 4,300 digits; the body is still under 8,192 bytes

    response = spend("alice", '{"amount": ' + digits + "}")

    assert (response.status, response.body["error"]["code"]) == (400, "invalid_amount")
    assert response.body["error"]["message"].endswith("not " + "9" * 57 + "..."), response.body
    assert history("alice") == [("deposit", 1000)]

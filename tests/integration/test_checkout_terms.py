"""Tax, promotion codes and an amount of the customer's choosing: the customer pays what Checkout says,
the credits are what the mark fixed, and a refund takes credits in proportion to what was paid.

Expected values come from Stripe's documented arithmetic (docs.stripe.com/payments/checkout/taxes: tax
added on top for an exclusive price, inside it for an inclusive one; Stripe's support note: "if the price
is €600 and you set an inclusive tax rate of 10%, the invoice total will still be €600 ... An exclusive
tax rate of 10% on a €600 price will result in an invoice total of €660"), and from `reference_share`
below, written apart from wallet.payment_state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from ulid import ULID

from devstack.stripe_emulator import StripeEmulator
from devstack.stripe_emulator.errors import InvalidTransitionError
from functions.create_checkout.app import lambda_handler as create_checkout
from tests.checkout_flow import deliver, start_checkout, variant
from tests.integration.test_fulfilment_mark import emitted
from tests.lambda_events import api_event, invoke
from wallet import grants, ledger, marker, projection, settings
from wallet.fulfilment import fulfil
from wallet.models import CreditTransaction
from wallet.outcomes import Result
from wallet.packs import Pack
from wallet.payments import CheckoutSession
from wallet.totals import Terms, Totals, problem

pytestmark = pytest.mark.usefixtures("tables", "fresh_emulator")


@pytest.fixture
def fresh_emulator(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()


@pytest.fixture
def checkout_terms(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set TAX_ENABLED, TAX_BEHAVIOR, PROMOTION_CODES_ENABLED in a test; read afresh, reset after."""
    settings.checkout_terms.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    settings.checkout_terms.cache_clear()


def turn_on(monkeypatch: pytest.MonkeyPatch, *, tax: str | None = None, promotions: bool = False) -> None:
    monkeypatch.setenv("TAX_ENABLED", "true" if tax else "false")
    monkeypatch.setenv("TAX_BEHAVIOR", tax or "exclusive")
    monkeypatch.setenv("PROMOTION_CODES_ENABLED", "true" if promotions else "false")
    settings.checkout_terms.cache_clear()


def reference_share(credits: int, refunded: int, paid: int) -> int:
    """credits x refunded / paid, exactly, rounded half up: the rule README states, computed in fractions."""
    exact = Fraction(credits * refunded, paid)
    whole, rest = divmod(exact, 1)
    return int(whole) + (1 if rest >= Fraction(1, 2) else 0)


def session_of(emulator: StripeEmulator, session_id: str) -> dict[str, Any]:
    return emulator.client().v1.checkout.sessions.retrieve(session_id).to_dict()


def paid_grant_costs(user_id: str) -> list[tuple[int, int]]:
    """(credits, cost basis) of each of the user's paid grants, as the grants' projection reads its rows."""
    rows = [projection.row_of(item) for item in CreditTransaction.query(user_id)]
    return [(lot.credits, lot.paid) for lot in grants.fold(rows).lots.values() if lot.kind == grants.PAID]


def pay_and_deliver(emulator: StripeEmulator, session_id: str) -> None:
    *_, completed = emulator.pay(session_id)
    assert deliver(emulator.sign(completed)).status == 200


def refund_and_deliver(emulator: StripeEmulator, session_id: str, amount: int) -> None:
    for event in emulator.refund(emulator.charge_of(session_id), amount):
        assert deliver(emulator.sign(event)).status == 200


# -- Stripe's arithmetic, on its documented examples ------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "terms"),
    [
        pytest.param(Totals(60000, 0, 6000, 0, 66000), Terms("exclusive"), id="€600 + 10% exclusive = €660"),
        pytest.param(
            Totals(60000, 0, 5455, 0, 60000), Terms("inclusive"), id="€600 with 10% inclusive = €600"
        ),
        pytest.param(Totals(2100, 0, 399, 0, 2499), Terms("exclusive"), id="Stripe's example 2100 + 399"),
        pytest.param(Totals(5000, 1000, 0, 0, 4000), Terms(promotion_codes=True), id="20% off"),
        pytest.param(Totals(5000, 1000, 400, 0, 4400), Terms("exclusive", True), id="off, then taxed"),
        pytest.param(Totals(5000, 5000, 0, 0, 0), Terms(promotion_codes=True), id="all of it off"),
        pytest.param(Totals(5000, 0, 0, 0, 5000), Terms(), id="no terms"),
    ],
)
def test_totals_that_add_up_as_stripe_defines_them_pass(totals: Totals, terms: Terms) -> None:
    assert problem(totals, terms) is None


@pytest.mark.parametrize(
    ("totals", "terms", "says"),
    [
        pytest.param(
            Totals(60000, 0, 6000, 0, 60000), Terms("exclusive"), "is not", id="exclusive tax missing"
        ),
        pytest.param(
            Totals(60000, 0, 5455, 0, 65455), Terms("inclusive"), "is not", id="inclusive tax added"
        ),
        pytest.param(Totals(5000, 1000, 0, 0, 4000), Terms(), "no promotion code", id="discount not allowed"),
        pytest.param(
            Totals(5000, 0, 500, 0, 5500), Terms(promotion_codes=True), "collects none", id="untaxed"
        ),
        pytest.param(Totals(5000, 6000, 0, 0, 0), Terms(promotion_codes=True), "more than", id="over 100%"),
        pytest.param(Totals(5000, 0, -1, 0, 4999), Terms("exclusive"), "negative", id="negative tax"),
        pytest.param(Totals(5000, 0, 0, 0, 4999), Terms(), "is not", id="a cent short"),
    ],
)
def test_totals_that_do_not_add_up_are_named(totals: Totals, terms: Terms, says: str) -> None:
    reason = problem(totals, terms)

    assert reason is not None
    assert says in reason


# -- through Checkout (the emulator) and the webhook ------------------------------------------------------


def test_tax_added_on_top_is_paid_and_the_pack_credits_what_it_promised(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="exclusive")
    session_id = start_checkout("alice", 5000)

    session = session_of(stripe_emulator, session_id)
    pay_and_deliver(stripe_emulator, session_id)

    # The emulator's fixed test rate is 10%: 5000 + 500, as the €600 -> €660 example.
    assert (session["amount_subtotal"], session["total_details"]["amount_tax"], session["amount_total"]) == (
        5000,
        500,
        5500,
    )
    assert session["automatic_tax"]["enabled"] is True
    assert session["billing_address_collection"] == "required"
    assert ledger.get_balance("alice") == 5000
    [row] = CreditTransaction.query("alice")
    assert int(row.amount_paid) == 5500
    # The tax is the state's: the credits cost what the price was, 5000 for 5000.
    assert int(row.amount_tax) == 500
    assert paid_grant_costs("alice") == [(5000, 5000)]


def test_tax_inside_the_price_leaves_the_total_and_the_credits(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="inclusive")
    session_id = start_checkout("alice", 5500)

    session = session_of(stripe_emulator, session_id)
    pay_and_deliver(stripe_emulator, session_id)

    # 10% inside 5500 is 500 (5500 = 5000 + 500), and the customer pays 5500.
    assert (session["amount_total"], session["total_details"]["amount_tax"]) == (5500, 500)
    assert ledger.get_balance("alice") == 5500
    # Inside the price as on top of it: 5500 credits cost 5500 less the 500 of tax in it.
    assert paid_grant_costs("alice") == [(5500, 5000)]


def test_a_promotion_code_lowers_the_price_not_the_credits_and_a_refund_takes_its_share(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, promotions=True)
    session_id = start_checkout("bob", 5000)

    applied = stripe_emulator.apply_promotion_code(session_id, "save20")
    pay_and_deliver(stripe_emulator, session_id)
    refund_and_deliver(stripe_emulator, session_id, 1000)

    assert (applied["amount_total"], applied["total_details"]["amount_discount"]) == (4000, 1000)
    # A quarter of what was paid came back: a quarter of the 5000 credits go.
    assert ledger.get_balance("bob") == 5000 - reference_share(5000, 1000, 4000) == 3750


def test_a_refund_of_a_taxed_custom_amount_after_a_discount_takes_credits_rounded_half_up(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="exclusive", promotions=True)
    session_id = start_checkout("carol", 1234)
    stripe_emulator.apply_promotion_code(session_id, "FIVEOFF")
    paid = session_of(stripe_emulator, session_id)["amount_total"]
    pay_and_deliver(stripe_emulator, session_id)

    refund_and_deliver(stripe_emulator, session_id, 100)

    # (1234 - 500) + 10% of 734 (73.4 -> 73) = 807 paid; 1234 credits x 100 / 807 = 152.9 -> 153.
    assert paid == 807
    assert ledger.get_balance("carol") == 1234 - reference_share(1234, 100, 807) == 1234 - 153


def test_a_full_refund_takes_every_credit_whatever_was_paid(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="exclusive", promotions=True)
    session_id = start_checkout("dave", 5000)
    stripe_emulator.apply_promotion_code(session_id, "SAVE20")
    pay_and_deliver(stripe_emulator, session_id)

    refund_and_deliver(stripe_emulator, session_id, session_of(stripe_emulator, session_id)["amount_total"])

    assert ledger.get_balance("dave") == 0


def test_an_unknown_code_is_checkouts_to_refuse_and_changes_nothing(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, promotions=True)
    session_id = start_checkout("erin", 5000)

    with pytest.raises(InvalidTransitionError, match="invalid"):
        stripe_emulator.apply_promotion_code(session_id, "NOSUCHCODE")

    assert session_of(stripe_emulator, session_id)["amount_total"] == 5000


def test_no_code_is_taken_where_promotion_codes_are_off(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms)
    session_id = start_checkout("erin", 5000)

    with pytest.raises(InvalidTransitionError, match="does not allow"):
        stripe_emulator.apply_promotion_code(session_id, "SAVE20")

    assert session_of(stripe_emulator, session_id)["allow_promotion_codes"] is None


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"amount_total": 4999}, id="a total a cent short of its parts"),
        pytest.param(
            {"total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}}, id="tax gone"
        ),
        pytest.param({"amount_subtotal": 4000, "amount_total": 4400}, id="a subtotal the mark did not fix"),
    ],
)
def test_totals_that_do_not_add_up_are_not_credited_and_raise_the_alarm(
    stripe_emulator: StripeEmulator,
    checkout_terms: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
) -> None:
    turn_on(checkout_terms, tax="exclusive")
    *_, completed = stripe_emulator.pay(start_checkout("frank", 5000))
    capsys.readouterr()

    assert deliver(variant(stripe_emulator, completed, **changes)).status == 200

    assert ledger.get_balance("frank") == 0
    assert emitted(capsys.readouterr().out)["RejectedFulfilments"] == 1


def test_terms_added_to_a_session_after_it_was_made_break_its_mark(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a session made with no terms, whose metadata is later given some (a discount let in)
    turn_on(checkout_terms)
    *_, completed = stripe_emulator.pay(start_checkout("grace", 5000))
    metadata = completed["data"]["object"]["metadata"] | {"terms": "promotion_codes", "price": "5000"}
    capsys.readouterr()

    forged = variant(
        stripe_emulator,
        completed,
        metadata=metadata,
        amount_total=100,
        total_details={"amount_discount": 4900, "amount_shipping": 0, "amount_tax": 0},
    )

    assert deliver(forged).status == 200
    assert ledger.get_balance("grace") == 0
    assert emitted(capsys.readouterr().out)["RejectedFulfilments"] == 1


def test_an_amount_of_the_customers_choosing_credits_at_the_base_rate(
    stripe_emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bonus packs whose least generous rate is 1100 credits per 1000 (the base rate)
    monkeypatch.setenv("CREDIT_PACKS", "1000:1100,5000:6000")
    settings.price_list.cache_clear()
    try:
        session_id = start_checkout("heidi", 1234)
        pay_and_deliver(stripe_emulator, session_id)
    finally:
        monkeypatch.undo()
        settings.price_list.cache_clear()

    # 1234 x 1.1 = 1357.4: whole credits, rounded down.
    assert ledger.get_balance("heidi") == 1357
    assert json.loads(json.dumps(session_of(stripe_emulator, session_id)["amount_total"])) == 1234


def test_a_partial_chargeback_of_a_discounted_payment_takes_its_share(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, promotions=True)
    session_id = start_checkout("ivan", 5000)
    stripe_emulator.apply_promotion_code(session_id, "FIVEOFF")
    pay_and_deliver(stripe_emulator, session_id)

    for event in stripe_emulator.open_dispute(stripe_emulator.charge_of(session_id), 1500):
        assert deliver(stripe_emulator.sign(event)).status == 200

    # 4500 paid; 1500 of it disputed: a third of the 5000 credits, 1666.67 -> 1667
    assert ledger.get_balance("ivan") == 5000 - reference_share(5000, 1500, 4500) == 3333


def test_a_code_that_takes_the_whole_price_is_credited_with_nothing_paid(
    checkout_terms: pytest.MonkeyPatch,
) -> None:
    # Given a session made with promotion codes on, completed by Checkout with a 100%-off code
    turn_on(checkout_terms, promotions=True)
    terms = Terms(promotion_codes=True)
    payment_id = str(ULID())
    metadata = {
        "userId": "judy",
        "amount": "5000",
        "paymentId": payment_id,
        **terms.metadata(Pack(5000, 5000)),
    }
    metadata["creditsMark"] = marker.mark(
        settings.fulfilment_keys()[0],
        user_id="judy",
        payment_id=payment_id,
        credits=5000,
        amount=5000,
        currency="usd",
        terms=terms.text(),
    )
    session = CheckoutSession(
        id="cs_test_free",
        status="complete",
        payment_status="no_payment_required",
        amount_total=0,
        currency="usd",
        payment_intent_id=None,
        metadata=metadata,
        created=int(time.time()),
        totals=Totals(5000, 5000, 0, 0, 0),
    )

    # When it is fulfilled, twice; and one with no discount that owes nothing is not
    outcomes = [fulfil(session).result, fulfil(session).result]
    unpaid = fulfil(replace(session, id="cs_test_unpaid", totals=Totals(5000, 0, 0, 0, 0))).result

    assert outcomes == [Result.CREDITED, Result.ALREADY_CREDITED]
    assert unpaid is Result.AWAITING_PAYMENT
    assert ledger.get_balance("judy") == 5000
    [row] = CreditTransaction.query("judy")
    assert int(row.amount_paid) == 0


def code_form(url: str, code: str, *, as_json: bool) -> tuple[int, dict[str, str], bytes]:
    """The Checkout page's promotion code form, posted as a browser (or, `as_json`, a script) posts it."""
    accept = "application/json" if as_json else "text/html"
    request = urllib.request.Request(
        f"{url}/promotion-code",
        data=urllib.parse.urlencode({"code": code}).encode(),
        headers={"Accept": accept, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirects())
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, dict(refused.headers), refused.read()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


def test_the_checkout_pages_code_form_answers_a_script_with_totals_and_a_browser_with_the_page(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="exclusive", promotions=True)
    url = session_of(stripe_emulator, start_checkout("kim", 5000))["url"]

    unknown = code_form(url, "NOPE", as_json=True)
    applied = code_form(url, "SAVE20", as_json=True)
    browser = code_form(url, "NOPE", as_json=False)

    assert unknown[0] == 400
    assert (applied[0], json.loads(applied[2])["amountTotal"]) == (200, 4400)
    # A browser is sent back to the page, which says why; the code applied before still holds
    assert (browser[0], browser[1]["Location"]) == (303, f"{url}?code=refused")
    assert session_of(stripe_emulator, session_id=url.rsplit("/", 1)[1])["amount_total"] == 4400


def test_a_refund_that_overtakes_its_taxed_deposit_waits_for_it_then_takes_its_share(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    # Given a taxed payment whose refund reaches the webhook before its checkout.session.completed
    turn_on(checkout_terms, tax="exclusive")
    session_id = start_checkout("liam", 5000)
    *_, completed = stripe_emulator.pay(session_id)
    refunded = stripe_emulator.refund(stripe_emulator.charge_of(session_id), 1100)

    # Then the refund is ours, judged by the price under the mark (not the 5500 charged): Stripe must retry
    early = [deliver(stripe_emulator.sign(event)).status for event in refunded]
    assert ledger.get_balance("liam") == 0
    assert deliver(stripe_emulator.sign(completed)).status == 200
    for event in refunded:
        assert deliver(stripe_emulator.sign(event)).status == 200

    assert 500 in early
    # 5500 paid (5000 + 10%); 1100 back is a fifth: 1000 of the 5000 credits
    assert ledger.get_balance("liam") == 5000 - reference_share(5000, 1100, 5500) == 4000


def test_a_taxed_checkout_that_saves_the_card_asks_checkout_as_the_pinned_sdk_names_it(
    stripe_emulator: StripeEmulator, checkout_terms: pytest.MonkeyPatch
) -> None:
    turn_on(checkout_terms, tax="inclusive", promotions=True)
    body = json.dumps({"amount": 5000, "saveCard": True})

    response = invoke(create_checkout, api_event("POST", "/api/checkout", user="mia", body=body))

    assert response.status == 201, response.body
    [created] = [r for r in stripe_emulator.requests if r.path == "/v1/checkout/sessions"]
    params = created.params
    assert params["automatic_tax"] == {"enabled": "true"}
    assert params["billing_address_collection"] == "required"
    assert params["tax_id_collection"] == {"enabled": "true"}
    assert params["customer_update"] == {"address": "auto", "name": "auto"}
    assert params["allow_promotion_codes"] == "true"
    assert params["line_items"][0]["price_data"]["tax_behavior"] == "inclusive"
    assert params["metadata"]["terms"] == "tax=inclusive,promotion_codes"
    assert params["payment_intent_data"]["metadata"] == params["metadata"]

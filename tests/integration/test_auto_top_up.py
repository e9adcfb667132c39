"""Auto top-up end to end below the page: settings, the trigger fed by moto's real stream of
CreditBalance through the stream handler, and the webhook crediting the payment, exactly once."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from ulid import ULID

from devstack.balance_stream import BalanceStream
from devstack.drain import DrainTimeoutError
from devstack.dynamodb import DynamoDBServer
from devstack.stripe_emulator import StripeEmulator
from functions.auto_top_up.app import lambda_handler as auto_top_up_routes
from functions.auto_top_up.app import stream_handler
from tests.checkout_flow import deliver
from tests.fresh_process import modules_imported
from tests.lambda_events import LambdaContext, api_event, invoke
from wallet import auto_top_up, event_log, holds, hot_accounts, ledger, payments, settings, stripe_events
from wallet.auto_top_up import Decision, Status
from wallet.errors import PaymentAttemptFailedError, PaymentDeclinedError
from wallet.models import CreditBalance, CreditTransaction
from wallet.payments import OffSessionCharge

THRESHOLD = 500
PACK = 1000  # the $10 pack: 1,000 credits

pytestmark = pytest.mark.usefixtures("tables")


@dataclass
class FakeStripe:
    """Stripe's PaymentIntents as auto top-up sees them: one intent per idempotency key, however often
    it is asked, and a card that may decline, ask for authentication, or lose the answer once."""

    card: str = "ok"
    decline_code: str | None = None
    passing: list[PaymentAttemptFailedError] = field(default_factory=list)
    """Passing failures to answer, one per call, before the card's own answer."""
    lose_answer_once: bool = False
    intents: dict[str, tuple[str, OffSessionCharge]] = field(default_factory=dict)
    calls: int = 0
    keys: list[str] = field(default_factory=list)

    def __call__(self, charge: OffSessionCharge) -> str:
        self.calls += 1
        self.keys.append(charge.idempotency_key)
        if self.passing:
            raise self.passing.pop(0)
        if self.card != "ok":
            raise PaymentDeclinedError(self.card, self.decline_code)
        earlier = self.intents.get(charge.idempotency_key)
        if earlier is not None and earlier[1].amount != charge.amount:
            raise PaymentDeclinedError("idempotency_error")  # Stripe: a key reused with other parameters
        if charge.idempotency_key not in self.intents:
            self.intents[charge.idempotency_key] = (f"pi_{ULID()}", charge)
        if self.lose_answer_once:
            self.lose_answer_once = False
            raise RuntimeError("the trigger died after Stripe made the intent")
        return self.intents[charge.idempotency_key][0]

    @property
    def charges(self) -> int:
        return len(self.intents)

    def succeeded_events(self) -> list[dict[str, Any]]:
        return [succeeded(intent_id, charge) for intent_id, charge in self.intents.values()]


def payment_intent(intent_id: str, charge: OffSessionCharge, **changes: Any) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": charge.amount,
        "amount_received": charge.amount,
        "currency": charge.currency,
        "customer": charge.customer_id,
        "payment_method": charge.payment_method_id,
        "livemode": False,
        "status": "succeeded",
        "metadata": dict(charge.metadata),
        "last_payment_error": None,
    } | changes


def event(kind: str, data_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{ULID()}",
        "object": "event",
        "api_version": payments.API_VERSION,
        "created": int(time.time()),
        "livemode": False,
        "type": kind,
        "data": {"object": data_object},
    }


def succeeded(intent_id: str, charge: OffSessionCharge) -> dict[str, Any]:
    return event("payment_intent.succeeded", payment_intent(intent_id, charge))


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> FakeStripe:
    fake = FakeStripe()
    monkeypatch.setattr(payments, "charge_off_session", fake)
    return fake


@pytest.fixture
def stream(tables: DynamoDBServer) -> BalanceStream:
    return BalanceStream(
        tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stream_handler, LambdaContext()
    )


def with_card(emulator: StripeEmulator, user: str, *, balance: int) -> None:
    """Given a user with `balance` credits, a Stripe Customer and a card saved through the webhook."""
    if balance:
        ledger.add_credits(user, balance, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    customer = auto_top_up.customer_of(user, lambda _: f"cus_{user}")
    card = {
        "id": f"pm_{user}",
        "object": "payment_method",
        "customer": customer,
        "type": "card",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    }
    assert deliver(emulator.sign(event("payment_method.attached", card))).status == 200


def turn_on(user: str, *, threshold: int = THRESHOLD, amount: int = PACK) -> Any:
    body = json.dumps({"enabled": True, "threshold": threshold, "amount": amount})
    return invoke(auto_top_up_routes, api_event_for("PUT", user, body))


def api_event_for(method: str, user: str, body: str | None = None) -> dict[str, Any]:
    request = api_event("GET", "/api/balance", user=user, body=body)
    request["routeKey"] = f"{method} /api/auto-top-up"
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/api/auto-top-up"
    request["requestContext"]["http"]["method"] = method
    return request


def deposits(user: str) -> list[CreditTransaction]:
    return [row for row in CreditTransaction.query(user) if row.source == "auto_top_up"]


def pay(emulator: StripeEmulator, stripe: FakeStripe) -> None:
    """Stripe tells the webhook of every payment it made, twice."""
    for paid in stripe.succeeded_events() * 2:
        assert deliver(emulator.sign(paid)).status == 200


def spend(user: str, amount: int) -> None:
    ledger.spend(
        user,
        amount,
        idempotency_key=str(ULID()),
        description=None,
        actor="arn:aws:iam::1:role/x",
        currency="usd",
    )


def test_a_burst_of_spends_across_the_threshold_makes_one_charge_and_one_deposit(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given auto top-up on above the threshold
    with_card(stripe_emulator, "burst", balance=2000)
    assert turn_on("burst").status == 200
    # When 50 spends of 40 land at once, taking the balance from 2,000 to 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: spend("burst", 40), range(50)))
    stream.drain()
    # Then one charge was made, and however often Stripe reports it, one deposit lands
    assert stripe.charges == 1
    pay(stripe_emulator, stripe)
    stream.drain()
    assert stripe.charges == 1
    assert [int(row.amount) for row in deposits("burst")] == [1000]
    assert ledger.get_balance("burst") == 1000
    assert auto_top_up.view("burst").status is Status.ON


def test_records_delivered_again_at_once_or_a_trigger_dying_after_the_charge_make_one_charge(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a user with auto top-up on, and a trigger that dies after Stripe made the intent
    with_card(stripe_emulator, "twice", balance=600)
    turn_on("twice")
    stream.drain()
    stripe.lose_answer_once = True
    # When a spend crosses the threshold and its records arrive four times at once, the first failing
    spend("twice", 200)
    records = stream.records()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: stream.deliver(records), range(4)))
    stream.drain()
    # Then Stripe was asked more than once, for one charge
    assert stripe.calls >= 2
    assert stripe.charges == 1
    pay(stripe_emulator, stripe)
    assert ledger.get_balance("twice") == 1400


@pytest.mark.parametrize(
    ("card", "words"), [("card_declined", "declined"), ("authentication_required", "confirm the payment")]
)
def test_a_refused_card_turns_auto_top_up_off_with_a_reason_and_deposits_nothing(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream, card: str, words: str
) -> None:
    with_card(stripe_emulator, "refused", balance=600)
    turn_on("refused")
    stripe.card = card
    spend("refused", 200)
    stream.drain()
    seen = auto_top_up.view("refused")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert seen.reason
    assert words in seen.reason
    assert deposits("refused") == []
    spend("refused", 100)
    stream.drain()
    assert stripe.calls == 1


def test_a_payment_that_fails_later_turns_it_off_and_credits_nothing(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    with_card(stripe_emulator, "later", balance=600)
    turn_on("later")
    spend("later", 200)
    stream.drain()
    [(intent_id, charge)] = stripe.intents.values()
    failed = payment_intent(
        intent_id, charge, status="requires_payment_method", last_payment_error={"code": "card_declined"}
    )
    assert deliver(stripe_emulator.sign(event("payment_intent.payment_failed", failed))).status == 200
    seen = auto_top_up.view("later")
    assert (seen.enabled, seen.status) == (False, Status.FAILED)
    assert deposits("later") == []


def test_the_daily_limit_pauses_it_saying_until_when_and_it_resumes_then(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a user who spends everything each time it refills
    with_card(stripe_emulator, "runaway", balance=600)
    turn_on("runaway")
    limit = settings.auto_top_up_daily_limit()
    for _ in range(limit + 1):
        spend("runaway", ledger.get_balance("runaway"))
        stream.drain()
        pay(stripe_emulator, stripe)
        stream.drain()
    # Then it charged `limit` times and paused itself, saying until when
    assert stripe.charges == limit
    seen = auto_top_up.view("runaway")
    assert (seen.enabled, seen.status) == (True, Status.LIMIT_REACHED)
    assert seen.resumes_at is not None
    first = min(CreditBalance.get("runaway").auto_top_up_charges or [])
    assert seen.resumes_at == int(first) + 24 * 60 * 60
    shown = invoke(auto_top_up_routes, api_event_for("GET", "runaway")).body
    assert shown["status"] == "limit_reached"
    assert shown["resumesAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen.resumes_at))
    assert seen.reason
    assert str(limit) in seen.reason
    shown_until = -(-seen.resumes_at // 60) * 60  # the minute it is over by
    assert time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(shown_until)) in seen.reason
    # And saving the settings again before then keeps it paused, as the reason says, and charges nothing
    again = turn_on("runaway")
    assert (again.body["status"], again.body["resumesAt"]) == ("limit_reached", shown["resumesAt"])
    stream.drain()
    assert stripe.charges == limit


def test_the_limit_counts_a_sliding_24_hours_of_charges_made(
    stripe: FakeStripe, stripe_emulator: StripeEmulator
) -> None:
    with_card(stripe_emulator, "days", balance=0)
    turn_on("days")
    clock = [1_000_000.0]

    def charge_at(when: float) -> Decision:
        clock[0] = when
        decision = auto_top_up.top_up_if_low("days", now=lambda: clock[0])
        if decision is Decision.CHARGED:
            pay(stripe_emulator, stripe)
            spend("days", ledger.get_balance("days"))
        return decision

    day = 24 * 60 * 60
    # Three charges around what a fixed window would have called the end of one day and the start of the
    # next: one long before, two just before the edge
    assert charge_at(1_000_000) is Decision.CHARGED
    assert charge_at(1_000_000 + day - 2) is Decision.CHARGED
    assert charge_at(1_000_000 + day - 1) is Decision.CHARGED
    # Past the first one's 24 hours, one more may go; the next ones wait for the 24 hours of the others
    assert charge_at(1_000_000 + day) is Decision.CHARGED
    assert charge_at(1_000_000 + day + 1) is Decision.LIMIT_REACHED
    resumes_at = 1_000_000 + 2 * day - 2
    seen = auto_top_up.view("days", now=lambda: clock[0])
    assert (seen.status, seen.resumes_at) == (Status.LIMIT_REACHED, resumes_at)
    assert charge_at(1_000_000 + day + 2) is Decision.PAUSED
    # Once that time has come, it shows on again, before any change tops it up
    seen = auto_top_up.view("days", now=lambda: resumes_at)
    assert (seen.status, seen.reason, seen.resumes_at) == (Status.ON, None, None)
    # Saving the settings then turns it on at once, as its reason says; a moment before, it stays paused
    before = auto_top_up.configure(
        "days", enabled=True, threshold=500, amount=PACK, now=lambda: resumes_at - 1
    )
    assert (before.status, before.resumes_at) == (Status.LIMIT_REACHED, resumes_at)
    after = auto_top_up.configure("days", enabled=True, threshold=500, amount=PACK, now=lambda: resumes_at)
    assert (after.status, after.reason, after.resumes_at) == (Status.ON, None, None)
    assert charge_at(resumes_at) is Decision.CHARGED
    assert auto_top_up.view("days").status is Status.ON


def test_a_declined_charge_does_not_count_towards_the_limit(
    stripe: FakeStripe, stripe_emulator: StripeEmulator
) -> None:
    with_card(stripe_emulator, "counted", balance=0)
    turn_on("counted")
    stripe.card = "card_declined"
    assert auto_top_up.top_up_if_low("counted") is Decision.DECLINED
    assert not CreditBalance.get("counted").auto_top_up_charges


def test_a_payment_intent_that_is_not_an_auto_top_up_is_ignored(stripe_emulator: StripeEmulator) -> None:
    charge = OffSessionCharge(
        "cus_x", "pm_x", 1000, "usd", {"userId": "other", "paymentId": str(ULID()), "amount": "1000"}, "k"
    )
    assert deliver(stripe_emulator.sign(succeeded("pi_checkout", charge))).status == 200
    assert ledger.get_balance("other") == 0


def test_an_auto_top_up_whose_amount_is_not_a_pack_is_not_credited(stripe_emulator: StripeEmulator) -> None:
    metadata = {"userId": "odd", "paymentId": str(ULID()), "amount": "1000", "source": "auto_top_up"}
    charge = OffSessionCharge("cus_x", "pm_x", 999, "usd", metadata, "k")
    assert deliver(stripe_emulator.sign(succeeded("pi_odd", charge))).status == 200
    assert ledger.get_balance("odd") == 0


def test_without_a_card_it_cannot_be_turned_on(tables: DynamoDBServer) -> None:
    response = turn_on("cardless")
    assert response.status == 409
    assert response.body["error"]["code"] == "no_payment_method"
    assert auto_top_up.view("cardless").enabled is False


def test_settings_are_validated_and_shown(stripe_emulator: StripeEmulator, tables: DynamoDBServer) -> None:
    with_card(stripe_emulator, "shown", balance=600)
    assert turn_on("shown", amount=499).status == 400
    assert turn_on("shown", threshold=-1).status == 400
    response = invoke(auto_top_up_routes, api_event_for("GET", "shown"))
    assert response.body == {
        "enabled": False,
        "threshold": None,
        "amount": None,
        "paymentMethod": {"brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2030},
        "status": "off",
        "reason": None,
        "resumesAt": None,
    }
    assert turn_on("shown").body["status"] == "on"


def put(user: str, body: Any) -> Any:
    return invoke(auto_top_up_routes, api_event_for("PUT", user, json.dumps(body)))


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        ({"enabled": True, "threshold": -1, "amount": PACK}, "from 1 to 1000"),
        # A spend never takes the balance below 0: a threshold of 0 would never refill
        ({"enabled": True, "threshold": 0, "amount": PACK}, "from 1 to 1000"),
        ({"enabled": False, "threshold": 0, "amount": PACK}, "from 1 to 1000"),
        ({"enabled": True, "threshold": 2.5, "amount": PACK}, "whole number"),
        ({"enabled": True, "threshold": "500", "amount": PACK}, "whole number"),
        ({"enabled": True, "threshold": True, "amount": PACK}, "whole number"),
        ({"enabled": True, "threshold": 10**20, "amount": PACK}, "from 1 to 1000"),
        ({"enabled": True, "threshold": 10**40, "amount": PACK}, "from 1 to 1000"),
        ({"enabled": True, "threshold": auto_top_up.MAX_THRESHOLD + 1, "amount": 10000}, "from 1 to"),
        ({"enabled": True, "threshold": None, "amount": PACK}, "whole number"),
        ({"enabled": True, "amount": PACK}, '"threshold": 500'),
        (
            {"enabled": True, "threshold": 400, "amount": 499},
            "one of 1000, 5000, 10000, or a whole number from 500",
        ),
        ({"enabled": True, "threshold": 500, "amount": 100001}, "or a whole number from 500 to 100000"),
        ({"enabled": True, "threshold": 500, "amount": 10**30}, "one of 1000, 5000, 10000"),
        ({"enabled": True, "threshold": 500, "amount": 1000.0}, "one of 1000, 5000, 10000"),
        ({"enabled": True, "threshold": 500}, '"amount": 1000'),
        # One charge could not end a dip: a larger pack or a lower threshold is named
        ({"enabled": True, "threshold": 5000, "amount": PACK}, "choose a pack of 5000 or 10000"),
        ({"enabled": False, "threshold": 1001, "amount": PACK}, "at most 1000"),
    ],
)
def test_bad_settings_are_refused_with_what_is_allowed_and_change_nothing(
    stripe_emulator: StripeEmulator, stream: BalanceStream, stripe: FakeStripe, body: Any, allowed: str
) -> None:
    with_card(stripe_emulator, "strict", balance=5000)
    assert turn_on("strict", threshold=300, amount=PACK).status == 200
    before = CreditBalance.get("strict").attribute_values

    response = put("strict", body)

    assert response.status == 400
    assert allowed in response.body["error"]["message"]
    assert CreditBalance.get("strict").attribute_values == before
    stream.drain()
    assert stripe.charges == 0


def test_the_lowest_threshold_refills_when_the_balance_runs_out(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given the lowest threshold there is: 1 credit
    with_card(stripe_emulator, "empty", balance=300)
    assert turn_on("empty", threshold=1, amount=PACK).status == 200
    # When a spend leaves 1 credit, nothing is charged; when the next leaves nothing, one pack is
    spend("empty", 299)
    stream.drain()
    assert stripe.charges == 0
    spend("empty", 1)
    stream.drain()
    pay(stripe_emulator, stripe)
    stream.drain()
    assert (stripe.charges, ledger.get_balance("empty")) == (1, PACK)


def test_a_threshold_at_the_packs_credits_is_refilled_by_one_charge_however_deep_the_dip(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given the highest threshold the pack allows
    with_card(stripe_emulator, "deep", balance=6000)
    assert turn_on("deep", threshold=5000, amount=5000).status == 200
    # When one spend leaves nothing
    spend("deep", 6000)
    stream.drain()
    pay(stripe_emulator, stripe)
    stream.drain()
    # Then one charge lifts it to the threshold, and the dip is over
    assert (stripe.charges, ledger.get_balance("deep")) == (1, 5000)


def test_a_threshold_saved_above_its_pack_before_the_rule_turns_it_off_instead_of_chaining_charges(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    with_card(stripe_emulator, "chained", balance=6000)
    turn_on("chained", threshold=1000, amount=PACK)
    CreditBalance("chained").update(actions=[CreditBalance.auto_top_up_threshold.set(5000)])
    spend("chained", 5000)
    stream.drain()
    seen = auto_top_up.view("chained")
    assert (stripe.charges, seen.enabled, seen.status) == (0, False, Status.FAILED)
    assert seen.reason
    assert "larger pack or a lower threshold" in seen.reason


def test_removing_the_card_turns_it_off(stripe_emulator: StripeEmulator, stripe: FakeStripe) -> None:
    with_card(stripe_emulator, "removed", balance=600)
    turn_on("removed")
    detached: list[str] = []
    auto_top_up.remove_card("removed", detached.append)
    seen = auto_top_up.view("removed")
    assert detached == ["pm_removed"]
    assert (seen.enabled, seen.card, seen.status) == (False, None, Status.OFF)
    assert auto_top_up.top_up_if_low("removed") is Decision.NOT_ENABLED


def test_turning_it_on_below_the_threshold_charges_once_at_once(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    with_card(stripe_emulator, "low", balance=100)
    stream.drain()
    assert stripe.charges == 0  # opt-in: nothing before it is on
    turn_on("low")
    stream.drain()
    assert stripe.charges == 1
    pay(stripe_emulator, stripe)
    stream.drain()
    assert stripe.charges == 1
    assert ledger.get_balance("low") == 1100
    assert CreditBalance.get("low").auto_top_up_episode is None


@pytest.mark.parametrize("amount", [500, 1234, 100000])
def test_an_amount_of_the_users_choosing_within_the_bounds_is_charged_and_credited(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream, amount: int
) -> None:
    # Given auto top-up on with an amount that is no pack, from CUSTOM_AMOUNT_MIN to _MAX ($5 to $1,000)
    user = f"custom-{amount}"
    with_card(stripe_emulator, user, balance=100)
    assert turn_on(user, threshold=400, amount=amount).status == 200
    stream.drain()
    pay(stripe_emulator, stripe)
    stream.drain()
    # Then one charge of that amount, credited at the packs' base rate (1:1 here)
    assert stripe.charges == 1
    assert ledger.get_balance(user) == 100 + amount
    [row] = deposits(user)
    assert (int(row.amount), int(row.amount_paid)) == (amount, amount)


def test_two_triggers_that_read_the_same_dip_claim_it_once(
    stripe_emulator: StripeEmulator, stripe: FakeStripe
) -> None:
    # Given a dip that two deliveries read before either claimed it
    with_card(stripe_emulator, "overlap", balance=100)
    turn_on("overlap")
    inner: list[Decision] = []

    def now_while_another_trigger_runs() -> float:
        if not inner:
            inner.append(auto_top_up.top_up_if_low("overlap"))
        return time.time()

    # When the second one runs to its end between the first one's read and its claim
    outer = auto_top_up.top_up_if_low("overlap", now=now_while_another_trigger_runs)
    # Then one claimed and charged, the other found the dip taken
    assert (inner, outer) == ([Decision.CHARGED], Decision.IN_PROGRESS)
    assert stripe.charges == 1


def test_a_user_who_never_had_credits_is_topped_up_when_it_is_turned_on(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    with_card(stripe_emulator, "new", balance=0)
    turn_on("new")
    stream.drain()
    assert stripe.charges == 1


def test_an_auto_top_up_whose_webhook_was_lost_is_credited_by_the_sweeps_replay_and_its_dip_ends(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a dip charged, whose payment_intent.succeeded never reached the webhook
    with_card(stripe_emulator, "lost", balance=100)
    turn_on("lost")
    stream.drain()
    assert stripe.charges == 1
    [lost] = stripe.succeeded_events()
    # When the sweep reads it back from Stripe's event log, twice (two runs)
    assert lost["type"] in stripe_events.REPLAYED
    for _ in range(2):
        stripe_events.act_on(event_log.logged_event(lost).event)
    stream.drain()
    # Then it is credited once and the dip is over: nothing more is charged
    assert (len(deposits("lost")), ledger.get_balance("lost"), stripe.charges) == (1, 1100, 1)
    assert CreditBalance.get("lost").auto_top_up_episode is None


def test_a_running_stream_drains_what_was_committed_and_what_that_committed_in_turn(
    tables: DynamoDBServer,
) -> None:
    seen: list[str] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        users = [record["dynamodb"]["Keys"]["userId"]["S"] for record in event["Records"]]
        seen.extend(users)
        if "first" in users and "second" not in seen:  # what a delivery commits is drained too
            ledger.add_credits("second", 100, source="stripe_payment", payment_id=str(ULID()), currency="usd")
        return {"batchItemFailures": []}

    stream = BalanceStream(tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], handler, LambdaContext())
    stream.start()
    try:
        ledger.add_credits("first", 100, source="stripe_payment", payment_id=str(ULID()), currency="usd")

        delivered = stream.drain()

        assert seen[0] == "first"
        assert seen[-1] == "second"
        assert delivered == len(seen)
        assert stream.drain() == 0
    finally:
        stream.stop()


def test_a_stream_whose_trigger_never_finishes_fails_its_drain_saying_so(tables: DynamoDBServer) -> None:
    released = threading.Event()

    def stuck(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
        released.wait(timeout=60)
        return {"batchItemFailures": []}

    stream = BalanceStream(tables.endpoint_url, os.environ["CREDIT_BALANCE_TABLE"], stuck, LambdaContext())
    stream.start()
    try:
        ledger.add_credits("stuck", 100, source="stripe_payment", payment_id=str(ULID()), currency="usd")

        with pytest.raises(DrainTimeoutError, match=r"balance stream of .* did not settle in 0\.5 s"):
            stream.drain(timeout=0.5)
    finally:
        released.set()
        stream.stop()


def test_saving_the_settings_again_while_a_charge_is_in_flight_keeps_its_episode_and_charges_once(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a dip whose charge is made but whose payment has not been reported yet
    with_card(stripe_emulator, "resave", balance=600)
    turn_on("resave")
    spend("resave", 200)
    stream.drain()
    assert stripe.charges == 1
    in_flight = CreditBalance.get("resave").auto_top_up_episode
    # When the user saves the settings again, twice, with another pack
    assert turn_on("resave").status == 200
    assert turn_on("resave", amount=5000).status == 200
    stream.drain()
    # Then the episode is the same one and nothing more is charged until its payment settles
    assert CreditBalance.get("resave").auto_top_up_episode == in_flight
    assert stripe.charges == 1
    pay(stripe_emulator, stripe)
    stream.drain()
    assert (stripe.charges, ledger.get_balance("resave")) == (1, 1400)
    assert CreditBalance.get("resave").auto_top_up_episode is None


def test_metrics_count_every_outcome_of_the_trigger() -> None:
    from functions.auto_top_up.app import METRIC_BY_DECISION

    assert set(METRIC_BY_DECISION) == set(Decision)
    assert len(set(METRIC_BY_DECISION.values())) == len(Decision)


@pytest.mark.parametrize(
    ("code", "decline_code", "words"),
    [
        ("card_declined", "insufficient_funds", "VISA ending 4242 was declined: it has insufficient funds"),
        ("card_declined", "lost_card", "VISA ending 4242 was declined: it was reported lost"),
        ("card_declined", "do_not_honor", "VISA ending 4242 was declined: the bank refused it"),
        ("card_declined", "new_bank_reason", "VISA ending 4242 was declined: new bank reason"),
        ("expired_card", "expired_card", "VISA ending 4242 has expired"),
        ("authentication_required", None, "VISA ending 4242: the bank asked you to confirm"),
        ("card_gone", None, "VISA ending 4242 is no longer on file"),
        ("customer_gone", None, "no longer on file"),
        ("card_decline_rate_limit_exceeded", None, "blocks more tries for 24 hours"),
    ],
)
def test_a_final_decline_turns_it_off_naming_the_card_and_the_cause(
    stripe_emulator: StripeEmulator,
    stripe: FakeStripe,
    stream: BalanceStream,
    code: str,
    decline_code: str | None,
    words: str,
) -> None:
    with_card(stripe_emulator, "final", balance=600)
    turn_on("final")
    stripe.card, stripe.decline_code = code, decline_code
    spend("final", 200)
    stream.drain()
    shown = invoke(auto_top_up_routes, api_event_for("GET", "final")).body
    assert (shown["enabled"], shown["status"], stripe.calls) == (False, "failed", 1)
    assert words in shown["reason"]
    assert stream.given_up == []


def test_passing_failures_are_tried_again_with_backoff_and_the_same_key_until_stripe_answers(
    stripe_emulator: StripeEmulator, stripe: FakeStripe
) -> None:
    # Given a Stripe that is unreachable, then busy, then says the card network failed, then pays
    with_card(stripe_emulator, "passing", balance=0)
    turn_on("passing")
    stripe.passing = [
        PaymentAttemptFailedError("connection_error", answered=False),
        PaymentAttemptFailedError("lock_timeout", answered=False),
        PaymentAttemptFailedError("processing_error", answered=True),
    ]
    slept: list[float] = []

    decision = auto_top_up.top_up_if_low("passing", sleep=slept.append)

    # Then one charge, after backing off longer each time; the key changes only after Stripe's answer
    episode = CreditBalance.get("passing").auto_top_up_episode
    assert decision is Decision.CHARGED
    assert slept == [auto_top_up.BACKOFF_SECONDS * 2**n for n in range(3)]
    base = f"auto-top-up-{episode}"
    assert stripe.keys == [base, base, base, f"{base}-1"]
    assert auto_top_up.view("passing").status is Status.ON


def test_passing_failures_that_never_pass_turn_it_off_with_a_reason_and_the_record_is_consumed(
    stripe_emulator: StripeEmulator,
    stripe: FakeStripe,
    stream: BalanceStream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auto_top_up, "BACKOFF_SECONDS", 0.001)
    with_card(stripe_emulator, "never", balance=600)
    turn_on("never")
    stripe.passing = [PaymentAttemptFailedError("api_error", answered=False)] * (auto_top_up.ATTEMPTS + 5)
    spend("never", 200)
    stream.drain()
    seen = auto_top_up.view("never")
    assert (seen.enabled, seen.status, stripe.calls) == (False, Status.FAILED, auto_top_up.ATTEMPTS)
    assert seen.reason
    assert f"failed {auto_top_up.ATTEMPTS} times" in seen.reason
    assert "VISA ending 4242" in seen.reason
    assert stream.given_up == []
    assert CreditBalance.get("never").auto_top_up_episode is None


@pytest.mark.parametrize(
    ("error", "turned_off"),
    [
        ({"code": "card_declined", "decline_code": "stolen_card", "type": "card_error"}, "reported stolen"),
        ({"code": "processing_error", "type": "card_error"}, None),
    ],
)
def test_the_webhook_turns_it_off_for_a_final_failure_only(
    stripe_emulator: StripeEmulator,
    stripe: FakeStripe,
    stream: BalanceStream,
    error: dict[str, str],
    turned_off: str | None,
) -> None:
    with_card(stripe_emulator, "hooked", balance=600)
    turn_on("hooked")
    spend("hooked", 200)
    stream.drain()
    [(intent_id, charge)] = stripe.intents.values()
    failed = payment_intent(intent_id, charge, status="requires_payment_method", last_payment_error=error)
    assert deliver(stripe_emulator.sign(event("payment_intent.payment_failed", failed))).status == 200
    seen = auto_top_up.view("hooked")
    if turned_off is None:
        assert (seen.enabled, seen.status) == (True, Status.ON)
        assert CreditBalance.get("hooked").auto_top_up_episode is not None
    else:
        assert (seen.enabled, seen.status) == (False, Status.FAILED)
        assert seen.reason
        assert turned_off in seen.reason


def test_an_auto_top_up_is_credited_by_its_mark_like_a_checkout_session(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given an auto top-up charged for one user, and two copies of its payment: one whose metadata was
    # changed to credit another user, one with the mark taken off
    with_card(stripe_emulator, "marked", balance=100)
    turn_on("marked")
    stream.drain()
    [(_, charge)] = stripe.intents.values()
    assert charge.metadata["creditsMark"].startswith("v1.")
    forged = dict(charge.metadata, userId="thief")
    unmarked = {k: v for k, v in charge.metadata.items() if k != "creditsMark"}
    for metadata in (forged, unmarked):
        sent = event("payment_intent.succeeded", payment_intent(f"pi_{ULID()}", charge, metadata=metadata))
        assert deliver(stripe_emulator.sign(sent)).status == 200
    # Then neither credits anything, as a Checkout Session would not; the real one does
    assert (ledger.get_balance("thief"), ledger.get_balance("marked")) == (0, 100)
    pay(stripe_emulator, stripe)
    assert ledger.get_balance("marked") == 1100
    assert not hasattr(auto_top_up, "reason_to_reject")  # one rule: wallet.fulfilment.reason_to_reject


def policy_attributes() -> set[str]:
    """The names AutoTopUpStatePolicy lets an UpdateItem of a balance item touch (dynamodb:Attributes)."""
    from tests.unit.test_template import properties

    [_, update] = properties("AutoTopUpStatePolicy")["PolicyDocument"]["Statement"]
    return set(update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"])


def test_every_update_of_auto_top_up_is_one_its_iam_policy_allows(
    stripe_emulator: StripeEmulator,
    stripe: FakeStripe,
    stream: BalanceStream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS checks dynamodb:Attributes against every top-level name an UpdateItem touches: its key, its
    update expression and its condition expression. So each UpdateItem of a balance item that auto
    top-up's code sends, whatever path it takes, must name only attributes the policy lists."""
    from pynamodb.connection.base import Connection

    sent: list[dict[str, Any]] = []
    make_api_call = Connection._make_api_call

    def recording(self: Connection, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if operation == "UpdateItem" and kwargs.get("TableName") == os.environ["CREDIT_BALANCE_TABLE"]:
            sent.append(kwargs)
        return make_api_call(self, operation, kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", recording)
    monkeypatch.setattr(auto_top_up, "BACKOFF_SECONDS", 0.001)
    # Every path: a customer, cards saved and replaced, settings, a claim, a charge, a pause, a deposit,
    # passing and final failures, a card detached elsewhere, replaced cards detached, a removal
    with_card(stripe_emulator, "policy", balance=600)
    turn_on("policy")
    for _ in range(settings.auto_top_up_daily_limit() + 1):
        spend("policy", ledger.get_balance("policy"))
        stream.drain()
        pay(stripe_emulator, stripe)
        stream.drain()
    assert auto_top_up.view("policy").status is Status.LIMIT_REACHED
    turn_on("policy")
    CreditBalance("policy").update(actions=[CreditBalance.auto_top_up_charges.remove()])
    stripe.passing = [PaymentAttemptFailedError("api_error", answered=False)] * auto_top_up.ATTEMPTS
    turn_on("policy")
    stream.drain()
    stripe.card = "card_declined"
    turn_on("policy")
    stream.drain()
    card = {"object": "payment_method", "customer": "cus_policy", "type": "card", "card": {"last4": "1"}}
    for method in ("pm_second", "pm_third"):
        sent_event = event("payment_method.attached", dict(card, id=method))
        assert deliver(stripe_emulator.sign(sent_event)).status == 200
    auto_top_up.detach_replaced_cards("policy", lambda _: None)
    detached = dict(event("payment_method.detached", dict(card, id="pm_third", customer=None)))
    detached["data"]["previous_attributes"] = {"customer": "cus_policy"}
    assert deliver(stripe_emulator.sign(detached)).status == 200
    with_card(stripe_emulator, "policy", balance=0)
    auto_top_up.remove_card("policy", lambda _: None)

    touched = {name for kwargs in sent for name in kwargs.get("ExpressionAttributeNames", {}).values()} | {
        name for kwargs in sent for name in kwargs["Key"]
    }
    assert len(sent) > 20
    assert touched - policy_attributes() == set()
    assert "balance" not in touched


def test_one_user_never_reaches_another_users_settings_or_card(
    stripe_emulator: StripeEmulator,
    stripe: FakeStripe,
    tables: DynamoDBServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detached: list[str] = []
    monkeypatch.setattr(payments, "detach_payment_method", detached.append)
    with_card(stripe_emulator, "alice", balance=5000)
    with_card(stripe_emulator, "bob", balance=5000)
    assert turn_on("bob", threshold=300).status == 200
    bob_before = CreditBalance.get("bob").attribute_values
    # Alice saves her settings, reads them, removes her card, and events name her customer with Bob's card
    assert turn_on("alice").status == 200
    assert invoke(auto_top_up_routes, api_event_for("GET", "alice")).body["threshold"] == THRESHOLD
    removal = api_event_for("DELETE", "alice")
    removal["routeKey"] = "DELETE /api/payment-method"
    removal["rawPath"] = removal["requestContext"]["http"]["path"] = "/api/payment-method"
    assert invoke(auto_top_up_routes, removal).status == 204
    bobs_card = {"id": "pm_bob", "object": "payment_method", "customer": None, "type": "card", "card": {}}
    forged = event("payment_method.detached", bobs_card)
    forged["data"]["previous_attributes"] = {"customer": "cus_alice"}
    assert deliver(stripe_emulator.sign(forged)).status == 200
    # Then only Alice's card was detached, and nothing of Bob's changed
    assert detached == ["pm_alice"]
    assert CreditBalance.get("bob").attribute_values == bob_before
    assert auto_top_up.view("bob").card is not None


def test_passing_failures_stop_being_tried_when_the_triggers_time_would_run_out(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auto_top_up, "RETRY_BUDGET_SECONDS", 0.0)
    with_card(stripe_emulator, "slow", balance=0)
    turn_on("slow")
    stripe.passing = [PaymentAttemptFailedError("connection_error", answered=False)]

    assert auto_top_up.top_up_if_low("slow", sleep=lambda _: None) is Decision.GAVE_UP

    seen = auto_top_up.view("slow")
    assert (stripe.calls, seen.enabled, seen.status) == (1, False, Status.FAILED)
    assert seen.reason
    assert "failed once for a passing reason (connection error)" in seen.reason


def test_a_lost_charge_is_made_again_for_the_pack_its_dip_was_claimed_for(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a dip claimed and charged for the $10 pack, whose answer the trigger lost
    with_card(stripe_emulator, "repack", balance=600)
    turn_on("repack")
    stream.drain()
    stripe.lose_answer_once = True
    spend("repack", 200)
    with pytest.raises(RuntimeError):
        auto_top_up.top_up_if_low("repack")
    # When the user picks another pack before the trigger tries again
    assert turn_on("repack", amount=5000).status == 200
    stream.drain()
    # Then the retry is the same request, for the same pack, and one charge
    assert stripe.calls == 2
    assert [charge.amount for _, charge in stripe.intents.values()] == [PACK]
    pay(stripe_emulator, stripe)
    assert ledger.get_balance("repack") == 1400
    assert auto_top_up.view("repack").status is Status.ON
    assert CreditBalance.get("repack").auto_top_up_episode_amount is None


def test_the_settings_routes_and_a_record_with_nothing_to_charge_never_import_stripe(
    tables: DynamoDBServer,
) -> None:
    # A fresh interpreter: this test process has imported stripe for other tests.
    script = (
        "from functions.auto_top_up.app import lambda_handler, stream_handler\n"
        "from tests.lambda_events import LambdaContext, api_event, invoke\n"
        "def settings(method, body=None):\n"
        "    event = api_event('GET', '/api/balance', user='lazy', body=body)\n"
        "    event['routeKey'] = method + ' /api/auto-top-up'\n"
        "    event['rawPath'] = event['requestContext']['http']['path'] = '/api/auto-top-up'\n"
        "    event['requestContext']['http']['method'] = method\n"
        "    return invoke(lambda_handler, event).body\n"
        "assert settings('GET')['enabled'] is False\n"
        'saved = settings(\'PUT\', \'{"enabled": false, "threshold": 5, "amount": 1000}\')\n'
        "assert saved['threshold'] == 5\n"
        "image = {'userId': {'S': 'lazy'}, 'balance': {'N': '0'}, 'autoTopUp': {'BOOL': False}}\n"
        "change = {'Keys': {'userId': {'S': 'lazy'}}, 'NewImage': image, 'SequenceNumber': '1'}\n"
        "record = {'eventID': '1', 'eventName': 'MODIFY', 'dynamodb': change}\n"
        "assert stream_handler({'Records': [record]}, LambdaContext()) == {'batchItemFailures': []}\n"
    )

    assert modules_imported(script, "stripe") == []


def available_now(user: str) -> int:
    """What the account may spend, summed here item by item: the main item and every sub-balance."""
    items = CreditBalance.scan()
    return sum(int(item.balance) for item in items if item.user_id.split("#")[0] == user)


def spend_until_the_main_item_is_below(user: str, threshold: int, step: int) -> int:
    """Spends of `step` on a hot account, each refilling a sub-balance from the main item, until the main
    item alone is below `threshold`; what they took."""
    taken = 0
    while int(CreditBalance.get(user).balance) >= threshold:
        spend(user, step)
        taken += step
        assert taken <= 2000, "the main item never went below the threshold"
    return taken


def test_a_hot_account_whose_sub_balances_hold_plenty_is_not_topped_up_when_its_main_item_is_low(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a hot account of 2,000 credits in 4 sub-balances, with auto top-up on at 1,000
    with_card(stripe_emulator, "hotfull", balance=2000)
    hot_accounts.make_hot("hotfull", 4, currency="usd")
    assert turn_on("hotfull", threshold=PACK).status == 200
    stream.drain()
    # When spends move its credits into the sub-balances until the main item alone is below 1,000
    taken = spend_until_the_main_item_is_below("hotfull", PACK, 10)
    stream.drain()
    # Then the account still holds far more than the threshold, and nothing was charged
    assert available_now("hotfull") == 2000 - taken >= PACK
    assert int(CreditBalance.get("hotfull").balance) < PACK
    assert auto_top_up.top_up_if_low("hotfull") is Decision.ABOVE_THRESHOLD
    assert stripe.charges == 0


def test_a_hot_account_whose_whole_balance_dips_below_the_threshold_is_topped_up_once(
    stripe_emulator: StripeEmulator, stripe: FakeStripe, stream: BalanceStream
) -> None:
    # Given a hot account whose main item is below its threshold of 1,000 while its sub-balances hold more
    with_card(stripe_emulator, "hotlow", balance=2000)
    hot_accounts.make_hot("hotlow", 4, currency="usd")
    turn_on("hotlow", threshold=PACK)
    taken = spend_until_the_main_item_is_below("hotlow", PACK, 10)
    stream.drain()
    assert stripe.charges == 0
    # When a hold takes all but 400 of what the account may spend (its sub-balances gathered to the main
    # item), and the records reach the trigger twice
    reserved = 2000 - taken - 400
    holds.create_hold(
        "hotlow",
        reserved,
        expires_in=3600,
        idempotency_key=str(ULID()),
        description=None,
        actor="arn:aws:iam::1:role/x",
        currency="usd",
    )
    assert available_now("hotlow") == 400
    records = stream.records()
    stream.deliver(records)
    stream.deliver(records)
    stream.drain()
    # Then exactly one charge was made, and its one deposit lifts the account back above the threshold
    assert stripe.charges == 1
    pay(stripe_emulator, stripe)
    stream.drain()
    assert stripe.charges == 1
    assert [int(row.amount) for row in deposits("hotlow")] == [PACK]
    assert available_now("hotlow") == 400 + PACK

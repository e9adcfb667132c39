"""POST /api/webhooks/stripe: signed events from the Stripe emulator, through the real handler."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import stripe

from devstack.stripe_emulator import SignedEvent, StripeEmulator
from tests.checkout_flow import DOORS, Door, deliver, post_webhook, start_checkout, variant, webhook_request
from tests.dynamodb_faults import INTERNAL_ERROR, failing
from tests.lambda_pool import Containers
from wallet import ledger, models
from wallet.models import CreditTransaction

pytestmark = pytest.mark.usefixtures("tables")

SECRET = "whsec_test_secret"


@pytest.fixture(params=sorted(DOORS))
def door(request: pytest.FixtureRequest) -> Door:
    """The webhook, or Amazon EventBridge: each case below holds through either door."""
    return DOORS[request.param]


def deposits(user: str) -> list[CreditTransaction]:
    return list(CreditTransaction.query(user))


def resign(
    event: dict[str, object], *, secret: str = SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    return payload, stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=timestamp
    )


def test_a_paid_checkout_session_is_credited_once_with_its_stripe_ids(
    stripe_emulator: StripeEmulator,
    door: Door,
) -> None:
    session_id = start_checkout("alice", 5000)
    *_, completed = stripe_emulator.pay(session_id)

    response = door(stripe_emulator.sign(completed))

    assert (response.status, response.body) == (200, {"received": True})
    assert ledger.get_balance("alice") == 5000
    [row] = deposits("alice")
    session = completed["data"]["object"]
    assert row.type == "deposit"
    assert row.transaction_id == row.payment_id == session["metadata"]["paymentId"]
    assert (row.stripe_session_id, row.stripe_payment_intent_id, row.stripe_event_id) == (
        session_id,
        session["payment_intent"],
        completed["id"],
    )


def test_a_redelivered_event_changes_nothing(stripe_emulator: StripeEmulator, door: Door) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))
    signed = stripe_emulator.sign(completed)

    statuses = [door(signed).status for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert ledger.get_balance("alice") == 1000
    assert len(deposits("alice")) == 1


def test_an_unpaid_completed_session_waits_for_its_async_payment(
    stripe_emulator: StripeEmulator, door: Door
) -> None:
    session_id = start_checkout("alice", 5000)
    [completed] = stripe_emulator.pay_later(session_id)

    assert door(stripe_emulator.sign(completed)).status == 200
    assert ledger.get_balance("alice") == 0

    *_, succeeded = stripe_emulator.settle(session_id)
    assert succeeded["type"] == "checkout.session.async_payment_succeeded"
    assert door(stripe_emulator.sign(succeeded)).status == 200
    assert ledger.get_balance("alice") == 5000
    assert len(deposits("alice")) == 1


def test_completed_paid_and_async_succeeded_for_one_session_credit_once(
    stripe_emulator: StripeEmulator,
    door: Door,
) -> None:
    session_id = start_checkout("alice", 10000)
    stripe_emulator.pay_later(session_id)
    *_, succeeded = stripe_emulator.settle(session_id)
    completed = variant(stripe_emulator, succeeded, type="checkout.session.completed")

    assert [door(completed).status, door(stripe_emulator.sign(succeeded)).status] == [200, 200]

    assert ledger.get_balance("alice") == 10000
    assert len(deposits("alice")) == 1


@pytest.mark.parametrize("closing", ["fail_payment", "expire"])
def test_a_failed_or_expired_session_is_acknowledged_without_credit(
    stripe_emulator: StripeEmulator, door: Door, closing: str
) -> None:
    session_id = start_checkout("alice", 5000)
    if closing == "fail_payment":
        stripe_emulator.pay_later(session_id)
    [event] = getattr(stripe_emulator, closing)(session_id)

    response = door(stripe_emulator.sign(event))

    assert event["type"] in {"checkout.session.async_payment_failed", "checkout.session.expired"}
    assert response.status == 200
    assert ledger.get_balance("alice") == 0


def test_64_concurrent_deliveries_of_one_event_credit_once(
    stripe_emulator: StripeEmulator, containers: Containers
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    delivery = webhook_request(stripe_emulator.sign(completed))

    responses = containers.invoke_all([("stripe_webhook", delivery)] * 64)

    assert Counter(status for status, _ in responses) == {200: 64}
    assert ledger.get_balance("alice") == 5000
    assert len(deposits("alice")) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_total": 4999},
        {"currency": "eur"},
        {"metadata_amount": "50000"},
        {"metadata_paymentId": "not-a-ulid"},
        {"metadata_amount": "fifty"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_paid_session_that_does_not_add_up_is_acknowledged_but_not_credited(
    stripe_emulator: StripeEmulator,
    changes: dict[str, object],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    metadata = dict(completed["data"]["object"]["metadata"])
    for key in [k for k in changes if k.startswith("metadata_")]:
        metadata[key.removeprefix("metadata_")] = changes.pop(key)
    changes.setdefault("metadata", metadata)

    response = deliver(variant(stripe_emulator, completed, **changes))

    assert (response.status, response.body) == (200, {"received": True})
    assert ledger.get_balance("alice") == 0
    assert deposits("alice") == []
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == "paid checkout session not credited"
    assert '"RejectedFulfilments":[1.0]' in capsys.readouterr().out.replace(" ", "")


@pytest.mark.parametrize(
    "metadata", [{}, {"userId": "alice", "amount": "5000"}], ids=["none", "no payment id"]
)
def test_a_paid_session_without_metadata_of_ours_is_another_integrations_and_alarms_nobody(
    stripe_emulator: StripeEmulator,
    metadata: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))

    response = deliver(variant(stripe_emulator, completed, metadata=metadata))

    assert (response.status, response.body) == (200, {"received": True})
    assert ledger.get_balance("alice") == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "RejectedFulfilments" not in capsys.readouterr().out


def test_event_types_it_does_not_handle_are_acknowledged(stripe_emulator: StripeEmulator) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))

    response = deliver(variant(stripe_emulator, completed, type="payment_intent.succeeded"))

    assert response.status == 200
    assert ledger.get_balance("alice") == 0


def test_a_base64_encoded_body_is_verified_on_its_decoded_bytes(stripe_emulator: StripeEmulator) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))

    response = deliver(stripe_emulator.sign(completed), base64_body=True)

    assert response.status == 200
    assert ledger.get_balance("alice") == 1000


def signature_cases(event: dict[str, object]) -> dict[str, tuple[bytes, str | None]]:
    payload, good = resign(event)
    return {
        "missing header": (payload, None),
        "empty header": (payload, ""),
        "garbage header": (payload, "garbage"),
        "wrong secret": resign(event, secret="whsec_someone_else"),
        "tampered body": (payload.replace(b'"paid"', b'"PAID"'), good),
        "stale timestamp": resign(event, timestamp=int(time.time()) - 301),
        "wrong scheme": (payload, good.replace("v1=", "v0=")),
        "not json": (b"not json", stripe.WebhookSignature.generate_signature_header("not json", SECRET)),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing header",
        "empty header",
        "garbage header",
        "wrong secret",
        "tampered body",
        "stale timestamp",
        "wrong scheme",
        "not json",
    ],
)
def test_what_is_not_a_signed_stripe_event_is_a_400(stripe_emulator: StripeEmulator, case: str) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))
    payload, signature = signature_cases(completed)[case]

    response = post_webhook(payload, signature)

    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_event"
    assert ledger.get_balance("alice") == 0


def test_a_dynamodb_failure_is_a_500_and_redelivery_credits_once(
    stripe_emulator: StripeEmulator, door: Door
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    signed = stripe_emulator.sign(completed)

    with failing(models.connection().client, "TransactWriteItems", INTERNAL_ERROR):
        failed = door(signed)

    assert failed.status == 500
    assert ledger.get_balance("alice") == 0
    assert [door(signed).status, door(signed).status] == [200, 200]
    assert ledger.get_balance("alice") == 5000
    assert len(deposits("alice")) == 1


def test_no_secret_or_customer_email_reaches_the_logs(
    stripe_emulator: StripeEmulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    completed["data"]["object"]["customer_details"] = {"email": "alice@example.com"}
    deliver(stripe_emulator.sign(completed))
    deliver(variant(stripe_emulator, completed, currency="eur"))
    post_webhook(*resign(completed, secret="whsec_wrong"))

    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "webhook handled" in logged
    for secret in (SECRET, "sk_test_emulator", "alice@example.com"):
        assert secret not in logged


@pytest.fixture
def function_log() -> Iterator[io.StringIO]:
    """What the webhook function's Logger writes, formatted as CloudWatch receives it."""
    from functions.stripe_webhook.app import logger

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    yield stream
    logger.registered_handler.setStream(previous)


def test_an_events_correlation_id_does_not_follow_the_next_delivery(
    stripe_emulator: StripeEmulator, function_log: io.StringIO
) -> None:
    # Given a warm function that handled an event, and logged under its id
    *_, completed = stripe_emulator.pay(start_checkout("alice", 1000))
    assert deliver(stripe_emulator.sign(completed)).status == 200
    assert f'"correlation_id":"{completed["id"]}"' in function_log.getvalue()
    function_log.truncate(0)
    function_log.seek(0)

    # When it then refuses a body that is not a signed event
    response = post_webhook(b"{}", None)

    # Then that refusal is not logged under the earlier event's id
    logged = function_log.getvalue()
    assert response.status == 400
    assert "webhook refused" in logged
    assert completed["id"] not in logged


# What the SDK pins (stripe/_api_version.py), which the product's client pins too.
PINNED = stripe._api_version._ApiVersion.CURRENT
MISMATCH_LOG = "webhook event rendered in another Stripe API version than the pinned one"


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """Each test a cold start: the once-per-process warning not yet given."""
    from functions.stripe_webhook.app import _warn_of_api_version

    _warn_of_api_version.cache_clear()
    yield
    _warn_of_api_version.cache_clear()


def rendered_in(emulator: StripeEmulator, event: dict[str, object], version: str | None) -> list[SignedEvent]:
    """The event as an endpoint set to `version` would receive it (a fresh id each), signed."""
    changed = json.loads(json.dumps(event))
    changed |= {"id": f"{event['id']}_{version}", "api_version": version}
    return [emulator.sign(changed)]


@pytest.mark.usefixtures("fresh_process")
def test_an_event_in_another_api_version_is_logged_once_counted_each_time_and_still_credited(
    stripe_emulator: StripeEmulator, function_log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a paid session whose event an endpoint on an older API version renders
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    assert completed["api_version"] == PINNED
    [older] = rendered_in(stripe_emulator, completed, "2024-06-20")

    # When it is delivered three times to one warm function
    statuses = [deliver(older).status for _ in range(3)]

    # Then each is answered and credited once, as any event; the log says it once, the metric three times
    assert statuses == [200, 200, 200]
    assert ledger.get_balance("alice") == 5000
    warnings = [json.loads(line) for line in function_log.getvalue().splitlines() if MISMATCH_LOG in line]
    assert len(warnings) == 1, function_log.getvalue()
    assert (warnings[0]["level"], warnings[0]["event_api_version"], warnings[0]["pinned_api_version"]) == (
        "WARNING",
        "2024-06-20",
        PINNED,
    )
    assert capsys.readouterr().out.replace(" ", "").count('"EventApiVersionMismatches":[1.0]') == 3


@pytest.mark.usefixtures("fresh_process")
def test_each_other_api_version_and_an_event_naming_none_is_logged_once_each(
    stripe_emulator: StripeEmulator, function_log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))
    deliveries = [
        *rendered_in(stripe_emulator, completed, "2024-06-20"),
        *rendered_in(stripe_emulator, completed, "2025-03-31.basil"),
        *rendered_in(stripe_emulator, completed, None),
        *rendered_in(stripe_emulator, completed, "2025-03-31.basil"),
    ]

    statuses = [deliver(signed).status for signed in deliveries]

    assert statuses == [200, 200, 200, 200]
    warned = [
        json.loads(line)["event_api_version"]
        for line in function_log.getvalue().splitlines()
        if MISMATCH_LOG in line
    ]
    assert warned == ["2024-06-20", "2025-03-31.basil", "none"]
    assert capsys.readouterr().out.replace(" ", "").count('"EventApiVersionMismatches":[1.0]') == 4


@pytest.mark.usefixtures("fresh_process")
def test_an_event_in_the_pinned_api_version_is_neither_logged_nor_counted(
    stripe_emulator: StripeEmulator, function_log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    *_, completed = stripe_emulator.pay(start_checkout("alice", 5000))

    assert deliver(stripe_emulator.sign(completed)).status == 200

    assert MISMATCH_LOG not in function_log.getvalue()
    assert "EventApiVersionMismatches" not in capsys.readouterr().out

"""The webhook's event table is the one list of Stripe events: the README's endpoint list, the sweep's
`types[]` and what `make deploy` prints are read off it, and every owner it names exists."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import stripe

from deploy import publish
from wallet import stripe_events
from wallet.outcomes import Result
from wallet.payments import Event

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_endpoint_events() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- endpoint-events -->\n```\n(.*?)```\n<!-- /endpoint-events -->", text, re.S)
    assert block, "the README's endpoint list is marked <!-- endpoint-events -->"
    return block.group(1).split()


def test_the_readme_lists_exactly_the_events_of_the_table_in_its_order() -> None:
    assert readme_endpoint_events() == list(stripe_events.ENDPOINT_EVENTS)


def test_make_deploy_prints_the_same_events_for_the_endpoint() -> None:
    printed = publish.webhook_endpoint({"WebhookUrl": "https://example.test/api/webhooks/stripe"})

    assert "https://example.test/api/webhooks/stripe" in printed
    assert [line.strip() for line in printed.splitlines()[2:-1]] == list(stripe_events.ENDPOINT_EVENTS)
    # The version Stripe must send events in is the SDK's pinned one; the secret comes after the endpoint.
    assert f"API version {stripe.api_version}," in printed.splitlines()[1]
    assert f"the API version `{stripe.api_version}`" in " ".join(README.read_text(encoding="utf-8").split())
    assert "StripeWebhookSecretArn" in printed.splitlines()[-1]


def test_the_sweep_replays_every_event_that_moves_money_within_stripes_limit() -> None:
    logged_only = {kind for kind, rule in stripe_events.EVENTS.items() if not rule.replayed}

    assert set(stripe_events.EVENTS) - logged_only == stripe_events.REPLAYED
    assert logged_only == {"checkout.session.async_payment_failed", "checkout.session.expired"}
    assert len(stripe_events.REPLAYED) <= stripe_events.MAX_LISTED_TYPES


def test_every_type_is_one_stripe_sends_in_the_pinned_api_version() -> None:
    sent = set(typing.get_args(stripe.Event.__annotations__["type"]))

    assert set(stripe_events.EVENTS) <= sent


@pytest.mark.parametrize("owner", sorted({rule.owner for rule in stripe_events.EVENTS.values()}))
def test_every_owner_is_a_function_of_its_module(owner: str) -> None:
    assert callable(stripe_events._owner(owner))


def test_a_type_outside_the_table_is_ignored() -> None:
    outcome = stripe_events.act_on(Event("evt_1", "customer.created", False, {"object": "customer"}))

    assert outcome.result is Result.IGNORED

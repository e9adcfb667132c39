"""What the emulator holds: every object it made and every event it sent. Guarded by the emulator's lock."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from devstack.stripe_emulator.events import RequestContext, new_event
from devstack.stripe_emulator.fixtures import JsonObject, new_id


@dataclass(slots=True)
class CheckoutRecord:
    """A session, the PaymentIntent Checkout made for it (if any) and what that PaymentIntent will carry."""

    sequence: int
    session: JsonObject
    payment_intent_data: JsonObject
    payment_intent: JsonObject | None = None
    # Stripe keeps them apart from the session object; the Checkout page shows them.
    line_items: list[JsonObject] = field(default_factory=list)


@dataclass(slots=True)
class Store:
    """The emulator's state; every function that reads or changes it runs with the emulator's lock held."""

    # Whether events go to a webhook endpoint (their `pending_webhooks`).
    delivered: bool
    sessions: dict[str, CheckoutRecord] = field(default_factory=dict)
    # The same objects as the sessions' PaymentIntents, by id; charges, refunds and disputes by id.
    payment_intents: dict[str, JsonObject] = field(default_factory=dict)
    charges: dict[str, JsonObject] = field(default_factory=dict)
    refunds: dict[str, JsonObject] = field(default_factory=dict)
    disputes: dict[str, JsonObject] = field(default_factory=dict)
    # The status a charge's new refunds start in, when a test asked for other than `succeeded`.
    refunds_start_as: dict[str, str] = field(default_factory=dict)
    events: list[JsonObject] = field(default_factory=list)
    # The events published for delivery and not yet handed to `deliver`, by id: their types.
    undelivered: dict[str, str] = field(default_factory=dict)
    sequence: int = 0
    # Checkout's payment methods come from the account's one payment method configuration.
    payment_method_configuration: str = field(default_factory=lambda: new_id("pmc_"))
    # Customers and their saved cards, and how each card behaves when charged (see `customers`).
    customers: dict[str, JsonObject] = field(default_factory=dict)
    payment_methods: dict[str, JsonObject] = field(default_factory=dict)
    payment_method_behaviour: dict[str, str] = field(default_factory=dict)
    # The paid invoices Checkout made (`invoices`), and where the emulator's pages are served from.
    invoices: dict[str, JsonObject] = field(default_factory=dict)
    public_base_url: str = ""

    def clear(self) -> None:
        self.sessions.clear()
        self.payment_intents.clear()
        self.charges.clear()
        self.refunds.clear()
        self.disputes.clear()
        self.refunds_start_as.clear()
        self.events.clear()
        self.undelivered.clear()
        self.customers.clear()
        self.payment_methods.clear()
        self.payment_method_behaviour.clear()
        self.invoices.clear()

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def latest_dispute(self, charge_id: str) -> JsonObject | None:
        """The charge's newest dispute (the one that decides whether it can be refunded), if any."""
        found = None
        for dispute in self.disputes.values():
            if dispute["charge"] == charge_id:
                found = dispute
        return found

    def publish(
        self,
        event_type: str,
        obj: JsonObject,
        request: RequestContext | None = None,
        previous_attributes: JsonObject | None = None,
    ) -> JsonObject:
        """Record the event Stripe sends about `obj` now; a copy of it is returned to be delivered."""
        event = new_event(
            event_type,
            obj,
            delivered=self.delivered,
            request=request,
            previous_attributes=previous_attributes,
        )
        self.events.append(event)
        if self.delivered:
            self.undelivered[event["id"]] = event_type
        return copy.deepcopy(event)

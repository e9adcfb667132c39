"""Customers and their saved cards: `POST /v1/customers`, `GET /v1/customers/{id}`, and PaymentMethods
(`GET /v1/payment_methods/{id}`, `POST /v1/payment_methods/{id}/detach`).

A card is saved (attached) as Checkout's setup mode or `setup_future_usage` would, by `attach`, from
one of Stripe's test methods: `pm_card_visa` pays, `pm_card_chargeDeclined` is declined and
`pm_card_authenticationRequired` needs its holder (so off-session it fails); the `chargeDeclined...`
cards are declined with their decline_code (insufficient funds, lost, expired) or fail with a
processing error, and `pm_card_processingErrorOnce` (the emulator's own, Stripe has none such) fails
with a processing error once, then pays. Attaching sends `payment_method.attached`, detaching (by the
API or as the Dashboard does) `payment_method.detached` with the customer it had in
`previous_attributes`. A deleted customer (`DELETE /v1/customers/{id}`) answers `deleted: true`, and
its cards cannot be charged. Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy

from devstack.stripe_emulator.errors import StripeApiError, invalid, no_such
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, new_id, now
from devstack.stripe_emulator.forms import METADATA, conform
from devstack.stripe_emulator.store import Store

# Stripe's test PaymentMethods: the card each stands for, and how it behaves off-session.
TEST_CARDS: dict[str, JsonObject] = {
    "pm_card_visa": {"brand": "visa", "last4": "4242", "behaviour": "succeeds"},
    "pm_card_chargeDeclined": {"brand": "visa", "last4": "0002", "behaviour": "card_declined"},
    "pm_card_authenticationRequired": {
        "brand": "visa",
        "last4": "3184",
        "behaviour": "authentication_required",
    },
    "pm_card_chargeDeclinedInsufficientFunds": {
        "brand": "visa",
        "last4": "9995",
        "behaviour": "insufficient_funds",
    },
    "pm_card_chargeDeclinedLostCard": {"brand": "visa", "last4": "9987", "behaviour": "lost_card"},
    "pm_card_chargeDeclinedExpiredCard": {"brand": "visa", "last4": "0069", "behaviour": "expired_card"},
    "pm_card_chargeDeclinedProcessingError": {
        "brand": "visa",
        "last4": "0119",
        "behaviour": "processing_error",
    },
    "pm_card_processingErrorOnce": {"brand": "visa", "last4": "0127", "behaviour": "processing_error_once"},
}
_CREATE_PARAMS: JsonObject = {"email": str, "name": str, "metadata": METADATA}


def create_customer(store: Store, params: JsonObject) -> JsonObject:
    params = conform(params, _CREATE_PARAMS, "")
    customer: JsonObject = {
        "id": new_id("cus_", 14),
        "object": "customer",
        "created": now(),
        "email": params.get("email"),
        "name": params.get("name"),
        "livemode": False,
        "metadata": dict(params.get("metadata", {})),
        "invoice_settings": {"default_payment_method": None},
    }
    store.customers[customer["id"]] = customer
    return copy.deepcopy(customer)


def retrieve_customer(store: Store, customer_id: str) -> JsonObject:
    customer = store.customers.get(customer_id)
    if customer is None:
        raise no_such("customer", customer_id, "id")
    if customer.get("deleted"):
        return {"id": customer_id, "object": "customer", "deleted": True}
    return copy.deepcopy(customer)


def delete_customer(store: Store, customer_id: str, request: RequestContext | None) -> JsonObject:
    """`DELETE /v1/customers/{id}`, or the Dashboard's delete: gone for good -> `customer.deleted`."""
    customer = store.customers.get(customer_id)
    if customer is None or customer.get("deleted"):
        raise no_such("customer", customer_id, "id")
    event_object = copy.deepcopy(customer)
    customer["deleted"] = True
    sent = store.publish("customer.deleted", event_object, request)
    if request is not None:
        request.events.append(sent)
    return {"id": customer_id, "object": "customer", "deleted": True}


def live_customer(store: Store, customer_id: str, param: str) -> JsonObject:
    """A customer a request may use: Stripe answers a deleted or unknown one with `No such customer`."""
    customer = store.customers.get(customer_id)
    if customer is None or customer.get("deleted"):
        raise StripeApiError(400, f"No such customer: '{customer_id}'", code="resource_missing", param=param)
    return customer


def attach(store: Store, test_method: str, customer_id: str) -> list[JsonObject]:
    """Save one of Stripe's test cards to the customer -> `[payment_method.attached]`."""
    if test_method not in TEST_CARDS:
        raise invalid(f"No such test PaymentMethod: '{test_method}'", "payment_method")
    retrieve_customer(store, customer_id)
    card = TEST_CARDS[test_method]
    method: JsonObject = {
        "id": new_id("pm_"),
        "object": "payment_method",
        "type": "card",
        "created": now(),
        "customer": customer_id,
        "livemode": False,
        "metadata": {},
        "billing_details": {"email": None, "name": None},
        "card": {
            "brand": card["brand"],
            "last4": card["last4"],
            "exp_month": 12,
            "exp_year": 2034,
            "country": "US",
            "funding": "credit",
        },
    }
    store.payment_methods[method["id"]] = method
    store.payment_method_behaviour[method["id"]] = card["behaviour"]
    return [store.publish("payment_method.attached", method)]


def payment_method_of(store: Store, method_id: str, param: str) -> JsonObject:
    method = store.payment_methods.get(method_id)
    if method is None:
        raise no_such("payment_method", method_id, param)
    return method


def retrieve_payment_method(store: Store, method_id: str) -> JsonObject:
    return copy.deepcopy(payment_method_of(store, method_id, "payment_method"))


def detach(store: Store, method_id: str, request: RequestContext | None) -> JsonObject:
    """Detach a card from its customer, by the API or (no request) as the Dashboard does ->
    `payment_method.detached`, its `previous_attributes` naming the customer it had."""
    method = payment_method_of(store, method_id, "payment_method")
    if method["customer"] is None:
        raise StripeApiError(
            400, "The payment method you provided is not attached to a customer so detachment is impossible."
        )
    previous = {"customer": method["customer"]}
    method["customer"] = None
    sent = store.publish("payment_method.detached", method, request, previous_attributes=previous)
    if request is not None:
        request.events.append(sent)
    return copy.deepcopy(method)

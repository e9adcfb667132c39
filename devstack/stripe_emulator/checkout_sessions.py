"""Checkout Sessions: create, retrieve, list and expire by the API, and the customer's side of Checkout.

Paying (or a delayed payment settling) sends what Stripe sends, in its order: the payment's
`charge.succeeded` and `payment_intent.succeeded`, then `checkout.session.completed` (or
`checkout.session.async_payment_succeeded`). Every function here runs with the emulator's lock held.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import stripe

from devstack.stripe_emulator import customers, invoices, payment_intents, pricing
from devstack.stripe_emulator.errors import (
    InvalidTransitionError,
    StripeApiError,
    UnknownCheckoutSessionError,
    invalid,
    no_such,
)
from devstack.stripe_emulator.events import RequestContext
from devstack.stripe_emulator.fixtures import JsonObject, fixture, new_id, now, stripe_object
from devstack.stripe_emulator.forms import (
    EXPAND_ONLY,
    METADATA,
    RANGE,
    check_url,
    conform,
    created_matches,
    expands,
    expansions,
    required,
    stripe_params,
)
from devstack.stripe_emulator.store import CheckoutRecord, Store

SESSION_LIFETIME_SECONDS = 24 * 60 * 60
MIN_SESSION_LIFETIME_SECONDS = 30 * 60
LIST_URL = "/v1/checkout/sessions"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[a-z]{3}")
_CLIENT_REFERENCE_ID_MAX_LENGTH = 200

# What the emulator reads of each request; any other parameter is answered `parameter_unknown`.
_CREATE_PARAMS: JsonObject = {
    "adaptive_pricing": {"enabled": str},
    "allow_promotion_codes": str,
    "automatic_tax": {"enabled": str},
    "billing_address_collection": str,
    "cancel_url": str,
    "client_reference_id": str,
    "currency": str,
    "customer": str,
    "customer_email": str,
    "customer_update": {"address": str, "name": str, "shipping": str},
    "expand": [str],
    "expires_at": int,
    "invoice_creation": {"enabled": str, "invoice_data": {"metadata": METADATA}},
    "line_items": [
        {
            "price_data": {
                "currency": str,
                "product_data": {"description": str, "metadata": METADATA, "name": str},
                "tax_behavior": str,
                "unit_amount": int,
            },
            "quantity": int,
        }
    ],
    "metadata": METADATA,
    "mode": str,
    "payment_intent_data": {"description": str, "metadata": METADATA, "setup_future_usage": str},
    "setup_intent_data": {"description": str, "metadata": METADATA},
    "success_url": str,
    "tax_id_collection": {"enabled": str, "required": str},
}
_LIST_PARAMS: JsonObject = {
    "created": RANGE,
    "ending_before": str,
    "expand": [str],
    "limit": int,
    "payment_intent": str,
    "starting_after": str,
    "status": str,
}
_STRIPE_CREATE_PARAMS = stripe_params(stripe.params.checkout.SessionCreateParams)
_STRIPE_LIST_PARAMS = stripe_params(stripe.params.checkout.SessionListParams)


# -- the API ------------------------------------------------------------------------------------------------


def render(
    record: CheckoutRecord, expand_payment_intent: bool, expand_line_items: bool = False
) -> JsonObject:
    session = copy.deepcopy(record.session)
    if expand_payment_intent and record.payment_intent is not None:
        session["payment_intent"] = copy.deepcopy(record.payment_intent)
    if expand_line_items:
        # Only ever present when expanded, as on Stripe (`line_items` is an includable field).
        session["line_items"] = line_items_list(record)
    return session


def line_items_list(record: CheckoutRecord) -> JsonObject:
    """The session's line items as Stripe lists them (`expand[]=line_items`), ids stable per session."""
    session = record.session
    suffix = session["id"].removeprefix("cs_test_").removeprefix("cs_")[:16]
    items = []
    for index, item in enumerate(record.line_items):
        price_data, quantity = item["price_data"], item["quantity"]
        total = price_data["unit_amount"] * quantity
        price = fixture("item")["price"] | {
            "id": f"price_{suffix}{index}",
            "created": session["created"],
            "currency": price_data["currency"].lower(),
            "custom_unit_amount": None,
            "metadata": {},
            "product": f"prod_{suffix}{index}",
            "recurring": None,
            "transform_quantity": None,
            "type": "one_time",
            "unit_amount": price_data["unit_amount"],
            "unit_amount_decimal": str(price_data["unit_amount"]),
        }
        items.append(
            stripe_object(
                "item",
                adjustable_quantity=None,
                amount_discount=0,
                amount_subtotal=total,
                amount_tax=0,
                amount_total=total,
                currency=price["currency"],
                description=price_data["product_data"]["name"],
                id=f"li_{suffix}{index}",
                metadata={},
                price=price,
                quantity=quantity,
            )
        )
    return {
        "object": "list",
        "data": items,
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session['id']}/line_items",
    }


def create(store: Store, params: JsonObject, public_base_url: str) -> JsonObject:
    params = conform(params, _CREATE_PARAMS, "", _STRIPE_CREATE_PARAMS)
    expand = expands(params, "payment_intent")
    record = new_session(store, params, public_base_url)
    store.sessions[record.session["id"]] = record
    return render(record, expand)


def retrieve(store: Store, session_id: str, params: JsonObject) -> JsonObject:
    expand = expansions(conform(params, EXPAND_ONLY, ""), "payment_intent", "line_items")
    record = store.sessions.get(session_id)
    if record is None:
        raise no_such("checkout.session", session_id, "session")
    return render(record, "payment_intent" in expand, "line_items" in expand)


def expire_by_api(store: Store, session_id: str, params: JsonObject, request: RequestContext) -> JsonObject:
    expand = expands(conform(params, EXPAND_ONLY, ""), "payment_intent")
    record = store.sessions.get(session_id)
    if record is None:
        raise no_such("checkout.session", session_id, "session")
    if record.session["status"] != "open":
        raise StripeApiError(
            400,
            'Only Checkout Sessions with a status in ["open"] can be expired. '
            f"This Checkout Session has a status of `{record.session['status']}`.",
        )
    request.events.append(expire(store, record, request))
    return render(record, expand)


def list_sessions(store: Store, params: JsonObject) -> JsonObject:
    params = conform(params, _LIST_PARAMS, "", _STRIPE_LIST_PARAMS)
    expand = expands(params, "data.payment_intent")
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"Invalid limit: must be between 1 and 100, got {limit}", "limit")
    status = params.get("status")
    if status is not None and status not in ("open", "complete", "expired"):
        raise invalid("Invalid status: must be one of open, complete, or expired", "status")
    if "starting_after" in params and "ending_before" in params:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
            "ending_before",
        )
    newest_first = [record for record in reversed(store.sessions.values()) if matches(record, params)]
    if "starting_after" in params:
        cursor = _cursor(store, params["starting_after"], "starting_after")
        older = [record for record in newest_first if record.sequence < cursor.sequence]
        page, has_more = older[:limit], len(older) > limit
    elif "ending_before" in params:
        cursor = _cursor(store, params["ending_before"], "ending_before")
        newer = [record for record in newest_first if record.sequence > cursor.sequence]
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        page, has_more = newest_first[:limit], len(newest_first) > limit
    return {
        "object": "list",
        "data": [render(record, expand) for record in page],
        "has_more": has_more,
        "url": LIST_URL,
    }


def _cursor(store: Store, session_id: str, param: str) -> CheckoutRecord:
    record = store.sessions.get(session_id)
    if record is None:
        raise no_such("checkout.session", session_id, param)
    return record


# -- the customer's side of Checkout --------------------------------------------------------------------


def record_of(store: Store, session_id: str) -> CheckoutRecord:
    try:
        return store.sessions[session_id]
    except KeyError:
        raise UnknownCheckoutSessionError(f"no Checkout Session {session_id!r} in this emulator") from None


def record_in(store: Store, session_id: str, action: str, *, status: str) -> CheckoutRecord:
    record = record_of(store, session_id)
    session = record.session
    if session["status"] != status:
        raise InvalidTransitionError(
            f"cannot {action} Checkout Session {session_id}: its status is {session['status']!r} "
            f"(payment_status {session['payment_status']!r}), not {status!r}"
        )
    return record


def awaiting_funds(store: Store, session_id: str, action: str) -> tuple[CheckoutRecord, JsonObject]:
    record = record_in(store, session_id, action, status="complete")
    intent = record.payment_intent
    if intent is None or intent["status"] != "processing":
        raise InvalidTransitionError(
            f"cannot {action} Checkout Session {session_id}: no delayed payment is processing "
            f"(payment_status {record.session['payment_status']!r})"
        )
    return record, intent


def pay(store: Store, session_id: str, card: str = "pm_card_visa") -> list[JsonObject]:
    """Pay (or, in setup mode, save) with `card`, one of Stripe's test cards; it is the card saved."""
    record = record_in(store, session_id, "pay", status="open")
    if record.session["mode"] == "setup":
        return save_card(store, record, card)
    complete(record, payment_status="paid")
    sent = payment_intents.succeed(store, payment_intents.attempt(store, record), _email(record))
    invoices.invoice_paid_for(store, record, store.public_base_url)
    sent.append(store.publish("checkout.session.completed", record.session))
    if record.payment_intent_data.get("setup_future_usage") and record.session["customer"]:
        # The card paid with is saved to the customer for later off-session payments.
        sent += customers.attach(store, card, record.session["customer"])
    return sent


def save_card(store: Store, record: CheckoutRecord, card: str = "pm_card_visa") -> list[JsonObject]:
    """A setup-mode session completed: its customer has `card` (a Stripe test card) saved, nothing charged."""
    complete(record, payment_status="no_payment_required")
    record.session["setup_intent"] = new_id("seti_")
    return [
        store.publish("checkout.session.completed", record.session),
        *customers.attach(store, card, record.session["customer"]),
    ]


def pay_later(store: Store, session_id: str) -> list[JsonObject]:
    record = record_in(store, session_id, "pay later", status="open")
    complete(record, payment_status="unpaid")
    payment_intents.start_processing(store, payment_intents.attempt(store, record), _email(record))
    return [store.publish("checkout.session.completed", record.session)]


def settle(store: Store, session_id: str) -> list[JsonObject]:
    record, intent = awaiting_funds(store, session_id, "settle")
    sent = payment_intents.succeed(store, intent, _email(record))
    record.session["payment_status"] = "paid"
    invoices.invoice_paid_for(store, record, store.public_base_url)
    return [*sent, store.publish("checkout.session.async_payment_succeeded", record.session)]


def fail_payment(store: Store, session_id: str) -> list[JsonObject]:
    record, intent = awaiting_funds(store, session_id, "fail the payment of")
    payment_intents.fail(store, intent)
    return [store.publish("checkout.session.async_payment_failed", record.session)]


def decline(store: Store, session_id: str) -> list[JsonObject]:
    record = record_in(store, session_id, "decline a payment for", status="open")
    payment_intents.decline(payment_intents.attempt(store, record))
    return []


def _email(record: CheckoutRecord) -> str | None:
    details = record.session["customer_details"]
    return str(details["email"]) if details else None


def complete(record: CheckoutRecord, payment_status: str) -> None:
    session = record.session
    customer_details = fixture("checkout.session")["customer_details"]
    customer_details.update(
        address=dict.fromkeys(customer_details["address"]) | {"country": "US"},
        email=session["customer_email"] or "customer@example.com",
        name=None,
        phone=None,
        tax_exempt="none",
        tax_ids=[],
    )
    session.update(
        status="complete",
        payment_status=payment_status,
        customer_details=customer_details,
        collected_information={"business_name": None, "individual_name": None, "shipping_details": None},
        # A finished session has no page to send the customer to.
        url=None,
    )


def expire(store: Store, record: CheckoutRecord, request: RequestContext | None) -> JsonObject:
    record.session.update(status="expired", url=None)
    if record.payment_intent is not None:
        payment_intents.cancel(record.payment_intent)
    return store.publish("checkout.session.expired", record.session, request)


# -- building a session ---------------------------------------------------------------------------------


def _boolean(params: JsonObject, key: str, parent: str) -> bool:
    value = params.get(key, "false")
    if value not in ("true", "false"):
        raise invalid(f"Invalid boolean: {value}", f"{parent}[{key}]")
    return bool(value == "true")


def new_session(store: Store, params: JsonObject, public_base_url: str) -> CheckoutRecord:
    mode = required(params, "mode")
    if mode not in ("payment", "setup", "subscription"):
        raise invalid("Invalid mode: must be one of payment, setup, or subscription", "mode")
    if mode == "subscription":
        raise invalid(f"mode={mode} is not emulated locally; only mode=payment and mode=setup are", "mode")
    customer = params.get("customer")
    if customer is not None and customer not in store.customers:
        raise no_such("customer", customer, "customer")
    if mode == "setup" and customer is None:
        raise invalid("This emulator saves cards only to an existing customer: pass customer.", "customer")
    success_url = required(params, "success_url")
    check_url(success_url, "success_url")
    cancel_url = params.get("cancel_url")
    if cancel_url is not None:
        check_url(cancel_url, "cancel_url")
    customer_email = params.get("customer_email")
    if customer_email is not None and not _EMAIL.fullmatch(customer_email):
        raise invalid(f"Invalid email address: {customer_email}", "customer_email", "email_invalid")
    client_reference_id = params.get("client_reference_id")
    if client_reference_id is not None and len(client_reference_id) > _CLIENT_REFERENCE_ID_MAX_LENGTH:
        raise invalid(
            f"Invalid client_reference_id: must be at most {_CLIENT_REFERENCE_ID_MAX_LENGTH} characters",
            "client_reference_id",
        )
    if mode == "setup":
        currency, amount = required(params, "currency"), None
    else:
        currency, amount = line_items_total(required(params, "line_items"))
        pricing.check_tax(params, params["line_items"])
    billing_address_collection = params.get("billing_address_collection")
    if billing_address_collection not in (None, "auto", "required"):
        raise invalid(
            "Invalid billing_address_collection: must be one of auto or required",
            "billing_address_collection",
        )
    # Taken and checked, but not shown: Stripe's example session (stripe_fixtures.json) has no
    # tax_id_collection field, and the emulated customer has no tax id to collect.
    _boolean(params.get("tax_id_collection", {}), "enabled", "tax_id_collection")
    created = now()
    expires_at = params.get("expires_at", created + SESSION_LIFETIME_SECONDS)
    if expires_at < created + MIN_SESSION_LIFETIME_SECONDS:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            "expires_at",
        )
    if expires_at > created + SESSION_LIFETIME_SECONDS:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            "expires_at",
        )
    session_id = new_id("cs_test_a1", 56)
    template = fixture("checkout.session")
    session = stripe_object(
        "checkout.session",
        # As asked; unasked, the emulated account's Dashboard setting, which is off.
        adaptive_pricing={
            "enabled": _boolean(params.get("adaptive_pricing", {}), "enabled", "adaptive_pricing")
        },
        after_expiration=None,
        allow_promotion_codes=_boolean(params, "allow_promotion_codes", "") or None,
        amount_subtotal=amount,
        amount_total=amount,
        automatic_tax={
            "enabled": _boolean(params.get("automatic_tax", {}), "enabled", "automatic_tax"),
            "liability": None,
            "provider": None,
            "status": None,
        },
        billing_address_collection=billing_address_collection,
        cancel_url=cancel_url,
        client_reference_id=client_reference_id,
        client_secret=None,
        collected_information=None,
        consent=None,
        consent_collection=None,
        created=created,
        currency=currency,
        currency_conversion=None,
        custom_fields=[],
        custom_text=dict.fromkeys(template["custom_text"]),
        customer=customer,
        customer_account=None,
        customer_creation="if_required",
        customer_details=None,
        customer_email=customer_email,
        discounts=[],
        expires_at=expires_at,
        id=session_id,
        integration_identifier=None,
        invoice=None,
        invoice_creation={
            "enabled": _boolean(params.get("invoice_creation", {}), "enabled", "invoice_creation"),
            "invoice_data": dict.fromkeys(template["invoice_creation"]["invoice_data"])
            | {"metadata": params.get("invoice_creation", {}).get("invoice_data", {}).get("metadata", {})},
        },
        livemode=False,
        locale=None,
        managed_payments=None,
        metadata=params.get("metadata", {}),
        mode=mode,
        object="checkout.session",
        origin_context=None,
        payment_intent=None,
        payment_link=None,
        payment_method_collection="if_required",
        payment_method_configuration_details={"id": store.payment_method_configuration, "parent": None},
        payment_method_options={"card": {"request_three_d_secure": "automatic"}},
        payment_method_types=["card", "us_bank_account"],
        payment_status="unpaid",
        permissions=None,
        phone_number_collection={"enabled": False},
        recovered_from=None,
        saved_payment_method_options=None,
        setup_intent=None,
        shipping_address_collection=None,
        shipping_cost=None,
        shipping_options=[],
        status="open",
        submit_type=None,
        subscription=None,
        success_url=success_url,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        # "hosted" until API version 2026-03-25.dahlia; this emulator speaks the product's pinned version.
        ui_mode="hosted_page",
        url=f"{public_base_url}/checkout/{session_id}",
        wallet_options=None,
    )
    record = CheckoutRecord(
        store.next_sequence(),
        session,
        params.get("payment_intent_data", {}),
        line_items=params.get("line_items", []),
    )
    if mode == "payment":
        pricing.price(record, None)
    return record


def apply_promotion_code(store: Store, session_id: str, code: str) -> JsonObject:
    """The customer enters a promotion code on the Checkout page: the session's totals now show its
    discount (and the tax on what is left). A code Stripe would not take is refused, the session unchanged."""
    record = record_in(store, session_id, "apply a promotion code to", status="open")
    if not record.session["allow_promotion_codes"]:
        raise InvalidTransitionError(f"Checkout Session {session_id} does not allow promotion codes")
    promotion = pricing.lookup(code)
    if promotion is None or (promotion.currency and promotion.currency != record.session["currency"]):
        raise InvalidTransitionError(f"This code is invalid: {code[:40]!r}")
    pricing.price(record, promotion)
    return record.session


def line_items_total(line_items: list[JsonObject]) -> tuple[str, int]:
    """The one currency of the line items and their total, in its smallest unit."""
    currencies: set[str] = set()
    total = 0
    for index, item in enumerate(line_items):
        name = f"line_items[{index}]"
        price_data = required(item, "price_data", name)
        quantity = required(item, "quantity", name)
        if quantity < 1:
            raise invalid("This value must be greater than or equal to 1.", f"{name}[quantity]")
        price = f"{name}[price_data]"
        currency = required(price_data, "currency", price).lower()
        if not _CURRENCY.fullmatch(currency):
            raise invalid(f"Invalid currency: {currency}.", f"{price}[currency]", "parameter_invalid_string")
        unit_amount = required(price_data, "unit_amount", price)
        if unit_amount < 1:
            raise invalid(
                "This value must be greater than or equal to 1.",
                f"{price}[unit_amount]",
                "parameter_invalid_integer",
            )
        required(required(price_data, "product_data", price), "name", f"{price}[product_data]")
        currencies.add(currency)
        total += unit_amount * quantity
    if len(currencies) > 1:
        raise invalid("All line items must have the same currency.", "line_items")
    return currencies.pop(), total


def matches(record: CheckoutRecord, params: Mapping[str, Any]) -> bool:
    session = record.session
    if "status" in params and session["status"] != params["status"]:
        return False
    if "payment_intent" in params and session["payment_intent"] != params["payment_intent"]:
        return False
    return created_matches(session["created"], params.get("created"))

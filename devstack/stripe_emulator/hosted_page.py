"""The hosted Checkout page: what the customer sees at a session's `url`, its four buttons and a code field.

Plain HTML forms, no API key, that post to `/checkout/{id}/pay`, `/pay-later`, `/decline` or `/cancel` and
answer `303 See Other` to where Checkout sends the customer; asked for JSON, `200 {"sessionId", "status",
"paymentStatus", "redirect"}` instead, for scripts. A session that allows promotion codes shows a code
field, posted to `/checkout/{id}/promotion-code` (`code=SAVE20`): the page again with the new totals, or
saying the code was refused (`?code=refused`); asked for JSON, `200 {"sessionId", "amountSubtotal",
"amountTotal", "totalDetails"}` or `400 {"error": {"message"}}`. Tax and discounts: see `pricing`.
"""

from __future__ import annotations

import copy
import functools
import html
import re
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, quote, unquote

from devstack.stripe_emulator import checkout_sessions
from devstack.stripe_emulator.errors import InvalidTransitionError, UnknownCheckoutSessionError
from devstack.stripe_emulator.fixtures import JsonObject, json_bytes
from devstack.stripe_emulator.http import Response
from devstack.stripe_emulator.store import Store

CHECKOUT_PAGE_TITLE = "Stripe Checkout emulator (local)"
CHECKOUT_PAGE_TEMPLATE = Path(__file__).with_name("checkout_page.html")
DECLINED_MESSAGE = "Your card was declined. Try again or use another card."
CHECKOUT_ACTIONS = (
    "pay",
    "pay-later",
    "decline",
    "cancel",
    "save-declining",
    "save-authenticating",
    "promotion-code",
)
# A setup-mode page saves one of Stripe's test cards: each button, the card it saves.
SAVED_CARDS = {
    "pay": "pm_card_visa",
    "save-declining": "pm_card_chargeDeclined",
    "save-authenticating": "pm_card_authenticationRequired",
}
CODE_REFUSED = "This code is invalid, expired or not for this purchase."
CHECKOUT_PAGE_NOTICE = "Local Stripe Checkout emulator — no real payment is taken."
_CHECKOUT_PAGE = re.compile(r"/checkout/(?P<id>[^/]+)")
_CHECKOUT_ACTION = re.compile(r"/checkout/(?P<id>[^/]+)/(?P<action>[^/]+)")
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # No form-action: it would also restrict the redirect to the site's success and cancel URLs.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_JSON_PAGE_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


# Stripe's currencies whose amounts have no minor unit, for showing an amount on the Checkout page.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    (
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    )
)
# Stripe's currencies with three decimals; their amounts are in thousandths.
_THREE_DECIMAL_CURRENCIES = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


def _format_amount(amount: int, currency: str) -> str:
    """An amount in the currency's smallest unit as a person reads it: `5000, "usd"` -> `50.00 USD`."""
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return f"{amount:,} {currency.upper()}"
    if currency in _THREE_DECIMAL_CURRENCIES:
        return f"{amount / 1000:,.3f} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


@cache
def _page_template() -> string.Template:
    return string.Template(CHECKOUT_PAGE_TEMPLATE.read_text(encoding="utf-8"))


def _html_page(status: int, title: str, content: str, headers: Mapping[str, str] | None = None) -> Response:
    """A whole page around `content`, which is HTML already escaped."""
    page = _page_template().substitute(
        title=html.escape(f"{title} · {CHECKOUT_PAGE_TITLE}"), notice=CHECKOUT_PAGE_NOTICE, content=content
    )
    return Response(status, _HTML_HEADERS | dict(headers or {}), page.encode())


def _page_error(
    status: int,
    title: str,
    message: str,
    as_json: bool,
    *,
    link: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error as a page with an optional `(href, text)` link, or as `{"error": {"message"}}`."""
    if as_json:
        body = json_bytes({"error": {"message": message}})
        return Response(status, _JSON_PAGE_HEADERS | dict(headers or {}), body)
    content = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(message)}</p>"
    if link is not None:
        content += f'\n<p><a class="button" href="{html.escape(link[0])}">{html.escape(link[1])}</a></p>'
    return _html_page(status, title, f'<section class="card">\n{content}\n</section>', headers)


def _method_not_allowed(allowed: str, as_json: bool) -> Response:
    return _page_error(
        405, "Method not allowed", f"Only {allowed} is answered here.", as_json, headers={"Allow": allowed}
    )


def _no_such_checkout(session_id: str, as_json: bool) -> Response:
    return _page_error(
        404,
        "Checkout Session not found",
        f"No such Checkout Session: {session_id}. Sessions last only as long as the emulator that made them.",
        as_json,
    )


def _cannot_pay(view: PageView, page_url: str, as_json: bool) -> Response:
    state = "is already complete" if view.session["status"] == "complete" else "has expired"
    message = f"This Checkout Session {state}: it can no longer be paid."
    return _page_error(409, "Nothing to pay", message, as_json, link=(page_url, "Back to the Checkout page"))


def _success_url(session: Mapping[str, Any]) -> str:
    """Where Checkout sends the customer after paying, with `{CHECKOUT_SESSION_ID}` filled in."""
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])


def _product_name(line_items: list[JsonObject]) -> str:
    if not line_items:
        return "Save a card (Visa 4242)"
    if len(line_items) == 1:
        return str(line_items[0]["price_data"]["product_data"]["name"])
    return f"{len(line_items)} items"


def _seconds(seconds: float) -> str:
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def _totals(session: Mapping[str, Any], action: str, code_error: str | None) -> list[str]:
    """The subtotal, discount and tax lines above the total, and the promotion code form when allowed."""
    currency, details = session["currency"], session["total_details"] or {}
    rows = []
    if details.get("amount_discount") or details.get("amount_tax"):
        rows.append(("Subtotal", session["amount_subtotal"]))
    if details.get("amount_discount"):
        rows.append(("Discount", -details["amount_discount"]))
    if details.get("amount_tax"):
        rows.append(("Tax included" if _inclusive(session) else "Tax", details["amount_tax"]))
    parts = []
    if rows:
        lines = [
            f"<li><span>{label}</span> <span>{'&minus;' if amount < 0 else ''}"
            f"{html.escape(_format_amount(abs(amount), currency))}</span></li>"
            for label, amount in rows
        ]
        parts.append('<ul class="items" aria-label="Totals">\n' + "\n".join(lines) + "\n</ul>")
    if session.get("allow_promotion_codes"):
        error = (
            f'<p class="alert" role="alert" id="code-error">{html.escape(code_error)}</p>'
            if code_error
            else ""
        )
        described = ' aria-describedby="code-error"' if code_error else ""
        parts.append(
            f'<form method="post" action="{action}/promotion-code">{error}'
            '<label for="promotion-code">Promotion code</label> '
            f'<input id="promotion-code" name="code" autocomplete="off" maxlength="40"{described}> '
            '<button type="submit" class="secondary">Apply</button></form>'
        )
    return parts


def _inclusive(session: Mapping[str, Any]) -> bool:
    """Tax inside the price: the total is the subtotal less the discount (Stripe's inclusive behaviour)."""
    details = session["total_details"] or {}
    return bool(session["amount_total"] == session["amount_subtotal"] - details.get("amount_discount", 0))


def _open_page(view: PageView, settle_after: float, *, declined: bool, code_error: str | None = None) -> str:
    session = view.session
    currency = session["currency"]
    # A setup-mode session saves a card and charges nothing: it has no total.
    total = html.escape(_format_amount(session["amount_total"] or 0, currency))
    items = view.line_items
    # Relative to /checkout/{id}, so the forms work behind any proxy that serves the page.
    action = html.escape(quote(session["id"], safe=""))
    if session["mode"] == "setup":
        return _setup_page(["<h1>Save a card</h1>"], action)
    parts = [f"<h1>{html.escape(_product_name(items))}</h1>"]
    if len(items) == 1 and (description := items[0]["price_data"]["product_data"].get("description")):
        parts.append(f'<p class="muted">{html.escape(description)}</p>')
    if len(items) > 1 or items[0]["quantity"] > 1:
        rows = []
        for item in items:
            price = item["price_data"]
            amount = _format_amount(price["unit_amount"] * item["quantity"], currency)
            name = f"{html.escape(price['product_data']['name'])} &times; {item['quantity']}"
            rows.append(f"<li><span>{name}</span> <span>{html.escape(amount)}</span></li>")
        parts.append('<ul class="items">\n' + "\n".join(rows) + "\n</ul>")
    parts += _totals(session, action, code_error)
    parts.append(f'<p class="total"><span class="label">Total due</span> <strong>{total}</strong></p>')
    if declined:
        parts.append(f'<p class="alert" role="alert">{html.escape(DECLINED_MESSAGE)}</p>')
    buttons = [
        ("pay", "Pay", f"Pay {total} by card: the payment succeeds at once."),
        (
            "pay-later",
            "Pay later",
            f"Pay by bank debit: pending at first, then it succeeds {_seconds(settle_after)} on.",
        ),
        ("decline", "Decline", "Pay by a card that the bank declines: nothing is charged."),
        ("cancel", "Cancel", "Leave Checkout without paying and go back to the site."),
    ]
    forms = [
        f'<form method="post" action="{action}/{name}">'
        f'<button type="submit" class="{"primary" if name == "pay" else "secondary"}"'
        f' aria-describedby="{name}-hint">{label}</button>'
        f'<p class="hint" id="{name}-hint">{hint}</p></form>'
        for name, label, hint in buttons
    ]
    parts.append(
        '<h2 class="choose">Choose how this test payment ends</h2>\n<div class="actions">\n'
        + "\n".join(forms)
        + "\n</div>"
    )
    return '<section class="card" aria-label="Payment">\n' + "\n".join(parts) + "\n</section>"


def _setup_page(parts: list[str], action: str) -> str:
    """A setup-mode session: save one of Stripe's test cards for later off-session payments."""
    buttons = [
        ("pay", "Save Visa •••• 4242", "Stripe's pm_card_visa: later payments succeed."),
        (
            "save-declining",
            "Save Visa •••• 0002",
            "Stripe's pm_card_chargeDeclined: later payments are declined.",
        ),
        (
            "save-authenticating",
            "Save Visa •••• 3184",
            "Stripe's pm_card_authenticationRequired: later payments need the cardholder, off-session too.",
        ),
        ("cancel", "Cancel", "Leave without saving a card and go back to the site."),
    ]
    forms = [
        f'<form method="post" action="{action}/{name}">'
        f'<button type="submit" class="{"primary" if name == "pay" else "secondary"}"'
        f' aria-describedby="{name}-hint">{html.escape(label)}</button>'
        f'<p class="hint" id="{name}-hint">{html.escape(hint)}</p></form>'
        for name, label, hint in buttons
    ]
    parts = [
        *parts,
        '<p class="muted">Save a card for later payments; nothing is charged now.</p>',
        '<h2 class="choose">Choose the test card to save</h2>\n<div class="actions">\n'
        + "\n".join(forms)
        + "\n</div>",
    ]
    return '<section class="card" aria-label="Save a card">\n' + "\n".join(parts) + "\n</section>"


def _closed_page(view: PageView) -> str:
    session = view.session
    total = _format_amount(session["amount_total"] or 0, session["currency"])
    summary = html.escape(f"{_product_name(view.line_items)} · {total}")
    if session["status"] == "complete":
        heading = "This Checkout Session is complete"
        if session["payment_status"] == "paid":
            outcome = "The payment succeeded."
        elif view.payment_intent_status == "processing":
            outcome = "The payment is processing; the site is told when it succeeds."
        else:
            outcome = "The delayed payment failed; nothing was charged."
        back: str | None = _success_url(session)
    else:
        heading = "This Checkout Session has expired"
        outcome = "It was not paid; nothing was charged."
        back = session["cancel_url"]
    parts = [f"<h1>{heading}</h1>", f'<p class="muted">{summary}</p>', f"<p>{outcome}</p>"]
    if back:
        parts.append(f'<p><a class="button" href="{html.escape(back)}">Return to the site</a></p>')
    return '<section class="card">\n' + "\n".join(parts) + "\n</section>"


@dataclass(frozen=True, slots=True)
class PageView:
    """What the Checkout page shows of a session, copied under the lock."""

    session: JsonObject
    line_items: list[JsonObject]
    payment_intent_status: str | None


class HostedCheckout:
    """The Checkout page of the emulator's sessions; it shares the emulator's lock and state."""

    def __init__(
        self,
        lock: threading.Lock,
        store: Store,
        public_base_url: str,
        settle_after: float,
        schedule_settlement: Callable[[str], None],
    ) -> None:
        self._lock = lock
        self._store = store
        self._public_base_url = public_base_url
        self._settle_after = settle_after
        self._schedule_settlement = schedule_settlement

    def _changed(self, change: Callable[[Store, str], list[JsonObject]], session_id: str) -> list[JsonObject]:
        with self._lock:
            return change(self._store, session_id)

    def answer(
        self, method: str, url: SplitResult, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        """The hosted Checkout page and its form posts; like Stripe's, they need no API key."""
        as_json = "application/json" in headers.get("accept", "").lower()
        if page := _CHECKOUT_PAGE.fullmatch(url.path):
            if method != "GET":
                return _method_not_allowed("GET", as_json)
            query = parse_qs(url.query)
            declined = query.get("declined") == ["1"]
            refused = query.get("code") == ["refused"]
            return self._checkout_page(unquote(page["id"]), declined=declined, code_refused=refused)
        action = _CHECKOUT_ACTION.fullmatch(url.path)
        if action is None or action["action"] not in CHECKOUT_ACTIONS:
            return _page_error(404, "Page not found", f"Nothing is served at {url.path}.", as_json)
        if method != "POST":
            return _method_not_allowed("POST", as_json)
        if action["action"] == "promotion-code":
            return self._promotion_code(unquote(action["id"]), body, as_json)
        return self._checkout_action(unquote(action["id"]), action["action"], as_json)

    def _promotion_code(self, session_id: str, body: bytes, as_json: bool) -> Response:
        """The customer applies a promotion code: the page again, with the new totals or why the code was
        refused; asked for JSON, the session's totals, or 400 with the reason."""
        try:
            form = parse_qs(body.decode("utf-8"))
            code = (form.get("code") or [""])[0]
        except UnicodeDecodeError:
            code = ""
        refused: str | None = None
        try:
            with self._lock:
                checkout_sessions.apply_promotion_code(self._store, session_id, code)
        except UnknownCheckoutSessionError:
            return _no_such_checkout(session_id, as_json)
        except InvalidTransitionError as exc:
            refused = str(exc)
        view = self.view(session_id)
        if as_json:
            if refused:
                return _page_error(400, "Promotion code refused", refused, as_json=True)
            session = view.session
            answer = {
                "sessionId": session["id"],
                "amountSubtotal": session["amount_subtotal"],
                "amountTotal": session["amount_total"],
                "totalDetails": session["total_details"],
            }
            return Response(200, dict(_JSON_PAGE_HEADERS), json_bytes(answer))
        # Back to the page (post, redirect, get), which shows the new totals or why the code was refused.
        redirect = self.page_url(session_id) + ("?code=refused" if refused else "")
        link = html.escape(redirect)
        page = (
            f'<!doctype html>\n<html lang="en"><title>See Other</title><a href="{link}">{link}</a></html>\n'
        )
        return Response(303, _HTML_HEADERS | {"Location": redirect}, page.encode())

    def view(self, session_id: str) -> PageView:
        with self._lock:
            record = checkout_sessions.record_of(self._store, session_id)
            intent = record.payment_intent
            return PageView(
                session=copy.deepcopy(record.session),
                line_items=copy.deepcopy(record.line_items),
                payment_intent_status=intent["status"] if intent else None,
            )

    def page_url(self, session_id: str) -> str:
        return f"{self._public_base_url}/checkout/{quote(session_id, safe='')}"

    def _checkout_page(
        self, session_id: str, *, declined: bool = False, code_refused: bool = False
    ) -> Response:
        try:
            view = self.view(session_id)
        except UnknownCheckoutSessionError:
            return _no_such_checkout(session_id, as_json=False)
        if view.session["status"] == "open":
            refused = CODE_REFUSED if code_refused else None
            return _html_page(
                200, "Pay", _open_page(view, self._settle_after, declined=declined, code_error=refused)
            )
        return _html_page(200, "Checkout closed", _closed_page(view))

    def _checkout_action(self, session_id: str, action: str, as_json: bool) -> Response:
        """One button of the page: the state change, then where Stripe would send the customer."""
        events: list[JsonObject] = []
        then: Callable[[], None] | None = None
        try:
            if action in SAVED_CARDS:
                events = self._changed(
                    functools.partial(checkout_sessions.pay, card=SAVED_CARDS[action]), session_id
                )
            elif action == "pay-later":
                events = self._changed(checkout_sessions.pay_later, session_id)
                then = functools.partial(self._schedule_settlement, session_id)
            elif action == "decline":
                self._changed(checkout_sessions.decline, session_id)
            view = self.view(session_id)
        except UnknownCheckoutSessionError:
            return _no_such_checkout(session_id, as_json)
        except InvalidTransitionError:
            return _cannot_pay(self.view(session_id), self.page_url(session_id), as_json)
        session = view.session
        if action in ("pay", "pay-later", *SAVED_CARDS):
            redirect = _success_url(session)
        elif action == "decline":
            redirect = f"{self.page_url(session_id)}?declined=1"
        else:
            # Cancelling changes nothing at Stripe and sends no event; the customer just leaves.
            redirect = session["cancel_url"] or self.page_url(session_id)
        if as_json:
            body = {
                "sessionId": session["id"],
                "status": session["status"],
                "paymentStatus": session["payment_status"],
                "redirect": redirect,
            }
            return Response(200, dict(_JSON_PAGE_HEADERS), json_bytes(body), tuple(events), then)
        link = html.escape(redirect)
        page = (
            f'<!doctype html>\n<html lang="en"><title>See Other</title><a href="{link}">{link}</a></html>\n'
        )
        headers = _HTML_HEADERS | {"Location": redirect}
        return Response(303, headers, page.encode(), tuple(events), then)

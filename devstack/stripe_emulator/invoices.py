"""Receipts and invoices: what Stripe keeps for a payment, and the pages its links open.

Every charge has a `receipt_url` (Stripe's receipt page, kept up to date with later refunds). A Checkout
Session made with `invoice_creation[enabled]=true` gets, when it is paid, a paid invoice (`invoice` on the
session) whose `hosted_invoice_url` and `invoice_pdf` open its page and its PDF. `GET /v1/charges?
payment_intent=` lists a payment's charges and `GET /v1/invoices/{id}` reads an invoice.

Stripe publishes no example invoice beside its other fixtures, so an invoice carries every field the
pinned SDK's `stripe.Invoice` declares: the ones a paid one-off invoice fills in, the rest null. It sends
no `invoice.*` events: the product reads invoices only when asked for one. The pages, like the Checkout
page, need no API key and say they are the emulator's. Every function here runs with the emulator's lock.
"""

from __future__ import annotations

import copy
import html
import re

import stripe

from devstack.stripe_emulator.errors import invalid, no_such
from devstack.stripe_emulator.fixtures import JsonObject, new_id, now
from devstack.stripe_emulator.forms import EXPAND_ONLY, conform
from devstack.stripe_emulator.http import Response
from devstack.stripe_emulator.store import CheckoutRecord, Store

PAGE_NOTICE = "Local Stripe emulator — not a real receipt or invoice."
INVOICE_FIELDS = tuple(name for name in stripe.Invoice.__annotations__ if name != "OBJECT_NAME")
_RECEIPT_PAGE = re.compile(r"/receipts/(?P<id>[^/]+)")
_INVOICE_PAGE = re.compile(r"/invoices/(?P<id>[^/]+)")
_INVOICE_PDF = re.compile(r"/invoices/(?P<id>[^/]+)/pdf")
_LIST_PARAMS: JsonObject = {"payment_intent": str, "limit": int, "expand": [str]}
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def receipt_url(public_base_url: str, charge_id: str) -> str:
    return f"{public_base_url}/receipts/{charge_id}"


def invoice_paid_for(store: Store, record: CheckoutRecord, public_base_url: str) -> None:
    """The paid invoice Checkout makes for a paid session that asked for one; its id on the session."""
    session = record.session
    if not session["invoice_creation"]["enabled"] or session["invoice"] is not None:
        return
    intent = record.payment_intent or {}
    invoice_id = new_id("in_")
    details = session["customer_details"] or {}
    paid_at = now()
    invoice = dict.fromkeys(INVOICE_FIELDS) | {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Credits (emulator)",
        "amount_due": session["amount_total"],
        "amount_overpaid": 0,
        "amount_paid": session["amount_total"],
        "amount_paid_off_stripe": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": True,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": paid_at,
        "currency": session["currency"],
        "customer": session["customer"],
        "customer_address": details.get("address"),
        "customer_email": details.get("email"),
        "customer_name": details.get("name"),
        "customer_tax_exempt": "none",
        "customer_tax_ids": details.get("tax_ids") or [],
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ending_balance": 0,
        "hosted_invoice_url": f"{public_base_url}/invoices/{invoice_id}",
        "invoice_pdf": f"{public_base_url}/invoices/{invoice_id}/pdf",
        "issuer": {"type": "self"},
        "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "metadata": dict(session["invoice_creation"]["invoice_data"].get("metadata") or {}),
        "number": f"EMU-{store.next_sequence():04d}",
        "payments": {
            "object": "list",
            "data": [{"payment": {"type": "payment_intent", "payment_intent": intent.get("id")}}],
            "has_more": False,
            "url": "/v1/invoice_payments",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": paid_at,
        "period_start": paid_at,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "paid",
        "status_transitions": {
            "finalized_at": paid_at,
            "marked_uncollectible_at": None,
            "paid_at": paid_at,
            "voided_at": None,
        },
        "subtotal": session["amount_subtotal"],
        "subtotal_excluding_tax": session["amount_subtotal"],
        "total": session["amount_total"],
        "total_excluding_tax": session["amount_subtotal"],
        "total_discount_amounts": [],
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
    }
    store.invoices[invoice_id] = invoice
    session["invoice"] = invoice_id


def list_charges(store: Store, params: JsonObject) -> JsonObject:
    """`GET /v1/charges`, by `payment_intent`: its charges, newest first."""
    params = conform(params, _LIST_PARAMS, "")
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"Invalid limit: must be between 1 and 100, got {limit}", "limit")
    wanted = params.get("payment_intent")
    found = [
        copy.deepcopy(charge)
        for charge in reversed(store.charges.values())
        if wanted is None or charge["payment_intent"] == wanted
    ]
    return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/charges"}


def retrieve(store: Store, invoice_id: str, params: JsonObject) -> JsonObject:
    conform(params, EXPAND_ONLY, "")
    invoice = store.invoices.get(invoice_id)
    if invoice is None:
        raise no_such("invoice", invoice_id, "invoice")
    return copy.deepcopy(invoice)


def answer_page(store: Store, method: str, path: str) -> Response:
    """The receipt page of a charge, an invoice's page, or its PDF."""
    if method != "GET":
        return _page(405, "Method not allowed", "<p>These pages are read with GET.</p>")
    if found := _INVOICE_PDF.fullmatch(path):
        invoice = store.invoices.get(found["id"])
        if invoice is None:
            return _not_found(path)
        return Response(200, {"Content-Type": "application/pdf", "Cache-Control": "no-store"}, _pdf(invoice))
    if found := _INVOICE_PAGE.fullmatch(path):
        invoice = store.invoices.get(found["id"])
        if invoice is None:
            return _not_found(path)
        rows = {
            "Invoice number": invoice["number"],
            "Status": invoice["status"],
            "Amount paid": _amount(invoice["amount_paid"], invoice["currency"]),
            "Billed to": invoice["customer_email"] or "",
        }
        pdf = f'<p><a href="{html.escape(invoice["invoice_pdf"])}">Download the invoice (PDF)</a></p>'
        return _page(200, f"Invoice {invoice['number']}", _table(rows) + pdf)
    if found := _RECEIPT_PAGE.fullmatch(path):
        charge = store.charges.get(found["id"])
        if charge is None:
            return _not_found(path)
        rows = {
            "Receipt for": charge["id"],
            "Amount paid": _amount(charge["amount"], charge["currency"]),
            "Refunded": _amount(charge["amount_refunded"], charge["currency"]),
            "Status": charge["status"],
        }
        return _page(200, "Receipt", _table(rows))
    return _not_found(path)


def _amount(minor: int, currency: str) -> str:
    return f"{minor // 100}.{minor % 100:02d} {currency.upper()}"


def _table(rows: dict[str, str]) -> str:
    cells = "".join(
        f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _page(status: int, title: str, body: str) -> Response:
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"</head><body><main><p><strong>{PAGE_NOTICE}</strong></p><h1>{html.escape(title)}</h1>{body}"
        "</main></body></html>"
    )
    return Response(status, dict(_HTML_HEADERS), page.encode())


def _not_found(path: str) -> Response:
    return _page(404, "Page not found", f"<p>Nothing is served at {html.escape(path)}.</p>")


def _pdf(invoice: JsonObject) -> bytes:
    """A one-page PDF naming the invoice: enough for a browser to open (PDF 1.4, one text line)."""
    text = (
        f"{PAGE_NOTICE} Invoice {invoice['number']}: {_amount(invoice['amount_paid'], invoice['currency'])}"
    )
    safe = (
        text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    )
    stream = b"BT /F1 11 Tf 36 760 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)

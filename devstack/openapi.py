"""The API's OpenAPI document, which the local gateway serves at GET /api/openapi.json.

Each function's resolver documents its own routes: Powertools reads their decorators (summary, tags,
security, responses). This module merges the resolvers' documents and adds, in this one place, what
Powertools cannot declare without validating requests at run time: the request bodies, the query and
header parameters, the shared error schemas, and the JWT authorizer's bearer scheme and 401. Powertools
needs pydantic to generate a document, a development dependency only: no function imports this module.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.constants import DEFAULT_OPENAPI_VERSION
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from wallet import ledger, settings

TITLE = "Credits"
VERSION = "1.0.0"
DESCRIPTION = "Prepaid credits, topped up with Stripe Checkout: the price list, checkout and the balance."
BEARER = "bearerAuth"
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "For programs: invalid_amount, not_found, ..."},
                    "message": {"type": "string", "description": "For people"},
                },
            }
        },
    },
    "GatewayMessage": {
        "type": "object",
        "required": ["message"],
        "additionalProperties": False,
        "properties": {"message": {"type": "string"}},
        "description": "API Gateway's own answer, given before any function runs",
    },
}
UNAUTHORIZED = {
    "description": "No valid bearer token: the JWT authorizer refuses the request",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/GatewayMessage"},
                    {"$ref": "#/components/schemas/Error"},
                ]
            }
        }
    },
}


def document(modules: Iterable[str]) -> dict[str, Any]:
    """The one document for the routes of every function module in `modules` (each has a resolver `app`)."""
    bearer = HTTPBearer(bearerFormat="JWT", description="An ID token from the site's OpenID issuer")
    paths: dict[str, Any] = {}
    for module in sorted(set(modules)):
        app: APIGatewayHttpResolver = importlib.import_module(module).app
        own = app.get_openapi_json_schema(title=TITLE, security_schemes={BEARER: bearer})
        paths |= json.loads(own)["paths"]
    _add_requests(paths)
    for operation in (op for path in paths.values() for op in path.values()):
        if operation.get("security"):
            operation["responses"]["401"] = UNAUTHORIZED
    return {
        "openapi": DEFAULT_OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {BEARER: bearer.model_dump(mode="json", by_alias=True, exclude_none=True)},
        },
    }


def _add_requests(paths: dict[str, Any]) -> None:
    """What the handlers read from the request themselves, so Powertools cannot see it."""
    prices = settings.price_list()
    paths["/api/checkout"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["amount"],
                    "additionalProperties": False,
                    "properties": {
                        "amount": {
                            "type": "integer",
                            "enum": prices.amounts,
                            "description": f"A pack's price in minor units of {prices.currency.upper()}",
                        }
                    },
                }
            }
        },
    }
    paths["/api/balance"]["get"]["parameters"] = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "Transactions per page",
            "schema": {"type": "integer", "minimum": 1, "maximum": ledger.MAX_PAGE_SIZE},
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "The `nextCursor` of the page before",
            "schema": {"type": "string", "minLength": 1, "maxLength": ledger.MAX_CURSOR_LENGTH},
        },
    ]
    webhook = paths["/api/webhooks/stripe"]["post"]
    webhook["parameters"] = [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "description": "Stripe's signature over the exact body bytes",
            "schema": {"type": "string"},
        }
    ]
    webhook["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "A Stripe event"}}},
    }

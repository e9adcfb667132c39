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
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from wallet import activity, auto_top_up, history, holds, ledger, settings
from wallet.amounts import MAX_AMOUNT
from wallet.hot_accounts import MAX_SHARDS, MIN_SHARDS
from wallet.http import MAX_TEXT, USER_ID
from wallet.promotions import MAX_EXPIRY_TEXT, MAX_GRANT_CREDITS

TITLE = "Credits"
VERSION = "1.0.0"
DESCRIPTION = "Prepaid credits, topped up with Stripe Checkout: the price list, checkout and the balance."
BEARER = "bearerAuth"
SIGV4 = "sigv4"
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
                    "balance": {
                        "type": "integer",
                        "description": "With insufficient_credits: the user's balance, holds included",
                    },
                    "available": {
                        "type": "integer",
                        "description": "With insufficient_credits: what was available, and did not cover it",
                    },
                    "hold": {
                        "type": "object",
                        "description": "With hold_not_active: the hold, settled",
                        "required": ["holdId", "state", "amount", "expiresAt"],
                        "additionalProperties": False,
                        "properties": {
                            "holdId": {"type": "string"},
                            "state": {"type": "string", "enum": ["captured", "released", "expired"]},
                            "amount": {"type": "integer", "description": "What it held"},
                            "captured": {"type": "integer", "description": "What its capture spent"},
                            "expiresAt": {"type": "string", "format": "date-time"},
                        },
                    },
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


FORBIDDEN = {
    "description": "Not signed with AWS credentials: API Gateway's AWS_IAM authorization refuses it",
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
    # OpenAPI has no SigV4 scheme; API Gateway's own exports describe it as this header, the same way.
    sigv4 = APIKey.model_validate(
        {
            "name": "Authorization",
            "in": APIKeyIn.header,
            "description": "SigV4 (service execute-api), signed with the calling service's IAM credentials",
        }
    )
    schemes = {BEARER: bearer, SIGV4: sigv4}
    paths: dict[str, Any] = {}
    for module in sorted(set(modules)):
        app: APIGatewayHttpResolver = importlib.import_module(module).app
        own = app.get_openapi_json_schema(title=TITLE, security_schemes=schemes)  # type: ignore[arg-type]
        paths |= json.loads(own)["paths"]
    _add_requests(paths)
    for operation in (op for path in paths.values() for op in path.values()):
        schemes_used = {name for requirement in operation.get("security", []) for name in requirement}
        if BEARER in schemes_used:
            operation["responses"]["401"] = UNAUTHORIZED
        if SIGV4 in schemes_used:
            operation["responses"]["403"] = FORBIDDEN
    return {
        "openapi": DEFAULT_OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                name: scheme.model_dump(mode="json", by_alias=True, exclude_none=True)
                for name, scheme in schemes.items()
            },
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
                        },
                        "saveCard": {
                            "type": "boolean",
                            "description": "Save the card paid with for auto top-up",
                        },
                    },
                }
            }
        },
    }
    paths["/api/auto-top-up"]["put"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["enabled", "threshold", "amount"],
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "threshold": {
                            "type": "integer",
                            "minimum": auto_top_up.MIN_THRESHOLD,
                            "maximum": auto_top_up.MAX_THRESHOLD,
                            "description": "In credits; at most the chosen pack's credits, so one charge "
                            "ends any dip",
                        },
                        "amount": {"type": "integer", "enum": prices.amounts, "description": "A price"},
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
        {
            "name": "kind",
            "in": "query",
            "required": False,
            "description": "Only rows of this kind; left out, every kind but holds that used nothing",
            "schema": {"type": "string", "enum": list(history.KINDS)},
        },
    ]
    paths["/api/balance/export"]["get"]["parameters"] = [
        {
            "name": name,
            "in": "query",
            "required": True,
            "description": f"{text}, a UTC day (YYYY-MM-DD), from {activity.EARLIEST} to tomorrow; at most "
            f"{activity.MAX_EXPORT_DAYS} days in all",
            "schema": {"type": "string", "format": "date"},
        }
        for name, text in (("from", "The first day"), ("to", "The last day, included"))
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
    key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "One key, one effect: a retry with the same key and body answers the first answer",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    }
    user = {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{USER_ID.pattern}$"},
    }
    text = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$",
        "description": "One line: no control characters (tab and newline included) or line separators",
    }
    bodies = {
        "/api/users/{user_id}/spend": {
            "required": ["amount"],
            "properties": {
                "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                "description": text,
            },
        },
        "/api/users/{user_id}/shards": {
            "required": ["shards"],
            "properties": {
                "shards": {"type": "integer", "minimum": MIN_SHARDS, "maximum": MAX_SHARDS},
            },
        },
        "/api/users/{user_id}/adjustments": {
            "required": ["amount", "reason"],
            "properties": {
                "amount": {
                    "type": "integer",
                    "minimum": -MAX_AMOUNT,
                    "maximum": MAX_AMOUNT,
                    "not": {"const": 0},
                },
                "reason": text,
            },
        },
        "/api/users/{user_id}/grants": {
            "required": ["credits", "reason"],
            "properties": {
                "credits": {"type": "integer", "minimum": 1, "maximum": MAX_GRANT_CREDITS},
                "reason": text,
                "expiresAt": {"type": "string", "format": "date-time", "maxLength": MAX_EXPIRY_TEXT},
            },
        },
    }
    hold = {
        "name": "hold_id",
        "in": "path",
        "required": True,
        "description": "The hold's id (a ULID), as its creation answered",
        "schema": {"type": "string"},
    }
    bodies |= {
        "/api/users/{user_id}/holds": {
            "required": ["amount", "expiresInSeconds"],
            "properties": {
                "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                "expiresInSeconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": holds.MAX_EXPIRES_IN_SECONDS,
                    "description": "How long the work may run; no default, as only the caller knows",
                },
                "description": text,
            },
        },
        "/api/users/{user_id}/holds/{hold_id}/capture": {
            "required": ["amount"],
            "properties": {
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_AMOUNT,
                    "description": "At most held",
                }
            },
        },
        "/api/users/{user_id}/holds/{hold_id}/release": {"properties": {}},
    }
    for path, schema in bodies.items():
        # Making an account hot is idempotent by itself: no Idempotency-Key.
        hot = path.endswith("/shards")
        operation = paths[path]["put" if hot else "post"]
        operation["parameters"] = [user] if hot else [user, key] + ([hold] if "{hold_id}" in path else [])
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object", "additionalProperties": False} | schema}
            },
        }
    paths["/api/users/{user_id}/balance"]["get"]["parameters"] = [user]
    paths["/api/users/{user_id}/transactions"]["get"]["parameters"] = [
        user,
        *paths["/api/balance"]["get"]["parameters"],
    ]

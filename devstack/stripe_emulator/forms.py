"""Stripe's form-encoded parameters read back as nested values, and held to what each endpoint accepts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from devstack.stripe_emulator.errors import invalid, missing
from devstack.stripe_emulator.fixtures import JsonObject

_INTEGER = re.compile(r"-?\d+")
_PARAM_NAME = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SUBSCRIPT = re.compile(r"\[([^\[\]]*)\]")
_METADATA_MAX_KEYS = 50
_METADATA_MAX_KEY_LENGTH = 40
_METADATA_MAX_VALUE_LENGTH = 500


class _Metadata:
    """Schema marker: a free-form hash of strings, with Stripe's limits on keys and values."""


class _Range:
    """Schema marker: an integer, or a hash of `gt`, `gte`, `lt`, `lte` integers."""


METADATA = _Metadata()
RANGE = _Range()
EXPAND_ONLY: JsonObject = {"expand": [str]}


def parse_form(encoded: str) -> JsonObject:
    """Stripe's form encoding read back as nested values: `a[b][0][c]=1` -> `{"a": {"b": [{"c": "1"}]}}`.

    A hash keyed 0..n-1 reads as the array the SDK encoded it from, and `a[]=x` appends to an array; every
    value stays the string that was sent.
    """
    root: JsonObject = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        match = _PARAM_NAME.fullmatch(name)
        if match is None:
            raise invalid(f"Invalid parameter name: {name}", name)
        keys = [match[1], *_SUBSCRIPT.findall(match[2])]
        appending = keys[-1] == ""
        if appending:
            keys.pop()
        if "" in keys:
            raise invalid(f"Invalid parameter name: {name}", name)
        node = root
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise invalid(f"Invalid hash: {name} mixes a value and a hash", name)
            node = child
        last = keys[-1]
        if appending:
            items = node.setdefault(last, [])
            if not isinstance(items, list):
                raise invalid(f"Invalid array: {name} mixes a value and an array", name)
            items.append(value)
        elif isinstance(node.get(last), dict | list):
            raise invalid(f"Invalid string: {name} mixes a value and a hash", name)
        else:
            node[last] = value
    return {name: _with_arrays(value) for name, value in root.items()}


def _with_arrays(value: Any) -> Any:
    if isinstance(value, list):
        return [_with_arrays(item) for item in value]
    if not isinstance(value, dict):
        return value
    items = {key: _with_arrays(item) for key, item in value.items()}
    indexes = [str(index) for index in range(len(items))]
    return [items[index] for index in indexes] if items and items.keys() == set(indexes) else items


def stripe_params(params: Any) -> frozenset[str]:
    """The top-level parameters Stripe itself accepts, from the SDK's typed parameters."""
    keys: frozenset[str] = params.__required_keys__ | params.__optional_keys__
    return keys - stripe.RequestOptions.__optional_keys__


def conform(value: object, schema: object, param: str, stripe_knows: frozenset[str] = frozenset()) -> Any:
    """`value` read as `schema` says, or the 400 Stripe answers for the first parameter that does not fit."""
    if schema is str:
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {param} must be a string", param)
        return value
    if schema is int:
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            raise invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer")
        return int(value)
    if schema is RANGE:
        if isinstance(value, dict):
            return conform(value, dict.fromkeys(("gt", "gte", "lt", "lte"), int), param)
        return conform(value, int, param)
    if schema is METADATA:
        return metadata(value, param)
    if isinstance(schema, list):
        if value == "":
            return []
        if isinstance(value, dict) and all(key.isdigit() for key in value):
            value = [value[key] for key in sorted(value, key=int)]
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {param} must be an array", param)
        return [conform(item, schema[0], f"{param}[{index}]") for index, item in enumerate(value)]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {param} must be a hash", param)
        conformed: JsonObject = {}
        for key, item in value.items():
            name = f"{param}[{key}]" if param else key
            if key not in schema:
                hint = " (Stripe accepts it; this local emulator does not)" if key in stripe_knows else ""
                raise invalid(f"Received unknown parameter: {name}{hint}", name, "parameter_unknown")
            conformed[key] = conform(item, schema[key], name)
        return conformed
    raise TypeError(f"not a parameter schema: {schema!r}")


def metadata(value: object, param: str) -> dict[str, str]:
    if value == "":
        return {}
    if isinstance(value, list):
        # Keys 0..n-1 were read as an array; metadata keeps them as the keys they were.
        value = {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid(f"Invalid hash: {param} must be a hash", param)
    if len(value) > _METADATA_MAX_KEYS:
        raise invalid(f"Invalid {param}: at most {_METADATA_MAX_KEYS} keys are allowed", param)
    for key, item in value.items():
        name = f"{param}[{key}]"
        if not isinstance(item, str):
            raise invalid(f"Invalid string: {name} must be a string", name)
        if len(key) > _METADATA_MAX_KEY_LENGTH:
            raise invalid(f"Invalid {param}: keys can be at most {_METADATA_MAX_KEY_LENGTH} characters", name)
        if len(item) > _METADATA_MAX_VALUE_LENGTH:
            raise invalid(
                f"Invalid {name}: values can be at most {_METADATA_MAX_VALUE_LENGTH} characters", name
            )
    return dict(value)


def required(params: Mapping[str, Any], key: str, parent: str = "") -> Any:
    name = f"{parent}[{key}]" if parent else key
    if params.get(key) in (None, "", []):
        raise missing(name)
    return params[key]


def check_url(url: str, param: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("Not a valid URL", param, "url_invalid")


def expands(params: Mapping[str, Any], path: str) -> bool:
    for item in params.get("expand", []):
        if item != path:
            raise invalid(f"This property cannot be expanded ({item}).", "expand")
    return path in params.get("expand", [])


def expansions(params: Mapping[str, Any], *paths: str) -> set[str]:
    """Which of `paths` `expand[]` asks for; any other expansion is refused as Stripe refuses it."""
    for item in params.get("expand", []):
        if item not in paths:
            raise invalid(f"This property cannot be expanded ({item}).", "expand")
    return set(params.get("expand", []))


def created_matches(at: int, created: object) -> bool:
    """Whether an object created at `at` passes a list's `created` filter: a time, or gt/gte/lt/lte bounds."""
    if isinstance(created, int):
        return at == created
    if isinstance(created, dict):
        bounds = {
            "gt": lambda limit: at > limit,
            "gte": lambda limit: at >= limit,
            "lt": lambda limit: at < limit,
            "lte": lambda limit: at <= limit,
        }
        return all(bounds[name](limit) for name, limit in created.items())
    return True

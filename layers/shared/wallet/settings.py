"""Settings read from the environment once, validated, and named in every error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class SettingsError(RuntimeError):
    """A required setting is missing or malformed; the message names it."""


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set; see .env.example for what it holds")
    return value


@dataclass(frozen=True, slots=True)
class TableSettings:
    balance_table: str
    transaction_table: str


@cache
def tables() -> TableSettings:
    return TableSettings(
        balance_table=required("CREDIT_BALANCE_TABLE"),
        transaction_table=required("CREDIT_TRANSACTION_TABLE"),
    )

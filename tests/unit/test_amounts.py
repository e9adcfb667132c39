"""The one bound on amounts, its messages in JSON's spelling, and the page formatting to the same bound."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wallet.amounts import MAX_AMOUNT, WrittenNumber, spelled, whole, written_integer
from wallet.auto_top_up import MIN_THRESHOLD
from wallet.errors import InvalidAmountError
from wallet.packs import parse_packs

FORMAT_JS = Path(__file__).resolve().parents[2] / "static_site" / "assets" / "format.js"


def test_the_bound_is_exact_in_javascript_and_inside_dynamodbs_38_digits() -> None:
    assert MAX_AMOUNT == 2**53 - 1
    assert float(MAX_AMOUNT) == MAX_AMOUNT
    assert float(MAX_AMOUNT + 2) != MAX_AMOUNT + 2
    assert len(str(MAX_AMOUNT * 1000)) < 38


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (MAX_AMOUNT, True), (MAX_AMOUNT + 1, False), (-1, False)]
)
def test_whole_takes_the_bounds_inclusive(value: int, ok: bool) -> None:
    if ok:
        assert whole(value, name="threshold", minimum=0) == value
    else:
        with pytest.raises(
            InvalidAmountError, match=f"threshold must be .* from 0 to {MAX_AMOUNT}, not {value}$"
        ):
            whole(value, name="threshold", minimum=0)


@pytest.mark.parametrize(
    ("value", "spelling"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ("250", '"250"'),
        (2.5, "2.5"),
        ([1], "[1]"),
        ({}, "{}"),
    ],
)
def test_values_are_spelled_as_json_spells_them(value: object, spelling: str) -> None:
    assert spelled(value) == spelling
    with pytest.raises(InvalidAmountError, match=re.escape(f"not {spelling}") + "$"):
        whole(value, name="amount", minimum=1)


def test_a_long_value_is_cut_in_the_message() -> None:
    assert len(spelled("x" * 1000)) == 60


def test_packs_past_the_bound_are_refused() -> None:
    assert parse_packs(f"{MAX_AMOUNT}")[0].amount == MAX_AMOUNT
    with pytest.raises(ValueError, match=str(MAX_AMOUNT)):
        parse_packs(f"1000:{MAX_AMOUNT + 1}")


def test_the_page_formats_to_the_same_bound() -> None:
    declared = re.search(r"export const MAX_AMOUNT = (\d+);", FORMAT_JS.read_text())
    assert declared, "format.js declares MAX_AMOUNT"
    assert int(declared.group(1)) == MAX_AMOUNT


@pytest.mark.parametrize("written", ["1e2", "1E+2", "100.0", "-0.0", "2.50", "1e400", "9" * 4301])
def test_a_number_read_from_json_is_refused_as_it_was_written(written: str) -> None:
    value = json.loads(written, parse_float=WrittenNumber, parse_int=written_integer)

    with pytest.raises(InvalidAmountError) as refused:
        whole(value, name="amount", minimum=1)

    quoted = written if len(written) <= 60 else written[:57] + "..."
    assert str(refused.value).endswith(f"not {quoted}")


def test_an_integer_read_from_json_within_pythons_digit_limit_is_an_int() -> None:
    assert json.loads("4300", parse_float=WrittenNumber, parse_int=written_integer) == 4300
    assert type(json.loads("-" + "9" * 4300, parse_int=written_integer)) is int


def test_the_page_refuses_the_thresholds_the_api_refuses() -> None:
    script = FORMAT_JS.with_name("auto-top-up.js").read_text()
    declared = re.search(r"const MIN_THRESHOLD = (\d+);", script)
    assert declared, "auto-top-up.js declares MIN_THRESHOLD"
    assert int(declared.group(1)) == MIN_THRESHOLD == 1

"""The grants bench's own arithmetic and stand-ins: the spend it compares against differs from today's by
`ADD changes 1` alone, item sizes are counted as DynamoDB's guide counts them, and moto's Query answered
as JSON is the answer moto's own serializer gives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pynamodb.expressions.update import Update

from bench import environment, grants

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment.SETTINGS.items():
        monkeypatch.setenv(name, value)


def _expression(actions: list[Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    expression = Update(*actions).serialize(names, values)
    assert expression is not None
    return expression, names, values


def test_the_spend_before_grants_leaves_out_add_changes_1_and_nothing_else() -> None:
    from wallet import writes

    today = writes.balance_actions(-7, "usd", "2026-12-07T10:00:00.000Z")
    before = grants.without_changes(-7, "usd", "2026-12-07T10:00:00.000Z")

    expression, names, values = _expression(today)
    kept, kept_names, kept_values = _expression(before)
    # What the spend wrote before grants: its balance, currency and time stamp.
    assert set(kept_names) == {"balance", "currency", "updatedAt"}
    assert set(names) == set(kept_names) | {"changes"}
    assert f"ADD {names['balance']} " in expression
    assert f", {names['changes']} " in expression
    assert values[expression.split(f"{names['changes']} ")[1].split(",")[0].strip()] == {"N": "1"}
    assert len(kept_values) == len(values) - 1
    assert kept.startswith("SET")
    assert "ADD" in kept


def test_the_spend_path_is_patched_only_inside() -> None:
    from wallet import account, writes

    with grants.before_grants():
        assert account.balance_actions is grants.without_changes  # type: ignore[attr-defined]
    assert account.balance_actions is writes.balance_actions  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "size"),
    [
        # Strings and binary: their UTF-8 length; a number: 1 byte per two significant digits, plus 1.
        ({"S": "abc"}, 3),
        ({"S": "é"}, 2),
        ({"N": "-100"}, 2),  # one significant digit
        ({"N": "123"}, 3),
        ({"N": "12.5"}, 3),
        ({"N": "0.001"}, 2),
        ({"B": b"\x00\x01"}, 2),
        ({"BOOL": True}, 1),
        ({"NULL": True}, 1),
        ({"SS": ["ab", "c"]}, 3),
        # Lists and maps: 3 bytes, plus 1 per element and the elements (a map's keys too).
        ({"L": [{"S": "ab"}]}, 3 + 1 + 2),
        ({"M": {"k": {"N": "5"}}}, 3 + 1 + 1 + 2),
    ],
)
def test_a_value_is_sized_as_dynamodb_sizes_it(value: dict[str, Any], size: int) -> None:
    assert grants.value_bytes(value) == size


def test_an_item_is_its_names_and_values() -> None:
    item = {"userId": {"S": "u1"}, "amount": {"N": "-1"}}
    assert grants.item_bytes(item) == len("userId") + 2 + len("amount") + 2


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="rows",
            KeySchema=[
                {"AttributeName": "userId", "KeyType": "HASH"},
                {"AttributeName": "rowId", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "userId", "AttributeType": "S"},
                {"AttributeName": "rowId", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(5):
            dynamodb.put_item(
                TableName="rows",
                Item={
                    "userId": {"S": "u1"},
                    "rowId": {"S": f"r{n}"},
                    "amount": {"N": str(-n)},
                    "tags": {"SS": ["a", "é"]},
                    "more": {"M": {"list": {"L": [{"BOOL": True}, {"NULL": True}]}}},
                },
            )
        dynamodb.put_item(
            TableName="rows", Item={"userId": {"S": "u2"}, "rowId": {"S": "r0"}, "blob": {"B": b"\x00\xff"}}
        )
        yield dynamodb


def _pages(dynamodb: Any, user: str) -> list[dict[str, Any]]:
    pages = []
    start: dict[str, Any] = {}
    while True:
        page = dynamodb.query(
            TableName="rows",
            KeyConditionExpression="userId = :u AND rowId BETWEEN :a AND :z",
            ExpressionAttributeValues={":u": {"S": user}, ":a": {"S": "r0"}, ":z": {"S": "r9"}},
            ConsistentRead=True,
            Limit=2,
            **start,
        )
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


@pytest.mark.parametrize("user", ["u1", "u2"])
def test_a_query_answered_as_json_is_the_answer_moto_gives(table: Any, user: str) -> None:
    own = _pages(table, user)
    with grants.queries_answered_as_json():
        fast = _pages(table, user)

    assert fast == own
    assert sum(page["Count"] for page in own) == (5 if user == "u1" else 1)
    assert "LastEvaluatedKey" in own[0] or user == "u2"


def _spends(
    today_ms: list[float] | None = None,
    before_ms: list[float] | None = None,
    before_calls: tuple[str, ...] = ("TransactWriteItems", "GetItem"),
    counted: int = 4,
) -> grants.Spends:
    today = grants.Variant(
        today_ms or [2.0, 2.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0], {("TransactWriteItems", "GetItem")}
    )
    before = grants.Variant(before_ms or [1.0, 1.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0], {before_calls})
    return grants.Spends(today, before, counted, per_round=2)


def test_each_rounds_p50_ratio_is_its_own() -> None:
    assert _spends().round_ratios() == [2.0, 1.0]


def test_the_calls_hold_only_when_equal_and_each_spend_as_it_is_counted_a_change() -> None:
    def calls_hold(result: grants.Spends) -> bool | None:
        return grants.spend_rows(result)[0].holds

    assert calls_hold(_spends()) is True
    assert calls_hold(_spends(before_calls=("TransactWriteItems",))) is False
    assert calls_hold(_spends(counted=3)) is False


def test_the_latencies_are_shown_side_by_side() -> None:
    # Medians 3 and 2.5: 1.20x; each pair's ratios 2, 2, 1, 1: median 1.50x.
    p50, p99 = grants.spend_rows(_spends())[1:3]
    assert p50.ratio == "1.20x (each pair's 1.50x; rounds 1.00-2.00, 2 of 2)"
    assert p99.ratio == "1.00x"
    assert p50.holds is None
    assert p99.holds is None


def test_the_handlers_own_time_is_held_to_its_budget_pair_by_pair() -> None:
    result = _spends()
    own = grants.spend_rows(result)[3]
    assert own.ratio == "1.00x (p50s 1.00x)"
    assert own.holds is True
    # Pairs 1.2/1, 1.2/1, 3/3, 3/3: median 1.10x, over 1.05x.
    result.today.own_ms[:] = [1.2, 1.2, 3.0, 3.0]
    assert grants.spend_rows(result)[3].holds is False
    # Pairs 1.04, 1.04, 1, 1: median 1.02x.
    result.today.own_ms[:] = [1.04, 1.04, 3.0, 3.0]
    assert grants.spend_rows(result)[3].holds is True


def test_the_projections_rates_and_pages() -> None:
    result = grants.Projection(
        rows=20_000,
        seconds=40.0,
        calls=5,
        queries=45,
        items_read=50_000,
        largest_page=2_500,
        bytes_read=50_000 * 200,
        server_seconds=30.0,
        fold_seconds=0.5,
        total=1_000,
        expected_total=1_000,
        load_seconds=20.0,
    )

    assert result.per_second == 500
    assert result.own_per_second == 2_000
    assert result.fold_per_second == 40_000
    assert result.read_per_folded == 2.5
    assert result.dynamodb_page_rows == 5_242  # 1,048,576 B / 200 B
    found = grants.projection_rows(result)
    assert found[0].ratio == "2.00x"
    assert found[0].holds is True
    assert "2.25 queries per 1,000 rows folded" in found[3].result
    # 10^7 B / 4 KB per read unit over 20,000 rows: 122.1 per 1,000.
    assert "122.1 RCU" in found[3].against
    assert grants.projection_rows(replace(result, total=999))[0].holds is False
    assert grants.projection_rows(replace(result, server_seconds=15.0))[0].holds is False


def test_the_expiring_grants_credits_are_summed_by_hand() -> None:
    # 1+2+3+4+5 = 15 a round of five; 7 grants: 15 + 1 + 2.
    assert [grants.grant_credits(n) for n in range(7)] == [1, 2, 3, 4, 5, 1, 2]
    assert grants.expected_credits(7) == 18
    assert grants.expected_credits(0) == 0
    assert grants.expected_credits(100_000) == 300_000
    assert grants.expected_credits(20_001) == 60_001


def test_the_transactions_an_expiry_takes_round_up() -> None:
    assert grants.transactions_for(100_000, 25) == 4_000
    assert grants.transactions_for(20_001, 25) == 801
    assert grants.transactions_for(1, 25) == 1
    assert grants.transactions_for(0, 25) == 0


def _expiry(**changes: Any) -> grants.Expiry:
    result = grants.Expiry(
        grants=100_000,
        credits=300_000,
        rows=100_000,
        expired_rows=100_000,
        grants_expired=100_000,
        transactions=4_000,
        queries=20,
        items_read=100_001,
        seconds=250.0,
        server_seconds=200.0,
        transact_seconds=160.0,
        balance=7,
        again_rows=0,
        stale=0,
        load_seconds=3.0,
    )
    return replace(result, **changes)


def test_the_expirys_rates_and_time_split() -> None:
    result = _expiry()
    assert result.per_second == 400
    assert result.own_seconds == 50
    assert result.own_per_second == 2_000
    assert result.transact_ms == 40
    first, split, _ = grants.expiry_rows(result)
    assert first.holds is True
    assert "100,000 rows in 4,000 transactions, 250.0 s: 400 rows/s" in first.result
    assert (
        "own 50.0 s (2,000 rows/s); moto 200.0 s: TransactWriteItems 160.0 s (40.0 ms each), the rest 40.0 s"
        in (split.result)
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"credits": 299_999},
        {"rows": 99_999},
        {"expired_rows": 100_001},
        {"grants_expired": 99_999},
        {"transactions": 4_001},
        {"balance": 0},
        {"again_rows": 1},
    ],
)
def test_the_expiry_holds_only_when_every_grant_expired_once_and_nothing_is_left_to_write(
    changes: dict[str, int],
) -> None:
    assert grants.expiry_rows(_expiry(**changes))[0].holds is False

"""template.yaml is the one definition of the tables; the pynamodb models must agree with it."""

from __future__ import annotations

from typing import Any

import pytest
from pynamodb.models import Model

from devstack.template import resources, table_definitions
from wallet.models import CreditBalance, CreditTransaction

MODELS: dict[str, type[Model]] = {
    "CreditBalanceTable": CreditBalance,
    "CreditTransactionTable": CreditTransaction,
}


def keys_and_types(definition: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    key_schema = {k["AttributeName"]: k["KeyType"] for k in definition["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    return key_schema, types


@pytest.mark.parametrize("logical_id", sorted(MODELS))
def test_each_model_has_the_keys_and_key_types_of_its_table(logical_id: str) -> None:
    schema = MODELS[logical_id]._get_schema()
    model_definition = {
        "KeySchema": schema["key_schema"],
        "AttributeDefinitions": schema["attribute_definitions"],
    }

    assert keys_and_types(model_definition) == keys_and_types(table_definitions()[logical_id])


def test_every_table_in_the_template_has_a_model() -> None:
    assert set(table_definitions()) == set(MODELS)


@pytest.mark.parametrize("logical_id", sorted(MODELS))
def test_tables_are_on_demand_recoverable_encrypted_and_retained(logical_id: str) -> None:
    table = resources("AWS::DynamoDB::Table")[logical_id]
    properties = table["Properties"]

    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"

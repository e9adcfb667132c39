"""template.yaml is the one definition of the tables; the pynamodb models must agree with it."""

from __future__ import annotations

from typing import Any

import pytest
from pynamodb.models import Model

from devstack.template import load, resources, table_definitions
from wallet.models import CreditBalance, CreditGuard, CreditTransaction

MODELS: dict[str, type[Model]] = {
    "CreditBalanceTable": CreditBalance,
    "CreditTransactionTable": CreditTransaction,
    "CreditGuardTable": CreditGuard,
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


# --- The deployment: routes, permissions, the site bucket, SnapStart ------------------------------------


def properties(logical_id: str) -> dict[str, Any]:
    return dict(load()["Resources"][logical_id]["Properties"])


SERVICE_ROUTES = {
    "POST /api/users/{userId}/spend",
    "GET /api/users/{userId}/balance",
    "POST /api/users/{userId}/adjustments",
}


def test_only_the_webhook_and_the_price_list_are_open_services_sign_every_other_route_needs_a_jwt() -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"] for r in resources("AWS::ApiGatewayV2::Route").values()
    }

    open_routes = {key for key, route in routes.items() if route["AuthorizationType"] == "NONE"}
    signed_routes = {key for key, route in routes.items() if route["AuthorizationType"] == "AWS_IAM"}
    assert open_routes == {"POST /api/webhooks/stripe", "GET /api/packs"}
    assert signed_routes == SERVICE_ROUTES
    for key, route in routes.items():
        if key not in open_routes | signed_routes:
            assert (route["AuthorizationType"], route["AuthorizerId"]) == ("JWT", {"Ref": "JwtAuthorizer"}), (
                key
            )
    assert properties("JwtAuthorizer")["IdentitySource"] == ["$request.header.Authorization"]


def statements(policy: Any) -> list[dict[str, Any]]:
    """The statements of one entry of a function's Policies: inline, or a managed policy of the template."""
    if "Ref" in policy:
        return list(properties(policy["Ref"])["PolicyDocument"]["Statement"])
    return list(policy["Statement"])


def target(resource: dict[str, Any]) -> str:
    """A statement's resource by logical id: a table, a table's index, or the Stripe secret."""
    if "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if "Fn::Sub" in resource and "/index/" in resource["Fn::Sub"]:
        table, index = resource["Fn::Sub"].split("/index/")
        return f"{table.removeprefix('${').removesuffix('.Arn}')}/{index}"
    return "StripeSecret"


def grants(function: str) -> set[tuple[str, str]]:
    found = set()
    for policy in properties(function)["Policies"]:
        for statement in statements(policy):
            assert statement["Effect"] == "Allow"
            actions, resources_ = statement["Action"], statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                for resource in resources_ if isinstance(resources_, list) else [resources_]:
                    found.add((action, target(resource)))
    return found


DEPOSIT = {("dynamodb:PutItem", "CreditTransactionTable"), ("dynamodb:UpdateItem", "CreditBalanceTable")}
LEDGER_CHANGE = DEPOSIT | {
    ("dynamodb:PutItem", "CreditGuardTable"),
    ("dynamodb:UpdateItem", "CreditGuardTable"),
    ("dynamodb:GetItem", "CreditBalanceTable"),
    ("dynamodb:GetItem", "CreditGuardTable"),
}
FIND_DEPOSIT = {("dynamodb:Query", "CreditTransactionTable/byPaymentIntent")}
READ_SECRET = {("secretsmanager:GetSecretValue", "StripeSecret")}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("StripeWebhookFunction", LEDGER_CHANGE | FIND_DEPOSIT | READ_SECRET),
        ("SpendFunction", LEDGER_CHANGE),
        ("CreateCheckoutFunction", DEPOSIT | READ_SECRET),
        (
            "ReconcileFunction",
            DEPOSIT
            | READ_SECRET
            | {
                ("dynamodb:Scan", "CreditBalanceTable"),
                ("dynamodb:GetItem", "CreditBalanceTable"),
                ("dynamodb:Query", "CreditTransactionTable"),
            },
        ),
        (
            "GetBalanceFunction",
            {("dynamodb:GetItem", "CreditBalanceTable"), ("dynamodb:Query", "CreditTransactionTable")},
        ),
    ],
)
def test_each_function_may_do_only_what_it_needs(function: str, expected: set[tuple[str, str]]) -> None:
    assert grants(function) == expected


@pytest.mark.parametrize("policy", ["DepositPolicy", "LedgerChangePolicy"])
def test_ledger_writes_are_allowed_only_inside_a_transaction(policy: str) -> None:
    for statement in properties(policy)["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(action in ("dynamodb:PutItem", "dynamodb:UpdateItem") for action in actions):
            condition = statement["Condition"]["ForAnyValue:StringEquals"]
            assert condition == {"dynamodb:EnclosingOperation": "TransactWriteItems"}


def test_the_site_bucket_is_private_and_read_only_by_its_cloudfront_distribution() -> None:
    block = properties("SiteBucket")["PublicAccessBlockConfiguration"]
    policy = properties("SiteBucketPolicy")["PolicyDocument"]["Statement"]

    assert block == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    [allow] = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert "SiteDistribution" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    [origin] = [
        o for o in properties("SiteDistribution")["DistributionConfig"]["Origins"] if o["Id"] == "site"
    ]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["SiteOriginAccessControl", "Id"]}


def test_cloudfront_passes_api_requests_through_uncached_with_their_headers() -> None:
    config = properties("SiteDistribution")["DistributionConfig"]
    [api] = config["CacheBehaviors"]

    assert api["PathPattern"] == "/api/*"
    assert "POST" in api["AllowedMethods"]
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    assert api["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # AllViewerExceptHostHeader
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    csp = properties("SiteHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"][
        "ContentSecurityPolicy"
    ]
    assert "script-src 'self';" in csp["ContentSecurityPolicy"]["Fn::Sub"][0]


def test_functions_run_python_3_13_on_arm64_with_snapstart_on_published_versions() -> None:
    function_defaults = load()["Globals"]["Function"]

    assert (function_defaults["Runtime"], function_defaults["Architectures"]) == ("python3.13", ["arm64"])
    assert function_defaults["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function_defaults["AutoPublishAlias"] == "live"
    assert function_defaults["Tracing"] == "Active"
    for integration in resources("AWS::ApiGatewayV2::Integration").values():
        assert integration["Properties"]["IntegrationUri"]["Ref"].endswith(".Alias")


@pytest.mark.parametrize("function", sorted(resources("AWS::Serverless::Function")))
def test_every_function_logs_to_a_group_with_retention_and_has_an_alarm(function: str) -> None:
    log_group = properties(function)["LoggingConfig"]["LogGroup"]["Ref"]

    assert properties(log_group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert f"{function.removesuffix('Function')}FailuresAlarm" in resources("AWS::CloudWatch::Alarm")

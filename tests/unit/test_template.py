"""template.yaml is the one definition of the tables; the pynamodb models must agree with it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from devstack.template import load, resources, table_definitions
from wallet.models import CreditBalance, CreditGuard, CreditTransaction

ROOT = Path(__file__).resolve().parents[2]
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
    # DynamoDB developer guide, "Using deletion protection": DeleteTable is refused whoever calls it.
    assert properties["DeletionProtectionEnabled"] is True


def test_an_optional_backup_plan_copies_every_table_daily_for_the_days_asked() -> None:
    # AWS Backup developer guide, "Assigning resources to a backup plan": a selection names resources by
    # ARN, and the role it gives must allow backup (AWSBackupServiceRolePolicyForBackup).
    template = load()
    parameter = template["Parameters"]["BackupRetentionDays"]
    selection = properties("LedgerBackupSelection")["BackupSelection"]
    [rule] = properties("LedgerBackupPlan")["BackupPlan"]["BackupPlanRule"]

    assert parameter["Default"] == parameter["MinValue"] == 0
    assert template["Conditions"]["UseBackup"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "BackupRetentionDays"}, 0]}]
    }
    for name in ("LedgerBackupVault", "LedgerBackupPlan", "LedgerBackupRole", "LedgerBackupSelection"):
        assert template["Resources"][name]["Condition"] == "UseBackup", name
    assert {r["Fn::GetAtt"][0] for r in selection["Resources"]} == set(MODELS)
    assert rule["Lifecycle"] == {"DeleteAfterDays": {"Ref": "BackupRetentionDays"}}
    assert rule["TargetBackupVault"] == {"Ref": "LedgerBackupVault"}
    assert template["Resources"]["LedgerBackupVault"]["DeletionPolicy"] == "Retain"


# --- The deployment: routes, permissions, the site bucket, SnapStart ------------------------------------


def properties(logical_id: str) -> dict[str, Any]:
    return dict(load()["Resources"][logical_id]["Properties"])


SERVICE_ROUTES = {
    "POST /api/users/{userId}/spend",
    "GET /api/users/{userId}/balance",
    "GET /api/users/{userId}/transactions",
    "POST /api/users/{userId}/adjustments",
    "POST /api/users/{userId}/grants",
    "POST /api/users/{userId}/holds",
    "POST /api/users/{userId}/holds/{holdId}/capture",
    "POST /api/users/{userId}/holds/{holdId}/release",
    "PUT /api/users/{userId}/shards",
    "PUT /api/users/{userId}/alerts",
    "GET /api/books/{period}",
}


def test_only_the_webhook_and_the_price_list_are_open_services_sign_every_other_route_needs_a_jwt() -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"] for r in resources("AWS::ApiGatewayV2::Route").values()
    }

    open_routes = {key for key, route in routes.items() if route["AuthorizationType"] == "NONE"}
    assert open_routes == {"POST /api/webhooks/stripe", "GET /api/packs"}
    assert set(service_routes()) == SERVICE_ROUTES
    assert properties("ServiceApi")["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    # SAM's default for AWS_IAM invokes the function with the caller's credentials; NONE uses the API's.
    assert properties("ServiceApi")["Auth"]["InvokeRole"] == "NONE"
    for key, route in routes.items():
        if key not in open_routes:
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
    """The logical id a statement's Resource names: a table, a table's index, an SES identity, or the If
    of a created or given secret."""
    if "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if "Fn::Sub" in resource and "/index/" in resource["Fn::Sub"]:
        table, index = resource["Fn::Sub"].split("/index/")
        return f"{table.removeprefix('${').removesuffix('.Arn}')}/{index}"
    if "Ref" in resource:
        return str(resource["Ref"])
    if "Fn::Sub" in resource and ":identity/" in resource["Fn::Sub"]:  # an SES identity
        return "identity/" + resource["Fn::Sub"].split(":identity/")[1]
    _, created, given = resource["Fn::If"]
    return f"{created['Ref']}|{given['Ref']}"


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
    # A hot account's sub-balances, read together (wallet.hot_accounts).
    ("dynamodb:BatchGetItem", "CreditBalanceTable"),
}
FIND_DEPOSIT = {("dynamodb:Query", "CreditTransactionTable/byPaymentIntent")}
READ_API_KEY = {("secretsmanager:GetSecretValue", "StripeApiKeySecret|StripeApiKeySecretArn")}
READ_TRIGGER_KEY = {("secretsmanager:GetSecretValue", "StripeTriggerKeySecret|StripeTriggerKeySecretArn")}
READ_CHECKOUT_KEY = {("secretsmanager:GetSecretValue", "StripeCheckoutKeySecret|StripeCheckoutKeySecretArn")}
READ_CARD_KEY = {("secretsmanager:GetSecretValue", "StripeCardKeySecret|StripeCardKeySecretArn")}
SWEEP_RECORDS = {
    (action, "CreditGuardTable")
    for action in (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    )
}
READ_SIGNING_SECRET = {("secretsmanager:GetSecretValue", "StripeWebhookSecret|StripeWebhookSecretArn")}
READ_PAYMENT_INTENTS_KEY = {("secretsmanager:GetSecretValue", "StripeReadKeySecret|StripeReadKeySecretArn")}
READ_FULFILMENT_KEY = {("secretsmanager:GetSecretValue", "FulfilmentKeySecret")}
READ_ORIGIN_SECRET = {("secretsmanager:GetSecretValue", "OriginVerifySecret")}
AUTO_TOP_UP_STATE = {
    ("dynamodb:GetItem", "CreditBalanceTable"),
    # A hot account's sub-balances: auto top-up decides on the whole account (wallet.account.spendable).
    # IAM authorises BatchGetItem as its own action, not as GetItem (Service Authorization Reference,
    # "Actions defined by Amazon DynamoDB").
    ("dynamodb:BatchGetItem", "CreditBalanceTable"),
    ("dynamodb:UpdateItem", "CreditBalanceTable"),
}
FIND_CUSTOMER = {("dynamodb:Query", "CreditBalanceTable/byStripeCustomer")}
DISPUTE_NOTICE = {
    ("dynamodb:PutItem", "CreditGuardTable"),
    ("dynamodb:UpdateItem", "CreditGuardTable"),
    ("dynamodb:DeleteItem", "CreditGuardTable"),
    ("sns:Publish", "AlarmTopic"),
    ("kms:GenerateDataKey*", "AlarmTopicKey"),
    ("kms:Decrypt", "AlarmTopicKey"),
}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "StripeWebhookFunction",
            LEDGER_CHANGE
            | FIND_DEPOSIT
            | READ_SIGNING_SECRET
            | READ_PAYMENT_INTENTS_KEY
            | READ_FULFILMENT_KEY
            | READ_ORIGIN_SECRET
            | AUTO_TOP_UP_STATE
            | FIND_CUSTOMER
            | DISPUTE_NOTICE,
        ),
        (
            "AutoTopUpFunction",
            AUTO_TOP_UP_STATE
            | READ_CARD_KEY
            | READ_ORIGIN_SECRET
            | {("dynamodb:UpdateItem", "CreditGuardTable")},
        ),
        (
            "AutoTopUpTriggerFunction",
            AUTO_TOP_UP_STATE
            | READ_TRIGGER_KEY
            | READ_FULFILMENT_KEY
            | {("sqs:SendMessage", "AutoTopUpFailedRecordsQueue")},
        ),
        (
            "SpendFunction",
            LEDGER_CHANGE
            | {
                ("dynamodb:Query", "CreditTransactionTable"),
                # The month's books read the accounts a page at a time.
                ("dynamodb:Scan", "CreditBalanceTable"),
            },
        ),
        (
            "CreateCheckoutFunction",
            DEPOSIT
            | READ_CHECKOUT_KEY
            | READ_FULFILMENT_KEY
            | READ_ORIGIN_SECRET
            | AUTO_TOP_UP_STATE
            | {
                ("dynamodb:Query", "CreditTransactionTable/bySession"),
                ("dynamodb:UpdateItem", "CreditGuardTable"),
                # A top-up's receipt and invoice: the user's deposit row.
                ("dynamodb:GetItem", "CreditTransactionTable"),
            },
        ),
        (
            "ReconcileFunction",
            LEDGER_CHANGE
            | FIND_DEPOSIT
            | READ_API_KEY
            | READ_FULFILMENT_KEY
            | SWEEP_RECORDS
            | AUTO_TOP_UP_STATE
            | FIND_CUSTOMER
            | DISPUTE_NOTICE
            | {
                ("dynamodb:Query", "CreditGuardTable/activeHolds"),
                ("dynamodb:Scan", "CreditBalanceTable"),
                ("dynamodb:GetItem", "CreditBalanceTable"),
                ("dynamodb:Query", "CreditTransactionTable"),
                # The audit's read of each user's active holds; the migration's pass over the guard table.
                ("dynamodb:Query", "CreditGuardTable"),
                ("dynamodb:Scan", "CreditGuardTable"),
                # The hourly grants sweep: the index of next expiries, the expiry's and the index's checks
                # that the account's balance items are unchanged.
                ("dynamodb:Query", "CreditGuardTable/grantsDue"),
                ("dynamodb:ConditionCheckItem", "CreditBalanceTable"),
            },
        ),
        # Reads an account's rows; writes its grants item and the deposits it folded; parks its failures.
        (
            "ProjectGrantsFunction",
            {
                ("dynamodb:Query", "CreditTransactionTable"),
                ("dynamodb:GetItem", "CreditTransactionTable"),
                ("dynamodb:GetItem", "CreditGuardTable"),
                ("dynamodb:UpdateItem", "CreditGuardTable"),
                ("dynamodb:GetItem", "CreditBalanceTable"),
                ("dynamodb:UpdateItem", "CreditBalanceTable"),
                ("sqs:SendMessage", "ProjectGrantsFailedRecordsQueue"),
            },
        ),
        # The webhook's grants less its signing secret and CloudFront's header.
        (
            "StripeEventsFunction",
            DEPOSIT
            | LEDGER_CHANGE
            | FIND_DEPOSIT
            | FIND_CUSTOMER
            | AUTO_TOP_UP_STATE
            | READ_FULFILMENT_KEY
            | DISPUTE_NOTICE
            | {("secretsmanager:GetSecretValue", "StripeReadKeySecret|StripeReadKeySecretArn")},
        ),
        # Puts on its own bus only; reads the balance a row's event carries; parks what it gave up on.
        (
            "WalletEventsFunction",
            {
                ("events:PutEvents", "WalletEventBus"),
                # Users' low balance emails, from the verified sender, each dip's claimed once.
                ("ses:SendEmail", "identity/${AlertSenderEmail}"),
                ("dynamodb:PutItem", "CreditGuardTable"),
                ("dynamodb:UpdateItem", "CreditGuardTable"),
                ("dynamodb:DeleteItem", "CreditGuardTable"),
                ("dynamodb:GetItem", "CreditBalanceTable"),
                ("dynamodb:BatchGetItem", "CreditBalanceTable"),
                ("sqs:SendMessage", "WalletEventsFailedRecordsQueue"),
            },
        ),
        (
            "GetBalanceFunction",
            READ_ORIGIN_SECRET
            | {
                ("dynamodb:GetItem", "CreditBalanceTable"),
                ("dynamodb:BatchGetItem", "CreditBalanceTable"),
                ("dynamodb:Query", "CreditTransactionTable"),
                # Whether the holds a later page of the history shows are still active (wallet/history.py).
                ("dynamodb:BatchGetItem", "CreditGuardTable"),
                # The account's stored grants, for the expiry line (wallet/projection.py).
                ("dynamodb:GetItem", "CreditGuardTable"),
                # The sign-up grant (wallet/promotions.py `welcome`): its row, the balance, its guard.
                ("dynamodb:PutItem", "CreditTransactionTable"),
                ("dynamodb:UpdateItem", "CreditBalanceTable"),
                ("dynamodb:UpdateItem", "CreditGuardTable"),
            },
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


# --- What a security review asks of the stack -----------------------------------------------------------

# The keys the webhook and the JWT-facing functions never hold: the sweep's, and the trigger's that charges.
API_KEY_SECRETS = {
    "StripeApiKeySecret",
    "StripeApiKeySecretArn",
    "StripeTriggerKeySecret",
    "StripeTriggerKeySecretArn",
}


def names_in(value: Any) -> set[str]:
    """Every logical id or parameter a fragment of the template refers to."""
    if isinstance(value, dict):
        found = {str(value["Ref"])} if "Ref" in value else set()
        return found.union(*(names_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(names_in(v) for v in value))
    return set()


def test_the_webhook_role_cannot_read_the_api_key_secret() -> None:
    webhook = properties("StripeWebhookFunction")
    readable = set().union(*(names_in(statements(policy)) for policy in webhook["Policies"]))

    assert not readable & API_KEY_SECRETS
    assert not names_in(webhook["Environment"]) & API_KEY_SECRETS
    assert "STRIPE_WEBHOOK_SECRET_ARN" in webhook["Environment"]["Variables"]
    assert "STRIPE_SECRET_KEY_ARN" not in webhook["Environment"]["Variables"]


@pytest.mark.parametrize("function", sorted(resources("AWS::Serverless::Function")))
def test_only_the_webhook_reads_the_read_only_key(function: str) -> None:
    readable = set().union(*(names_in(statements(policy)) for policy in properties(function)["Policies"]))
    reads = bool(readable & {"StripeReadKeySecret", "StripeReadKeySecretArn"})

    # The two doors Stripe's events come through: the webhook and Amazon EventBridge.
    assert reads == (function in {"StripeWebhookFunction", "StripeEventsFunction"})
    assert (
        "STRIPE_READ_KEY_ARN" in properties(function).get("Environment", {}).get("Variables", {})
    ) == reads


@pytest.mark.parametrize("function", sorted(resources("AWS::Serverless::Function")))
def test_no_function_may_read_both_stripe_secrets(function: str) -> None:
    readable = set().union(*(names_in(statements(policy)) for policy in properties(function)["Policies"]))

    assert not (readable & API_KEY_SECRETS and readable & {"StripeWebhookSecret", "StripeWebhookSecretArn"})


STRIPE_KEYS = {
    "CreateCheckoutFunction": ("StripeCheckoutKeySecret", "StripeCheckoutKeySecretArn"),
    "AutoTopUpFunction": ("StripeCardKeySecret", "StripeCardKeySecretArn"),
    "AutoTopUpTriggerFunction": ("StripeTriggerKeySecret", "StripeTriggerKeySecretArn"),
    "ReconcileFunction": ("StripeApiKeySecret", "StripeApiKeySecretArn"),
}
ALL_KEYS = {name for pair in STRIPE_KEYS.values() for name in pair}


@pytest.mark.parametrize("function", sorted(STRIPE_KEYS))
def test_each_function_that_calls_stripe_reads_its_own_key_and_no_other(function: str) -> None:
    readable = set().union(*(names_in(statements(policy)) for policy in properties(function)["Policies"]))
    variables = properties(function)["Environment"]["Variables"]

    assert readable & ALL_KEYS == set(STRIPE_KEYS[function])
    assert not readable & {"StripeWebhookSecret", "StripeWebhookSecretArn"}
    assert names_in(variables["STRIPE_SECRET_KEY_ARN"]) == set(STRIPE_KEYS[function])
    assert "STRIPE_WEBHOOK_SECRET_ARN" not in variables


def jwt_facing_functions() -> set[str]:
    integrations = resources("AWS::ApiGatewayV2::Integration")
    found = set()
    for route in resources("AWS::ApiGatewayV2::Route").values():
        if route["Properties"]["AuthorizationType"] == "JWT":
            integration = (
                route["Properties"]["Target"]["Fn::Sub"].removeprefix("integrations/${").removesuffix("}")
            )
            found.add(integrations[integration]["Properties"]["IntegrationUri"]["Ref"].split(".")[0])
    return found


def test_no_jwt_facing_function_can_read_the_full_api_key() -> None:
    facing = jwt_facing_functions()

    assert facing == {"CreateCheckoutFunction", "GetBalanceFunction", "AutoTopUpFunction"}
    for function in facing:
        readable = set().union(*(names_in(statements(policy)) for policy in properties(function)["Policies"]))
        assert not readable & API_KEY_SECRETS, function
        assert not names_in(properties(function).get("Environment", {})) & API_KEY_SECRETS, function


def test_traces_hold_neither_responses_nor_errors() -> None:
    variables = load()["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
    for function in resources("AWS::Serverless::Function").values():
        own = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "POWERTOOLS_TRACER_CAPTURE_RESPONSE" not in own
        assert "POWERTOOLS_TRACER_CAPTURE_ERROR" not in own


@pytest.mark.parametrize("function", sorted(resources("AWS::Serverless::Function")))
def test_every_function_has_a_concurrency_limit(function: str) -> None:
    assert isinstance(properties(function)["ReservedConcurrentExecutions"], int)


def test_checkout_is_capped_below_the_webhooks_reserved_concurrency() -> None:
    webhook = properties("StripeWebhookFunction")["ReservedConcurrentExecutions"]
    checkout = properties("CreateCheckoutFunction")["ReservedConcurrentExecutions"]

    assert 0 < checkout < webhook


def page_routes() -> dict[str, str]:
    """The page API's routes, by logical id: their route keys."""
    return {
        name: r["Properties"]["RouteKey"]
        for name, r in resources("AWS::ApiGatewayV2::Route").items()
        if r["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    }


def service_routes() -> dict[str, str]:
    """The service API's routes (the spend function's Api events on ServiceApi): key -> event name."""
    return {
        f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}": name
        for function in resources("AWS::Serverless::Function").values()
        for name, event in function["Properties"].get("Events", {}).items()
        if event["Type"] == "Api" and event["Properties"]["RestApiId"] == {"Ref": "ServiceApi"}
    }


def test_every_page_route_has_its_own_throttle_no_looser_than_its_stage() -> None:
    stage = properties("HttpApiStage")
    default = stage["DefaultRouteSettings"]
    routes = page_routes()

    # With the webhook route, and without it (StripeEventSource set): the same settings less its key.
    condition, with_webhook, without_webhook = stage["RouteSettings"]["Fn::If"]
    assert condition == "UseStripeWebhook"
    assert set(with_webhook) == set(routes.values())
    assert without_webhook == {k: v for k, v in with_webhook.items() if k != "POST /api/webhooks/stripe"}
    for settings in with_webhook.values():
        assert 0 < settings["ThrottlingRateLimit"] <= default["ThrottlingRateLimit"]
        assert 0 < settings["ThrottlingBurstLimit"] <= default["ThrottlingBurstLimit"]
    # The stage waits for every route its settings name: the webhook's through a reference made only
    # when it is deployed (DependsOn may not name a resource whose condition is false).
    depends_on = set(load()["Resources"]["HttpApiStage"]["DependsOn"])
    assert depends_on == set(routes) - {"StripeWebhookRoute"}
    assert "StripeWebhookRoute" in stage["Description"]["Fn::If"][1]["Fn::Sub"]
    assert set(routes) == set(resources("AWS::ApiGatewayV2::Route"))


def test_every_service_route_has_its_own_throttle_no_looser_than_the_stage() -> None:
    settings = {(m["ResourcePath"], m["HttpMethod"]): m for m in properties("ServiceApi")["MethodSettings"]}
    default = settings.pop(("/*", "*"))
    # MethodSettings name a resource path with its slashes written ~1.
    expected = {(key.split(" ", 1)[1].replace("/", "~1"), key.split(" ", 1)[0]) for key in SERVICE_ROUTES}

    assert {("/" + path, method) for path, method in expected} == set(settings)
    for method in settings.values():
        assert 0 < method["ThrottlingRateLimit"] <= default["ThrottlingRateLimit"]
        assert 0 < method["ThrottlingBurstLimit"] <= default["ThrottlingBurstLimit"]


def test_the_service_routes_are_an_api_of_their_own_with_its_own_log_and_alarm() -> None:
    service = properties("ServiceApi")

    assert not set(page_routes().values()) & SERVICE_ROUTES
    assert service["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ServiceApiAccessLogs", "Arn"]}
    assert properties("ServiceApiAccessLogs")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "$context.identity.userArn" in service["AccessLogSetting"]["Format"]
    alarm = properties("ServiceApiServerErrorsAlarm")
    assert alarm["MetricName"] == "5XXError"
    assert {"Name": "ApiName", "Value": {"Fn::Sub": "${AWS::StackName}-service-api"}} in alarm["Dimensions"]
    assert service["Name"] == {"Fn::Sub": "${AWS::StackName}-service-api"}
    assert {"Name": "Stage", "Value": service["StageName"]} in alarm["Dimensions"]
    assert load()["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"].endswith(f"/{service['StageName']}")
    # CloudFront's only API origin is the page API: /api/users/* through the site reaches no service route.
    origins = properties("SiteDistribution")["DistributionConfig"]["Origins"]
    [api] = [o["DomainName"]["Fn::If"] for o in origins if o["Id"] == "api"]
    assert (api[1], api[2]["Fn::Sub"].split(".")[0]) == ({"Ref": "PageApiDomain"}, "${HttpApi}")
    assert properties("PageApiMapping")["ApiId"] == {"Ref": "HttpApi"}


def resource_policy() -> dict[str, dict[str, Any]]:
    statements_ = properties("ServiceApi")["Auth"]["ResourcePolicy"]["CustomStatements"]
    return {statement["Sid"]: statement for statement in statements_}


# What AWS documents: aws:PrincipalArn is the role's ARN (path included) for any of its sessions, and an
# explicit Deny in a resource policy wins over any Allow in the caller's own policies.
@pytest.mark.parametrize(
    ("sid", "route", "lists"),
    [
        ("SpendsOnlyFromServiceCallers", "POST/api/users/*/spend", "${ServiceCallerArns}"),
        (
            "AdjustmentsOnlyFromOperators",
            ["POST/api/users/*/adjustments", "POST/api/users/*/grants", "GET/api/books/*"],
            "${OperatorArns}",
        ),
        ("HotAccountsOnlyFromOperators", "PUT/api/users/*/shards", "${OperatorArns}"),
        ("AlertsOnlyFromServiceCallers", "PUT/api/users/*/alerts", "${ServiceCallerArns}"),
        ("BalancesOnlyFromEither", "GET/api/users/*/balance", "${ServiceCallerArns},${OperatorArns}"),
        ("HistoriesOnlyFromEither", "GET/api/users/*/transactions", "${ServiceCallerArns},${OperatorArns}"),
        (
            "HoldsOnlyFromServiceCallers",
            [
                "POST/api/users/*/holds",
                "POST/api/users/*/holds/*/capture",
                "POST/api/users/*/holds/*/release",
            ],
            "${ServiceCallerArns}",
        ),
    ],
)
def test_the_service_apis_policy_refuses_every_principal_not_listed_for_the_route(
    sid: str, route: str | list[str], lists: str
) -> None:
    statement = resource_policy()[sid]
    [(operator, condition)] = statement["Condition"].items()
    _, listed = condition["aws:PrincipalArn"]["Fn::Split"]

    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        "*",
        "execute-api:Invoke",
    )
    routes = route if isinstance(route, list) else [route]
    resource = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert resource == [f"execute-api:/*/{one}" for one in routes]
    assert operator == "StringNotEquals"
    assert listed == ({"Ref": lists[2:-1]} if "," not in lists else {"Fn::Sub": lists})
    assert set(service_routes()) == SERVICE_ROUTES


def test_the_service_apis_policy_allows_the_listed_callers_and_no_one_else() -> None:
    allow = resource_policy()["ListedCallersMayCall"]

    assert (allow["Effect"], allow["Principal"], allow["Action"]) == ("Allow", "*", "execute-api:Invoke")
    assert allow["Condition"] == {
        "StringEquals": {
            "aws:PrincipalArn": {"Fn::Split": [",", {"Fn::Sub": "${ServiceCallerArns},${OperatorArns}"}]}
        }
    }


def test_with_a_domain_cloudfront_serves_it_over_tls_1_2_or_later_with_sni() -> None:
    config = properties("SiteDistribution")["DistributionConfig"]
    condition, with_domain, without = config["ViewerCertificate"]["Fn::If"]

    assert condition == "UseCustomDomain"
    assert with_domain == {
        "AcmCertificateArn": {"Ref": "CertificateArn"},
        "SslSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    assert without == {"CloudFrontDefaultCertificate": True}
    assert config["Aliases"]["Fn::If"][:2] == ["UseCustomDomain", [{"Ref": "DomainName"}]]
    rule = load()["Rules"]["CustomDomainNeedsACertificate"]
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}


def test_with_a_domain_the_page_api_has_its_own_host_name_and_its_execute_api_url_is_off() -> None:
    # API Gateway developer guide, "Disable the default endpoint for HTTP APIs": clients then reach the API
    # through its custom domain only; "Choose a security policy": TLS_1_2 for a regional domain.
    api = properties("HttpApi")
    domain = load()["Resources"]["PageApiDomain"]
    [configuration] = domain["Properties"]["DomainNameConfigurations"]
    [origin] = [
        o for o in properties("SiteDistribution")["DistributionConfig"]["Origins"] if o["Id"] == "api"
    ]

    assert api["DisableExecuteApiEndpoint"] == {"Fn::If": ["UseCustomDomain", True, False]}
    assert domain["Condition"] == load()["Resources"]["PageApiMapping"]["Condition"] == "UseCustomDomain"
    assert domain["Properties"]["DomainName"] == {"Fn::Sub": "api.${DomainName}"}
    assert (configuration["EndpointType"], configuration["SecurityPolicy"]) == ("REGIONAL", "TLS_1_2")
    assert properties("PageApiMapping")["ApiId"] == {"Ref": "HttpApi"}
    condition, with_domain, without = origin["DomainName"]["Fn::If"]
    assert (condition, with_domain) == ("UseCustomDomain", {"Ref": "PageApiDomain"})
    assert without == {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]


@pytest.mark.parametrize("output", ["SiteUrl", "WebhookUrl"])
def test_the_site_and_webhook_urls_follow_the_custom_domain(output: str) -> None:
    condition, with_domain, _ = load()["Outputs"][output]["Value"]["Fn::If"]

    assert condition == "UseCustomDomain"
    assert with_domain["Fn::Sub"].startswith("https://${DomainName}/")


# --- The edge: WAF in front of CloudFront, Stripe's deliveries first --------------------------------------

WEBHOOK_PATH = "/api/webhooks/stripe"
# Stripe's webhook source IPs, as https://stripe.com/files/ips/ips_webhooks.json published them in 2026
# (docs.stripe.com/ips): the reference the IP set is held to; update both together.
STRIPE_WEBHOOK_IPS = {
    "3.18.12.63", "3.69.109.8", "3.120.168.93", "3.130.192.231", "13.235.14.237", "13.235.122.149",
    "18.211.135.69", "35.154.171.200", "35.157.207.129", "52.15.183.38", "54.88.130.119", "54.88.130.237",
    "54.187.174.169", "54.187.205.235", "54.187.216.72",
}  # fmt: skip


def waf_rules() -> list[dict[str, Any]]:
    return sorted(properties("SiteWebAcl")["Rules"], key=lambda rule: rule["Priority"])


def uri_path_match(statement: dict[str, Any]) -> tuple[str, str]:
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"UriPath": {}}
    return match["PositionalConstraint"], match["SearchString"]


def test_waf_is_on_by_default_and_a_cloudfront_web_acl_lives_in_us_east_1() -> None:
    # AWS WAF developer guide, "Using AWS WAF with Amazon CloudFront": a web ACL for CloudFront is created
    # with scope CLOUDFRONT in US East (N. Virginia) only.
    template = load()
    acl = template["Resources"]["SiteWebAcl"]

    assert template["Parameters"]["EnableWaf"]["Default"] == "true"
    assert acl["Condition"] == template["Resources"]["StripeWebhookIpSet"]["Condition"] == "UseWaf"
    assert acl["Properties"]["Scope"] == properties("StripeWebhookIpSet")["Scope"] == "CLOUDFRONT"
    assert acl["Properties"]["DefaultAction"] == {"Allow": {}}
    assert template["Rules"]["WafOnlyInUsEast1"]["Assertions"][0]["Assert"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]
    }
    web_acl = properties("SiteDistribution")["DistributionConfig"]["WebACLId"]
    assert web_acl == {"Fn::If": ["UseWaf", {"Fn::GetAtt": ["SiteWebAcl", "Arn"]}, {"Ref": "AWS::NoValue"}]}


def test_the_ip_set_is_stripes_published_webhook_ips() -> None:
    ip_set = properties("StripeWebhookIpSet")

    assert ip_set["IPAddressVersion"] == "IPV4"
    assert {address.removesuffix("/32") for address in ip_set["Addresses"]} == STRIPE_WEBHOOK_IPS
    assert all(address.endswith("/32") for address in ip_set["Addresses"])


def test_the_first_rule_allows_stripes_ips_on_the_webhook_path_and_the_next_blocks_anyone_else_there() -> (
    None
):
    # AWS WAF developer guide, "Rule evaluation order" (web-acl-processing-order): rules run by priority and
    # the first terminating action (Allow, Block) ends the evaluation: no later rule sees Stripe's delivery.
    first, second, *rest = waf_rules()

    assert first["Action"] == {"Allow": {}}
    path, ip_set = first["Statement"]["AndStatement"]["Statements"]
    assert uri_path_match(path) == ("EXACTLY", WEBHOOK_PATH)
    assert ip_set == {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": ["StripeWebhookIpSet", "Arn"]}}}
    assert second["Action"] == {"Block": {}}
    assert uri_path_match(second["Statement"]) == ("EXACTLY", WEBHOOK_PATH)
    assert [rule["Priority"] for rule in waf_rules()] == list(range(len(rest) + 2))


def test_the_rest_is_rate_limited_per_client_ip_and_per_authorization_header() -> None:
    # AWS WAF developer guide, "Aggregating rate-based rules": a custom key on a header counts each of its
    # values apart; a request without the header is not counted by that rule (the per-IP rule still is).
    rules = {rule["Name"]: rule for rule in waf_rules()}
    per_ip = rules["RequestsPerClientIp"]["Statement"]["RateBasedStatement"]
    per_token = rules["RequestsPerToken"]["Statement"]["RateBasedStatement"]

    assert rules["RequestsPerClientIp"]["Action"] == rules["RequestsPerToken"]["Action"] == {"Block": {}}
    assert (per_ip["AggregateKeyType"], per_ip["Limit"]) == ("IP", {"Ref": "WafRequestsPerIp"})
    assert per_token["AggregateKeyType"] == "CUSTOM_KEYS"
    assert per_token["Limit"] == {"Ref": "WafRequestsPerToken"}
    [key] = per_token["CustomKeys"]
    assert key["Header"]["Name"].lower() == "authorization"
    for rate in (per_ip, per_token):
        assert rate["EvaluationWindowSec"] == 300
    # AWS WAF's rate-based statement takes a limit of 10 to 2,000,000,000; each bound is the parameter's.
    for name in ("WafRequestsPerIp", "WafRequestsPerToken"):
        parameter = load()["Parameters"][name]
        assert 10 <= parameter["MinValue"] <= parameter["Default"] <= parameter["MaxValue"] <= 2_000_000_000


@pytest.mark.parametrize("group", ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"])
def test_the_managed_rules_never_inspect_a_webhook_body(group: str) -> None:
    # AWS WAF developer guide, "Using scope-down statements in rule groups": a request outside the scope-down
    # statement is not evaluated by the group at all.
    [rule] = [rule for rule in waf_rules() if rule["Name"] == group]
    scope_down = rule["Statement"]["ManagedRuleGroupStatement"]["ScopeDownStatement"]

    constraint, prefix = uri_path_match(scope_down["NotStatement"]["Statement"])
    assert constraint == "STARTS_WITH"
    assert WEBHOOK_PATH.startswith(prefix)
    assert rule["Priority"] > 1


def test_the_webhook_route_throttle_leaves_room_for_stripes_retries_within_the_webhooks_concurrency() -> None:
    # API Gateway developer guide, "Throttle requests to your HTTP APIs": route throttles apply to all
    # clients together, so only WAF's webhook rules keep them Stripe's.
    condition, with_webhook, _ = properties("HttpApiStage")["RouteSettings"]["Fn::If"]
    assert condition == "UseStripeWebhook"
    route = with_webhook["POST /api/webhooks/stripe"]
    checkout = with_webhook["POST /api/checkout"]

    # Each checkout leads to a few events (session completed, payment succeeded, a refund, a dispute).
    assert route["ThrottlingRateLimit"] >= 4 * checkout["ThrottlingRateLimit"]
    assert route["ThrottlingBurstLimit"] >= route["ThrottlingRateLimit"]


def dashboard_metrics() -> list[list[Any]]:
    body, variables = properties("CreditsDashboard")["DashboardBody"]["Fn::Sub"]
    for name, value in variables.items():
        # A variable that is an intrinsic (a function deployed on a condition) stands for what it names.
        body = body.replace("${" + name + "}", value if isinstance(value, str) else name)
    widgets = json.loads(re.sub(r"\$\{([A-Za-z:]+)\}", r"\1", body))["widgets"]
    return [metric for widget in widgets for metric in widget["properties"]["metrics"]]


def test_the_dashboard_shows_the_metrics_the_functions_emit_and_the_webhook_latency() -> None:
    metrics = dashboard_metrics()
    global_env = load()["Globals"]["Function"]["Environment"]["Variables"]
    namespace, service = global_env["POWERTOOLS_METRICS_NAMESPACE"], global_env["POWERTOOLS_SERVICE_NAME"]
    custom = {m[1] for m in metrics if m[0] == namespace and m[2:4] == ["service", service]}

    assert {
        "CreditsDeposited",
        "CreditsSpent",
        "CreditsClawedBack",
        "DisputesOpened",
        "DuplicateDeliveries",
        "RejectedFulfilments",
    } <= custom
    latency = {
        m[4]["stat"]
        for m in metrics
        if m[:4] == ["AWS/Lambda", "Duration", "FunctionName", "StripeWebhookFunction"]
    }
    assert latency == {"p50", "p99"}
    errors = {m[3] for m in metrics if m[:2] == ["AWS/Lambda", "Errors"]}
    assert errors == set(resources("AWS::Serverless::Function"))


def reconcile_guard_statements(action: str) -> dict[str, dict[str, Any]]:
    """The reconcile function's own statements granting `action` on the guard table, by their one key."""
    found: dict[str, dict[str, Any]] = {}
    for policy in properties("ReconcileFunction")["Policies"]:
        if "Ref" in policy:
            continue
        for statement in statements(policy):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if action in actions and target(statement["Resource"]) == "CreditGuardTable":
                operator, [key] = condition_values(statement, "dynamodb:LeadingKeys")
                assert operator == "ForAllValues:StringEquals"
                found[key] = statement
    return found


@pytest.mark.parametrize("action", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"])
def test_the_sweep_and_the_audit_may_touch_only_their_own_records_in_the_guard_table(action: str) -> None:
    assert set(reconcile_guard_statements(action)) == {"#sweep", "#audit", "#migrate"}


def test_auto_top_up_state_never_includes_the_balance() -> None:
    [_, update] = properties("AutoTopUpStatePolicy")["PolicyDocument"]["Statement"]
    attributes = update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]

    assert update["Action"] == "dynamodb:UpdateItem"
    assert "balance" not in attributes
    # The key, and `updatedAt`: the claim's condition names it, and AWS checks condition names too.
    assert {"userId", "updatedAt"} <= set(attributes)
    assert all(
        name.startswith(("autoTopUp", "card", "paymentMethod", "stripeCustomer", "userId", "updatedAt"))
        for name in attributes
    )


def test_the_trigger_reads_the_balance_stream_reporting_failed_records_alone_to_a_queue() -> None:
    trigger = properties("AutoTopUpTriggerFunction")
    stream = trigger["Events"]["BalanceChanged"]["Properties"]

    assert properties("CreditBalanceTable")["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert trigger["Handler"] == "app.stream_handler"
    assert stream["Stream"] == {"Fn::GetAtt": ["CreditBalanceTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["AutoTopUpFailedRecordsQueue", "Arn"]
    }
    assert "AutoTopUpIteratorAgeAlarm" in resources("AWS::CloudWatch::Alarm")


def test_no_shard_waits_behind_a_poison_record_of_the_balance_stream() -> None:
    """Lambda's event source mapping, as AWS documents it: with ReportBatchItemFailures the batch is
    retried from the first record reported; BisectBatchOnFunctionError splits a failing batch so a bad
    record is isolated; MaximumRetryAttempts and MaximumRecordAgeInSeconds bound how long one record
    may be retried (-1 is forever), after which DestinationConfig.OnFailure receives it and the shard
    moves on."""
    stream = properties("AutoTopUpTriggerFunction")["Events"]["BalanceChanged"]["Properties"]

    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 <= stream["MaximumRetryAttempts"] <= 10
    assert 60 <= stream["MaximumRecordAgeInSeconds"] <= 3600
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["AutoTopUpFailedRecordsQueue", "Arn"]
    }


def test_the_trigger_hears_only_balances_with_auto_top_up_on_or_cards_to_detach() -> None:
    stream = properties("AutoTopUpTriggerFunction")["Events"]["BalanceChanged"]["Properties"]
    patterns = [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]]

    assert patterns == [
        {"dynamodb": {"NewImage": {"autoTopUp": {"BOOL": [True]}}}},
        {"dynamodb": {"NewImage": {"cardsToDetach": {"SS": [{"exists": True}]}}}},
    ]


# --- Alarms reach a person --------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_with_a_key_whose_policy_lets_cloudwatch_publish() -> None:
    topic_key = properties("AlarmTopic")["KmsMasterKeyId"]
    key = properties("AlarmTopicKey")

    # An AWS managed key (alias/aws/sns) has a policy no one can change: CloudWatch could never use it.
    assert topic_key == {"Ref": "AlarmTopicKey"}
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Effect"] == "Allow"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch["Action"])
    # IAM user guide, "The confused deputy problem": a service principal's grant names the account and the
    # resources it acts for, with aws:SourceAccount and aws:SourceArn.
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert cloudwatch["Condition"]["ArnLike"] == {
        "aws:SourceArn": {
            "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
            "${AWS::StackName}-*"
        }
    }
    assert all("AlarmName" not in properties(alarm) for alarm in resources("AWS::CloudWatch::Alarm"))


def test_a_replaced_card_stripe_would_not_detach_raises_an_alarm() -> None:
    alarm = properties("ReplacedCardsNotDetachedAlarm")
    source = (ROOT / "functions" / "auto_top_up" / "app.py").read_text(encoding="utf-8")

    assert 'name="ReplacedCardsNotDetached"' in source
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Credits", "ReplacedCardsNotDetached")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@pytest.mark.parametrize("alarm", sorted(resources("AWS::CloudWatch::Alarm")))
def test_every_alarm_notifies_the_alarm_topic(alarm: str) -> None:
    assert properties(alarm)["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_alarm_email_is_subscribed_to_the_topic_and_says_what_empty_means() -> None:
    template = load()
    subscription = template["Resources"]["AlarmEmailSubscription"]
    parameter = template["Parameters"]["AlarmEmail"]

    assert subscription["Condition"] == "EmailAlarms"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert template["Conditions"]["EmailAlarms"] == {
        "Fn::Not": [
            {
                "Fn::Or": [
                    {"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]},
                    {"Fn::Equals": [{"Ref": "AlarmEmail"}, "none"]},
                ]
            }
        ]
    }
    assert "none:" in parameter["Description"]
    assert re.fullmatch(parameter["AllowedPattern"], "ops@example.com")
    assert re.fullmatch(parameter["AllowedPattern"], "none")
    assert not re.fullmatch(parameter["AllowedPattern"], "not an address")


def test_a_deploy_without_an_alarm_email_is_refused_unless_told_none() -> None:
    # CloudFormation user guide, "Rules": an assertion that fails stops the stack's creation or update
    # with its AssertDescription, before any resource changes.
    rule = load()["Rules"]["AlarmsGoSomewhere"]
    [assertion] = rule["Assertions"]

    assert "RuleCondition" not in rule
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert "AlarmEmail=none" in assertion["AssertDescription"]


# --- Who may do what on the service routes ---------------------------------------------------------------


def test_the_service_function_is_told_who_may_spend_and_who_may_adjust() -> None:
    variables = properties("SpendFunction")["Environment"]["Variables"]

    assert variables["SERVICE_CALLER_ARNS"] == {"Ref": "ServiceCallerArns"}
    assert variables["OPERATOR_ARNS"] == {"Ref": "OperatorArns"}


@pytest.mark.parametrize("parameter", ["ServiceCallerArns", "OperatorArns"])
def test_the_caller_lists_take_role_or_user_arns_and_default_to_no_one(parameter: str) -> None:
    spec = load()["Parameters"][parameter]
    pattern = spec["AllowedPattern"]

    assert spec["Default"] == ""
    assert re.fullmatch(pattern, "arn:aws:iam::123456789012:role/services/checkout-backend")
    assert re.fullmatch(pattern, "arn:aws:iam::123456789012:role/a,arn:aws:iam::123456789012:user/jane")
    for refused in (
        "*",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:role/a, b",
        "123456789012",
    ):
        assert not re.fullmatch(pattern, refused), refused


PAGE_FUNCTIONS = {
    "CreateCheckoutFunction",
    "StripeWebhookFunction",
    "GetBalanceFunction",
    "AutoTopUpFunction",
}


def test_cloudfront_sends_the_page_api_the_origin_secret_and_only_the_page_functions_read_it() -> None:
    [api] = [o for o in properties("SiteDistribution")["DistributionConfig"]["Origins"] if o["Id"] == "api"]
    [header] = api["OriginCustomHeaders"]

    assert header["HeaderName"].lower() == "x-origin-verify"
    # CloudFormation user guide, "Get a secret or secret value from Secrets Manager": a dynamic reference is
    # resolved again only by a stack update that changes the property, so a rotation pins the new version.
    assert header["HeaderValue"] == {
        "Fn::If": [
            "PinOriginSecretVersion",
            {
                "Fn::Sub": "{{resolve:secretsmanager:${OriginVerifySecret}:SecretString:::"
                "${OriginSecretVersionId}}}"
            },
            {"Fn::Sub": "{{resolve:secretsmanager:${OriginVerifySecret}:SecretString}}"},
        ]
    }
    assert load()["Parameters"]["OriginSecretVersionId"]["Default"] == ""
    assert properties("OriginVerifySecret")["GenerateSecretString"]["PasswordLength"] >= 32
    behind_routes = {
        integration["Properties"]["IntegrationUri"]["Ref"].split(".")[0]
        for integration in resources("AWS::ApiGatewayV2::Integration").values()
        if integration["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    }
    assert behind_routes == PAGE_FUNCTIONS
    for function in resources("AWS::Serverless::Function"):
        variables = properties(function).get("Environment", {}).get("Variables", {})
        reads = grants(function) >= READ_ORIGIN_SECRET
        # The trigger shares auto top-up's code but no route; it need not read the value.
        assert reads == (function in PAGE_FUNCTIONS), function
        assert (variables.get("ORIGIN_SECRET_ARN") == {"Ref": "OriginVerifySecret"}) == reads, function
        # The value itself is never in the template; sam local's env.json alone fills it.
        assert variables.get("ORIGIN_SECRET", "") == "", function


# --- Least privilege: every table write names its partitions and its attributes, as the code writes them --

WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
TABLES = {"CreditBalanceTable", "CreditTransactionTable", "CreditGuardTable"}


def write_statements() -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every function's policies that writes a table, with the function's name."""
    found = []
    for function in resources("AWS::Serverless::Function"):
        for policy in properties(function)["Policies"]:
            for statement in statements(policy):
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources_ = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                if set(actions) & WRITES and {target(r) for r in resources_} & TABLES:
                    found.append((function, statement))
    return found


def condition_values(statement: dict[str, Any], key: str) -> tuple[str, list[str]]:
    """The operator and the values a statement's condition gives `key`."""
    [(operator, values)] = [
        (operator, block[key]) for operator, block in statement.get("Condition", {}).items() if key in block
    ]
    return operator, values if isinstance(values, list) else [values]


def test_every_table_write_is_limited_to_its_partitions_and_attributes() -> None:
    writes = write_statements()

    assert writes
    for function, statement in writes:
        operator, attributes = condition_values(statement, "dynamodb:Attributes")
        assert operator == "ForAllValues:StringEquals", function
        # The key is always among a write's attributes; a list without it would refuse every write.
        assert "userId" in attributes, function
        leading_operator, leading = condition_values(statement, "dynamodb:LeadingKeys")
        # A user's partition, never a reserved one; or exactly one reserved one ("#sweep", "#audit",
        # "#migrate").
        assert (leading_operator, leading) in [
            ("ForAllValues:StringNotLike", ["#*"]),
            ("ForAllValues:StringEquals", ["#sweep"]),
            ("ForAllValues:StringEquals", ["#audit"]),
            ("ForAllValues:StringEquals", ["#migrate"]),
        ], function


def attributes_of(policy: str, action: str, table: str) -> set[str]:
    [statement] = [
        s
        for s in properties(policy)["PolicyDocument"]["Statement"]
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        and target(s["Resource"]) == table
    ]
    return set(condition_values(statement, "dynamodb:Attributes")[1])


def names_set_by(actions: list[Any]) -> set[str]:
    from pynamodb.expressions.update import Update

    names: dict[str, str] = {}
    Update(*actions).serialize(names, {})
    return set(names)


def model_attributes(model: type[Model]) -> set[str]:
    return {attribute.attr_name for attribute in model.get_attributes().values()}


@pytest.mark.parametrize("policy", ["DepositPolicy", "LedgerChangePolicy"])
def test_ledger_write_attributes_are_what_the_ledger_writes(policy: str) -> None:
    from wallet import account, writes

    balance = names_set_by(writes.balance_actions(1, "usd", "2026-12-04T00:00:00Z"))
    if policy == "LedgerChangePolicy":
        balance |= names_set_by(account.hold_actions(1, "usd", "2026-12-04T00:00:00Z"))
        balance |= names_set_by(account.unhold_actions(1, 1, "usd", "2026-12-04T00:00:00Z"))

    assert attributes_of(policy, "dynamodb:PutItem", "CreditTransactionTable") == model_attributes(
        CreditTransaction
    )
    # A spend conditions on a hot account's `shards`; making one hot sets it and `shardedAt`.
    hot = {"shards", "shardedAt"} if policy == "LedgerChangePolicy" else set()
    # A deposit adds its id to those the grants' projection has still to fold (wallet.projection); a
    # deposit or a grant that expires marks the account as having had one (writes.grant_actions).
    balance |= names_set_by(writes.grant_actions(None, 1))
    unfolded = names_set_by(writes.grant_actions("p", None)) if policy == "DepositPolicy" else set()
    assert (
        attributes_of(policy, "dynamodb:UpdateItem", "CreditBalanceTable")
        == balance | {"userId"} | hot | unfolded
    )
    if policy == "LedgerChangePolicy":
        # Every guard attribute but the hourly counters', which only the counting role writes, and a
        # dispute's notice items, written apart by DisputeNoticePolicy, never in a ledger change.
        counters = {"requests", "requestsHour"}
        notice = {"noticeClaim", "noticeClaimedAt", "noticeSentAt", "noticePaymentId", "noticeDueBy"}
        # The grants' index, written by the projector's and the sweep's own statements.
        due = {"grantsBucket", "grantsNextExpiry"}
        # The sign-up grant's guard, written only by the balance page's role.
        signup = {"signedUpAt"}
        assert (
            attributes_of(policy, "dynamodb:PutItem", "CreditGuardTable")
            == model_attributes(CreditGuard) - counters - notice - signup - due
        )


def test_the_hourly_counts_write_what_rate_limits_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    from wallet import rate_limits

    written: list[Any] = []
    named: dict[str, str] = {}

    def update(self: CreditGuard, actions: list[Any], condition: Any) -> None:
        written.extend(actions)
        condition.serialize(named, {})  # a condition's names count as the request's attributes too
        raise UpdateError(cause=_conditional_failure())

    monkeypatch.setattr(CreditGuard, "update", update)

    with pytest.raises(RuntimeError):
        rate_limits.count("alice", "checkouts", 1, RuntimeError)

    allowed = attributes_of("UserRateLimitPolicy", "dynamodb:UpdateItem", "CreditGuardTable")
    assert allowed == names_set_by(written) | set(named) | {"userId", "guardId"}
    # No other item's attribute: holds and idempotency keys keep their amount and expiry from this role.
    others = model_attributes(CreditGuard) - {"requests", "requestsHour"}
    assert allowed & others == {"userId", "guardId"}


def _conditional_failure() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": ""}}, "UpdateItem")


def test_the_sweep_writes_only_its_records_attributes() -> None:
    from wallet.sweep_records import SweepRecord

    records = reconcile_guard_statements("dynamodb:DeleteItem")["#sweep"]
    assert set(condition_values(records, "dynamodb:Attributes")[1]) == model_attributes(SweepRecord)


def test_the_audit_writes_only_its_checkpoints_attributes() -> None:
    from wallet.audit import AUDIT_KEY, AuditCheckpoint

    checkpoint = reconcile_guard_statements("dynamodb:PutItem")[AUDIT_KEY]
    assert set(condition_values(checkpoint, "dynamodb:Attributes")[1]) == model_attributes(AuditCheckpoint)


def test_holds_an_hour_past_their_time_alarm_from_the_daily_audits_metric() -> None:
    """CloudWatch alarms (PutMetricAlarm, "Configuring how CloudWatch alarms treat missing data"): a
    metric emitted once a day is missing in most periods, so `notBreaching` keeps the alarm quiet then,
    and one period of a day with a Maximum above 0 raises it on the run that counted an overdue hold."""
    alarm = properties("HoldsOverdueAlarm")
    variables = load()["Globals"]["Function"]["Environment"]["Variables"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (
        variables["POWERTOOLS_METRICS_NAMESPACE"],
        "HoldsOverdue",
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Maximum",
        0,
        "GreaterThanThreshold",
    )
    assert alarm["Period"] == 86_400
    assert alarm["TreatMissingData"] == "notBreaching"
    schedules = properties("ReconcileFunction")["Events"]
    assert schedules["DailyAudit"]["Properties"]["Input"] == '{"task": "audit"}'


def test_the_audit_reads_users_holds_but_no_reserved_partition_of_the_guard_table() -> None:
    """IAM's dynamodb:LeadingKeys (DynamoDB developer guide, "Using IAM policy conditions for
    fine-grained access control"): the audit's Query of the guard table names users' partitions only."""
    [query] = [
        statement
        for policy in properties("ReconcileFunction")["Policies"]
        if "Ref" not in policy
        for statement in statements(policy)
        if statement["Action"] == "dynamodb:Query"
        and statement["Resource"] == {"Fn::GetAtt": ["CreditGuardTable", "Arn"]}
    ]
    assert condition_values(query, "dynamodb:LeadingKeys") == ("ForAllValues:StringNotLike", ["#*"])


def test_the_migration_writes_only_its_checkpoints_attributes() -> None:
    from wallet.migrate import MIGRATE_KEY, MigrationCheckpoint

    checkpoint = reconcile_guard_statements("dynamodb:PutItem")[MIGRATE_KEY]
    assert set(condition_values(checkpoint, "dynamodb:Attributes")[1]) == model_attributes(
        MigrationCheckpoint
    )


def test_auto_top_up_state_is_every_balance_attribute_but_the_money() -> None:
    """`updatedAt` is listed because the trigger's claim names it in its condition (dynamodb:Attributes
    covers the names of condition expressions too), never the balance itself, nor how a hot account
    spreads it, nor the backend's low balance threshold (wallet.alerts), nor the deposits the
    grants' projection has still to fold."""
    listed = attributes_of("AutoTopUpStatePolicy", "dynamodb:UpdateItem", "CreditBalanceTable")

    assert listed == model_attributes(CreditBalance) - {
        "balance",
        "held",
        "currency",
        "shards",
        "shardedAt",
        "lowBalanceThreshold",
        "emailAlertThreshold",
        "emailAlertAddress",
        "newGrants",
        "changes",
        "grantsExpire",
    }


def test_a_dispute_notice_touches_only_notice_attributes_and_publishes_only_to_the_alarm_topic() -> None:
    """SNS's key management guide (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html): a
    publisher to a topic encrypted with a customer managed key needs kms:GenerateDataKey* and kms:Decrypt
    on it. IAM's dynamodb:Attributes condition keeps the notice's writes to its own attributes, so they
    can never rewrite a payment's or an Idempotency-Key's guard."""
    [guard, publish, key] = properties("DisputeNoticePolicy")["PolicyDocument"]["Statement"]
    attributes = guard["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]

    assert set(guard["Action"]) == {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert set(attributes) == {
        "userId",
        "guardId",
        "noticeClaim",
        "noticeClaimedAt",
        "noticeSentAt",
        "noticePaymentId",
        "noticeDueBy",
        "createdAt",
        "expiresAt",
    }
    assert not {"state", "taken", "version", "fingerprint", "amount"} & set(attributes)
    assert guard["Condition"]["ForAllValues:StringNotLike"]["dynamodb:LeadingKeys"] == ["#*"]
    assert (publish["Action"], publish["Resource"]) == ("sns:Publish", {"Ref": "AlarmTopic"})
    assert set(key["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert key["Resource"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}
    for function in ("StripeWebhookFunction", "StripeEventsFunction", "ReconcileFunction"):
        assert properties(function)["Environment"]["Variables"]["ALARM_TOPIC_ARN"] == {"Ref": "AlarmTopic"}


def test_an_unknown_refund_or_dispute_status_is_alarmed() -> None:
    alarm = properties("UnknownStatusesAlarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == ("Credits", "UnknownStatuses")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


# --- Stripe's events through Amazon EventBridge (StripeEventSource) --------------------------------------


def conditioned(logical_id: str) -> str | None:
    return load()["Resources"][logical_id].get("Condition")


def test_stripe_event_source_is_optional_and_names_only_a_stripe_partner_source() -> None:
    parameter = load()["Parameters"]["StripeEventSource"]
    pattern = re.compile(parameter["AllowedPattern"])

    assert parameter["Default"] == ""
    # Stripe's partner event sources: aws.partner/stripe.com/<event destination id>
    # (docs.stripe.com/event-destinations/eventbridge).
    assert pattern.fullmatch("aws.partner/stripe.com/ed_test_61RMKdN8zDe7KJ2m516RMJxZzCSQaKkjg0jHdmoIlTpI")
    assert pattern.fullmatch("")
    for other in ("aws.partner/example.com/x", "aws.partner/stripe.com/", "aws.partner/stripe.com/ed/../x"):
        assert not pattern.fullmatch(other)
    assert load()["Conditions"]["UseEventBridge"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "StripeEventSource"}, ""]}]
    }


def test_every_eventbridge_resource_exists_only_with_a_partner_source() -> None:
    eventbridge = {
        "StripeEventsFunction",
        "StripeEventBus",
        "StripeEventsRule",
        "StripeEventsInvokePermission",
        "StripeEventsDeadLetterQueue",
        "StripeEventsDeadLetterQueuePolicy",
        "StripeEventsDeadLetterAlarm",
        "StripeEventsFailuresAlarm",
        "StripeEventsLogs",
    }

    assert {name for name in eventbridge if conditioned(name) == "UseEventBridge"} == eventbridge


# AWS: a partner event bus is created with the partner event source's name as both its Name and its
# EventSourceName (docs.aws.amazon.com/eventbridge/latest/userguide/eb-saas.html; AWS::Events::EventBus).
def test_the_bus_is_the_partner_event_bus_of_the_configured_source() -> None:
    bus = properties("StripeEventBus")

    assert bus == {"Name": {"Ref": "StripeEventSource"}, "EventSourceName": {"Ref": "StripeEventSource"}}


def test_the_rule_sends_exactly_the_event_tables_types_from_the_source_to_the_function() -> None:
    from wallet.stripe_events import ENDPOINT_EVENTS

    rule = properties("StripeEventsRule")
    [target] = rule["Targets"]

    assert rule["EventBusName"] == {"Ref": "StripeEventBus"}
    assert rule["EventPattern"] == {
        "source": [{"Ref": "StripeEventSource"}],
        "detail-type": list(ENDPOINT_EVENTS),
    }
    assert target["Arn"] == {"Ref": "StripeEventsFunction.Alias"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["StripeEventsDeadLetterQueue", "Arn"]}}
    # Chosen, not left to defaults: EventBridge's own limits (24 hours, 185 attempts).
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def test_the_function_is_the_same_code_as_the_webhook_with_bounded_retries_into_the_dead_letter_queue() -> (
    None
):
    function = properties("StripeEventsFunction")
    invoke_config = function["EventInvokeConfig"]

    assert function["CodeUri"] == properties("StripeWebhookFunction")["CodeUri"]
    assert function["Handler"] == "app.eventbridge_handler"
    assert function["Environment"]["Variables"]["STRIPE_EVENT_SOURCE"] == {"Ref": "StripeEventSource"}
    assert "STRIPE_WEBHOOK_SECRET_ARN" not in function["Environment"]["Variables"]
    # Lambda's documented bounds for asynchronous invocation: 0 to 2 retries, 60 s to 6 hours.
    assert invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["MaximumEventAgeInSeconds"] == 21600
    assert invoke_config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["StripeEventsDeadLetterQueue", "Arn"]},
    }


def test_only_the_rule_may_invoke_the_function_or_write_to_its_dead_letter_queue() -> None:
    permission = properties("StripeEventsInvokePermission")
    [statement] = properties("StripeEventsDeadLetterQueuePolicy")["PolicyDocument"]["Statement"]
    rule_arn = {"Fn::GetAtt": ["StripeEventsRule", "Arn"]}

    assert (permission["Principal"], permission["SourceArn"]) == ("events.amazonaws.com", rule_arn)
    assert permission["FunctionName"] == {"Ref": "StripeEventsFunction.Alias"}
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}


def test_a_parked_event_raises_the_alarm() -> None:
    alarm = properties("StripeEventsDeadLetterAlarm")
    queue = properties("StripeEventsDeadLetterQueue")

    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["StripeEventsDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert queue["KmsMasterKeyId"] == "alias/aws/sqs"


def test_the_webhook_route_is_deployed_without_a_partner_source_or_while_the_cut_over_keeps_it() -> None:
    condition = load()["Conditions"]["UseStripeWebhook"]

    assert condition == {
        "Fn::Or": [
            {"Fn::Equals": [{"Ref": "StripeEventSource"}, ""]},
            {"Fn::Equals": [{"Ref": "KeepStripeWebhook"}, "true"]},
        ]
    }
    for name in ("StripeWebhookRoute", "StripeWebhookIntegration", "StripeWebhookInvokePermission"):
        assert conditioned(name) == "UseStripeWebhook", name
    assert load()["Outputs"]["WebhookUrl"]["Condition"] == "UseStripeWebhook"
    assert load()["Parameters"]["KeepStripeWebhook"]["Default"] == "false"


# --- The wallet's events ----------------------------------------------------------------------------------


def stream_readers(table: str) -> list[str]:
    """The functions whose event source mappings read `table`'s stream."""
    return sorted(
        f"{name}.{event}"
        for name, function in resources("AWS::Serverless::Function").items()
        for event, source in function["Properties"].get("Events", {}).items()
        if source["Type"] == "DynamoDB"
        and source["Properties"]["Stream"] == {"Fn::GetAtt": [table, "StreamArn"]}
    )


def test_no_stream_has_more_than_two_readers_as_aws_advises() -> None:
    # "No more than two processes at most should be reading from the same streams shard at the same time."
    assert stream_readers("CreditBalanceTable") == [
        "AutoTopUpTriggerFunction.BalanceChanged",
        "WalletEventsFunction.BalanceChanged",
    ]
    assert stream_readers("CreditTransactionTable") == [
        "ProjectGrantsFunction.RowAdded",
        "WalletEventsFunction.RowAdded",
    ]
    assert stream_readers("CreditGuardTable") == ["WalletEventsFunction.DisputeNoticed"]
    for table in ("CreditTransactionTable", "CreditGuardTable"):
        assert properties(table)["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_wallet_events_have_their_own_bus_with_an_archive_and_not_stripe_s() -> None:
    function = properties("WalletEventsFunction")
    variables = function["Environment"]["Variables"]

    assert variables["WALLET_EVENT_BUS"] == {"Ref": "WalletEventBus"}
    assert "EventSourceName" not in properties("WalletEventBus")
    assert properties("WalletEventArchive")["SourceArn"] == {"Fn::GetAtt": ["WalletEventBus", "Arn"]}
    assert variables["LOW_BALANCE_THRESHOLD"] == {"Ref": "LowBalanceThreshold"}
    threshold = load()["Parameters"]["LowBalanceThreshold"]
    assert (threshold["Default"], threshold["MinValue"], threshold["MaxValue"]) == (0, 0, 100_000_000)


@pytest.mark.parametrize("event", ["BalanceChanged", "RowAdded", "DisputeNoticed"])
def test_the_wallet_events_streams_send_failed_records_back_and_park_them_after_their_retries(
    event: str,
) -> None:
    source = properties("WalletEventsFunction")["Events"][event]["Properties"]

    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["WalletEventsFailedRecordsQueue", "Arn"]
    }
    alarms = resources("AWS::CloudWatch::Alarm")
    queue_alarm = alarms["WalletEventsFailedRecordsAlarm"]["Properties"]
    assert queue_alarm["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["WalletEventsFailedRecordsQueue", "QueueName"]
    }
    metrics = alarms["WalletEventsFailuresAlarm"]["Properties"]["Metrics"]
    assert "WalletEventsNotPublished" in {
        m["MetricStat"]["Metric"]["MetricName"] for m in metrics if "MetricStat" in m
    }


def test_the_row_filter_lets_through_exactly_the_rows_that_are_events() -> None:
    from wallet import wallet_events
    from wallet.writes import DEPOSIT, HOLD_EXPIRED

    [pattern] = properties("WalletEventsFunction")["Events"]["RowAdded"]["Properties"]["FilterCriteria"][
        "Filters"
    ]
    types = json.loads(pattern["Pattern"])["dynamodb"]["NewImage"]["type"]["S"]

    assert set(types) == {DEPOSIT, HOLD_EXPIRED} | wallet_events.CLAW_BACK_TYPES


def test_the_guard_filter_lets_through_only_a_notice_s_first_put() -> None:
    [pattern] = properties("WalletEventsFunction")["Events"]["DisputeNoticed"]["Properties"][
        "FilterCriteria"
    ]["Filters"]
    assert json.loads(pattern["Pattern"]) == {
        "eventName": ["INSERT"],
        "dynamodb": {"Keys": {"guardId": {"S": [{"prefix": "notice#"}]}}},
    }


def test_low_balance_emails_come_only_from_the_deployed_sender_and_write_only_their_attributes() -> None:
    sender = load()["Parameters"]["AlertSenderEmail"]
    assert sender["Default"] == ""
    assert re.fullmatch(sender["AllowedPattern"], "")
    assert re.fullmatch(sender["AllowedPattern"], "alerts@example.com")
    assert not re.fullmatch(sender["AllowedPattern"], "not an address")
    [send] = [
        s
        for s in properties("WalletEventsFunction")["Policies"][0]["Statement"]
        if s["Action"] == "ses:SendEmail"
    ]
    assert send["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "AlertSenderEmail"}}}
    for function in ("WalletEventsFunction", "AutoTopUpFunction"):
        assert properties(function)["Environment"]["Variables"]["ALERT_SENDER"] == {"Ref": "AlertSenderEmail"}
    [setting] = [
        s
        for policy in properties("AutoTopUpFunction")["Policies"]
        if "Statement" in policy
        for s in policy["Statement"]
    ]
    assert setting["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"] == [
        "userId",
        "emailAlertThreshold",
        "emailAlertAddress",
    ]


def test_the_sign_up_grant_writes_only_its_row_balance_and_guard_attributes() -> None:
    """The balance page's role may give the sign-up grant and nothing more: a `grant` row's attributes,
    the balance a grant changes, and the `signup` guard's own attribute, each inside a transaction."""
    from wallet import writes

    def written(action: str, table: str) -> set[str]:
        [statement] = [
            statement
            for policy in properties("GetBalanceFunction")["Policies"]
            if "Ref" not in policy
            for statement in statements(policy)
            if statement["Action"] == action and target(statement["Resource"]) == table
        ]
        condition = statement["Condition"]["ForAnyValue:StringEquals"]
        assert condition == {"dynamodb:EnclosingOperation": "TransactWriteItems"}
        return set(condition_values(statement, "dynamodb:Attributes")[1])

    assert written("dynamodb:UpdateItem", "CreditGuardTable") == {"userId", "guardId", "signedUpAt"}
    balance = names_set_by(writes.balance_actions(1, "usd", "2027-01-01T00:00:00Z"))
    balance |= names_set_by(writes.grant_actions(None, 1))
    assert written("dynamodb:UpdateItem", "CreditBalanceTable") == balance | {"userId"}
    row = {
        "userId",
        "transactionId",
        "type",
        "amount",
        "source",
        "description",
        "grantExpiresAt",
        "createdAt",
    }
    assert written("dynamodb:PutItem", "CreditTransactionTable") == row


# --- The grants' schedule ----------------------------------------------------------------------------------


def test_the_grants_index_is_sparse_on_the_guard_table_with_the_models_keys() -> None:
    table = properties("CreditGuardTable")
    [index] = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "grantsDue"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}

    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("grantsBucket", "HASH"),
        ("grantsNextExpiry", "RANGE"),
    ]
    assert (types["grantsBucket"], types["grantsNextExpiry"]) == ("S", "N")
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert CreditGuard.grants_due.Meta.index_name == "grantsDue"


def test_the_grants_sweep_runs_hourly_on_the_reconcile_function() -> None:
    schedule = properties("ReconcileFunction")["Events"]["GrantExpiry"]

    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    assert json.loads(schedule["Properties"]["Input"]) == {"task": "grants"}
    alarm = resources("AWS::CloudWatch::Alarm")["GrantExpiryFailuresAlarm"]["Properties"]
    assert alarm["MetricName"] == "GrantExpiryFailures"


def test_the_projector_reads_new_rows_in_batches_sends_failures_back_and_parks_them() -> None:
    source = properties("ProjectGrantsFunction")["Events"]["RowAdded"]["Properties"]

    [pattern] = source["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {"eventName": ["INSERT"]}
    assert source["MaximumBatchingWindowInSeconds"] >= 5
    assert source["BatchSize"] >= 1000
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ProjectGrantsFailedRecordsQueue", "Arn"]
    }
    alarms = resources("AWS::CloudWatch::Alarm")
    assert alarms["ProjectGrantsFailedRecordsAlarm"]["Properties"]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["ProjectGrantsFailedRecordsQueue", "QueueName"]
    }
    metrics = alarms["ProjectGrantsFailuresAlarm"]["Properties"]["Metrics"]
    assert "GrantProjectionFailures" in {
        m["MetricStat"]["Metric"]["MetricName"] for m in metrics if "MetricStat" in m
    }


def own_statements(function: str) -> list[dict[str, Any]]:
    return [
        s for policy in properties(function)["Policies"] if "Ref" not in policy for s in statements(policy)
    ]


def test_the_projector_writes_only_the_projection_s_and_the_index_s_attributes_of_users() -> None:
    from wallet import grants_due, projection

    found = own_statements("ProjectGrantsFunction")
    for statement in found:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions)
        if "sqs:SendMessage" not in actions:
            assert statement["Condition"]["ForAllValues:StringNotLike"] == {"dynamodb:LeadingKeys": ["#*"]}
    [guard] = [
        s
        for s in found
        if s["Action"] == "dynamodb:UpdateItem" and target(s["Resource"]) == "CreditGuardTable"
    ]
    [balance] = [
        s
        for s in found
        if s["Action"] == "dynamodb:UpdateItem" and target(s["Resource"]) == "CreditBalanceTable"
    ]
    now = 1_800_000_000
    saved = names_set_by(
        [CreditGuard.state.set("{}"), CreditGuard.version.set(1), CreditGuard.transaction_id.set("x")]
    )
    indexed = names_set_by(
        [
            CreditGuard.grants_bucket.set(grants_due.bucket("u", now, now)),
            CreditGuard.grants_next_expiry.set(now),
        ]
    )
    assert set(guard["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == (
        saved | indexed | {"userId", "guardId"}
    )
    assert set(balance["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == {
        "userId",
        "newGrants",
    }
    assert balance["Condition"]["ForAnyValue:StringEquals"] == {
        "dynamodb:EnclosingOperation": "TransactWriteItems"
    }
    assert projection.PROJECTION == "grants"


def test_the_sweep_indexes_grants_with_the_index_s_attributes_only_and_in_a_transaction() -> None:
    [statement] = [
        s
        for s in own_statements("ReconcileFunction")
        if s["Action"] == "dynamodb:UpdateItem"
        and "grantsBucket"
        in s["Condition"].get("ForAllValues:StringEquals", {}).get("dynamodb:Attributes", [])
    ]

    assert set(statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == {
        "userId",
        "guardId",
        "grantsBucket",
        "grantsNextExpiry",
    }
    assert statement["Condition"]["ForAnyValue:StringEquals"] == {
        "dynamodb:EnclosingOperation": "TransactWriteItems"
    }
    assert statement["Condition"]["ForAllValues:StringNotLike"] == {"dynamodb:LeadingKeys": ["#*"]}

"""Publishing the site after `sam deploy`, against moto's CloudFormation, S3 and CloudFront."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploy import publish

OUTPUTS = {
    "SiteUrl": "https://d111111abcdef8.cloudfront.net/dashboard/credits/",
    "JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
    "JwtAudience": "3n4b5urk1ft4fl3mg5e62d9ado",
    "AuthorizeUrl": "https://credits-123.auth.us-east-1.amazoncognito.com/oauth2/authorize",
    "TokenUrl": "https://credits-123.auth.us-east-1.amazoncognito.com/oauth2/token",
    "LogoutUrl": "https://credits-123.auth.us-east-1.amazoncognito.com/logout",
    "UserPoolId": "us-east-1_EXAMPLE",
    "Currency": "usd",
    "WebhookUrl": "https://d111111abcdef8.cloudfront.net/api/webhooks/stripe",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A deployed stack in moto: its site bucket, its distribution and its outputs."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="credits-site")
        distribution = boto3.client("cloudfront").create_distribution(
            DistributionConfig={
                "CallerReference": "credits",
                "Comment": "",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [{"Id": "site", "DomainName": "credits-site.s3.amazonaws.com"}],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "site",
                    "ViewerProtocolPolicy": "redirect-to-https",
                },
            }
        )["Distribution"]["Id"]
        outputs = OUTPUTS | {"SiteBucketName": "credits-site", "DistributionId": distribution}
        template = {
            "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName="credits", TemplateBody=json.dumps(template))
        yield outputs


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dashboard/credits").mkdir(parents=True)
    (tmp_path / "assets").mkdir()
    (tmp_path / "dashboard/credits/index.html").write_text("<!doctype html><title>Credits</title>")
    (tmp_path / "assets/app.js").write_text("import config from '/config.js';")
    (tmp_path / "assets/site.css").write_text("body { margin: 0 }")
    (tmp_path / "config.js").write_text("export default {apiBase: 'http://127.0.0.1:3000/api'};")
    return tmp_path


def objects(bucket: str) -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: dict(s3.get_object(Bucket=bucket, Key=key)) for key in keys}


def config_of(source: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        source.removeprefix("export default Object.freeze(").rstrip().removesuffix(");")
    )
    return loaded


def test_the_site_is_uploaded_with_types_and_cache_headers(aws: dict[str, str], site: Path) -> None:
    boto3.client("s3").put_object(Bucket="credits-site", Key="assets/old.js", Body=b"gone")

    result = publish.publish("credits", root=site)

    stored = objects("credits-site")
    assert sorted(stored) == ["assets/app.js", "assets/site.css", "config.js", "dashboard/credits/index.html"]
    assert stored["dashboard/credits/index.html"]["ContentType"] == "text/html; charset=utf-8"
    assert stored["dashboard/credits/index.html"]["CacheControl"] == "no-cache"
    assert stored["assets/app.js"]["ContentType"] == "text/javascript; charset=utf-8"
    assert stored["assets/app.js"]["CacheControl"] == "public, max-age=300"
    assert stored["assets/site.css"]["ContentType"] == "text/css; charset=utf-8"
    assert stored["config.js"]["CacheControl"] == "no-cache"
    assert result["files"] == "4"


def test_config_js_comes_from_the_stack_outputs_not_the_local_file(aws: dict[str, str], site: Path) -> None:
    publish.publish("credits", root=site)

    config = config_of(objects("credits-site")["config.js"]["Body"].read().decode())
    assert config["apiBase"] == "/api"
    assert config["currency"] == "usd"
    assert config["auth"] == {
        "mode": "oidc",
        "issuer": OUTPUTS["JwtIssuer"],
        "clientId": OUTPUTS["JwtAudience"],
        "authorizeUrl": OUTPUTS["AuthorizeUrl"],
        "tokenUrl": OUTPUTS["TokenUrl"],
        "logoutUrl": OUTPUTS["LogoutUrl"],
        "logout": "cognito",
        "redirectUri": OUTPUTS["SiteUrl"],
        "scopes": ["openid", "email"],
    }


def test_cloudfront_is_invalidated_for_every_path(aws: dict[str, str], site: Path) -> None:
    result = publish.publish("credits", root=site)

    invalidation = boto3.client("cloudfront").get_invalidation(
        DistributionId=aws["DistributionId"], Id=result["invalidation"]
    )["Invalidation"]
    assert invalidation["InvalidationBatch"]["Paths"]["Items"] == ["/*"]


def test_a_missing_stack_is_a_clear_error(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert publish.main(["--stack-name", "nope"]) == 2
    assert "no stack named nope: run `make deploy` first" in capsys.readouterr().out


def test_a_stack_without_the_outputs_is_refused_naming_them(aws: dict[str, str]) -> None:
    template = {"Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
    boto3.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(template))

    with pytest.raises(publish.PublishError, match="SiteUrl, SiteBucketName"):
        publish.publish("other")


def test_the_real_site_is_what_gets_published() -> None:
    keys = [key for key, _ in publish.site_files()]

    assert "dashboard/credits/index.html" in keys
    assert "config.js" not in keys


def test_make_deploy_asks_whether_the_stack_exists_to_guide_a_first_deploy(aws: dict[str, str]) -> None:
    assert publish.main(["--stack-name", "credits", "--exists"]) == 0
    assert publish.main(["--stack-name", "not-yet", "--exists"]) == 1


def test_on_cloudfronts_own_host_there_is_no_dns_to_set() -> None:
    outputs = OUTPUTS | {"DistributionDomainName": "d111111abcdef8.cloudfront.net"}

    assert publish.dns_hint(outputs) == ""


def test_with_a_custom_domain_publishing_says_where_its_dns_must_point() -> None:
    outputs = OUTPUTS | {
        "SiteUrl": "https://credits.example.com/dashboard/credits/",
        "DistributionDomainName": "d111111abcdef8.cloudfront.net",
    }

    hint = publish.dns_hint(outputs)
    assert hint.startswith("Point credits.example.com at d111111abcdef8.cloudfront.net")


def test_the_page_signs_in_and_out_on_the_custom_domain_when_there_is_one() -> None:
    config = config_of(
        publish.site_config(OUTPUTS | {"SiteUrl": "https://credits.example.com/dashboard/credits/"})
    )

    assert config["auth"]["redirectUri"] == "https://credits.example.com/dashboard/credits/"


def test_with_another_provider_sign_out_uses_its_end_session_endpoint_or_none() -> None:
    outputs = {k: v for k, v in OUTPUTS.items() if k != "UserPoolId"} | {"LogoutUrl": ""}

    auth = config_of(publish.site_config(outputs))["auth"]
    assert (auth["logout"], auth["logoutUrl"]) == ("oidc", "")


def test_without_an_alarm_email_publishing_says_nobody_hears_of_alarms_and_what_to_do() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:credits-AlarmTopic-1"

    hint = publish.alarm_hint(OUTPUTS | {"AlarmTopicArn": topic})

    assert "AlarmEmail is none" in hint
    assert topic in hint
    assert "AlarmEmail=" in hint
    assert publish.alarm_hint(OUTPUTS | {"AlarmTopicArn": topic, "AlarmEmail": "ops@example.com"}) == ""

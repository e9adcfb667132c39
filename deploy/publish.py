"""Publish the credits page to the stack's site bucket: `python -m deploy.publish --stack-name credits`.

Reads the stack's outputs, writes config.js from them (so the page holds no environment URL), uploads
static_site/ with content types and cache headers, removes what is no longer in static_site/, and
invalidates CloudFront so the new page is served at once.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

SITE = Path(__file__).resolve().parent.parent / "static_site"
CONFIG_KEY = "config.js"
# Pages and config.js must never be stale; assets may be cached briefly, as their names do not change.
NO_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=300"
REQUIRED_OUTPUTS = (
    "SiteUrl",
    "SiteBucketName",
    "DistributionId",
    "JwtIssuer",
    "JwtAudience",
    "AuthorizeUrl",
    "TokenUrl",
    "WebhookUrl",
)


class PublishError(Exception):
    """The stack is missing or incomplete; the message says what to do."""


def stack_outputs(cloudformation: CloudFormationClient, stack_name: str) -> dict[str, str]:
    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        raise PublishError(f"no stack named {stack_name}: run `make deploy` first") from exc
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if not outputs.get(name)]
    if missing:
        raise PublishError(
            f"stack {stack_name} has no output {', '.join(missing)}: is it this project's stack?"
        )
    return outputs


def site_config(outputs: dict[str, str]) -> str:
    """config.js: where the API is and how to sign in, as the deployed stack says."""
    site = outputs["SiteUrl"]
    config: dict[str, Any] = {
        "apiBase": "/api",
        "auth": {
            "mode": "oidc",
            "issuer": outputs["JwtIssuer"],
            "clientId": outputs["JwtAudience"],
            "authorizeUrl": outputs["AuthorizeUrl"],
            "tokenUrl": outputs["TokenUrl"],
            "logoutUrl": outputs.get("LogoutUrl", ""),
            # Cognito's /logout and OpenID Connect's end_session_endpoint take different parameters.
            "logout": "cognito" if outputs.get("UserPoolId") else "oidc",
            "redirectUri": site,
            "scopes": ["openid", "email"],
        },
        "currency": outputs["Currency"],
        "stripe": "stripe",
    }
    return f"export default Object.freeze({json.dumps(config, indent=2)});\n"


def dns_hint(outputs: dict[str, str]) -> str:
    """With a custom domain (SiteUrl not on CloudFront's own host), where its DNS record must point."""
    site_host = urlsplit(outputs["SiteUrl"]).hostname or ""
    cloudfront_host = outputs.get("DistributionDomainName", "")
    if not cloudfront_host or site_host == cloudfront_host:
        return ""
    return f"Point {site_host} at {cloudfront_host} (a CNAME, or a Route 53 alias) if it does not yet."


def site_files(root: Path = SITE) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.name != CONFIG_KEY:
            yield path.relative_to(root).as_posix(), path


def content_type(key: str) -> str:
    guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return (
        f"{guessed}; charset=utf-8"
        if guessed.startswith("text/") or guessed.endswith("javascript")
        else guessed
    )


def cache_control(key: str) -> str:
    return NO_CACHE if key.endswith(".html") or key == CONFIG_KEY else ASSET_CACHE


def upload_site(s3: S3Client, bucket: str, config_js: str, root: Path = SITE) -> list[str]:
    """Upload every file of the site and config.js, then delete objects the site no longer has."""
    uploaded = []
    for key, path in site_files(root):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content_type(key),
            CacheControl=cache_control(key),
        )
        uploaded.append(key)
    s3.put_object(
        Bucket=bucket,
        Key=CONFIG_KEY,
        Body=config_js.encode(),
        ContentType=content_type(CONFIG_KEY),
        CacheControl=NO_CACHE,
    )
    uploaded.append(CONFIG_KEY)
    stale: list[ObjectIdentifierTypeDef] = [
        {"Key": item["Key"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if item["Key"] not in uploaded
    ]
    if stale:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": stale, "Quiet": True})
    return uploaded


def invalidate(cloudfront: CloudFrontClient, distribution_id: str) -> str:
    invalidation = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time_ns())},
    )
    return invalidation["Invalidation"]["Id"]


def publish(stack_name: str, session: boto3.Session | None = None, root: Path = SITE) -> dict[str, str]:
    session = session or boto3.Session()
    outputs = stack_outputs(session.client("cloudformation"), stack_name)
    uploaded = upload_site(session.client("s3"), outputs["SiteBucketName"], site_config(outputs), root)
    invalidation = invalidate(session.client("cloudfront"), outputs["DistributionId"])
    return {
        "site": outputs["SiteUrl"],
        "files": str(len(uploaded)),
        "invalidation": invalidation,
        "dns": dns_hint(outputs),
        "webhook": webhook_endpoint(outputs),
        "alarms": alarm_hint(outputs),
    }


def webhook_endpoint(outputs: dict[str, str]) -> str:
    """Where Stripe must send events, and which: the webhook's event table, so the two cannot drift."""
    from wallet.payments import API_VERSION
    from wallet.stripe_events import ENDPOINT_EVENTS

    return "\n".join(
        [
            "Stripe webhook endpoint (Workbench -> Webhooks -> Create an event destination; or Dashboard ->"
            f" Developers -> Webhooks): {outputs['WebhookUrl']}",
            f"  API version {API_VERSION}, with exactly these events:",
            *(f"    {kind}" for kind in ENDPOINT_EVENTS),
            "  then put its signing secret (whsec_...) in the StripeWebhookSecretArn output's secret.",
        ]
    )


ALARM_EMAIL_HINT = (
    "AlarmEmail is none: every alarm (a lost webhook, a rejected payment, a dispute, drift in the ledger) "
    "reaches the SNS topic {topic} and nobody else. Deploy again with AlarmEmail=you@example.com "
    "(sam deploy --guided asks for it), or subscribe someone to that topic."
)


def alarm_hint(outputs: dict[str, str]) -> str:
    """What to do when no one is subscribed to the alarms; empty when AlarmEmail is set."""
    if outputs.get("AlarmEmail"):
        return ""
    return ALARM_EMAIL_HINT.format(topic=outputs.get("AlarmTopicArn", "(see the AlarmTopicArn output)"))


def stack_exists(cloudformation: CloudFormationClient, stack_name: str) -> bool:
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except cloudformation.exceptions.ClientError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack-name", default="credits")
    parser.add_argument(
        "--exists", action="store_true", help="only answer (exit 0 or 1) whether the stack exists"
    )
    args = parser.parse_args(argv)
    if args.exists:
        return 0 if stack_exists(boto3.client("cloudformation"), args.stack_name) else 1
    try:
        result = publish(args.stack_name)
    except PublishError as exc:
        print(f"Cannot publish: {exc}")
        return 2
    print(f"Published {result['files']} files; CloudFront invalidation {result['invalidation']}.")
    print(f"The credits page: {result['site']}")
    if result["dns"]:
        print(result["dns"])
    print(result["webhook"])
    if result["alarms"]:
        print(result["alarms"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Check that each Stripe key can do what its function asks of Stripe: `make doctor` (or
`python -m deploy.doctor --stack-name credits`).

It reads each function's key from the stack's secrets and, for every permission that function needs,
makes one call that changes nothing: a list of at most one object, or an action on an id that cannot
exist (`..._doctor_probe`), which Stripe answers 404 when the key may make it and 403 when it may not.
It prints, per key, the restricted-key permissions that are missing, and exits 1 if any is.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import stripe

PROBE_ID = "doctor_probe"
Probe = Callable[[stripe.StripeClient, stripe.RequestOptions], object]

# Permission (as Stripe's restricted-key errors name it, less "rak_") -> one call that changes nothing.
PROBES: dict[str, Probe] = {
    "charge_read": lambda sdk, o: sdk.v1.charges.list({"limit": 1}, options=o),
    "invoice_read": lambda sdk, o: sdk.v1.invoices.retrieve(f"in_{PROBE_ID}", options=o),
    "checkout_session_read": lambda sdk, o: sdk.v1.checkout.sessions.list({"limit": 1}, options=o),
    "checkout_session_write": lambda sdk, o: sdk.v1.checkout.sessions.expire(f"cs_{PROBE_ID}", options=o),
    "customer_write": lambda sdk, o: sdk.v1.customers.update(f"cus_{PROBE_ID}", {}, options=o),
    "event_read": lambda sdk, o: sdk.v1.events.list({"limit": 1}, options=o),
    "payment_intent_read": lambda sdk, o: sdk.v1.payment_intents.retrieve(f"pi_{PROBE_ID}", options=o),
    "payment_intent_write": lambda sdk, o: sdk.v1.payment_intents.cancel(f"pi_{PROBE_ID}", options=o),
    "payment_method_write": lambda sdk, o: sdk.v1.payment_methods.detach(f"pm_{PROBE_ID}", options=o),
    "refund_read": lambda sdk, o: sdk.v1.refunds.list({"limit": 1}, options=o),
}


@dataclass(frozen=True)
class Key:
    """A key the stack holds: its stack output (the secret's ARN, named as its parameter), the functions of
    template.yaml that read it, who they are and what they ask of Stripe."""

    output: str
    functions: tuple[str, ...]
    used_by: str
    permissions: tuple[str, ...]


# The one list of what each function calls at Stripe (wallet/payments.py, wallet/event_log.py), and so what
# its key must allow and no more: `make doctor`, the README's table and tests/unit/test_stripe_keys.py (which
# follows every Stripe call from each function's handler) all read it.
KEYS = (
    Key(
        "StripeCheckoutKeySecretArn",
        ("CreateCheckoutFunction",),
        "checkout (CreateCheckoutFunction)",
        # A top-up's receipt and invoice (wallet/receipts.py): its charges, and its invoice.
        ("checkout_session_write", "checkout_session_read", "customer_write", "charge_read", "invoice_read"),
    ),
    Key(
        "StripeCardKeySecretArn",
        ("AutoTopUpFunction",),
        "saved cards (AutoTopUpFunction)",
        ("checkout_session_write", "customer_write", "payment_method_write"),
    ),
    Key(
        "StripeTriggerKeySecretArn",
        ("AutoTopUpTriggerFunction",),
        "the auto top-up trigger (AutoTopUpTriggerFunction)",
        ("payment_intent_write", "payment_method_write"),
    ),
    Key(
        "StripeApiKeySecretArn",
        ("ReconcileFunction",),
        "the hourly sweep (ReconcileFunction)",
        ("event_read", "payment_intent_read", "refund_read"),
    ),
    # A refund's or dispute's rare paths (wallet/reversals.py): a PaymentIntent read, a payment's refunds.
    Key(
        "StripeReadKeySecretArn",
        ("StripeWebhookFunction", "StripeEventsFunction"),
        "the webhook",
        ("payment_intent_read", "refund_read"),
    ),
)


class KeyRefusedError(Exception):
    """Stripe does not accept the key at all (401): revoked, expired, or not a key."""


def missing_permissions(key: str, permissions: tuple[str, ...], client: stripe.StripeClient) -> list[str]:
    """The permissions of `permissions` that Stripe refuses `key` (403), in order."""
    missing = []
    for permission in permissions:
        try:
            PROBES[permission](client, {"api_key": key})
        except stripe.PermissionError:
            missing.append(permission)
        except stripe.AuthenticationError as exc:
            raise KeyRefusedError(exc.user_message or "Stripe refused the key") from exc
        except stripe.InvalidRequestError:
            pass  # the probe's id does not exist: the key was allowed to ask
    return missing


def report(keys: Mapping[str, str], client: stripe.StripeClient, wanted: tuple[Key, ...] = KEYS) -> list[str]:
    """One line per key: what it lacks, or that it is fine. `keys`: each key's value by its stack output."""
    lines = []
    for wanted_key in wanted:
        value = keys.get(wanted_key.output, "").strip()
        if not value:
            lines.append(
                f"MISSING {wanted_key.output} ({wanted_key.used_by}): the secret is empty; fill it (README)"
            )
            continue
        try:
            missing = missing_permissions(value, wanted_key.permissions, client)
        except KeyRefusedError as exc:
            lines.append(f"REFUSED {wanted_key.output} ({wanted_key.used_by}): {exc}")
            continue
        if missing:
            lines.append(
                f"MISSING {wanted_key.output} ({wanted_key.used_by}) lacks: {', '.join(missing)}"
                " (Dashboard -> Developers -> API keys -> the restricted key -> Edit)"
            )
        else:
            lines.append(
                f"OK      {wanted_key.output} ({wanted_key.used_by}): {', '.join(wanted_key.permissions)}"
            )
    return lines


def stack_keys(stack_name: str, session: Any = None) -> dict[str, str]:
    """Each key's value, read from the secret its stack output names."""
    import boto3

    session = session or boto3.Session()
    [stack] = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    secrets = session.client("secretsmanager")
    return {
        key.output: str(secrets.get_secret_value(SecretId=outputs[key.output]).get("SecretString", ""))
        for key in KEYS
        if outputs.get(key.output)
    }


NO_REGION = (
    "No AWS region is set, so the stack {stack} cannot be found. Name the stack's region: "
    "AWS_REGION=us-east-1 make doctor (or AWS_PROFILE, or `aws configure set region`)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack-name", default="credits")
    args = parser.parse_args(argv)
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    try:
        keys = stack_keys(args.stack_name)
    except NoRegionError:
        print(NO_REGION.format(stack=args.stack_name))
        return 2
    except NoCredentialsError:
        print("No AWS credentials found: run `aws configure`, or set AWS_PROFILE, then make doctor again.")
        return 2
    except ClientError as exc:
        # AWS's message names the stack it did not find, or the permission the caller lacks.
        print(f"Cannot read the stack {args.stack_name}: {exc.response.get('Error', {}).get('Message', exc)}")
        return 2
    lines = report(keys, stripe.StripeClient("", max_network_retries=1))
    print("\n".join(lines))
    return 1 if any(not line.startswith("OK") for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())

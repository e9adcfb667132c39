"""The local stack: moto's DynamoDB, the Stripe emulator (or real Stripe in test mode) and the gateway,
wired together the way the deployed pieces are wired on AWS; each function runs in its own container
processes, which stop with the stack."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from dotenv import dotenv_values

from devstack.auth import LocalIssuer, TrustedIssuer
from devstack.balance_stream import BalanceStream, TriggerContext
from devstack.containers import DEFAULT_PER_FUNCTION, Containers, ContainerStartError, start_fork_server
from devstack.drain import DRAIN_TIMEOUT_SECONDS
from devstack.dynamodb import DynamoDBServer
from devstack.gateway import Gateway, GatewayServer, functions, site_csp
from devstack.sigv4 import ServiceCredentials
from devstack.stripe_emulator import StripeEmulator
from devstack.wallet_bus import MailSink, WalletBus
from devstack.webhook_delivery import EventBusSender, WebhookSender
from wallet.stripe_events import ENDPOINT_EVENTS

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "PORT": "3000",
    "CREDIT_BALANCE_TABLE": "CreditBalance",
    "CREDIT_TRANSACTION_TABLE": "CreditTransaction",
    "CREDIT_GUARD_TABLE": "CreditGuard",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CURRENCY": "usd",
    "CREDIT_PACKS": "1000,5000,10000",
    "CUSTOM_AMOUNT_MIN": "500",
    "CUSTOM_AMOUNT_MAX": "100000",
    "TAX_ENABLED": "false",
    "TAX_BEHAVIOR": "exclusive",
    "PROMOTION_CODES_ENABLED": "false",
    "POWERTOOLS_SERVICE_NAME": "credits",
    "POWERTOOLS_METRICS_NAMESPACE": "Credits",
    # One JSON line per thing that happened; DEBUG adds request logs and the libraries' own lines.
    "LOG_LEVEL": "INFO",
    # No X-Ray daemon or CloudWatch here: traces off, metrics not printed over the logs.
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "STRIPE_EMULATOR_SETTLE_SECONDS": "5",
    # webhook, or eventbridge: the emulator's events through a local stand-in for the partner event bus.
    "STRIPE_EVENTS": "webhook",
    "AUTO_TOP_UP_DAILY_LIMIT": "3",
    # true: Checkout sessions ask for a paid invoice (the emulator makes one, with its page and PDF).
    "INVOICES_ENABLED": "false",
    # The wallet's own events go to a local stand-in for its bus (devstack.wallet_bus); a default low
    # balance threshold of 0 sends no balance.low.
    "WALLET_EVENT_BUS": "wallet-events-local",
    "LOW_BALANCE_THRESHOLD": "0",
    # Users' low balance emails come from this address, into a local sink that make run prints.
    "ALERT_SENDER": "alerts@credits.test",
    "PAID_CREDITS_EXPIRE_DAYS": "0",
    "SIGNUP_CREDITS": "0",
    "SIGNUP_CREDITS_EXPIRE_DAYS": "0",
}
WEBHOOK_PATH = "/api/webhooks/stripe"
# The partner event source the local bus stands in for, named as Stripe names theirs.
LOCAL_EVENT_SOURCE = "aws.partner/stripe.com/ed_test_local"
ISSUER = "urn:credits:devstack"


class StackError(Exception):
    """A setting the local stack cannot run with; the message says what to change."""


@dataclass(frozen=True)
class StripeMode:
    secret_key: str | None
    """A test-mode key for real Stripe, or None for the emulator."""
    webhook_secret: str
    webhook_secret_generated: bool
    deliver_twice: bool
    settle_seconds: float
    eventbridge: bool = False
    """Events through the local partner event bus instead of the webhook (STRIPE_EVENTS=eventbridge)."""


class DevStack:
    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings
        self.stripe = _stripe_mode(settings)
        self.dynamodb = DynamoDBServer()
        self.issuer: LocalIssuer | None = None
        self.gateway: GatewayServer | None = None
        self.emulator: StripeEmulator | None = None
        self.sender: WebhookSender | EventBusSender | None = None
        self.containers_per_function = _containers_per_function(settings)
        self.service_credentials = ServiceCredentials.from_settings(settings, kept=self.credentials_file)
        self.balance_stream: BalanceStream | None = None
        # The wallet events function's stream readers: the balance table's, the transactions' and the guards'.
        self.event_streams: list[BalanceStream] = []
        self.wallet_bus = WalletBus(settings["WALLET_EVENT_BUS"])
        self.mail_sink = MailSink(settings.get("ALERT_SENDER", ""))
        self.ready_seconds = 0.0
        self.warm_seconds: list[float] = []

    @classmethod
    def from_environment(cls) -> DevStack:
        """Settings from the environment, then .env, then the local defaults, in that order of precedence."""
        env_file = Path(os.environ.get("ENV_FILE") or ROOT / ".env")
        dotenv = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        settings = DEFAULTS | {k: v for k, v in dotenv.items() if v != ""} | dict(os.environ)
        return cls(settings)

    @property
    def verbose(self) -> bool:
        return self.settings.get("DEVSTACK_VERBOSE") == "1" or self.settings["LOG_LEVEL"].upper() == "DEBUG"

    @property
    def url(self) -> str:
        assert self.gateway is not None, "start() first"
        return self.gateway.url

    def start(self) -> Self:
        started = time.perf_counter()
        port = _port(self.settings["PORT"])
        if port and not _port_free(port):
            raise StackError(
                f"port {port} is in use (is another make run going?): stop it, or set PORT=, as in "
                f"PORT={port + 1} make run"
            )
        _quiet_request_logs(self.verbose)
        start_fork_server()
        self.dynamodb.start()
        self.dynamodb.create_tables(
            {
                "CreditBalanceTable": self.settings["CREDIT_BALANCE_TABLE"],
                "CreditTransactionTable": self.settings["CREDIT_TRANSACTION_TABLE"],
                "CreditGuardTable": self.settings["CREDIT_GUARD_TABLE"],
            }
        )
        self.issuer = self._issuer()
        gateway = Gateway(
            self.issuer,
            self._config_js,
            service_credentials=self.service_credentials,
            region=self.settings["AWS_DEFAULT_REGION"],
        )
        if isinstance(self.issuer, TrustedIssuer):
            # The page fetches tokens from the provider, as the deployed CSP allows (template.yaml).
            gateway.site_csp = site_csp(connect_to=_origin(self.issuer.discovery["token_endpoint"]))
        # Bound before the functions load: the site URL, which Checkout returns to, is its address.
        self.gateway = GatewayServer(gateway, port=port)
        gateway.settle = self.settle
        environment = self._function_environment()
        if self.stripe.secret_key is None:
            if self.stripe.eventbridge:
                environment["STRIPE_EVENT_SOURCE"] = LOCAL_EVENT_SOURCE
                self.sender = EventBusSender(
                    _eventbridge_target, LOCAL_EVENT_SOURCE, ENDPOINT_EVENTS, twice=self.stripe.deliver_twice
                )
            else:
                webhook_url = (
                    self.settings.get("STRIPE_EMULATOR_WEBHOOK_URL") or self.gateway.url + WEBHOOK_PATH
                )
                self.sender = WebhookSender(webhook_url, twice=self.stripe.deliver_twice)
            self.emulator = StripeEmulator(
                webhook_secret=self.stripe.webhook_secret,
                deliver=self.sender,
                settle_after=self.stripe.settle_seconds,
            )
            environment |= {
                "STRIPE_SECRET_KEY": self.emulator.api_key,
                "STRIPE_API_BASE": self.emulator.api_base,
            }
        gateway.origin_secret = environment["ORIGIN_SECRET"]
        # This process reads the settings too: the OpenAPI document imports the functions' modules.
        os.environ.update(environment)
        gateway.functions = Containers(functions(gateway.routes, environment), self.containers_per_function)
        warming = time.perf_counter()
        try:
            self.warm_seconds = [warming - started + seconds for seconds in gateway.load_handlers()]
        except ContainerStartError as exc:
            gateway.close()
            self.dynamodb.stop()
            raise StackError(f"a function could not start; its error:\n{exc}") from None
        # The auto top-up trigger, fed by the balance stream as Lambda's event source mapping feeds it.
        self.balance_stream = BalanceStream.for_trigger(
            self.dynamodb.endpoint_url, self.settings["CREDIT_BALANCE_TABLE"]
        )
        self.balance_stream.start()
        self.event_streams = self._event_streams()
        gateway.wallet_events = self.wallet_bus.events
        gateway.mail = self.mail_sink.mail
        if self.emulator is not None and self.sender is not None:
            self.sender.start()
            self.emulator.start()
        self.gateway.start()
        self._write_run_file(environment)
        self.ready_seconds = time.perf_counter() - started
        return self

    def settle(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until everything queued so far is delivered: the emulator's events to the webhook, then the
        balance stream's records to the auto top-up trigger, round after round until a round finds nothing
        more (a top-up's payment is an event, its deposit a record). `DrainTimeoutError` past `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if self.emulator is not None:
                self.emulator.drain(max(0.0, deadline - time.monotonic()))
            delivered = 0
            for stream in [s for s in (self.balance_stream,) if s is not None] + self.event_streams:
                delivered += stream.drain(max(0.0, deadline - time.monotonic()))
            if not delivered:
                return

    def stop(self) -> None:
        for part in (self.gateway, self.balance_stream, *self.event_streams, self.emulator, self.sender):
            if part is not None:
                part.stop()
        if self.gateway is not None:
            self.gateway.gateway.close()
        self.dynamodb.stop()
        self.run_file.unlink(missing_ok=True)

    @property
    def credentials_file(self) -> Path:
        """The local service key pair, kept between runs beside the run file (.devstack/, git-ignored)."""
        return self.run_file.parent / "service-credentials.json"

    @property
    def run_file(self) -> Path:
        """Where `make audit` finds this stack's DynamoDB and tables while it runs."""
        return Path(self.settings.get("DEVSTACK_RUN_FILE") or ROOT / ".devstack" / "run.json")

    def _write_run_file(self, environment: dict[str, str]) -> None:
        names = (
            "CREDIT_BALANCE_TABLE",
            "CREDIT_TRANSACTION_TABLE",
            "CREDIT_GUARD_TABLE",
            "AWS_DEFAULT_REGION",
        )
        shared = {name: environment[name] for name in names} | {
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        self.run_file.parent.mkdir(parents=True, exist_ok=True)
        self.run_file.write_text(
            json.dumps({"url": self.url, "environment": shared}, indent=2), encoding="utf-8"
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _function_environment(self) -> dict[str, str]:
        """What the functions read, as template.yaml sets it on AWS, pointed at the local parts."""
        names = [
            "CREDIT_BALANCE_TABLE",
            "CREDIT_TRANSACTION_TABLE",
            "CREDIT_GUARD_TABLE",
            "AWS_DEFAULT_REGION",
            "CURRENCY",
            "CREDIT_PACKS",
            "CUSTOM_AMOUNT_MIN",
            "CUSTOM_AMOUNT_MAX",
            "TAX_ENABLED",
            "TAX_BEHAVIOR",
            "PROMOTION_CODES_ENABLED",
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
            "POWERTOOLS_TRACE_DISABLED",
            "POWERTOOLS_METRICS_DISABLED",
            "AUTO_TOP_UP_DAILY_LIMIT",
            "INVOICES_ENABLED",
            "WALLET_EVENT_BUS",
            "LOW_BALANCE_THRESHOLD",
            "ALERT_SENDER",
            "PAID_CREDITS_EXPIRE_DAYS",
            "SIGNUP_CREDITS",
            "SIGNUP_CREDITS_EXPIRE_DAYS",
        ]
        environment = {name: self.settings[name] for name in names}
        environment |= {
            "POWERTOOLS_LOG_LEVEL": self.settings.get("POWERTOOLS_LOG_LEVEL") or self.settings["LOG_LEVEL"],
            "SITE_URL": self.url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint_url,
            # moto takes any credentials; fixed ones keep real ones from ever being sent to it.
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "STRIPE_WEBHOOK_SECRET": self.stripe.webhook_secret,
        }
        if self.stripe.secret_key is not None:
            # Locally one test-mode key serves as the webhook's read-only key too.
            environment["STRIPE_SECRET_KEY"] = environment["STRIPE_READ_KEY"] = self.stripe.secret_key
        # What CloudFront would send the page API: one per run unless given.
        environment["ORIGIN_SECRET"] = self.settings.get("ORIGIN_SECRET", "").strip() or secrets.token_hex(24)
        # make run's one SigV4 principal may spend and adjust, so the README's curl examples work as they are.
        for name in ("SERVICE_CALLER_ARNS", "OPERATOR_ARNS"):
            environment[name] = self.settings.get(name, "").strip() or self.service_credentials.user_arn
        # The fulfilment mark's key (wallet.marker): one per run unless given, like the webhook secret.
        environment["FULFILMENT_KEYS"] = self.settings.get(
            "FULFILMENT_KEYS", ""
        ).strip() or secrets.token_hex(32)
        return environment

    def _event_streams(self) -> list[BalanceStream]:
        """The wallet events function fed as its three event source mappings feed it, publishing to the
        stand-in bus, and the grants' projector fed by the transactions' stream; imported once the
        functions' settings are set, in this process, as the trigger is."""
        from functions.wallet_events import app

        app.bus_client = self.wallet_bus
        app.mail_client = self.mail_sink
        name = "WalletEventsFunction"
        context = TriggerContext(
            name, invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
        )
        streams = [
            BalanceStream(self.dynamodb.endpoint_url, self.settings[table], app.stream_handler, context)
            for table in ("CREDIT_BALANCE_TABLE", "CREDIT_TRANSACTION_TABLE", "CREDIT_GUARD_TABLE")
        ]
        streams.append(self._projector_stream())
        for stream in streams:
            stream.start()
        return streams

    def _projector_stream(self) -> BalanceStream:
        """The grants' projector, the transactions stream's second reader, in batches as its mapping's."""
        from functions.project_grants import app

        name = "ProjectGrantsFunction"
        context = TriggerContext(
            name, invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
        )
        return BalanceStream(
            self.dynamodb.endpoint_url,
            self.settings["CREDIT_TRANSACTION_TABLE"],
            app.stream_handler,
            context,
            batch_size=1000,
        )

    def _issuer(self) -> LocalIssuer:
        """Local tokens, or, with JWT_ISSUER (and JWT_AUDIENCE), an external OpenID provider's."""
        issuer = self.settings.get("JWT_ISSUER", "").strip()
        if not issuer:
            return LocalIssuer(ISSUER)
        audience = self.settings.get("JWT_AUDIENCE", "").strip()
        if not audience:
            raise StackError("JWT_ISSUER needs JWT_AUDIENCE, the client id the provider issues tokens for")
        try:
            return TrustedIssuer.discover(issuer, audience)
        except (OSError, ValueError) as exc:
            raise StackError(f"cannot use the OpenID provider {issuer}: {exc}") from exc

    def _auth_config(self) -> dict[str, Any]:
        if not isinstance(self.issuer, TrustedIssuer):
            return {"mode": "local", "tokenUrl": "/local/token"}
        discovery = self.issuer.discovery
        # What deploy/publish.py writes for a stack whose JwtIssuer is set.
        return {
            "mode": "oidc",
            "issuer": self.issuer.issuer,
            "clientId": self.issuer.audience,
            "authorizeUrl": discovery["authorization_endpoint"],
            "tokenUrl": discovery["token_endpoint"],
            "logoutUrl": discovery.get("end_session_endpoint", ""),
            "logout": "oidc",
            "redirectUri": f"{self.url}/dashboard/credits/",
            "scopes": ["openid", "email"],
        }

    def _config_js(self) -> str:
        config: dict[str, Any] = {
            "apiBase": "/api",
            "auth": self._auth_config(),
            "currency": self.settings["CURRENCY"],
            "stripe": "emulator" if self.stripe.secret_key is None else "test",
        }
        return f"export default Object.freeze({json.dumps(config, indent=2)});\n"

    def _service_lines(self, url: str) -> list[str]:
        """The AWS_IAM routes' local credentials, and a signed call with curl."""
        credentials = self.service_credentials
        region = self.settings["AWS_DEFAULT_REGION"]
        secret = (
            credentials.secret_access_key if credentials.generated else "$DEVSTACK_SERVICE_SECRET_ACCESS_KEY"
        )
        kept = (
            [
                f"             the same pair every run (kept in {_shown(self.credentials_file)}; "
                "delete it for a new one)"
            ]
            if credentials.generated
            else []
        )
        return [
            f"  Services   SigV4 on AWS_IAM routes: access key {credentials.access_key_id}, secret {secret}",
            *kept,
            f'             curl --aws-sigv4 "aws:amz:{region}:execute-api" '
            f'--user "{credentials.access_key_id}:{secret}" {url}/api/users/alice/balance',
        ]

    def banner(self) -> str:
        url = self.url
        if self.emulator is not None:
            stripe = [
                f"  Stripe     local Checkout emulator at {self.emulator.api_base} (no real payments)",
                f"             events go to {self.sender.destination if self.sender else url + WEBHOOK_PATH}"
                + (", each twice" if self.stripe.deliver_twice else ""),
            ]
        else:
            stripe = [
                "  Stripe     real Stripe, test mode (STRIPE_SECRET_KEY)",
                "             forward its events with",
                f"             stripe listen --forward-to localhost:{url.rsplit(':', 1)[1]}{WEBHOOK_PATH}",
            ]
        if self.stripe.webhook_secret_generated:
            stripe.append(f"             webhook signing secret for this run: {self.stripe.webhook_secret}")
        return "\n".join(
            [
                "Credits is running locally.",
                f"  Page       {url}/dashboard/credits/",
                f"  API        {url}/api",
                *stripe,
                f"  DynamoDB   moto at {self.dynamodb.endpoint_url} (in memory: gone when this stops)",
                f'  Sign in    curl -s -X POST {url}/local/token -d \'{{"userId": "alice"}}\'',
                *self._service_lines(url),
                f"  Functions  {len(self.warm_seconds)} in processes of their own, one event at a time each, "
                f"up to {self.containers_per_function} per function",
                f"             first warm at {min(self.warm_seconds, default=0):.1f} s, "
                f"all warm at {max(self.warm_seconds, default=0):.1f} s",
                f"Ready in {self.ready_seconds:.1f} s at {url} — Ctrl-C stops everything.",
            ]
        )


def _shown(path: Path) -> str:
    """A path as a person in the repository would type it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _containers_per_function(settings: dict[str, str]) -> int:
    value = settings.get("DEVSTACK_CONTAINERS_PER_FUNCTION", str(DEFAULT_PER_FUNCTION)).strip()
    if not value.isdigit() or not 1 <= int(value) <= 32:
        raise StackError(f"DEVSTACK_CONTAINERS_PER_FUNCTION must be a number from 1 to 32, not {value!r}")
    return int(value)


def _stripe_mode(settings: dict[str, str]) -> StripeMode:
    key = settings.get("STRIPE_SECRET_KEY", "").strip()
    if key.startswith(("sk_live_", "rk_live_")):
        raise StackError(
            "STRIPE_SECRET_KEY is a live key; the local stack takes test-mode keys (sk_test_...) only"
        )
    if key and not key.startswith(("sk_test_", "rk_test_")):
        raise StackError("STRIPE_SECRET_KEY must be a test-mode key (sk_test_...), or empty for the emulator")
    webhook_secret = settings.get("STRIPE_WEBHOOK_SECRET", "").strip()
    try:
        settle_seconds = float(settings["STRIPE_EMULATOR_SETTLE_SECONDS"])
    except ValueError:
        raise StackError("STRIPE_EMULATOR_SETTLE_SECONDS must be a number of seconds") from None
    events = settings.get("STRIPE_EVENTS", "webhook").strip() or "webhook"
    if events not in ("webhook", "eventbridge"):
        raise StackError(f"STRIPE_EVENTS must be webhook or eventbridge, not {events!r}")
    if events == "eventbridge" and key:
        raise StackError(
            "STRIPE_EVENTS=eventbridge runs with the emulator only: leave STRIPE_SECRET_KEY empty"
        )
    return StripeMode(
        eventbridge=events == "eventbridge",
        secret_key=key or None,
        webhook_secret=webhook_secret or "whsec_local_" + secrets.token_hex(16),
        webhook_secret_generated=not webhook_secret,
        deliver_twice=settings.get("STRIPE_EMULATOR_DELIVER_TWICE", "") in ("1", "true", "yes"),
        settle_seconds=settle_seconds,
    )


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise StackError(f"PORT must be a port number, not {value!r}")
    return int(value)


def _port_free(port: int) -> bool:
    """Whether the gateway can listen on `port`: asked before anything starts, so a busy port is one line."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the gateway binds: a port left in TIME_WAIT by a stack that just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _quiet_request_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    level = logging.DEBUG if verbose else logging.WARNING
    quiet = ("werkzeug", "pynamodb", "stripe", "devstack.gateway", "devstack.stripe_emulator")
    for name in (*quiet, "devstack.webhook_delivery"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        # The auto top-up trigger runs in this process (balance_stream), and metrics are not published
        # locally, so each of its invocations would warn that it had none to publish.
        warnings.filterwarnings("ignore", message="No application metrics to publish")


def _eventbridge_target(envelope: dict[str, Any]) -> object:
    """The EventBridge function, as the rule invokes it; imported once the functions' settings are set,
    in this process, as the balance stream's trigger is."""
    from devstack.containers import LambdaContext
    from functions.stripe_webhook.app import eventbridge_handler

    return eventbridge_handler(envelope, LambdaContext("StripeEventsFunction", 512))

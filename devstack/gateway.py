"""The local API Gateway: the APIs of template.yaml on 127.0.0.1 (the page's HTTP API and the service
REST API, whose function gets payload format 1.0 events), calling the real handlers.

Routes come from template.yaml, so there is no second copy of them. Each request becomes the payload
format 2.0 event AWS sends, after the route's authorizer has checked it (a JWT, or a SigV4 signature for
AWS_IAM routes), and goes to one of its function's containers (devstack.containers): processes that
each serve one event at a time, as Lambda's do. Tests may run the handlers in this process instead, one
request at a time per function. Everything else is static: the site from static_site/, /config.js,
which tells the page where the API is, and /api/openapi.json, the API's OpenAPI document. Local only:
`POST /local/token` signs a user in, and `POST /local/settle?timeout=60` answers once the stack has
delivered everything it queued (`DevStack.settle`), or 504 naming what it has not, and
`GET /local/wallet-events` lists the wallet's events its stand-in bus took and `GET /local/mail` the
emails its mail sink took (devstack.wallet_bus).
Requests whose Host is not the stack's own (127.0.0.1:PORT or localhost:PORT) are refused 421, against
DNS rebinding.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import mimetypes
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.auth import LocalIssuer, UnauthorizedError
from devstack.containers import (
    ContainerCrashedError,
    Containers,
    ContainerStartError,
    Function,
    FunctionError,
    FunctionTimeoutError,
    LambdaContext,
)
from devstack.drain import DRAIN_TIMEOUT_SECONDS, DrainTimeoutError
from devstack.serving import BackgroundServer
from devstack.sigv4 import ForbiddenError, ServiceCredentials, verify
from devstack.template import load, resources

ROOT = Path(__file__).resolve().parent.parent
STATIC_SITE = ROOT / "static_site"
OPENAPI_PATH = "/api/openapi.json"
# API Gateway's limit on a request body.
MAX_BODY_BYTES = 10 * 1024 * 1024
SETTLE_PATH = "/local/settle"
# The longest a `POST /local/settle?timeout=...` may wait: a request, not a job.
MAX_SETTLE_SECONDS = 600.0


# The policy CloudFront adds to the deployed site (template.yaml), so a page that breaks it fails here too.
def site_csp(connect_to: str = "") -> str:
    """The deployed site's policy; `connect_to` is the OpenID token endpoint's origin, when there is one."""
    connect = f"'self' {connect_to}".strip()
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    )


SITE_CSP = site_csp()
# Content types API Gateway passes to Lambda as text; anything else arrives base64-encoded.
TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))")

_log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    module: str
    handler: str
    authorization: str
    """The route's AuthorizationType: NONE, JWT or AWS_IAM."""
    memory_mb: int
    pattern: re.Pattern[str] = field(compare=False)
    timeout_seconds: float = 10
    rest: bool = False
    """A route of a REST API (the service API): its function gets the payload format 1.0 event."""

    @property
    def authorized(self) -> bool:
        return self.authorization != "NONE"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters, percent-decoded once as API Gateway hands them to Lambda (UTF-8), if
        this route serves `method path`; matched on the path as sent, so an encoded slash stays inside
        its parameter."""
        found = self.pattern.fullmatch(path) if method == self.method else None
        return {name: unquote(value) for name, value in found.groupdict().items()} if found else None


def routes() -> list[Route]:
    """Every route of template.yaml's APIs (the HTTP API's routes, the REST API's `Api` events), with the
    function and module that serve it."""
    defaults = load().get("Globals", {}).get("Function", {})
    functions = resources("AWS::Serverless::Function")
    integrations = resources("AWS::ApiGatewayV2::Integration")
    rest_apis = resources("AWS::Serverless::Api")
    found = [
        _rest_route(function, properties, event["Properties"], rest_apis, defaults)
        for function, resource in functions.items()
        for properties in [resource["Properties"]]
        for event in properties.get("Events", {}).values()
        if event["Type"] == "Api"
    ]
    for resource in resources("AWS::ApiGatewayV2::Route").values():
        spec = resource["Properties"]
        method, path = spec["RouteKey"].split(" ", 1)
        # Target is !Sub "integrations/${SomeIntegration}"; its IntegrationUri is !Ref SomeFunction.Alias.
        integration = re.fullmatch(r"integrations/\$\{(\w+)\}", spec["Target"]["Fn::Sub"])
        assert integration, f"unexpected route target {spec['Target']}"
        function = integrations[integration[1]]["Properties"]["IntegrationUri"]["Ref"].split(".")[0]
        properties = functions[function]["Properties"]
        module_file, handler = str(properties.get("Handler", defaults.get("Handler"))).rsplit(".", 1)
        found.append(
            Route(
                method=method,
                path=path,
                function=function,
                module=".".join([*Path(str(properties["CodeUri"]).strip("/")).parts, module_file]),
                handler=handler,
                authorization=str(spec.get("AuthorizationType", "NONE")),
                memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
                pattern=route_pattern(path),
                timeout_seconds=float(properties.get("Timeout", defaults.get("Timeout", 3))),
            )
        )
    return found


def _rest_route(
    function: str,
    properties: dict[str, Any],
    event: dict[str, Any],
    rest_apis: dict[str, dict[str, Any]],
    defaults: dict[str, Any],
) -> Route:
    api = rest_apis[event["RestApiId"]["Ref"]]["Properties"]
    module_file, handler = str(properties.get("Handler", defaults.get("Handler"))).rsplit(".", 1)
    return Route(
        method=str(event["Method"]).upper(),
        path=str(event["Path"]),
        function=function,
        module=".".join([*Path(str(properties["CodeUri"]).strip("/")).parts, module_file]),
        handler=handler,
        authorization=str(api.get("Auth", {}).get("DefaultAuthorizer", "NONE")),
        memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
        pattern=route_pattern(str(event["Path"])),
        timeout_seconds=float(properties.get("Timeout", defaults.get("Timeout", 3))),
        rest=True,
    )


def route_pattern(path: str) -> re.Pattern[str]:
    """`/api/users/{userId}/spend` as a pattern whose groups are the path parameters."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def functions(routes_: list[Route], environment: dict[str, str]) -> list[Function]:
    """The functions behind the routes, once each, with the environment their containers get."""
    by_name = {
        route.function: Function(
            route.function,
            route.module,
            route.handler,
            route.memory_mb,
            route.timeout_seconds,
            environment,
        )
        for route in routes_
    }
    return list(by_name.values())


class InProcessFunctions:
    """The handlers imported into this process, one request at a time per function: for tests that reach
    into the gateway's own key. Two functions still run at once here, so Powertools' class-level
    current event is shared between them; the dev stack uses containers instead."""

    def __init__(self, routes_: list[Route]) -> None:
        self._routes = {route.function: route for route in routes_}
        self._handlers: dict[str, Handler] = {}
        self._locks = {name: threading.Lock() for name in self._routes}

    def warm(self) -> list[float]:
        for name in self._routes:
            self._handler(name)
        return []

    def _handler(self, function: str) -> Handler:
        if function not in self._handlers:
            route = self._routes[function]
            self._handlers[function] = getattr(importlib.import_module(route.module), route.handler)
        return self._handlers[function]

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        route = self._routes[function]
        handler = self._handler(function)
        with self._locks[function]:
            try:
                return handler(event, LambdaContext(function, route.memory_mb))
            except Exception as exc:
                raise FunctionError(str(exc)) from exc

    def close(self) -> None:
        """Nothing to stop: the handlers live in this process."""


@dataclass
class Request:
    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()
    )


class Gateway:
    def __init__(
        self,
        issuer: LocalIssuer,
        config_js: Callable[[], str],
        routes_: list[Route] | None = None,
        static_site: Path = STATIC_SITE,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        containers: Containers | None = None,
        service_credentials: ServiceCredentials | None = None,
        region: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.routes = routes_ if routes_ is not None else routes()
        self._config_js = config_js
        self._static_site = static_site.resolve()
        self._on_event = on_event
        self.functions: Containers | InProcessFunctions = (
            containers if containers is not None else InProcessFunctions(self.routes)
        )
        self.service_credentials = service_credentials or ServiceCredentials.from_settings(os.environ)
        # What CloudFront adds to every request it sends the page API (template.yaml, X-Origin-Verify).
        self.origin_secret = os.environ.get("ORIGIN_SECRET", "")
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.site_csp = SITE_CSP
        # The stack's `settle(timeout)`, behind `POST /local/settle`; None: no such route.
        self.settle: Callable[[float], None] | None = None
        # The wallet's events the stand-in bus accepted, behind `GET /local/wallet-events`; None: no route.
        self.wallet_events: Callable[[], list[dict[str, Any]]] | None = None
        # The emails the stand-in for SES took, behind `GET /local/mail`; None: no route.
        self.mail: Callable[[], list[dict[str, Any]]] | None = None

    def load_handlers(self) -> list[float]:
        """Make every function ready now, so a settings error shows at start rather than on a first
        request; the seconds until each was ready."""
        return self.functions.warm()

    def close(self) -> None:
        self.functions.close()

    def respond(self, request: Request) -> Response:
        url = urlsplit(request.target)
        if url.path == "/local/token" and request.method == "POST":
            return self._token(request)
        if url.path == SETTLE_PATH and request.method == "POST" and self.settle is not None:
            return self._settle(self.settle, url.query)
        if url.path == "/local/wallet-events" and request.method == "GET" and self.wallet_events is not None:
            return json_response(HTTPStatus.OK, {"events": self.wallet_events()})
        if url.path == "/local/mail" and request.method == "GET" and self.mail is not None:
            return json_response(HTTPStatus.OK, {"mail": self.mail()})
        if url.path == OPENAPI_PATH and request.method in ("GET", "HEAD"):
            return self._openapi()
        for route in self.routes:
            path_parameters = route.match(request.method, url.path)
            if path_parameters is not None:
                return self._invoke(route, path_parameters, request)
        if url.path.startswith("/api/"):
            return json_response(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
        if request.method not in ("GET", "HEAD"):
            return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"message": "Method Not Allowed"})
        return self._static(url.path)

    def _invoke(self, route: Route, path_parameters: dict[str, str], request: Request) -> Response:
        claims = iam = None
        if route.authorization == "AWS_IAM":
            try:
                principal = verify(
                    request.method,
                    request.target,
                    {name.lower(): value for name, value in request.headers.items()},
                    request.body,
                    self.service_credentials,
                    self.region,
                )
            except ForbiddenError as exc:
                # Said even when quiet: a 403 alone does not tell a person which of their keys is stale.
                _log.warning(
                    "403 %s %s: %s (sign with the key pair make run printed, %s)",
                    request.method,
                    route.path,
                    exc,
                    self.service_credentials.access_key_id,
                )
                # The IAM authorizer's own answer, before any function runs.
                return json_response(HTTPStatus.FORBIDDEN, {"message": "Forbidden"})
            iam = principal.iam_authorizer()
        elif route.authorized:
            try:
                claims = self.issuer.verify(request.headers.get("authorization"))
            except UnauthorizedError as exc:
                _log.info("401 %s %s: %s", request.method, route.path, exc)
                # The JWT authorizer's own answer, before any function runs.
                return json_response(
                    HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"}, {"www-authenticate": "Bearer"}
                )
        if len(request.body) > MAX_BODY_BYTES:
            return json_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "Request Entity Too Large"})
        if route.authorization != "AWS_IAM":
            # As CloudFront does: its header replaces whatever the client sent under that name.
            headers = {k: v for k, v in request.headers.items() if k.lower() != "x-origin-verify"}
            request = replace(request, headers={**headers, "x-origin-verify": self.origin_secret})
        if route.rest:
            event = rest_api_event(route, path_parameters, request, iam)
        else:
            event = api_event(route, path_parameters, request, claims, iam=iam)
        if self._on_event:
            self._on_event(event)
        try:
            result = self.functions.invoke(route.function, event)
        except (FunctionError, FunctionTimeoutError, ContainerStartError) as exc:
            # Lambda reports an error, a timeout or a failed init; the HTTP API answers them all 500.
            _log.error("%s failed:\n%s", route.function, exc)
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "Internal Server Error"})
        except ContainerCrashedError as exc:
            _log.error("%s", exc)
            return json_response(HTTPStatus.BAD_GATEWAY, {"message": "Bad Gateway"})
        return lambda_response(result)

    def _token(self, request: Request) -> Response:
        try:
            user_id = json.loads(request.body or b"{}").get("userId")
            token = self.issuer.issue(user_id if isinstance(user_id, str) else "")
        except (ValueError, AttributeError) as exc:
            message = 'Send {"userId": "alice"}: 1 to 64 letters, digits or _.@-'
            _log.info("token refused: %s", exc)
            return json_response(
                HTTPStatus.BAD_REQUEST, {"error": {"code": "invalid_user", "message": message}}
            )
        return json_response(HTTPStatus.OK, {"token": token, "userId": user_id})

    def _settle(self, settle: Callable[[float], None], query: str) -> Response:
        """Wait until the stack delivered what it queued (`DevStack.settle`): 200, or 504 naming what not."""
        raw = dict(parse_qsl(query, keep_blank_values=True)).get("timeout", str(DRAIN_TIMEOUT_SECONDS))
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= MAX_SETTLE_SECONDS:
            message = f"timeout must be a number of seconds above 0 and at most {MAX_SETTLE_SECONDS:g}"
            return json_response(
                HTTPStatus.BAD_REQUEST, {"error": {"code": "invalid_timeout", "message": message}}
            )
        try:
            settle(timeout)
        except DrainTimeoutError as exc:
            return json_response(
                HTTPStatus.GATEWAY_TIMEOUT, {"error": {"code": "not_settled", "message": str(exc)}}
            )
        return json_response(HTTPStatus.OK, {"settled": True})

    def _openapi(self) -> Response:
        # Imported here: making the document loads pydantic, which the functions themselves never do.
        from devstack.openapi import document

        body = json.dumps(document(route.module for route in self.routes)).encode()
        return Response(
            HTTPStatus.OK, {"Content-Type": "application/json", "Cache-Control": "no-store"}, body
        )

    def _static(self, path: str) -> Response:
        if path == "/":
            return Response(HTTPStatus.FOUND, {"Location": "/dashboard/credits/"}, b"")
        if path == "/config.js":
            return Response(
                HTTPStatus.OK,
                {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-store"},
                self._config_js().encode(),
            )
        file = (self._static_site / path.lstrip("/")).resolve()
        if not file.is_relative_to(self._static_site):
            return Response(HTTPStatus.NOT_FOUND, {"Content-Type": "text/plain"}, b"Not Found")
        if file.is_dir():
            if not path.endswith("/"):
                return Response(HTTPStatus.MOVED_PERMANENTLY, {"Location": path + "/"}, b"")
            file = file / "index.html"
        if not file.is_file():
            return Response(HTTPStatus.NOT_FOUND, {"Content-Type": "text/plain"}, b"Not Found")
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        headers = {
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "Content-Security-Policy": self.site_csp,
        }
        return Response(HTTPStatus.OK, headers, file.read_bytes())


def rest_api_event(
    route: Route, path_parameters: dict[str, str], request: Request, iam: dict[str, Any] | None
) -> dict[str, Any]:
    """The API Gateway REST API proxy event (payload format 1.0) for one request, as the service API
    sends it: the signer in `requestContext.identity`."""
    url = urlsplit(request.target)
    now = datetime.now(UTC)
    headers = {name.lower(): value for name, value in request.headers.items()}
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    signer = iam or {}
    identity = {
        "accessKey": signer.get("accessKey"),
        "accountId": signer.get("accountId"),
        "caller": signer.get("callerId"),
        "cognitoAuthenticationProvider": None,
        "cognitoAuthenticationType": None,
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "principalOrgId": None,
        "sourceIp": request.source_ip,
        "user": signer.get("userId"),
        "userAgent": headers.get("user-agent", ""),
        "userArn": signer.get("userArn"),
    }
    host = headers.get("host", "127.0.0.1")
    event: dict[str, Any] = {
        "resource": route.path,
        "path": url.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "extendedRequestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
            "httpMethod": request.method,
            "identity": identity,
            "path": f"/live{url.path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": "live",
        },
        "body": None,
        "isBase64Encoded": False,
    }
    if request.body:
        event["body"], event["isBase64Encoded"] = _body(request.body, headers)
    return event


def _body(body: bytes, headers: dict[str, str]) -> tuple[str, bool]:
    """A request body as API Gateway hands it on: text as it is, anything else (or bytes that are not
    UTF-8) base64-encoded, with whether it was."""
    if TEXT_TYPES.match(headers.get("content-type", "").lower()) is not None:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode(), True


def api_event(
    route: Route,
    path_parameters: dict[str, str],
    request: Request,
    claims: dict[str, str] | None,
    *,
    iam: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for one request; its path is decoded once, as an
    HTTP API delivers it."""
    url = urlsplit(request.target)
    now = datetime.now(UTC)
    headers = {name.lower(): value for name, value in request.headers.items()}
    host = headers.get("host", "127.0.0.1")
    context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".")[0],
        "http": {
            "method": request.method,
            "path": unquote(url.path),
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
        "routeKey": f"{route.method} {route.path}",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if iam is not None:
        context["authorizer"] = {"iam": iam}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": context["routeKey"],
        "rawPath": unquote(url.path),
        "rawQueryString": url.query,
    }
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    if query:
        # Repeated parameters arrive joined by commas, as API Gateway joins them.
        event["queryStringParameters"] = {name: ",".join(values) for name, values in query.items()}
    if path_parameters:
        event["pathParameters"] = path_parameters
    event["requestContext"] = context
    if request.body:
        event["body"], event["isBase64Encoded"] = _body(request.body, headers)
    else:
        event["isBase64Encoded"] = False
    return event


def lambda_response(result: dict[str, Any]) -> Response:
    """The HTTP response API Gateway makes of a function's payload format 2.0 result."""
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    return Response(int(result.get("statusCode", 200)), headers, raw, list(result.get("cookies") or []))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        super().__init__(address, _RequestHandler)
        self.gateway = gateway
        port = self.server_address[1]
        self.own_hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})


def wrong_host(host: str | None, own_hosts: frozenset[str]) -> Response | None:
    """421 unless the request names this server: a page on another site whose name was rebound to
    127.0.0.1 (DNS rebinding) sends its own name as Host, and must not reach the stack's API."""
    if host is not None and host.strip().lower() in own_hosts:
        return None
    message = f"This server answers only to {' or '.join(sorted(own_hosts))}, not Host {host!r}."
    return json_response(
        HTTPStatus.MISDIRECTED_REQUEST, {"error": {"code": "wrong_host", "message": message}}
    )


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "credits-devstack"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        request = Request(self.command, self.path, headers, body, self.client_address[0])
        try:
            response = wrong_host(headers.get("host"), self.server.own_hosts) or self.server.gateway.respond(
                request
            )
        except Exception:
            _log.exception("gateway error")
            response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "Internal Server Error"})
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)


class GatewayServer(BackgroundServer):
    """Serves a Gateway on 127.0.0.1; `stop()` ends it."""

    def __init__(self, gateway: Gateway, port: int = 0) -> None:
        self.gateway = gateway
        super().__init__(_Server(("127.0.0.1", port), gateway), "gateway")

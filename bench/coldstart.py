"""Cold start and peak memory: each handler's imports and first request in fresh processes, side by side
with the libraries it truly needs making the same calls, and with a naive handler that imports everything.

The budget is judged on the built artifact (`make build`), laid out and run as Lambda runs it
(`bench.artifact`); the same handlers are also measured from the source tree and .venv, where `make run`
and the tests run them."""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import random
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ulid import ULID

from bench import artifact, environment
from bench.local import Servers, median, percentile
from bench.probe import PREFIX
from bench.report import Row, within

SECTION = "Cold start, built artifact (imports + first request, fresh process, as Lambda runs it)"
DEV_SECTION = "Cold start, development environment (source tree and .venv; imports + first request)"
SIZE_SECTION = "Size of the built artifact (zip -9)"
# What Lambda accepts: a function and its layers, unzipped.
UNZIPPED_LIMIT_MB = 250
MEMORY_SECTION = "Peak memory (VmHWM after imports + first request, fresh process)"
FUNCTIONS = ("get_balance", "stripe_webhook", "create_checkout")
# What each case runs: where, and which variant of bench.probe.
CASES = {
    "handler": ("with bytecode", "handler"),
    "libraries": ("with bytecode", "libraries"),
    "no bytecode": ("without bytecode", "handler"),
    "snapstart": ("with bytecode", "snapstart"),
    "dev handler": ("development", "handler"),
    "dev libraries": ("development", "libraries"),
    "dev naive": ("development", "naive"),
}
EXPECTED_STATUS = {"get_balance": 200, "stripe_webhook": 200, "create_checkout": 201}
BUDGET = 1.10
LIMIT_MB = environment.LAMBDA_SMALLEST_MB
RUNS = 9
USER = "bench-cold"
# What a shell passes on; everything else the process sees is set here, as Lambda sets it.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


@dataclass(frozen=True)
class Probe:
    imports_ms: float
    first_request_ms: float
    imports_cpu_ms: float
    first_request_cpu_ms: float
    snapshot_cpu_ms: float
    restore_cpu_ms: float
    peak_mb: float
    modules: int
    dynamodb_clients: int

    @property
    def total_ms(self) -> float:
        return self.imports_ms + self.first_request_ms

    @property
    def total_cpu_ms(self) -> float:
        return self.imports_cpu_ms + self.first_request_cpu_ms


@dataclass(frozen=True)
class Summary:
    """Medians over the runs of one function and case, and the quartiles of its CPU time."""

    total_ms: float
    total_cpu_ms: float
    total_cpu_quartiles: tuple[float, float]
    imports_cpu_ms: float
    first_request_ms: float
    first_request_cpu_ms: float
    first_request_cpu_quartiles: tuple[float, float]
    snapshot_cpu_ms: float
    restore_cpu_ms: float
    peak_mb: float
    modules: int
    dynamodb_clients: int

    @classmethod
    def of(cls, probes: list[Probe]) -> Summary:
        def quartiles(values: list[float]) -> tuple[float, float]:
            return percentile(values, 0.25), percentile(values, 0.75)

        return cls(
            median([p.total_ms for p in probes]),
            median([p.total_cpu_ms for p in probes]),
            quartiles([p.total_cpu_ms for p in probes]),
            median([p.imports_cpu_ms for p in probes]),
            median([p.first_request_ms for p in probes]),
            median([p.first_request_cpu_ms for p in probes]),
            quartiles([p.first_request_cpu_ms for p in probes]),
            median([p.snapshot_cpu_ms for p in probes]),
            median([p.restore_cpu_ms for p in probes]),
            median([p.peak_mb for p in probes]),
            round(median([p.modules for p in probes])),
            max(p.dynamodb_clients for p in probes),
        )

    def describe(self) -> str:
        low, high = self.total_cpu_quartiles
        return (
            f"CPU {self.total_cpu_ms:.0f} ms, quartiles {low:.0f}-{high:.0f} "
            f"({self.imports_cpu_ms:.0f} import + {self.first_request_cpu_ms:.0f} request), "
            f"wall {self.total_ms:.0f} ms"
        )

    def describe_first_request(self) -> str:
        low, high = self.first_request_cpu_quartiles
        return (
            f"CPU {self.first_request_cpu_ms:.1f} ms, quartiles {low:.1f}-{high:.1f}, "
            f"wall {self.first_request_ms:.1f} ms"
        )


@dataclass(frozen=True)
class Place:
    """Where a probe runs: the interpreter's options, its sys.path and the handler's module name."""

    cwd: Path
    options: tuple[str, ...]
    path: Callable[[str], list[str]]
    module: Callable[[str], str]
    task_root: Callable[[str], Path]
    env: dict[str, str]
    compile_product: bool = False


def development(prefix: str) -> Place:
    """The source tree and .venv, with a bytecode cache of the probes' own."""
    return Place(
        cwd=environment.ROOT,
        options=(),
        path=lambda _: [str(environment.ROOT / "layers/shared"), str(environment.ROOT)],
        module=lambda function: f"functions.{function}.app",
        task_root=lambda function: environment.ROOT / "functions" / function,
        env={"PYTHONPYCACHEPREFIX": prefix},
        compile_product=True,
    )


def built(layout: artifact.Layout, code: artifact.Artifact) -> Place:
    """The artifact: no site-packages (-S), sys.path as Lambda's, nothing written."""
    return Place(
        cwd=layout.harness,
        options=("-S",),
        path=lambda function: code.sys_path(function, layout.runtime),
        module=lambda _: "app",
        task_root=code.task,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )


@contextmanager
def bytecode_cache() -> Iterator[str]:
    """A bytecode cache of the probes' own, so that they never write into the tree and never compile the
    product at a cold start, even if its sources change while the benchmark runs."""
    prefix = tempfile.mkdtemp(prefix="bench-pycache-")
    try:
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def compile_product(prefix: str) -> None:
    sources = [
        *(environment.ROOT / "layers/shared/wallet").glob("*.py"),
        *(environment.ROOT / "functions").glob("*/*.py"),
    ]
    saved, sys.pycache_prefix = sys.pycache_prefix, prefix
    try:
        for source in sources:
            py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), quiet=2)
    finally:
        sys.pycache_prefix = saved


def run(servers: Servers) -> tuple[list[Row], list[str]]:
    with bytecode_cache() as prefix, artifact.laid_out(FUNCTIONS) as layout:
        places = {
            "with bytecode": built(layout, layout.with_bytecode),
            "without bytecode": built(layout, layout.without_bytecode),
            "development": development(prefix),
        }
        files = layout.files()
        rows, findings = _run(servers, places)
        if layout.files() != files:
            raise RuntimeError("the probes wrote into the artifact, which is read-only on Lambda")
        findings.append(f"The artifact's layer: {layout.layer_note}.")
        return [*rows, *_sizes()], findings


def _sizes() -> list[Row]:
    rows = []
    sizes = {
        name: (artifact.size(tree, bytecode=True), artifact.size(tree, bytecode=False))
        for name, tree in artifact.built_trees().items()
    }
    layer = next(iter(sizes))
    for name, (with_bytecode, without) in sizes.items():
        deployed = with_bytecode.unzipped + (sizes[layer][0].unzipped if name != layer else 0)
        rows.append(
            Row(
                SIZE_SECTION,
                name,
                f"{_bytes(with_bytecode.zipped)} zipped, {_bytes(with_bytecode.unzipped)} unzipped",
                f"without bytecode: {_bytes(without.zipped)} zipped, {_bytes(without.unzipped)} unzipped",
                f"bytecode adds {_bytes(with_bytecode.zipped - without.zipped)} zipped "
                f"({with_bytecode.zipped / without.zipped:.2f}x)",
                f"with the layer <= {UNZIPPED_LIMIT_MB} MB unzipped",
                deployed / 1e6 <= UNZIPPED_LIMIT_MB,
            )
        )
    return rows


def _bytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def _run(servers: Servers, places: dict[str, Place]) -> tuple[list[Row], list[str]]:
    from wallet import ledger

    servers.fresh()
    for amount in (1000, 5000, 10000):
        ledger.add_credits(USER, amount, source="stripe_payment", payment_id=str(ULID()), currency="usd")
    probes: dict[tuple[str, str], list[Probe]] = defaultdict(list)
    order = random.Random(20261126)
    functions, cases = list(FUNCTIONS), list(CASES)
    # The first run fills the page cache and the development bytecode cache, and is not counted.
    for run_number in range(RUNS + 1):
        order.shuffle(functions)
        for function in functions:
            # A function's cases back to back, so that they share the machine's load of the moment.
            order.shuffle(cases)
            for case in cases:
                where, variant = CASES[case]
                probe = _probe(servers, places[where], function, variant)
                if run_number:
                    probes[function, case].append(probe)

    def summary(function: str, case: str) -> Summary:
        return Summary.of(probes[function, case])

    def spread(function: str, case: str, against: str, field: str = "total_cpu_ms") -> str:
        ratios = _paired_ratios(probes[function, case], probes[function, against], field)
        return f"runs' quartiles {percentile(ratios, 0.25):.2f}-{percentile(ratios, 0.75):.2f}"

    rows: list[Row] = []
    findings: list[str] = []
    for function in FUNCTIONS:
        handler, libraries = summary(function, "handler"), summary(function, "libraries")
        cpu = handler.total_cpu_ms / libraries.total_cpu_ms
        wall = handler.total_ms / libraries.total_ms
        rows.append(
            Row(
                SECTION,
                f"{function}: handler",
                handler.describe(),
                f"libraries only: {libraries.describe()}",
                f"{cpu:.2f}x CPU ({spread(function, 'handler', 'libraries')}), {wall:.2f}x wall",
                f"<= {BUDGET:.2f}x CPU",
                within(cpu, BUDGET),
            )
        )
        bare = summary(function, "no bytecode")
        rows.append(
            Row(
                SECTION,
                f"{function}: handler, artifact without bytecode",
                bare.describe(),
                f"with bytecode: CPU {handler.total_cpu_ms:.0f} ms",
                f"with/without {handler.total_cpu_ms / bare.total_cpu_ms:.2f}x CPU "
                f"({spread(function, 'handler', 'no bytecode')}), "
                f"{handler.total_ms / bare.total_ms:.2f}x wall",
            )
        )
        restored = summary(function, "snapstart")
        rows.append(
            Row(
                SECTION,
                f"{function}: first request after a SnapStart restore",
                f"with the hooks: {restored.describe_first_request()}",
                f"without: {handler.describe_first_request()}; the hooks took CPU "
                f"{restored.snapshot_cpu_ms:.0f} ms before the snapshot, {restored.restore_cpu_ms:.2f} ms "
                "after the restore",
                f"{restored.first_request_cpu_ms / handler.first_request_cpu_ms:.2f}x CPU "
                f"({spread(function, 'snapstart', 'handler', 'first_request_cpu_ms')})",
            )
        )
        findings.append(_diagnosis(servers, places["with bytecode"], function, handler, libraries, cpu))
    for function in FUNCTIONS:
        handler, libraries = summary(function, "dev handler"), summary(function, "dev libraries")
        naive = summary(function, "dev naive")
        rows.append(
            Row(
                DEV_SECTION,
                f"{function}: handler",
                handler.describe(),
                f"libraries only: {libraries.describe()}",
                f"{handler.total_cpu_ms / libraries.total_cpu_ms:.2f}x CPU "
                f"({spread(function, 'dev handler', 'dev libraries')})",
            )
        )
        saved = naive.total_cpu_ms - handler.total_cpu_ms
        rows.append(
            Row(
                DEV_SECTION,
                f"{function}: naive eager imports",
                f"{naive.describe()}; {naive.modules} modules",
                f"handler: CPU {handler.total_cpu_ms:.0f} ms, {handler.modules} modules",
                f"{naive.total_cpu_ms / handler.total_cpu_ms:.2f}x: lazy imports save {saved:.0f} ms",
            )
        )
    for function in FUNCTIONS:
        handler, libraries = summary(function, "handler"), summary(function, "libraries")
        naive = summary(function, "dev naive")
        rows.append(
            Row(
                MEMORY_SECTION,
                f"{function}: handler (artifact)",
                f"{handler.peak_mb:.1f} MB",
                f"libraries only {libraries.peak_mb:.1f} MB; naive {naive.peak_mb:.1f} MB (development)",
                f"{handler.peak_mb / LIMIT_MB:.0%} of {LIMIT_MB} MB",
                f"<= {LIMIT_MB} MB",
                handler.peak_mb <= LIMIT_MB,
            )
        )
    return rows, findings


def _diagnosis(
    servers: Servers, place: Place, function: str, handler: Summary, libraries: Summary, ratio: float
) -> str:
    verdict = "meets" if within(ratio, BUDGET) else "misses"
    extra = _extra_imports(servers, place, function) or "nothing"
    return (
        f"{function} {verdict} the cold-start budget on the artifact ({ratio:.2f}x). "
        f"Imports: CPU {handler.imports_cpu_ms:.0f} ms against {libraries.imports_cpu_ms:.0f} ms; "
        f"beyond the baseline's, it imports {extra} (-X importtime, own time). "
        f"First request: CPU {handler.first_request_cpu_ms:.0f} ms against "
        f"{libraries.first_request_cpu_ms:.0f} ms, building {handler.dynamodb_clients} botocore "
        f"DynamoDB client(s) where the baseline builds {libraries.dynamodb_clients}."
    )


def _paired_ratios(probes: list[Probe], against: list[Probe], field: str) -> list[float]:
    return [getattr(p, field) / getattr(a, field) for p, a in zip(probes, against, strict=True)]


def _probe(servers: Servers, place: Place, function: str, variant: str) -> Probe:
    completed = _run_probe(servers, place, function, variant)
    for line in completed.stdout.splitlines():
        if line.startswith(PREFIX):
            result = json.loads(line.removeprefix(PREFIX))
            break
    else:
        raise RuntimeError(
            f"{function} {variant}: no result\n{completed.stdout[-2000:]}{completed.stderr[-4000:]}"
        )
    if result["status"] != EXPECTED_STATUS[function]:
        raise RuntimeError(f"{function} {variant} answered {result['status']}:\n{completed.stdout[-2000:]}")
    return Probe(
        result["imports_ms"],
        result["first_request_ms"],
        result["imports_cpu_ms"],
        result["first_request_cpu_ms"],
        result["snapshot_cpu_ms"],
        result["restore_cpu_ms"],
        result["peak_mb"],
        result["modules"],
        result["dynamodb_clients"],
    )


def _run_probe(
    servers: Servers, place: Place, function: str, variant: str, *options: str
) -> subprocess.CompletedProcess[str]:
    if place.compile_product:
        compile_product(place.env["PYTHONPYCACHEPREFIX"])
    completed = subprocess.run(
        [
            sys.executable,
            *place.options,
            *options,
            "-m",
            "bench.probe",
            function,
            variant,
            place.module(function),
        ],
        input=json.dumps(_request(servers, function)),
        capture_output=True,
        text=True,
        cwd=place.cwd,
        env=_lambda_environment(servers, place, function),
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{function} {variant} failed:\n{completed.stderr[-4000:]}")
    return completed


def _request(servers: Servers, function: str) -> dict[str, Any]:
    from tests.checkout_flow import webhook_request
    from tests.lambda_events import api_event
    from wallet.payments import API_VERSION

    if function == "get_balance":
        return {"event": api_event("GET", "/api/balance", user=USER)}
    if function == "stripe_webhook":
        # A new payment each time, so every first request is a credit rather than a duplicate.
        event = webhook_request(servers.sign(servers.paid_event(USER, 1000)))
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"event": event, "now": now}
    body = json.dumps({"amount": 1000})
    # A shopper per request: one user may open only CHECKOUTS_PER_HOUR checkouts an hour.
    shopper = f"{USER}-{ULID()}"
    return {
        "event": api_event("POST", "/api/checkout", user=shopper, body=body),
        "stripe_version": API_VERSION,
    }


def _lambda_environment(servers: Servers, place: Place, function: str) -> dict[str, str]:
    """What the Lambda runtime and template.yaml give a function, pointed at the local servers."""
    shell = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    return (
        shell
        | environment.SETTINGS
        | place.env
        | {
            "PYTHONPATH": os.pathsep.join(place.path(function)),
            "LAMBDA_TASK_ROOT": str(place.task_root(function)),
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(environment.LAMBDA_SMALLEST_MB),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_ENDPOINT_URL_DYNAMODB": servers.dynamodb.endpoint_url,
            "STRIPE_API_BASE": servers.stripe.api_base,
        }
    )


def _extra_imports(servers: Servers, place: Place, function: str) -> str:
    """The packages the handler imports that the libraries-only baseline does not, by `-X importtime`."""
    handler = _import_times(servers, place, function, "handler")
    libraries = _import_times(servers, place, function, "libraries")
    by_package: dict[str, list[int]] = defaultdict(list)
    for module, self_us in handler.items():
        if module not in libraries:
            by_package[module.split(".")[0]].append(self_us)
    ranked = sorted(by_package.items(), key=lambda item: -sum(item[1]))
    return ", ".join(
        f"{package} {sum(times) / 1000:.1f} ms ({len(times)} module{'s' if len(times) > 1 else ''})"
        for package, times in ranked
        if sum(times) >= 500
    )


def _import_times(servers: Servers, place: Place, function: str, variant: str) -> dict[str, int]:
    """Each module imported, and the microseconds its own body took (children excluded)."""
    stderr = _run_probe(servers, place, function, variant, "-X", "importtime").stderr
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        times[name.strip()] = int(self_us)
    return times

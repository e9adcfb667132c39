"""Cold init of each function against its floor: the CPU of a fresh process that imports the handler, over
that of one that imports only the third-party modules the handler ends up loading (the floor).

Both are taken in the same process: it imports the floor's modules, reads its CPU time (interpreter
start-up included), then imports the handler and reads it again. What the handler adds to its floor is
then paid in the process that paid the floor, so whatever slows the machine during a run slows both
sides of its ratio; taken in separate processes, the two sides drifted apart by up to 0.05x from one run
to the next. Each function is measured RUNS times, the functions in turn, so a burst of other work on the
machine lands on several functions' runs rather than on all of one's. The figure is the median of the
runs' ratios, with their range. Bytecode is cached on both sides (a private PYTHONPYCACHEPREFIX, filled
by an unmeasured run first), as the deployed layer ships it.

What the handler costs above its floor is then named in one more process, which imports the floor and
then the handler with `-X importtime` and with every call of interest timed: the project's modules by
their own time (their module code, where everything below runs), the standard-library modules only the
project loads, and what that module code makes: AWS and Stripe clients, secrets read, table models,
dataclasses, compiled regular expressions, Powertools' Logger, Tracer, Metrics, resolvers and routes.

`PYTHONPATH=layers/shared:. .venv/bin/python -m bench.init_cost` (`make init-cost`) runs this part alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from statistics import median

from bench import environment
from bench.report import Row, within

SECTION = "Cold init (handler import over its third-party floor, fresh process, source tree)"
BUDGET = 1.10
RUNS = 11
# Runs of the attribution, whose figures are each the median of theirs.
ATTRIBUTIONS = 3
# Function -> its handler's module; the trigger shares auto top-up's module, with the trigger's settings.
FUNCTIONS = {
    "get_balance": "functions.get_balance.app",
    "create_checkout": "functions.create_checkout.app",
    "stripe_webhook": "functions.stripe_webhook.app",
    "spend": "functions.spend.app",
    "reconcile": "functions.reconcile.app",
    "auto_top_up": "functions.auto_top_up.app",
    "wallet_events": "functions.wallet_events.app",
    "project_grants": "functions.project_grants.app",
}
PROJECT = ("functions", "wallet")
_LOADED = """
import json, sys, sysconfig
import {module}
purelib = sysconfig.get_paths()["purelib"]
print(json.dumps([n for n, m in list(sys.modules.items())
                  if (getattr(m, "__file__", None) or "").startswith(purelib)]))
"""
# `importlib` and `time` are loaded with the interpreter, so the floor's figure holds nothing else.
_SPLIT = """
import importlib, time
for name in {floor!r}:
    importlib.import_module(name)
floor = time.process_time()
import {module}
handler = time.process_time()
print(floor, handler)
"""
# The floor, then the handler with each module it imports and each call of interest timed in CPU time
# (`-X importtime` times wall time, which other work on the machine inflates): a module's own time leaves
# out the modules it imports, and a call made inside another is the outer one's.
_ATTRIBUTE = """
import importlib, sys, time
for name in {floor!r}:
    importlib.import_module(name)
spent, made, depth, modules, nested = {{}}, {{}}, [0], {{}}, []

def timed(kind, call):
    def wrapper(*args, **kwargs):
        if depth[0]:
            return call(*args, **kwargs)
        depth[0] += 1
        start = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            depth[0] -= 1
            spent[kind] = spent.get(kind, 0.0) + time.process_time() - start
            made[kind] = made.get(kind, 0) + 1
    return wrapper

def wrap(module, owner, attribute, kind):
    if module not in sys.modules:
        return
    holder = sys.modules[module]
    for part in owner.split(".") if owner else ():
        holder = getattr(holder, part)
    setattr(holder, attribute, timed(kind, getattr(holder, attribute)))

def client_kind(call):
    def kind_of(self, service_name, *args, **kwargs):
        kind = "secrets" if service_name in ("secretsmanager", "ssm") else "clients"
        return timed(kind, call)(self, service_name, *args, **kwargs)
    return kind_of

def timed_registrar(route):
    def wrapper(*args, **kwargs):
        return timed("Powertools", route(*args, **kwargs))
    return wrapper

bootstrap = sys.modules["importlib._bootstrap"]
find_and_load = bootstrap._find_and_load

def module_timed(name, import_):
    start = time.process_time()
    nested.append(0.0)
    try:
        return find_and_load(name, import_)
    finally:
        inside = nested.pop()
        took = time.process_time() - start
        modules[name] = modules.get(name, 0.0) + took - inside
        if nested:
            nested[-1] += took

if "botocore.session" in sys.modules:
    session = sys.modules["botocore.session"].Session
    session.create_client = client_kind(session.create_client)
wrap("stripe._stripe_client", "StripeClient", "__init__", "clients")
wrap("pynamodb.connection.base", "Connection", "__init__", "clients")
wrap("aws_lambda_powertools.utilities.parameters.base", "BaseProvider", "get", "secrets")
wrap("pynamodb.models", "MetaModel", "__init__", "models")
wrap("pydantic._internal._model_construction", "ModelMetaclass", "__new__", "models")
wrap("dataclasses", "", "_process_class", "dataclasses")
wrap("re._compiler", "", "compile", "regex")
for module, owner in (
    ("aws_lambda_powertools.logging.logger", "Logger"),
    ("aws_lambda_powertools.tracing.tracer", "Tracer"),
    ("aws_lambda_powertools.metrics.metrics", "Metrics"),
    ("aws_lambda_powertools.event_handler.api_gateway", "ApiGatewayResolver"),
    ("aws_lambda_powertools.utilities.batch.base", "BatchProcessor"),
):
    wrap(module, owner, "__init__", "Powertools")
if "aws_lambda_powertools.event_handler.api_gateway" in sys.modules:
    resolver = sys.modules["aws_lambda_powertools.event_handler.api_gateway"].ApiGatewayResolver
    resolver.route = timed_registrar(resolver.route)
bootstrap._find_and_load = module_timed
import {module}
bootstrap._find_and_load = find_and_load
import json
print(json.dumps({{"modules": modules, "spent": spent, "made": made}}))
"""
# Reported in this order when the handler's import makes any.
KINDS = ("clients", "secrets", "models", "dataclasses", "regex", "Powertools")


@dataclass(frozen=True)
class Result:
    function: str
    ratios: list[float]
    floor_ms: float
    handler_ms: float
    third_party: int
    own_ms: float
    largest_own: list[tuple[str, float]]
    stdlib_ms: float
    stdlib_count: int
    made: dict[str, tuple[int, float]]

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    @property
    def holds(self) -> bool:
        return within(self.ratio, BUDGET)

    def spread(self) -> str:
        return f"{min(self.ratios):.3f}-{max(self.ratios):.3f}"

    def rest(self) -> str:
        """What the handler's import costs above its floor, by what it is."""
        own = ", ".join(f"{name} {ms:.1f}" for name, ms in self.largest_own)
        made = ", ".join(f"{kind} {count} ({ms:.1f} ms)" for kind, (count, ms) in self.made.items())
        return (
            f"the project's modules {self.own_ms:.1f} ms ({own}); standard library only they load "
            f"{self.stdlib_ms:.1f} ms ({self.stdlib_count} modules); their code made "
            f"{made or 'nothing timed'}"
        )


def _environment(cache: str) -> dict[str, str]:
    passed = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {
        **passed,
        **environment.SETTINGS,
        "PYTHONPATH": os.pathsep.join([str(environment.ROOT / "layers" / "shared"), str(environment.ROOT)]),
        "PYTHONPYCACHEPREFIX": cache,
    }


def _run(code: str, env: dict[str, str], *flags: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout, done.stderr


def _floor(module: str, env: dict[str, str]) -> list[str]:
    """The third-party modules `module` ends up loading, in the order it loads them; this also fills the
    bytecode cache."""
    loaded, _ = _run(_LOADED.format(module=module), env)
    floor: list[str] = json.loads(loaded)
    _run(_SPLIT.format(floor=floor, module=module), env)
    return floor


def _split(module: str, floor: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU seconds of one fresh process at the end of the floor's imports and at the end of the handler's."""
    out, _ = _run(_SPLIT.format(floor=floor, module=module), env)
    at_floor, at_handler = (float(value) for value in out.split())
    return at_floor, at_handler


def _attribute(module: str, floor: list[str], env: dict[str, str]) -> dict[str, object]:
    """The handler's modules and calls of interest, each by the median of ATTRIBUTIONS runs' CPU time."""
    taken = [
        json.loads(_run(_ATTRIBUTE.format(floor=floor, module=module), env)[0]) for _ in range(ATTRIBUTIONS)
    ]

    def ms(part: str, name: str) -> float:
        return float(median(run[part].get(name, 0.0) for run in taken)) * 1000

    names = taken[0]["modules"]
    own = sorted(
        ((n, ms("modules", n)) for n in names if n.split(".")[0] in PROJECT), key=lambda item: -item[1]
    )
    stdlib = [ms("modules", n) for n in names if n.split(".")[0] not in PROJECT]
    return {
        "own_ms": sum(took for _, took in own),
        "largest_own": own[:4],
        "stdlib_ms": sum(stdlib),
        "stdlib_count": len(stdlib),
        "made": {
            kind: (taken[0]["made"][kind], ms("spent", kind)) for kind in KINDS if kind in taken[0]["made"]
        },
    }


def measure(functions: dict[str, str] = FUNCTIONS, runs: int = RUNS) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="init-cost-") as cache:
        env = _environment(cache)
        floors = {function: _floor(module, env) for function, module in functions.items()}
        splits: dict[str, list[tuple[float, float]]] = {function: [] for function in functions}
        for _ in range(runs):
            for function, module in functions.items():
                splits[function].append(_split(module, floors[function], env))
        results = []
        for function, module in functions.items():
            taken = splits[function]
            attributed = _attribute(module, floors[function], env)
            results.append(
                Result(
                    function=function,
                    ratios=[handler / floor for floor, handler in taken],
                    floor_ms=median(floor for floor, _ in taken) * 1000,
                    handler_ms=median(handler for _, handler in taken) * 1000,
                    third_party=len(floors[function]),
                    **attributed,  # type: ignore[arg-type]
                )
            )
        return results


def rows(results: list[Result]) -> list[Row]:
    return [
        Row(
            SECTION,
            f"{r.function}: handler import",
            f"CPU {r.handler_ms:.0f} ms, of which above the floor: {r.rest()}",
            f"floor: CPU {r.floor_ms:.0f} ms ({r.third_party} third-party modules)",
            f"{r.ratio:.3f}x (runs {r.spread()}, {len(r.ratios)} runs)",
            f"<= {BUDGET:.2f}x",
            r.holds,
        )
        for r in results
    ]


def run() -> list[Row]:
    return rows(measure())


def main(names: list[str]) -> int:
    """Every function, or those named (`python -m bench.init_cost spend auto_top_up`)."""
    unknown = set(names) - set(FUNCTIONS)
    if unknown:
        print(f"No such function: {', '.join(sorted(unknown))}; there are {', '.join(FUNCTIONS)}")
        return 2
    results = measure({name: FUNCTIONS[name] for name in names} if names else FUNCTIONS)
    print(
        f"Cold init: a fresh process's CPU at the end of the handler's import over that at the end of its "
        f"third-party floor's, in the same process (median of {RUNS} runs, range; budget {BUDGET:.2f}x)"
    )
    for r in results:
        verdict = "holds" if r.holds else "MISSES"
        print(
            f"  {r.function:<16} {r.ratio:.3f}x {verdict:<6} runs {r.spread()}  handler {r.handler_ms:.0f} "
            f"ms, floor {r.floor_ms:.0f} ms ({r.third_party} modules), above it "
            f"{r.handler_ms - r.floor_ms:.1f} ms"
        )
        print(f"  {'':<16} {r.rest()}")
    return 0 if all(r.holds for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

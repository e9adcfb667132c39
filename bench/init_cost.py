"""Cold init of each function against its floor: the whole-process CPU of importing the handler, over
that of importing, alone, every third-party module the handler ends up loading. Both sides have their
bytecode (a private PYTHONPYCACHEPREFIX, filled by an unmeasured run first), as the deployed layer
does; the figure is the median of RUNS, taken alternately. What the handler costs above its floor is
named from `-X importtime`: the project's own modules by their own time, largest first (their module
code is where clients, settings and models are made).

`PYTHONPATH=layers/shared:. .venv/bin/python -m bench.init_cost` runs this part alone."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from statistics import median

from bench import environment

BUDGET = 1.10
RUNS = 5
# Function -> its handler's module; the trigger shares auto top-up's module, with the trigger's settings.
FUNCTIONS = {
    "get_balance": "functions.get_balance.app",
    "create_checkout": "functions.create_checkout.app",
    "stripe_webhook": "functions.stripe_webhook.app",
    "spend": "functions.spend.app",
    "reconcile": "functions.reconcile.app",
    "auto_top_up": "functions.auto_top_up.app",
}
PROJECT = ("functions", "wallet")
_LOADED = """
import json, sys, sysconfig
import {module}
purelib = sysconfig.get_paths()["purelib"]
print(json.dumps([n for n, m in list(sys.modules.items())
                  if (getattr(m, "__file__", None) or "").startswith(purelib)]))
"""


def _environment(cache: str) -> dict[str, str]:
    passed = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {
        **passed,
        **environment.SETTINGS,
        "PYTHONPATH": os.pathsep.join([str(environment.ROOT / "layers" / "shared"), str(environment.ROOT)]),
        "PYTHONPYCACHEPREFIX": cache,
    }


def _cpu(code: str, env: dict[str, str], *flags: str) -> tuple[float, str, str]:
    """User + system CPU seconds of one fresh interpreter running `code`, and its output and errors."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, done.stdout, done.stderr


def _own_modules(importtime: str) -> list[tuple[str, int]]:
    """The project's modules and their own import time (microseconds), largest first."""
    found = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if self_us.isdigit() and name.split(".")[0] in PROJECT:
            found.append((name, int(self_us)))
    return sorted(found, key=lambda item: -item[1])


def measure(function: str, module: str, env: dict[str, str]) -> dict[str, object]:
    _, loaded, _ = _cpu(_LOADED.format(module=module), env)  # also fills the bytecode cache
    third_party = json.loads(loaded)
    floor_code = "import importlib\n" + "".join(
        f"importlib.import_module({name!r})\n" for name in third_party
    )
    _cpu(floor_code, env)
    handler_code = f"import {module}"
    handler, floor = [], []
    for run in range(RUNS):
        pair = [(handler_code, handler), (floor_code, floor)]
        for code, times in pair if run % 2 == 0 else reversed(pair):
            times.append(_cpu(code, env)[0])
    _, _, importtime = _cpu(handler_code, env, "-X", "importtime")
    ratio = median(handler) / median(floor)
    return {
        "function": function,
        "handler_ms": round(median(handler) * 1000, 1),
        "floor_ms": round(median(floor) * 1000, 1),
        "ratio": round(ratio, 2),
        "within": round(ratio, 2) <= BUDGET,
        "third_party_modules": len(third_party),
        "own_modules_ms": round(sum(us for _, us in _own_modules(importtime)) / 1000, 1),
        "largest_own": [f"{name} {us / 1000:.1f} ms" for name, us in _own_modules(importtime)[:4]],
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="init-cost-") as cache:
        env = _environment(cache)
        results = [measure(function, module, env) for function, module in FUNCTIONS.items()]
    print(
        f"Cold init: handler import CPU over its third-party floor (median of {RUNS}; budget {BUDGET:.2f}x)"
    )
    for r in results:
        verdict = "holds" if r["within"] else "MISSES"
        print(
            f"  {r['function']:<16} {r['ratio']:.2f}x {verdict:<6} handler {r['handler_ms']} ms, floor "
            f"{r['floor_ms']} ms ({r['third_party_modules']} modules); the project's own modules "
            f"{r['own_modules_ms']} ms: {', '.join(r['largest_own'])}"  # type: ignore[arg-type]
        )
    return 0 if all(r["within"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

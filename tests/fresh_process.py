"""Runs a few lines in a fresh interpreter, to see what a cold Lambda container would import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_imported(script: str, package: str) -> list[str]:
    """The modules of `package` loaded once `script` has run in a fresh interpreter (it must succeed)."""
    report = f"\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] == {package!r}))\n"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers/shared"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", script + report],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return loaded

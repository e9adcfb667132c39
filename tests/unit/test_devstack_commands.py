"""The one-shot local commands (`make audit`, `make migrate`, `make expire-holds`, `make expire-grants`)
without a running stack: one line that says what to do, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devstack_process import ROOT

TABLES = ("CREDIT_BALANCE_TABLE", "CREDIT_TRANSACTION_TABLE", "CREDIT_GUARD_TABLE")


@pytest.mark.parametrize(
    ("module", "doing"),
    [
        ("devstack.audit", "audit"),
        ("devstack.migrate", "migrate"),
        ("devstack.expire_holds", "sweep holds"),
        ("devstack.expire_grants", "sweep grants"),
    ],
)
def test_a_command_without_a_stack_or_table_names_says_to_start_one(
    tmp_path: Path, module: str, doing: str
) -> None:
    environment = {name: value for name, value in os.environ.items() if name not in TABLES}
    environment["DEVSTACK_RUN_FILE"] = str(tmp_path / "run.json")
    environment["PYTHONPATH"] = f"{ROOT / 'layers/shared'}:{ROOT}"

    done = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Cannot {doing}: CREDIT_BALANCE_TABLE is not set"), done.stderr
    assert "Start `make run` first" in done.stderr
    assert "Traceback" not in done.stderr

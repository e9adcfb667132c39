"""The local stack's run file: where `make run`'s DynamoDB listens and its table names.

`make run` writes it to .devstack/run.json (or where DEVSTACK_RUN_FILE says); the one-shot commands
(`make audit`, `make migrate`, `make expire-holds`) read it, so that they act on the running stack. With
no stack running they act on the tables the environment already names (on AWS, a deployed stack's)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def path() -> Path:
    return Path(os.environ.get("DEVSTACK_RUN_FILE") or ROOT / ".devstack" / "run.json")


def use_running_stack() -> None:
    """Point this process's settings at the running local stack, if one is running."""
    run_file = path()
    if run_file.is_file():
        os.environ.update(json.loads(run_file.read_text(encoding="utf-8"))["environment"])


def run_command(command: Callable[[], int], doing: str) -> int:
    """Run a one-shot command against the running stack; without one, and without table names, say so
    in one line and exit 2. The command imports the ledger itself: its tables are named at import."""
    use_running_stack()
    from wallet.settings import SettingsError

    try:
        return command()
    except SettingsError as exc:
        print(f"Cannot {doing}: {exc}. Start `make run` first, or set the table names.", file=sys.stderr)
        return 2

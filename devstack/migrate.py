"""`make migrate`: upgrade, once, the items an earlier release wrote to the running local stack's tables.

As `make audit` does, it reads where `make run`'s DynamoDB listens and its table names from
.devstack/run.json, or takes the tables the environment names (on AWS, a deployed stack's; there the
reconcile function's `{"task": "migrate"}` runs the same code). Running it again changes nothing more;
a run stopped part way resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    run_file = Path(os.environ.get("DEVSTACK_RUN_FILE") or ROOT / ".devstack" / "run.json")
    if run_file.is_file():
        os.environ.update(json.loads(run_file.read_text(encoding="utf-8"))["environment"])
    from wallet.migrate import migrate
    from wallet.settings import SettingsError

    try:
        report = migrate()
    except SettingsError as exc:
        print(f"Cannot migrate: {exc}. Start `make run` first, or set the table names.", file=sys.stderr)
        return 2
    if report.resumed:
        print("Resumed the migration from where an earlier run stopped.")
    print(
        f"Read {report.items} items: {report.holds_kept} active holds lost their TTL, "
        f"{report.holds_indexed} joined the expiry index, {report.keys_scoped} Idempotency-Keys were "
        f"scoped to their caller, {report.top_ups_converted} auto top-up counts became lists of charges."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

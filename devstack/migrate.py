"""`make migrate`: upgrade, once, the items an earlier release wrote to the running local stack's tables.

As `make audit` does, it reads where `make run`'s DynamoDB listens and its table names from
.devstack/run.json, or takes the tables the environment names (on AWS, a deployed stack's; there the
reconcile function's `{"task": "migrate"}` runs the same code). Running it again changes nothing more;
a run stopped part way resumes from its checkpoint.
"""

from __future__ import annotations

import sys

from devstack import run_file


def main() -> int:
    return run_file.run_command(run, "migrate")


def run() -> int:
    from wallet.migrate import migrate

    report = migrate()
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

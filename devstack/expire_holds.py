"""`make expire-holds`: expire every hold of the running local stack that is past its time, now.

On AWS the reconcile function does this every minute (`{"task": "holds"}`); the local stack runs no
schedules, so this runs the same sweep on demand, against the DynamoDB and tables `make run` leaves in
.devstack/run.json (or those the environment names, as `make audit` does).
"""

from __future__ import annotations

import sys

from devstack import run_file


def main() -> int:
    return run_file.run_command(run, "sweep holds")


def run() -> int:
    from wallet import holds, settings

    report = holds.expire_due(currency=settings.price_list().currency)
    held = f"{report.expired} hold" + ("" if report.expired == 1 else "s")
    print(f"Expired {held} past their time; swept every minute up to {report.swept_until or 'none yet'}.")
    for failure in report.failures:
        print(f"  could not expire {failure}; run again")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

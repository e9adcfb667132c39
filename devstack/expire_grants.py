"""`make expire-grants`: expire what is left of every grant of the running local stack past its expiry
(by SETTLE_SECONDS, as the deployed sweep does), now.

On AWS the reconcile function does this every hour (`{"task": "grants"}`); the local stack runs no
schedules, so this runs the same sweep on demand, against the DynamoDB and tables `make run` leaves in
.devstack/run.json (or those the environment names, as `make audit` does). `make run` feeds the grants'
projector from the transactions' stream, so the accounts it finds are those the index holds.
"""

from __future__ import annotations

import sys

from devstack import run_file


def main() -> int:
    return run_file.run_command(run, "sweep grants")


def run() -> int:
    from wallet import grants_due, settings

    report = grants_due.expire_due(currency=settings.price_list().currency)
    accounts = f"{report.accounts} account" + ("" if report.accounts == 1 else "s")
    print(
        f"Expired {report.credits} credits in {report.rows} rows over {accounts}; "
        f"swept every day up to {report.swept_until or 'none yet'}."
    )
    for failure in report.failures:
        print(f"  could not expire {failure}; run again")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

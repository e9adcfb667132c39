"""`make audit`: prove that every balance of the running local stack is the sum of its rows and of its
grants, its `held` the sum of its active holds, and that no active hold is an hour past its time.

`make run` leaves where its DynamoDB listens and its table names in .devstack/run.json; this reads
them, runs the same audit the deployed stack runs daily, prints what it found, and exits 1 on drift or
an overdue hold. With no local stack running, it audits the tables the environment names (on AWS, with
CREDIT_BALANCE_TABLE, CREDIT_TRANSACTION_TABLE and CREDIT_GUARD_TABLE set to a deployed stack's).
"""

from __future__ import annotations

import sys

from devstack import run_file


def main() -> int:
    return run_file.run_command(run, "audit")


def run() -> int:
    from wallet.audit import audit

    report = audit()
    if report.resumed:
        print("Resumed the audit from where an earlier run stopped.")
    balances = f"{report.users} balance" + ("" if report.users == 1 else "s")
    rows = f"{report.rows} row" + ("" if report.rows == 1 else "s")
    print(f"Audited {balances} ({rows}): {len(report.drifts)} differ from the sum of their rows.")
    for drift in report.drifts:
        print(f"  {drift.user_id}: balance {drift.balance}, rows add up to {drift.rows_total}")
    for grant in report.grant_drifts:
        print(f"  {grant.user_id}: balance and held {grant.balance}, its grants add up to {grant.grants}")
    for held in report.held_drifts:
        print(f"  {held.user_id}: held {held.held}, active holds add up to {held.active_holds}")
    if report.overdue_holds:
        print(
            f"{report.overdue_holds} active hold(s) more than an hour past their time: "
            "`make expire-holds` runs the sweep that expires them."
        )
    for user_id in report.unsettled:
        print(f"  {user_id}: kept changing while read; audit again")
    if not report.finished:
        print("Stopped before the end: `make audit` again resumes from the checkpoint.")
    return 1 if report.drifts or report.grant_drifts or report.held_drifts or report.overdue_holds else 0


if __name__ == "__main__":
    sys.exit(main())

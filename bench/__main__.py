"""`make bench`: measure everything, print the table, write docs/PERFORMANCE.md; fail on a missed budget."""

from __future__ import annotations

import logging
import sys
import time
import traceback
import warnings
from collections.abc import Callable

from bench import environment
from bench.report import Report, Row

DOCUMENT = environment.ROOT / "docs" / "PERFORMANCE.md"


def main() -> int:
    # The tree is shared: bytecode goes only to the cold-start probes' own cache, never beside the sources.
    sys.dont_write_bytecode = True
    environment.apply()
    # moto's request lines and urllib3's pool notices would bury the results.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for name in ("werkzeug", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # A request that adds no metric is normal here (GET /api/checkout/{id} of a credited session).
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from bench import audit as audit_bench
    from bench import (
        auto_top_up,
        coldstart,
        concurrency,
        grants,
        holds,
        hot_account,
        init_cost,
        roundtrips,
        warm,
    )
    from bench import books as books_bench
    from bench import sweep as sweep_bench
    from bench.local import Servers, quiet_stdout

    report = Report()
    started = time.perf_counter()
    with Servers() as servers:
        sections: list[tuple[str, Callable[[], list[Row]]]] = [
            ("round trips", lambda: roundtrips.run(servers)),
            ("auto top-up", lambda: auto_top_up.run(servers)),
            ("cold start and memory", lambda: _with_findings(report, coldstart.run(servers))),
            ("cold init over the floor", init_cost.run),
            ("warm latency", lambda: warm.run(servers)),
            ("ledger concurrency", lambda: concurrency.ledger_rows(servers)),
            ("webhook deliveries over HTTP", lambda: concurrency.http_rows(servers)),
            ("a burst of spends over HTTP", lambda: concurrency.spend_burst_rows(servers)),
            ("holds beside a spend", lambda: holds.run(servers)),
            ("the sweep over Stripe's event log", lambda: sweep_bench.run(servers)),
            ("the audit of one user's 10^6 rows", audit_bench.run),
            ("the month's books over 10^6 rows", books_bench.run),
            ("one hot account, plain and sharded", lambda: hot_account.rows(servers)),
            (
                "grants: a spend beside today's, a hot account's projection, an expiry of 10^5 grants",
                lambda: grants.rows(servers),
            ),
        ]
        for name, section in sections:
            print(f"bench: {name}…", file=sys.stderr, flush=True)
            try:
                with quiet_stdout():
                    report.rows += section()
            except Exception as exc:
                traceback.print_exc()
                report.rows.append(
                    Row(name, "could not be measured", f"{type(exc).__name__}: {exc}", holds=False)
                )
    print()
    print(report.table())
    if report.findings:
        print()
        print("\n".join(f"- {finding}" for finding in report.findings))
    report.write(DOCUMENT, environment.machine())
    missed = [row for row in report.rows if row.holds is False]
    print()
    print(
        f"{len(report.rows)} measures in {time.perf_counter() - started:.0f} s; "
        + (f"{len(missed)} budget(s) MISSED" if missed else "every budget holds")
        + f"; written to {DOCUMENT.relative_to(environment.ROOT)}"
    )
    return 1 if missed else 0


def _with_findings(report: Report, result: tuple[list[Row], list[str]]) -> list[Row]:
    rows, findings = result
    report.findings += findings
    return rows


if __name__ == "__main__":
    sys.exit(main())

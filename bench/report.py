"""The results table, printed and written to docs/PERFORMANCE.md with the machine it was measured on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HEADERS = ("Measure", "Result", "Against", "Ratio", "Budget", "Verdict")

METHOD = """\
- **Round trips**: botocore `before-call.dynamodb` hooks on every DynamoDB client the functions use (the
  ledger's connection and each model's), and the Stripe emulator's request log, around one invocation of
  the real handler in this process.
- **Cold start, built artifact**: what `make build` leaves in `.aws-sam/build`, laid out as Lambda runs
  it (`bench/artifact.py`): the function's directory as `/var/task`, the layer's `python/` as
  `/opt/python`, and boto3, botocore and their dependencies, which the Lambda runtime provides, compiled,
  as `/var/runtime`. Every file is read-only, the interpreter runs with `-S` (no site-packages, so
  nothing of `.venv` is found) and `PYTHONDONTWRITEBYTECODE=1`, one fresh process per run, and the
  benchmark checks that no file was written. The layer is built for arm64; on another machine it is
  rebuilt by its own Makefile for that machine's platform (its compiled extensions, charset_normalizer's
  and wrapt's, would not load otherwise, and their slower pure-Python fallbacks would be measured), and
  every other file is checked to be the arm64 build's. *Without bytecode* is the same artifact with
  every `__pycache__` it ships removed: what the layer was before it shipped bytecode. *First request
  after a SnapStart restore* imports the function, runs the hooks it registered (through a stand-in
  for the runtime's `snapshot_restore_py`, which is not on PyPI) as the snapshot and the restore would,
  then times the first request; *without* is the first request right after the imports.
- **Cold start, both places**: `python -m bench.probe` with the variables the Lambda runtime sets and
  traces off (no X-Ray daemon), as in `make run`. The clock starts at the probe's first line and stops
  when the first request is answered, so the interpreter's own start-up, the same for every variant, is
  left out. *Libraries only* imports what the function truly needs (Powertools' Logger, Tracer and
  event_handler, pynamodb and ulid, plus Stripe's SDK for the two functions that call Stripe) and makes
  the same DynamoDB or Stripe calls by hand; *naive* imports boto3, pydantic, requests, the X-Ray SDK and
  every Powertools utility up front, then the function (development environment only: the artifact has
  no pydantic). A function's cases run back to back in shuffled order; the first run is discarded. The
  budget is judged on the artifact, on process CPU time, which other work on the machine inflates less
  than wall time: the ratio of the medians, with the quartiles of each run's own ratio for spread. The
  extra imports are attributed with `-X importtime`.
- **Cold init**: `make init-cost` (`bench/init_cost.py`), for every function, from the source tree with
  its bytecode cached: one fresh process imports the third-party modules the handler ends up loading
  (its floor) and reads its CPU time, interpreter start-up included, then imports the handler and reads
  it again; the ratio is the second over the first, the median of 11 runs taken with the functions in
  turn, with the runs' range. Taking both in one process is what holds the figure still (to about
  0.01x): whatever slows the machine during a run slows both sides, where two processes' figures
  drifted apart by up to 0.05x. Exit is left out, which Lambda's init never runs. What the handler adds
  is named by one more process's CPU time, the median of 3: each project module by its own time, the
  standard-library modules only the project loads, and what the module code makes (clients, secrets,
  table models, dataclasses, regular expressions, Powertools' objects and routes).
- **Development environment**: the source tree and `.venv`, where `make run` and the tests run the
  handlers, with the product's and the libraries' bytecode compiled into a cache of the probes' own.
  It differs from the artifact: `.venv` holds every development dependency and is found through
  site-packages, the libraries there are x86_64 or arm64 as the machine is, and the wallet package and
  the functions are imported from the tree rather than from `/opt/python` and `/var/task`.
- **Peak memory**: VmHWM of the same processes (`ru_maxrss` on Linux carries the forking parent's peak
  over `exec`, so it would report the benchmark's own size).
- **Warm**: the real handler invoked in this process with a ready event, against the same botocore (or
  Stripe SDK) calls made by hand on the same clients and servers, one after the other in alternating
  order; the ratio is median(handler) / median(bare calls), with the range over rounds. moto answers
  each DynamoDB call in milliseconds, far slower than DynamoDB, so it dominates both sides.
- **Concurrency**: the ledger from 64 and 16 threads against the serialized moto server, and signed events
  POSTed over HTTP from 8 threads to `python -m devstack` (the `make run` stack), whose gateway sends
  each to one of up to 3 container processes of the webhook function, each serving one event at a time
  as a warm Lambda container does: at most 3 deliveries are handled at once.
- **Grants**: `make bench-grants` (`bench/grants.py`). A spend: the spend handler as it is and the same
  handler with `ADD changes 1` left out of its balance update (the spend before grants), one of each in
  turn, alternating which goes first, on the same moto server; DynamoDB calls counted as for round trips.
  The projection: a hot account's debit rows written straight into moto in batches (ids 1 ms apart, as
  1,000 debits a second make them, after one deposit), then `projection.project` called until its
  watermark is the last row. Its own rate leaves out the time moto's server spends answering; moto's
  Query writes its items as JSON (the answer its own serializer gives, which walks botocore's shapes at
  about 2 ms a row). Rows are sized as DynamoDB counts them, so the pages map to its 1 MB pages. The
  expiry: one account's 10^5 promotional grants, each past its expiry, and one that never expires, put
  straight into moto's transaction table with the balance item holding their sum, then one call of
  `expiry.expire`; each grant must have one `expired` row for all its credits, the balance what the
  kept grant holds, and a second call must write nothing. moto's Queries on the keys are answered from
  the partition in key order (`bench/audit.py`, `bench/books.py`), and a transaction backs up only the
  items it names (`bench/hot_account.py`).
- Ratios are held to their budgets as shown, to two decimals.
"""


@dataclass(frozen=True)
class Row:
    section: str
    measure: str
    result: str
    against: str = ""
    ratio: str = ""
    budget: str = ""
    holds: bool | None = None
    """None for a figure reported without a budget."""

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "MISSED", None: "info"}[self.holds]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def table(self) -> str:
        blocks = []
        for section in dict.fromkeys(row.section for row in self.rows):
            cells = [HEADERS, *[self._cells(row) for row in self.rows if row.section == section]]
            widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
            lines = [
                "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
            ]
            blocks.append("\n".join([section, *lines]))
        return "\n\n".join(blocks)

    def markdown(self, machine: dict[str, str]) -> str:
        lines = [
            "# Performance",
            "",
            "Written by `make bench` (`bench/`) on every run; the numbers below are from the last one.",
            "Each ratio compares two things measured side by side in that run, so it means something on any",
            "machine; the absolute times are this machine's. `make bench` fails when a budget is missed.",
            "",
            "Which figures are for what: the cold-start budget, the cost of bytecode and the SnapStart",
            "figures are for the **built artifact** (`make build`'s `.aws-sam/build`, read-only, as",
            "Lambda runs it), as is peak memory except the naive variant's. Everything else (the cold",
            "start from the source tree, round trips, warm latency, concurrency) is for the **development",
            "environment**: the source tree and `.venv`, against moto and the Stripe emulator, where",
            "`make run` and the tests run.",
            "The two differ in where modules come from and whether their bytecode exists: `.venv` has every",
            "development dependency, and its bytecode is compiled on first use and kept, while on Lambda",
            "`/var/task` and `/opt` are read-only and only the bytecode the artifact ships is ever used.",
            "",
            "## Machine",
            "",
            "| | |",
            "|---|---|",
            *[f"| {key} | {_escape(value)} |" for key, value in machine.items()],
            "",
            "## Results",
            "",
        ]
        for section in dict.fromkeys(row.section for row in self.rows):
            lines += [
                f"### {section}",
                "",
                "| " + " | ".join(HEADERS) + " |",
                "|---" * len(HEADERS) + "|",
                *[
                    "| " + " | ".join(_escape(cell) for cell in self._cells(row)) + " |"
                    for row in self.rows
                    if row.section == section
                ],
                "",
            ]
        if self.findings:
            lines += ["## Findings", "", *[f"- {_escape(finding)}" for finding in self.findings], ""]
        lines += ["## How it is measured", "", METHOD]
        return "\n".join(lines)

    def write(self, path: Path, machine: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(machine))

    @staticmethod
    def _cells(row: Row) -> tuple[str, ...]:
        return (row.measure, row.result, row.against, row.ratio, row.budget, row.verdict)


def within(ratio: float, budget: float) -> bool:
    """A ratio holds its budget as shown, to the budget's two decimals."""
    return round(ratio, 2) <= budget


def _escape(text: str) -> str:
    return text.replace("|", "\\|")

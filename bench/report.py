"""The results table, printed and written to docs/PERFORMANCE.md with the machine it was measured on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HEADERS = ("Measure", "Result", "Against", "Ratio", "Budget", "Verdict")

METHOD = """\
- **Round trips**: botocore `before-call.dynamodb` hooks on every DynamoDB client the functions use (the
  ledger's connection and each model's), and the Stripe emulator's request log, around one invocation of
  the real handler in this process.
- **Cold start**: `python -m bench.probe` in a fresh process per run, with the variables the Lambda runtime
  sets and traces off (no X-Ray daemon), as in `make run`. The clock starts at the probe's first line and
  stops when the first request is answered, so the interpreter's own start-up, the same for every
  variant, is left out. *Libraries only* imports what the function truly needs (Powertools' Logger,
  Tracer and event_handler, pynamodb and ulid, plus Stripe's SDK for the two functions that call Stripe)
  and makes the same DynamoDB or Stripe calls by hand; *naive* imports boto3, pydantic, requests, the
  X-Ray SDK and every Powertools utility up front, then the function. A function's variants run back to
  back in shuffled order; the first run is discarded. The budget is judged on process CPU time, which
  other work on the machine inflates less than wall time: the ratio of the medians, with the quartiles
  of each run's own ratio for spread. Bytecode is compiled ahead into a cache of the probes' own, as a
  Lambda layer ships it; the extra imports are attributed with `-X importtime`.
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

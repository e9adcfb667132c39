"""`make help`: every target a person runs, its text in one column however long the longest name."""

from __future__ import annotations

import re
import subprocess

from tests.devstack_process import ROOT

SHOWN = re.compile(r"  make (?P<name>\S+) +(?P<text>\S.*)")


def documented_targets() -> list[str]:
    """The Makefile's targets with a `## ` description, read apart from the help target's own grep."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return [
        line.split(":", 1)[0] for line in makefile.splitlines() if re.match(r"[a-z][a-z-]*:[^=].*## ", line)
    ]


def test_make_help_lists_every_documented_target_with_its_text_in_one_column() -> None:
    shown = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    matches = [SHOWN.fullmatch(line) for line in shown.splitlines()]

    assert all(matches), shown
    assert [match["name"] for match in matches if match] == documented_targets()
    # Two spaces after the longest name, and every text starting where that one does.
    longest = max(len(name) for name in documented_targets())
    assert {match.start("text") for match in matches if match} == {len("  make ") + longest + 2}, shown

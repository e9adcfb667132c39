"""The credits page's script budget: every script it loads, followed through its imports, is the site's own
and together they stay within the bytes the README states. The chart is SVG drawn by the page's own
module, so no chart library is ever downloaded."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "static_site"
PAGE = SITE / "dashboard" / "credits" / "index.html"
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Uncompressed bytes of JavaScript; CloudFront compresses them on the way (about a quarter of this).
SCRIPT_BUDGET_BYTES = 80_000
SCRIPT_TAG = re.compile(r"<script\b[^>]*\bsrc=\"([^\"]+)\"")
# A module's static imports (`import ... from "x"`, `import "x"`) and dynamic ones (`import("x")`).
IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']"""
    r"""|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)""",
    re.MULTILINE,
)
# Written at deploy from the stack's outputs (deploy/publish.py), a few hundred bytes: not in the repo.
GENERATED = {"/config.js"}


def site_file(reference: str, importer: Path | None) -> Path:
    if reference.startswith("/"):
        return SITE / reference.lstrip("/")
    assert importer is not None, reference
    return (importer.parent / reference).resolve()


def scripts_loaded() -> set[Path]:
    """Every script the page loads: its script tags and, from them, every static or dynamic import."""
    pending = [(src, None) for src in SCRIPT_TAG.findall(PAGE.read_text(encoding="utf-8"))]
    seen: set[Path] = set()
    while pending:
        reference, importer = pending.pop()
        assert not re.match(r"^(https?:)?//", reference), f"a script from another origin: {reference}"
        if reference in GENERATED:
            continue
        path = site_file(reference, importer)
        if path in seen:
            continue
        seen.add(path)
        found = IMPORT.findall(path.read_text(encoding="utf-8"))
        pending += [(next(group for group in groups if group), path) for groups in found]
    return seen


def test_the_scripts_the_page_loads_are_its_own_and_within_the_budget() -> None:
    scripts = scripts_loaded()

    assert SITE / "assets" / "usage.js" in scripts, "the chart's module is followed from the page"
    assert SITE / "assets" / "credits.js" in scripts
    total = sum(path.stat().st_size for path in scripts)
    assert total <= SCRIPT_BUDGET_BYTES, (
        f"{total:,} bytes of scripts, over the {SCRIPT_BUDGET_BYTES:,} budget"
    )


def test_the_readme_states_the_budget_the_test_holds() -> None:
    assert f"{SCRIPT_BUDGET_BYTES:,} bytes" in README


def test_every_asset_script_is_loaded_so_none_escapes_the_count() -> None:
    on_disk = {path.resolve() for path in (SITE / "assets").glob("*.js")}

    assert on_disk - scripts_loaded() == set()

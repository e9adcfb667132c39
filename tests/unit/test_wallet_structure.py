"""The domain package's shape, read from its source: imports flow one way (no module of `wallet` imports,
at any depth or inside a function, one that imports it back), no file reaches another's private names,
and each file stays short enough to read in one sitting."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WALLET = ROOT / "layers" / "shared" / "wallet"
READERS = [*sorted(WALLET.glob("*.py")), *sorted((ROOT / "functions").glob("*/app.py"))]
MAX_LINES = 400
# Files written before this bound, each held to its size then: they may shrink, never grow.
LONGER_BEFORE = {"auto_top_up.py": 702, "holds.py": 557, "payments.py": 465, "ledger.py": 415}


def wallet_modules() -> set[str]:
    return {path.stem for path in WALLET.glob("*.py") if path.stem != "__init__"}


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Every `wallet` module the file imports, anywhere in it, with the names it takes from it."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wallet."):
                    yield alias.name.removeprefix("wallet."), []
        elif isinstance(node, ast.ImportFrom) and node.module == "wallet":
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wallet."):
            yield (node.module or "").removeprefix("wallet."), [alias.name for alias in node.names]


def graph() -> dict[str, set[str]]:
    modules = wallet_modules()
    return {
        path.stem: {module for module, _ in imports(path) if module in modules}
        for path in WALLET.glob("*.py")
        if path.stem != "__init__"
    }


def cycle_through(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path of imports from `start` back to itself, if there is one (depth-first)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for imported in edges.get(module, set()):
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


def test_the_import_graph_reads_as_written() -> None:
    # A reference written apart from the walk above: the account sits above its primitives and the
    # sub-balances, the ledger and holds above the account.
    edges = graph()
    assert {"writes", "hot_accounts"} <= edges["account"]
    assert "account" in edges["ledger"]
    assert "account" in edges["holds"]
    assert "writes" in edges["hot_accounts"]
    assert not edges["writes"] & {"ledger", "account", "hot_accounts", "holds"}
    assert not edges["hot_accounts"] & {"ledger", "account", "holds"}


@pytest.mark.parametrize("module", sorted(wallet_modules()))
def test_no_module_of_wallet_imports_one_that_imports_it_back(module: str) -> None:
    assert cycle_through(module, graph()) is None


def test_the_cycle_check_finds_a_cycle_when_there_is_one() -> None:
    assert cycle_through("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_through("a", {"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("path", READERS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_file_takes_a_private_name_from_another(path: Path) -> None:
    tree = ast.parse(path.read_text())
    modules = wallet_modules()
    imported_as = set()
    taken = []
    for module, names in imports(path):
        taken += [f"wallet.{module}.{name}" for name in names if name.startswith("_")]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "wallet":
            imported_as |= {alias.asname or alias.name for alias in node.names if alias.name in modules}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported_as
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            taken.append(f"{node.value.id}.{node.attr}")
    assert taken == []


@pytest.mark.parametrize("path", sorted(WALLET.glob("*.py")), ids=lambda path: path.name)
def test_each_file_is_short_enough_to_read_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= LONGER_BEFORE.get(path.name, MAX_LINES)

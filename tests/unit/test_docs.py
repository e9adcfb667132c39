"""The README and .env.example against the code: every route template.yaml defines is in the README's API
table, and .env.example names exactly the settings the product reads, so neither drifts from the product."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dotenv import dotenv_values

from devstack.gateway import routes
from devstack.template import load, resources

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NAME = re.compile(r"[A-Z][A-Z0-9_]+")
CODE = [
    *sorted((ROOT / "devstack").rglob("*.py")),
    *sorted((ROOT / "layers" / "shared" / "wallet").glob("*.py")),
    *sorted((ROOT / "functions").glob("*/app.py")),
]
# Read by the code, but not settings a person puts in .env.
NOT_SETTINGS = {
    "ENV_FILE": "names the .env file itself",
    "HTTP_X_AMZ_TARGET": "a request header in the WSGI environ of moto's server",
}
READERS = {"required", "getenv", "_stripe_secret"}


def api_table() -> list[str]:
    section = README.split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_the_api_table_lists_every_route_in_the_template_and_no_other() -> None:
    defined = {f"{route.method} {route.path}" for route in routes()}
    listed = {re.match(r"\| `(\w+ [^`\s?]+)", row).group(1) for row in api_table()}  # type: ignore[union-attr]

    assert defined - listed == set(), "routes missing from the README's API table"
    assert listed - defined == set(), "the README's API table lists routes template.yaml does not define"


def settings_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in CODE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            strings: list[ast.expr] = []
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
                if called in READERS or (
                    called == "get" and ("settings" in receiver or "environ" in receiver)
                ):
                    strings = list(node.args)
            elif isinstance(node, ast.Subscript):
                if "settings" in ast.unparse(node.value) or "environ" in ast.unparse(node.value):
                    strings = [node.slice]
            elif isinstance(node, ast.Assign) and any(ast.unparse(t) == "DEFAULTS" for t in node.targets):
                strings = list(node.value.keys) if isinstance(node.value, ast.Dict) else []  # type: ignore[arg-type]
            names |= {
                s.value
                for s in strings
                if isinstance(s, ast.Constant) and isinstance(s.value, str) and NAME.fullmatch(s.value)
            }
    return names - set(NOT_SETTINGS)


def settings_template_gives_the_functions() -> set[str]:
    given = set(load().get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    for function in resources("AWS::Serverless::Function").values():
        given |= set(function.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return given


def test_env_example_names_every_setting_the_code_reads_and_nothing_else() -> None:
    example = set(dotenv_values(ROOT / ".env.example"))
    read = settings_read_by_the_code() | settings_template_gives_the_functions()

    assert "PORT" in read  # the scan finds the settings it must
    assert read - example == set(), ".env.example lacks settings the code reads"
    assert example - read == set(), ".env.example names settings nothing reads"

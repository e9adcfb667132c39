"""The layer ships exactly the locked runtime packages, less what the Lambda runtime already has, and the
bytecode of everything it and the functions ship, as the Lambda runtime's Python reads it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def requirements(text: str) -> list[str]:
    return sorted(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def test_the_layer_requirements_are_the_locked_runtime_packages() -> None:
    made = subprocess.run(
        ["make", "--no-print-directory", "-s", "layer-requirements", "LAYER_REQUIREMENTS=/dev/stdout"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    committed = (ROOT / "layers/shared/requirements.txt").read_text()

    assert requirements(committed) == requirements(made.stdout)


def test_boto3_and_botocore_are_left_to_the_lambda_runtime() -> None:
    names = [
        line.split("==")[0] for line in requirements((ROOT / "layers/shared/requirements.txt").read_text())
    ]

    assert "boto3" not in names
    assert "botocore" not in names
    assert {"stripe", "pynamodb", "aws-lambda-powertools", "python-ulid", "aws-xray-sdk"} <= set(names)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build directory as `make build` leaves it: the layer from its own Makefile, as sam runs it, and
    each function's sources copied as sam's Python builder copies them, then `make bytecode`."""
    build = tmp_path_factory.mktemp("build")
    make = ["make", "--no-print-directory", "-s", f"PYTHON={sys.executable}"]
    layer = subprocess.run(
        [*make, "-C", "layers/shared", "build-SharedLayer", f"ARTIFACTS_DIR={build / 'SharedLayer'}"],
        cwd=ROOT,
        env=os.environ | {"UV": str(Path(sys.executable).with_name("uv"))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert layer.returncode == 0, layer.stderr
    for code in (ROOT / "functions").iterdir():
        if (code / "app.py").is_file():
            shutil.copytree(code, build / code.name, ignore=shutil.ignore_patterns("__pycache__"))
    functions = subprocess.run(
        [*make, "bytecode", f"BUILD_DIR={build}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert functions.returncode == 0, functions.stderr
    return build


def stale_or_missing_bytecode(source: Path) -> str | None:
    """Why the runtime would compile `source` at a cold start, or None when its .pyc will be used as is:
    Python 3.13's magic number, a hash-based .pyc not checked against the source, and the source's hash."""
    cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
    if not cached.is_file():
        return "no .pyc"
    header = cached.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return "not Python 3.13's bytecode"
    if int.from_bytes(header[4:8], "little") != 0b01:
        return "not an unchecked-hash .pyc"
    if header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return "compiled from other sources"
    return None


def test_the_bytecode_is_for_python_3_13() -> None:
    assert sys.version_info[:2] == (3, 13), "the checks below read Python 3.13's magic number"


def test_every_module_of_the_layer_and_the_functions_ships_its_bytecode(built: Path) -> None:
    sources = sorted(built.rglob("*.py"))
    layer = [source for source in sources if source.is_relative_to(built / "SharedLayer/python")]
    wallet = [source for source in layer if source.is_relative_to(built / "SharedLayer/python/wallet")]
    functions = [source for source in sources if source.name == "app.py" and source.parent.parent == built]

    faults = {str(source.relative_to(built)): stale_or_missing_bytecode(source) for source in sources}

    assert len(layer) > 1000
    assert wallet
    assert len(functions) == len(list((ROOT / "functions").glob("*/app.py")))
    assert {source: fault for source, fault in faults.items() if fault} == {}

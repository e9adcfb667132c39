"""The layer ships exactly the runtime dependencies the project declares, and never boto3."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layer_requirements() -> list[str]:
    lines = (ROOT / "layers/shared/requirements.txt").read_text().splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def test_the_layer_requirements_are_the_projects_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert layer_requirements() == sorted(project["dependencies"])


def test_boto3_is_left_to_the_lambda_runtime() -> None:
    assert not [r for r in layer_requirements() if r.startswith(("boto3", "botocore"))]

"""The layer ships exactly the locked runtime packages, less what the Lambda runtime already has."""

from __future__ import annotations

import subprocess
from pathlib import Path

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

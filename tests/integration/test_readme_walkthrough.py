"""The README's "Try it", as a newcomer runs it: its shell blocks, against `make run`'s stack, from sign-in
through a paid top-up to a spend signed by curl --aws-sigv4 with the key pair the stack printed, 20 times,
each run's balance read showing the credit; then its hold example (between `<!-- hold-walkthrough -->`
marks), in Python and with curl, once template.yaml defines the hold routes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.gateway import routes
from tests.devstack_process import ROOT, DevStackProcess

README = (ROOT / "README.md").read_text(encoding="utf-8")
PAIR = re.compile(r"access key (?P<key>AKIALOCAL\w+), secret (?P<secret>\S+)")
HOLD_ROUTES = {
    "POST /api/users/{userId}/holds",
    "POST /api/users/{userId}/holds/{holdId}/capture",
    "POST /api/users/{userId}/holds/{holdId}/release",
}


def try_it_blocks() -> list[str]:
    section = README.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def hold_blocks() -> tuple[str, str]:
    """The README's hold example: its Python block, then its shell block."""
    marked = README.split("<!-- hold-walkthrough -->\n", 1)[1].split("<!-- /hold-walkthrough -->", 1)[0]
    [python] = re.findall(r"```python\n(.*?)```", marked, flags=re.DOTALL)
    [shell] = re.findall(r"```sh\n(.*?)```", marked, flags=re.DOTALL)
    return python, shell


def top_up_and_spend(stack: DevStackProcess, pair: re.Match[str], user: str = "alice") -> str:
    """Try it's first two blocks as a person pastes them, the pair it printed put in where it says, for
    `user` (alice, as written). They end with 4,750 credits."""
    top_up, spend, audit = try_it_blocks()[:3]
    assert "make audit" in audit
    script = "\n".join(
        [
            "set -euo pipefail",
            top_up,
            spend.replace("AKIALOCAL…", pair["key"]).replace(
                "AWS_SECRET_ACCESS_KEY=…", f"AWS_SECRET_ACCESS_KEY={pair['secret']}"
            ),
        ]
    )
    return (
        script.replace("http://127.0.0.1:3000", stack.url)
        .replace('"alice"', f'"{user}"')
        .replace("/api/users/alice/", f"/api/users/{user}/")
    )


def answers(stdout: str) -> list[dict[str, Any]]:
    """Every JSON object a run printed, in order (curl -s prints no newline after a body)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := stdout.find("{", at)) != -1:
        value, at = decoder.raw_decode(stdout, at)
        found.append(value)
    return found


RUNS = 20


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_leads_from_sign_in_to_a_spend_signed_by_curl_and_shows_the_credit_every_time(
    tmp_path: Path,
) -> None:
    # Given one stack, as a person keeps it running, and a new user for each of 20 runs
    with DevStackProcess({"DEVSTACK_RUN_FILE": str(tmp_path / "run.json")}) as stack:
        pair = PAIR.search(stack.log())
        assert pair, stack.log()

        # When the blocks run as written, straight through
        runs = [
            subprocess.run(
                ["bash", "-c", top_up_and_spend(stack, pair, f"alice-{n}")],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            for n in range(1, RUNS + 1)
        ]

    # Then each run's balance read, right after the settle, shows the 5,000 paid, and the spend leaves 4,750
    for n, run in enumerate(runs, start=1):
        assert run.returncode == 0, run.stderr
        read = [answer for answer in answers(run.stdout) if "transactions" in answer]
        spent = [answer for answer in answers(run.stdout) if "transactionId" in answer]
        assert [(answer["userId"], answer["balance"]) for answer in read] == [(f"alice-{n}", 5000)], (
            run.stdout
        )
        assert [(answer["userId"], answer["amount"], answer["balance"]) for answer in spent] == [
            (f"alice-{n}", 250, 4750)
        ], run.stdout


def test_the_readme_hold_example_is_marked_and_its_python_compiles() -> None:
    # Until the hold routes exist the example cannot run; its marks and its Python are checked meanwhile.
    python, shell = hold_blocks()

    compile(python, "README.md hold example", "exec")
    for block in (python, shell):
        assert "/api/users/alice/holds" in block
        assert "/capture" in block
        assert "http://127.0.0.1:3000" in block, "the stack's address is swapped in for make run's"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.skipif(
    not HOLD_ROUTES.issubset(f"{route.method} {route.path}" for route in routes()),
    reason="template.yaml defines no hold routes yet",
)
def test_the_readme_holds_then_captures_in_python_and_with_curl(tmp_path: Path) -> None:
    python, shell = hold_blocks()
    with DevStackProcess({"DEVSTACK_RUN_FILE": str(tmp_path / "run.json")}) as stack:
        pair = PAIR.search(stack.log())
        assert pair, stack.log()
        # Given alice's 4,750 credits after Try it, and the key pair exported as the README says
        spent = subprocess.run(
            ["bash", "-c", top_up_and_spend(stack, pair)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert spent.returncode == 0, spent.stderr
        shell_of_a_person = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "AWS_ACCESS_KEY_ID": pair["key"],
            "AWS_SECRET_ACCESS_KEY": pair["secret"],
        }

        # When the Python block, then the shell block, run against this stack
        in_python = subprocess.run(
            [sys.executable, "-c", python.replace("http://127.0.0.1:3000", stack.url)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=shell_of_a_person,
        )
        with_curl = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + shell.replace("http://127.0.0.1:3000", stack.url)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=shell_of_a_person,
        )

    # Then each held 500 and captured 300 of it, as the README's comments say
    assert in_python.returncode == 0, in_python.stderr
    held, captured = (json.loads(line) for line in in_python.stdout.splitlines()[-2:])
    assert (held["amount"], held["balance"], held["available"]) == (500, 4750, 4250), in_python.stdout
    assert (captured["amount"], captured["released"]) == (300, 200), in_python.stdout
    assert (captured["balance"], captured["available"]) == (4450, 4450), in_python.stdout
    assert with_curl.returncode == 0, with_curl.stderr
    answer = json.loads(with_curl.stdout[with_curl.stdout.rindex('{"transactionId"') :])
    assert (answer["userId"], answer["amount"], answer["released"]) == ("alice", 300, 200), with_curl.stdout
    assert (answer["balance"], answer["available"]) == (4150, 4150), with_curl.stdout

"""What `make run` says when it starts: one line for a busy port, the same SigV4 key pair every run, and
logs with one JSON line per thing that happened, the libraries' noise only with LOG_LEVEL=DEBUG."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devstack.sigv4 import ServiceCredentials, signed_headers
from tests.devstack_process import ROOT, DevStackProcess

KEY = re.compile(r"access key (?P<key>AKIALOCAL\w+), secret (?P<secret>\S+)")


def test_a_busy_port_is_one_line_naming_the_port_and_the_setting() -> None:
    # Given something already listening where the stack would
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environment = DevStackProcess({"PORT": str(port)}).environment

        # When the stack starts there
        run = subprocess.run(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # Then it says so in one line and stops
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"Cannot start: port {port} is in use (is another make run going?): stop it, or set PORT=, "
        f"as in PORT={port + 1} make run"
    ]


def test_the_service_key_pair_is_the_same_every_run_and_kept_out_of_git(tmp_path: Path) -> None:
    settings = {"DEVSTACK_RUN_FILE": str(tmp_path / "run.json")}
    with DevStackProcess(settings) as first:
        printed = KEY.search(first.log())
    with DevStackProcess(settings) as second:
        again = KEY.search(second.log())
        assert "the same pair every run (kept in " in second.log()

    assert printed, first.log()
    assert again, second.log()
    assert (again["key"], again["secret"]) == (printed["key"], printed["secret"])
    kept = json.loads((tmp_path / "service-credentials.json").read_text())
    assert kept == {"accessKeyId": printed["key"], "secretAccessKey": printed["secret"]}
    assert (tmp_path / "service-credentials.json").stat().st_mode & 0o077 == 0
    assert ".devstack/" in (ROOT / ".gitignore").read_text().splitlines()


def eventually(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def settings_of(url: str) -> None:
    token = json.load(
        urllib.request.urlopen(
            urllib.request.Request(f"{url}/local/token", b'{"userId": "quiet"}'), timeout=30
        )
    )["token"]
    request = urllib.request.Request(f"{url}/api/auto-top-up", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_logs_are_json_lines_by_default_and_the_libraries_speak_only_at_debug() -> None:
    with DevStackProcess() as quiet:
        settings_of(quiet.url)
        checkout_token = json.load(
            urllib.request.urlopen(
                urllib.request.Request(f"{quiet.url}/local/token", b'{"userId": "quiet"}'), timeout=30
            )
        )["token"]
        request = urllib.request.Request(
            f"{quiet.url}/api/checkout", b'{"amount": 1000}', {"Authorization": f"Bearer {checkout_token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            checkout_url = json.load(response)["url"]
        # Paid: the webhook credits it
        paying = urllib.request.Request(f"{checkout_url}/pay", b"", {"Accept": "application/json"})
        urllib.request.urlopen(paying, timeout=30).close()
        assert eventually(lambda: '"message":"webhook handled"' in quiet.log()), quiet.log()
        log = quiet.log()
    with DevStackProcess({"LOG_LEVEL": "DEBUG"}) as verbose:
        settings_of(verbose.url)
        debug_log = verbose.log()

    after_banner = log.split("Ctrl-C stops everything.\n", 1)[1]
    lines = [line for line in after_banner.splitlines() if line.strip()]
    assert lines, log
    for line in lines:
        assert json.loads(line)["level"] in {"INFO", "WARNING", "ERROR"}, line
    assert any(json.loads(line)["message"] == "checkout session created" for line in lines), log
    assert "No application metrics to publish" in debug_log


def test_a_user_id_is_decoded_once_and_checked_by_the_function(tmp_path: Path) -> None:
    with DevStackProcess({"DEVSTACK_RUN_FILE": str(tmp_path / "run.json")}) as stack:
        kept = json.loads((tmp_path / "service-credentials.json").read_text())
        credentials = ServiceCredentials(kept["accessKeyId"], kept["secretAccessKey"])

        def balance(user: str) -> tuple[int, dict[str, object]]:
            url = f"{stack.url}/api/users/{user}/balance"
            request = urllib.request.Request(url, headers=signed_headers("GET", url, b"", credentials))
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)

        # The signed name is what the function sees: decoded once, then held to the user id rule
        assert balance("alice%40example.com") == (
            200,
            {"userId": "alice@example.com", "currency": "usd", "balance": 0, "held": 0, "available": 0},
        )
        status, body = balance("J%C3%BCrgen")
        assert (status, body["error"]["code"]) == (400, "invalid_user")  # type: ignore[index]

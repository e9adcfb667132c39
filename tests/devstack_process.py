"""`python -m devstack`, the process `make run` starts, run for a test on a free port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.waiting import WAIT_SECONDS

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"^Ready in [\d.]+ s at (?P<url>http://127\.0\.0\.1:\d+)")
# Only what a user's shell would have: the test process's own settings must not leak into the stack.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class DevStackProcess:
    def __init__(self, settings: dict[str, str] | None = None, startup_timeout: float = WAIT_SECONDS) -> None:
        environment = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        environment |= {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/shared"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            "PORT": "0",
            # A developer's .env must not change what the tests run against.
            "ENV_FILE": os.devnull,
            "STRIPE_EMULATOR_SETTLE_SECONDS": "0.5",
            # Where `make audit` finds this stack: each test's stack its own.
            "DEVSTACK_RUN_FILE": str(Path(tempfile.mkdtemp(prefix="devstack-")) / "run.json"),
        }
        self.environment = environment | (settings or {})
        self.run_file = Path(self.environment["DEVSTACK_RUN_FILE"])
        self.startup_timeout = startup_timeout
        self.output: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        started = time.monotonic()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(self.startup_timeout):
            self.stop()
            raise RuntimeError("the dev stack did not start:\n" + "".join(self.output))
        self.ready_after = time.monotonic() - started
        return self

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line)
            if match := READY.match(line):
                self.url = match["url"]
                self._ready.set()
        self._ready.set()

    def stop(self) -> int | None:
        """Stop it as Ctrl-C does; its exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def log(self) -> str:
        return "".join(self.output)

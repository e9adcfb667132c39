"""Lambda containers on this machine: each one a process that imports one function's handler and serves
one event at a time, keeping its module state between events as a warm container does.

A function gets more containers when its requests overlap, up to a cap, as Lambda scales out. Powertools
keeps per-request state at class and module level (the resolver's current event, the Logger's keys, the
Metrics buffer) on the promise of one event at a time per process; two functions in one process break it.
A container whose process dies is replaced; one that raises keeps running, as the Lambda runtime does.

Containers are forked from a server process that has imported the libraries every function uses, much as
SnapStart restores a snapshot: each then sets its function's environment and imports its handler alone.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

# forkserver, not fork: the stack runs server threads, which a child forked from it would inherit
# half-dead. The fork server is a fresh single-threaded interpreter.
_FORKSERVER = multiprocessing.get_context("forkserver")
# Libraries only: none reads the environment on import. The product's modules load in each container.
PRELOAD = [
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "botocore.session",
    "pynamodb.models",
    "stripe",
]
DEFAULT_PER_FUNCTION = 3


def start_fork_server() -> None:
    """Start the process containers fork from, with the libraries imported; done early, it loads them
    while the rest of the stack starts."""
    _FORKSERVER.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()


class FunctionError(Exception):
    """The handler raised: Lambda reports an unhandled error and the container lives on."""


class ContainerCrashedError(Exception):
    """The container's process died during the event: Lambda answers 502 and starts a new container."""


class FunctionTimeoutError(Exception):
    """The handler ran past the function's Timeout: Lambda stops it and resets the container."""


class ContainerStartError(Exception):
    """The function could not be imported: its settings or code are broken."""


@dataclass(frozen=True)
class Function:
    """What a container runs: the handler `module.handler` with this environment, as Lambda's config says."""

    name: str
    module: str
    handler: str
    memory_mb: int = 128
    timeout_seconds: float = 15
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 15)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _serve(function: Function, connection: Connection) -> None:
    """A container's process: import the handler once, then answer events until the pipe closes."""
    # Ctrl-C reaches the whole process group; the stack stops its containers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(function.environment)
    if os.environ.get("POWERTOOLS_LOG_LEVEL", "").upper() != "DEBUG":
        # Metrics are not published locally, so every invocation would warn that it had none to publish.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        handler = getattr(importlib.import_module(function.module), function.handler)
    except BaseException:
        connection.send(("failed", traceback.format_exc()))
        return
    connection.send(("ready", None))
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return  # the stack is gone: no orphan outlives it
        context = LambdaContext(
            function.name, function.memory_mb, deadline=time.monotonic() + function.timeout_seconds
        )
        try:
            answer = ("ok", handler(event, context))
        except Exception:
            answer = ("error", traceback.format_exc())
        connection.send(answer)


class Container:
    """One process running one function, serving one event at a time."""

    def __init__(self, function: Function) -> None:
        self.function = function
        self._connection, child = _FORKSERVER.Pipe()
        self._process: BaseProcess = _FORKSERVER.Process(
            target=_serve, args=(function, child), name=f"lambda:{function.name}", daemon=True
        )
        self._process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def wait_ready(self) -> None:
        try:
            status, detail = self._connection.recv()
        except (EOFError, OSError):
            status, detail = "failed", f"exited with code {self._process.exitcode}"
        if status != "ready":
            self.stop()
            raise ContainerStartError(
                f"{self.function.name} ({self.function.module}) did not start:\n{detail}"
            )

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            self._connection.send(event)
            if not self._connection.poll(self.function.timeout_seconds):
                self._process.kill()
                self.stop()
                raise FunctionTimeoutError(
                    f"{self.function.name} timed out after {self.function.timeout_seconds:g} s"
                )
            status, value = self._connection.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self._process.join(1)
            raise ContainerCrashedError(
                f"{self.function.name}'s container exited with code {self._process.exitcode}"
            ) from exc
        if status == "error":
            raise FunctionError(value)
        result: dict[str, Any] = value
        return result

    def stop(self) -> None:
        self._connection.close()  # the process reads EOF and returns
        self._process.join(0 if self._process.exitcode is not None else 2)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


class FunctionContainers:
    """One function's containers: an idle one serves the event, or a new one starts, up to `limit`."""

    def __init__(self, function: Function, limit: int) -> None:
        if limit < 1:
            raise ValueError("a function needs at least one container")
        self.function = function
        self.limit = limit
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._starting = 0
        self._failure: ContainerStartError | None = None
        self._closed = False
        self._changed = threading.Condition()

    def start_one(self) -> None:
        """Start a container now and wait until its handler is imported."""
        with self._changed:
            self._starting += 1
        self._start()
        if self._failure is not None:
            raise self._failure

    def _start(self) -> None:
        container: Container | None = None
        failure: ContainerStartError | None = None
        try:
            container = Container(self.function)
            container.wait_ready()
        except ContainerStartError as exc:
            container, failure = None, exc
        with self._changed:
            self._starting -= 1
            if failure is not None:
                self._failure = failure
            elif container is not None and self._closed:
                container.stop()
            elif container is not None:
                self._all.append(container)
                self._idle.append(container)
            self._changed.notify_all()

    def _acquire(self) -> Container:
        with self._changed:
            while True:
                if self._closed:
                    raise ContainerCrashedError(f"{self.function.name}: the stack is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._failure is not None and not self._all and not self._starting:
                    raise self._failure
                if len(self._all) + self._starting < self.limit:
                    # A cold start, as Lambda scales out; the event goes to whichever container frees first.
                    self._starting += 1
                    threading.Thread(
                        target=self._start, name=f"start:{self.function.name}", daemon=True
                    ).start()
                self._changed.wait()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        container = self._acquire()
        try:
            result = container.invoke(event)
        except (ContainerCrashedError, FunctionTimeoutError):
            with self._changed:
                self._all.remove(container)
                self._changed.notify_all()
            container.stop()
            raise
        except FunctionError:
            self._release(container)
            raise
        self._release(container)
        return result

    def _release(self, container: Container) -> None:
        with self._changed:
            self._idle.append(container)
            self._changed.notify_all()

    @property
    def count(self) -> int:
        with self._changed:
            return len(self._all)

    def pids(self) -> list[int]:
        with self._changed:
            return [c.pid for c in self._all if c.pid is not None]

    def close(self) -> None:
        with self._changed:
            self._closed = True
            containers, self._all, self._idle = self._all, [], []
            self._changed.notify_all()
        for container in containers:
            container.stop()


class Containers:
    """Every function's containers, by function name."""

    def __init__(self, functions: list[Function], per_function: int = DEFAULT_PER_FUNCTION) -> None:
        start_fork_server()
        self.per_function = per_function
        self.functions = {f.name: FunctionContainers(f, per_function) for f in functions}

    def warm(self) -> list[float]:
        """Start one container per function, all at once; the seconds until each was ready, in order."""
        started = time.perf_counter()
        ready: list[float] = []
        errors: list[ContainerStartError] = []
        lock = threading.Lock()

        def start(pool: FunctionContainers) -> None:
            try:
                pool.start_one()
            except ContainerStartError as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                ready.append(time.perf_counter() - started)

        threads = [threading.Thread(target=start, args=(pool,)) for pool in self.functions.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return sorted(ready)

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        return self.functions[function].invoke(event)

    def pids(self) -> list[int]:
        return [pid for pool in self.functions.values() for pid in pool.pids()]

    def close(self) -> None:
        for pool in self.functions.values():
            pool.close()

"""The dev stack runs each function as Lambda does: in container processes that serve one event at a
time, keep their module state, scale out up to a cap, are replaced when they die, and stop with it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.auth import LocalIssuer
from devstack.containers import Containers, ContainerStartError, Function
from devstack.gateway import Gateway, Request, Route, functions, route_pattern
from tests.devstack_process import DevStackProcess
from tests.waiting import WAIT_SECONDS, wait_until

CAP = 2


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    yield from act_gateway(timeout_seconds=10)


def act_gateway(timeout_seconds: float) -> Iterator[Gateway]:
    path = "/api/act"
    route = Route(
        method="POST",
        path=path,
        function="ActFunction",
        module="tests.container_functions",
        handler="act",
        authorization="NONE",
        memory_mb=128,
        pattern=route_pattern(path),
        timeout_seconds=timeout_seconds,
    )
    containers = Containers(functions([route], {"CONTAINER_TEST_SETTING": "from the template"}), CAP)
    gateway = Gateway(LocalIssuer("urn:credits:test"), lambda: "", [route], containers=containers)
    try:
        gateway.load_handlers()
        yield gateway
    finally:
        gateway.close()


def act(gateway: Gateway, action: str) -> tuple[int, dict[str, object]]:
    request = Request("POST", "/api/act", {"content-type": "text/plain"}, action.encode(), "127.0.0.1")
    response = gateway.respond(request)
    return response.status, json.loads(response.body)


def test_a_warm_container_keeps_its_module_state_and_its_environment(gateway: Gateway) -> None:
    _, first = act(gateway, "echo")
    _, second = act(gateway, "echo")

    assert (first["served"], second["served"]) == (1, 2)
    assert first["pid"] == second["pid"] != os.getpid()
    assert second["setting"] == "from the template"


def test_overlapping_events_are_served_by_more_containers_up_to_the_cap(gateway: Gateway) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: act(gateway, "wait"), range(8)))

    assert {status for status, _ in answers} == {200}
    assert len({body["pid"] for _, body in answers}) == CAP
    # One event at a time per container: no container numbered two of its events alike.
    assert len({(body["pid"], body["served"]) for _, body in answers}) == len(answers)


def test_a_handler_that_raises_gets_500_and_its_container_lives_on(gateway: Gateway) -> None:
    _, before = act(gateway, "echo")

    assert act(gateway, "fail") == (500, {"message": "Internal Server Error"})
    _, after = act(gateway, "echo")
    assert (after["pid"], after["served"]) == (before["pid"], 3)


def test_a_container_that_dies_gets_502_and_is_replaced(gateway: Gateway) -> None:
    _, before = act(gateway, "echo")

    assert act(gateway, "die") == (502, {"message": "Bad Gateway"})
    status, after = act(gateway, "echo")
    assert status == 200
    assert after["pid"] != before["pid"]
    assert after["served"] == 1


def test_a_handler_past_its_timeout_gets_500_and_a_new_container() -> None:
    # Given a function whose Timeout is half a second
    for gateway in act_gateway(timeout_seconds=0.5):
        _, before = act(gateway, "echo")

        # When its handler runs on, then Lambda's timeout error is answered 500 and the container reset
        assert act(gateway, "hang") == (500, {"message": "Internal Server Error"})
        status, after = act(gateway, "echo")
        assert (status, after["served"]) == (200, 1)
        assert after["pid"] != before["pid"]


def test_a_function_that_cannot_be_imported_stops_the_start_with_its_name() -> None:
    containers = Containers([Function("BrokenFunction", "tests.no_such_module", "handler")], 1)
    try:
        with pytest.raises(ContainerStartError, match="BrokenFunction"):
            containers.warm()
    finally:
        containers.close()


def descendants(pid: int) -> set[int]:
    """Every process under `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    # A zombie has exited; only its parent has yet to read its status.
    return {pid for pid in pids if Path(f"/proc/{pid}").exists() and " Z " not in _stat(pid)}


def _stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except OSError:
        return " Z "


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["Ctrl-C", "killed"])
def test_no_container_outlives_the_stack(stop: signal.Signals) -> None:
    # Given the stack with its containers running (one per function at least, plus the fork server)
    stack = DevStackProcess().start()
    assert stack._process is not None
    children = descendants(stack._process.pid)
    assert len(children) >= 4

    # When it is stopped with Ctrl-C, or even killed outright
    stack._process.send_signal(stop)
    stack._process.wait(WAIT_SECONDS)

    # Then every process it started is gone
    wait_until(lambda: not alive(children), lambda: f"every process of the stack to end: {alive(children)}")


def test_a_function_that_cannot_start_stops_make_run_with_its_error() -> None:
    # Given a setting every function's Logger refuses at import
    stack = DevStackProcess({"POWERTOOLS_LOG_LEVEL": "NOPE"}).start()

    # Then the stack says which function could not start, and why, and exits 2
    assert stack.stop() == 2
    assert "Cannot start: a function could not start" in stack.log()
    assert "Unknown level: 'NOPE'" in stack.log()
    assert "Ready in" not in stack.log()

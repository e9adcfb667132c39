"""`python -m devstack` (what `make run` starts): the whole product on 127.0.0.1, Ctrl-C stops it all."""

from __future__ import annotations

import signal
import sys
import threading

from devstack.stack import DevStack, StackError


def main() -> int:
    try:
        stack = DevStack.from_environment()
    except StackError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stack.start()
    except StackError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        print(stack.banner(), flush=True)
        stopped.wait()
        print("Stopping…", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stand-in for the Lambda runtime's `snapshot_restore_py`, which is not on PyPI: the cold-start probe
puts it on the path as that module, and runs the hooks it records as a snapshot and a restore would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
before_snapshot: list[Hook] = []
after_restore: list[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    after_restore.append((func, args, kwargs))
    return func

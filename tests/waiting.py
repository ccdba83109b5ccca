"""Waiting for events, never for a while: every wait names what it waits for and fails saying so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def until(condition: Callable[[], T], what: str | Callable[[], str], timeout: float = 30.0, every: float = 0.05) -> T:
    """``condition()`` once it is truthy; an AssertionError naming ``what`` after ``timeout`` seconds
    (a callable ``what`` is asked then, to show the state at the time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def logs_contain(mgr: Any, name: str, needle: str, timeout: float = 30.0) -> str:
    """The session's output once it holds ``needle`` (any manager: local, service client)."""
    seen = [""]

    def found() -> str | None:
        seen[0] = str(mgr.logs(name))
        return seen[0] if needle in seen[0] else None

    try:
        return until(found, f"{needle!r} in the output of {name}", timeout, every=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it said: {seen[0][-2000:]!r}") from None

"""The one cache of the package: bounded, thread-safe, with an optional time to live.

A form re-validates on every keystroke; re-reading every config file and running git each time made
typing slow as configs grew, so what was read from disk is kept until the file changes (keys hold the
file's path and its ``stat``). Registry answers and engine listings are kept for seconds. Every cache is
a ``Memo`` with a size bound: keys may come from user input (an image being typed), and a long-lived
service must not grow without end. Only successful computations are kept: a failure is asked again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    """Up to ``size`` values, the least recently used dropped first; each kept for ``seconds`` (None: until
    dropped or cleared)."""

    def __init__(self, size: int, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.seconds, self._clock = size, seconds, clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T], seconds: float | None = None) -> T:
        """The value kept for ``key``, or ``compute()`` kept now; ``seconds`` overrides the time to live."""
        ttl = self.seconds if seconds is None else seconds
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and (ttl is None or self._clock() - hit[0] < ttl):
                self._entries.move_to_end(key)
                return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any:
        """The value kept for ``key`` (however old), or None."""
        with self._lock:
            hit = self._entries.get(key)
        return None if hit is None else hit[1]

    def put(self, key: Hashable, value: Any) -> None:
        self.get(key, lambda: value, seconds=0.0)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: What was read from disk (config files, devcontainer.json, facts about a repository).
FILES = Memo(256)


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode), or None when the file is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def remember(key: Hashable, compute: Callable[[], T]) -> T:
    """The value for ``key`` read from disk, computing (and keeping) it when not known yet."""
    return FILES.get(key, compute)


def clear() -> None:
    """Forget everything read from disk (tests and benchmarks)."""
    FILES.clear()

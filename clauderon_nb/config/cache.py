"""What was read from disk, kept in memory until the file changes.

A form re-validates on every keystroke; re-reading every config file and running git
each time made typing slow as configs grew. Entries are keyed by the file's path and
its ``stat`` (modification time, size, inode), so a changed file is read again on the
next keystroke. Only successful reads are kept: a broken file keeps failing loudly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_MAX = 256
_entries: dict[Hashable, Any] = {}


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode), or None when the file is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def remember(key: Hashable, compute: Callable[[], T]) -> T:
    """The value for ``key``, computing (and keeping) it when not known yet."""
    try:
        return _entries[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    value = compute()
    if len(_entries) >= _MAX:
        _entries.pop(next(iter(_entries)))
    _entries[key] = value
    return value


def clear() -> None:
    """Forget everything (tests and benchmarks)."""
    _entries.clear()

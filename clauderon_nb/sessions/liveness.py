"""Which process is doing a create or a delete, and whether it is still alive.

A record in ``creating`` or ``deleting`` names the process that runs the step
(host, pid and the pid's start time, so a reused pid is not mistaken for it).
When that process is gone, the step was interrupted and can be finished.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ClauderonError
from ..model.session import Session, Status


class Busy(ClauderonError):
    """Another step (a create or delete) is running on the session."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def this_process() -> dict[str, Any]:
    """An identity for the current process that survives in the store."""
    pid = os.getpid()
    return {"host": os.uname().nodename, "boot": _boot_id(), "pid": pid, "start": _start_time(pid)}


def process_gone(info: Any) -> bool:
    """True only when we can tell the recorded process no longer runs (same host, same boot)."""
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return True  # no owner recorded (an older record, or a damaged one): nothing is running it
    if info.get("host") != os.uname().nodename:
        return False  # another machine sharing this home: we cannot tell
    if info.get("boot") and _boot_id() and info["boot"] != _boot_id():
        return True  # the machine rebooted since
    pid = info["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, belongs to someone else: compare start times below
    started = _start_time(pid)
    return bool(info.get("start")) and started is not None and started != info["start"]


def refuse_if_busy(session: Session, action: str) -> None:
    """Refuse ``action`` while a create or delete of the session is under way."""
    if session.status in (Status.CREATING, Status.DELETING):
        who = session.runtime.get("creator" if session.status is Status.CREATING else "deleter") or {}
        raise Busy(
            f"session {session.name!r} is {session.status.value} (process {who.get('pid', '?')}); "
            f"{action} it when that is done"
        )

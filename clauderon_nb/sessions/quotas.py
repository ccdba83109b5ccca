"""Per-user quotas: how many sessions, how many running, and their total CPU and memory.

Checked and the new record written under one lock (``.quota.lock`` in the home or the service's
data folder), so concurrent creates cannot overshoot. Enforced by the service; in a user's own
kernel, like the rest of the policy, advisory.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PolicyError
from ..model.display import show_value
from ..model.session import Session, Status
from ..model.units import approx_size

if TYPE_CHECKING:  # the counting needs no policy: views use it to show each owner's use
    from ..config.policy import AdminPolicy

T = TypeVar("T")
QUOTAS = ("max_sessions", "max_running_sessions", "max_total_cpu", "max_total_memory", "max_total_gpus")
_TOTALS = {"max_total_cpu": "cpu_limit", "max_total_memory": "memory_limit", "max_total_gpus": "gpus"}
_LIVE = (Status.RUNNING, Status.CREATING)


class QuotaError(PolicyError):
    """A quota refuses the create or start; ``quota`` names it."""

    def __init__(self, message: str, quota: str) -> None:
        super().__init__(message)
        self.quota = quota


@contextmanager
def quota_lock(home: Path) -> Iterator[None]:
    """One writer at a time between the check and the new record (threads and processes alike)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / ".quota.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def usage(sessions: list[Session]) -> dict[str, int]:
    """What an owner's sessions use now: counts, and CPU (millicores) and memory (bytes) of the running ones."""
    kept = [s for s in sessions if s.status is not Status.DELETING]
    live = [s for s in kept if s.status in _LIVE]
    return {
        "max_sessions": len(kept),
        "max_running_sessions": len(live),
        "max_total_cpu": sum(_int(s.settings.get("cpu_limit")) for s in live),
        "max_total_memory": sum(_int(s.settings.get("memory_limit")) for s in live),
        "max_total_gpus": sum(max(_int(s.settings.get("gpus")), 0) for s in live),
    }


def check_quotas(policy: AdminPolicy, sessions: list[Session], settings: dict[str, Any], *, new: bool) -> None:
    """Refuse (``QuotaError``) a create (``new``) or a start that would go over a quota."""
    now = usage(sessions)
    for key in QUOTAS:
        found = policy.limit(key)
        if found is None or (key == "max_sessions" and not new):
            continue
        limit, where = found
        if key in ("max_sessions", "max_running_sessions"):
            if now[key] + 1 > limit:
                plural = "" if now[key] == 1 else "s"
                what = f"session{plural} (running and stopped)" if key == "max_sessions" else f"running session{plural}"
                advice = "delete one first" if key == "max_sessions" else "stop one first"
                raise QuotaError(
                    f"quota {key} ({where}): you have {now[key]} {what}, the limit is {limit}; {advice}", key
                )
            continue
        field = _TOTALS[key]
        asked = settings.get(field)
        if field == "gpus":
            if not asked:
                continue  # no GPU asked: nothing to count
            if asked == -1:
                raise QuotaError(f"quota {key} ({where}): gpus all cannot be counted against it; ask for a number", key)
        if asked is None:
            flag = "--" + field.replace("_", "-")
            raise QuotaError(
                f"quota {key} ({where}): a session needs a {field} to count against it; give {flag} "
                "(or ask the admin to set a default)",
                key,
            )
        if now[key] + asked > limit:
            raise QuotaError(
                f"quota {key} ({where}): your running sessions use {show_value(field, now[key])} and this one asks "
                f"for {show_value(field, asked)}, the limit is {show_value(field, limit)}; stop one or ask for less",
                key,
            )


def check_repo_storage(used: int, adding: int, limit: tuple[int, str]) -> None:
    """Refuse (``QuotaError``) a sent workspace that would take the owner's repository copies over
    ``max_repo_storage`` (``limit``: its value and where it is set)."""
    if used + adding <= limit[0]:
        return
    limit_value, where = limit
    raise QuotaError(
        f"quota max_repo_storage ({where}): your repositories on the service take {approx_size(used)} and this "
        f"workspace adds {approx_size(adding)}, the limit is {show_value('memory_limit', limit_value)}; delete the "
        "sessions of repositories you no longer use (their copies are removed after delete_unused_repos_after)",
        "max_repo_storage",
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

"""The Session record and its display."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .display import escape_html, show_value
from .git_ids import is_commit_hash

#: ``runtime["layout"]`` of sessions made with a workspace of their own (not a git worktree of the repository).
LAYOUT = "workspace"
#: Runtime key: the packs the workspace was made with (its base history).
SEED_PACKS = "seed_packs"


class Status(str, Enum):
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETING = "deleting"

    def __str__(self) -> str:
        return self.value


@dataclass
class Session:
    """One agent session. ``settings`` holds the resolved container settings, as created."""

    id: str
    name: str
    owner: str
    backend: str
    agent: str
    repo: str
    worktree: str
    branch: str
    prompt: str
    settings: dict[str, Any]
    backend_id: str | None
    status: Status
    error: str | None
    created_at: float
    updated_at: float
    runtime: dict[str, Any] = field(default_factory=dict)  # backend bookkeeping: argv, pid, base commit…

    def recorded_groups(self) -> tuple[str, ...]:
        """The hub groups the owner had when the session was made (what its policy sections were)."""
        groups = self.runtime.get("groups")
        return tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()

    def base_commit(self) -> str | None:
        """The commit the session's branch started from, if the record holds a valid one."""
        base = self.runtime.get("base_commit")
        return base if is_commit_hash(base) else None

    def agent_uid(self) -> int:
        """The uid the session's agent ran as (recorded at create; 1000 when the record has none or a bad one)."""
        uid = self.runtime.get("uid")
        return uid if type(uid) is int and 0 < uid < 2**31 else 1000

    def summary(self) -> str:
        """Image and limits in one short phrase."""
        s = self.settings
        if self.backend == "local":
            return "local process"
        parts = [str(s.get("image"))]
        if s.get("cpu_limit"):
            parts.append(f"cpu {show_value('cpu_limit', s['cpu_limit'])}")
        if s.get("memory_limit"):
            parts.append(f"memory {show_value('memory_limit', s['memory_limit'])}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        text = f"Session {self.name!r}: {self.status.value} on {self.backend} ({self.summary()}), branch {self.branch}"
        if self.error:
            text += f"\n  error: {self.error}"
        return text

    def _repr_html_(self) -> str:
        color = {"running": "#1a7f37", "failed": "#cf222e"}.get(self.status.value, "#57606a")
        err = f"<br><span style='color:#cf222e'>{escape_html(self.error)}</span>" if self.error else ""
        return (
            f"<div><b>Session</b> <code>{escape_html(self.name)}</code> "
            f"<span style='color:{color}'>{escape_html(self.status.value)}</span> on {escape_html(self.backend)} "
            f"&middot; {escape_html(self.summary())} &middot; branch <code>{escape_html(self.branch)}</code>{err}</div>"
        )

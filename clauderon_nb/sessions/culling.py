"""Lifetimes: stop sessions that ran too long or sat idle, delete those stopped too long.

The admin policy says how long (``max_lifetime``, ``idle_timeout``, ``delete_stopped_after``);
the clauderon service runs a pass on a timer, ``clauderon-nb cull`` runs one where there is no
service. The clock is a parameter, so a pass can be asked "as of" any time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config.policy import AdminPolicy
from ..model.session import Session, Status
from ..model.units import human_duration

#: How often an idle check looks at a session: the agent counts as active when its marker
#: (CPU time, last output) changed since the previous pass.
ACTIVITY_KEY = "activity"


@dataclass(frozen=True)
class CullAction:
    """One thing a pass does (or, in a dry run, would do) to one session."""

    session_id: str
    owner: str
    name: str
    action: str  # "stop" or "delete"
    reason: str  # the policy key
    message: str  # what the user is told

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.session_id,
            "owner": self.owner,
            "name": self.name,
            "action": self.action,
            "reason": self.reason,
            "message": self.message,
        }

    def __repr__(self) -> str:
        return f"{self.action} {self.owner}/{self.name}: {self.message}"


def due(
    session: Session,
    policy: AdminPolicy,
    now: float,
    last_active: Callable[[Session], float | None],
) -> CullAction | None:
    """What the lifetime rules say about one session at ``now`` (``None``: leave it)."""

    def act(action: str, key: str, why: str) -> CullAction:
        limit, where = found[key]
        done = "stopped" if action == "stop" else "deleted"
        message = f"{done} by the admin policy: {key} {human_duration(limit)} ({where}); {why}"
        return CullAction(session.id, session.owner, session.name, action, key, message)

    found = {k: v for k in ("max_lifetime", "idle_timeout", "delete_stopped_after") if (v := policy.limit(k))}
    if session.status is Status.RUNNING:
        if "max_lifetime" in found and now - session.created_at >= found["max_lifetime"][0]:
            return act("stop", "max_lifetime", f"it was created {human_duration(now - session.created_at)} ago")
        if "idle_timeout" in found:
            seen = last_active(session)
            if seen is not None and now - seen >= found["idle_timeout"][0]:
                return act("stop", "idle_timeout", f"no output and no CPU for {human_duration(now - seen)}")
    elif session.status in (Status.STOPPED, Status.FAILED) and "delete_stopped_after" in found:
        since = session.runtime.get("stopped_at")
        stopped = float(since) if isinstance(since, (int, float)) else session.updated_at
        if now - stopped >= found["delete_stopped_after"][0]:
            return act("delete", "delete_stopped_after", f"it was stopped {human_duration(now - stopped)} ago")
    return None

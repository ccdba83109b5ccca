"""Lifetimes: stop sessions that ran too long or sat idle, delete those stopped too long.

The admin policy says how long (``max_lifetime``, ``idle_timeout``, ``delete_stopped_after``);
the clauderon service runs a pass on a timer, ``clauderon-nb cull`` runs one where there is no
service. The clock is a parameter, so a pass can be asked "as of" any time.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config.policy import AdminPolicy
from ..model.answers import CullAction
from ..model.session import Session, Status
from ..model.units import human_duration


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

"""Lifetimes: stop sessions that ran too long or sat idle, delete those stopped too long.

The admin policy says how long (``max_lifetime``, ``idle_timeout``, ``delete_stopped_after``);
the clauderon service runs a pass on a timer, ``clauderon-nb cull`` runs one where there is no
service. The clock is a parameter, so a pass can be asked "as of" any time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..config.policy import AdminPolicy, load_policy
from ..errors import ClauderonError
from ..model.answers import CullAction
from ..model.session import Session, Status
from ..model.units import human_duration

if TYPE_CHECKING:
    from .manager import SessionManager

_log = logging.getLogger("clauderon")
ACTIVITY_KEY = "activity"  # runtime key: the agent's last CPU/output marker and when it changed (idle_timeout)
#: How long the service keeps a repository copy no session uses, when its policy does not say.
DEFAULT_UNUSED_REPO_GRACE = 7 * 24 * 3600.0


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


def cull(m: SessionManager, now: float | None = None, dry_run: bool = False) -> list[CullAction]:
    """One pass of the policy's lifetimes over every owner's sessions: stop the ones that ran too long or sat
    idle, delete the ones stopped too long. ``now``: the clock (default: now)."""
    from .lifecycle import stop_session
    from .removal import remove_session

    clock = time.time() if now is None else now
    policy = load_policy()
    actions: list[CullAction] = []
    for session in m.reader().all():
        if session.status in (Status.CREATING, Status.DELETING) or session.runtime.get("orphan"):
            continue
        rules = policy.for_user(session.owner, session.recorded_groups())
        action = due(session, rules, clock, lambda s: last_active(m, s, clock, dry_run))
        if action is None:
            continue
        actions.append(action)
        if dry_run:
            continue
        try:
            if action.action == "stop":
                stop_session(m, session, action.message, "cull", action.reason)
            else:
                remove_session(m, session, by="cull", reason=action.reason)
        except ClauderonError as exc:
            _log.warning("cull %s/%s: %s", session.owner, session.name, exc)
            continue
        _log.info("cull: %r", action)
    return actions


def last_active(m: SessionManager, session: Session, now: float, dry_run: bool) -> float | None:
    """When the agent was last seen doing something (CPU or output changed between two passes)."""
    backend = m.backend(session.backend)
    probe = getattr(backend, "activity", None)
    try:
        marker = probe(session) if probe else _last_line(backend.logs(session, 1, False))
    except ClauderonError:
        return None
    if marker is None:
        return None
    stored = session.runtime.get(ACTIVITY_KEY)
    if isinstance(stored, dict) and stored.get("marker") == marker and isinstance(stored.get("seen"), (int, float)):
        return float(stored["seen"])
    if not dry_run:
        session.runtime = {**session.runtime, ACTIVITY_KEY: {"marker": marker, "seen": now}}
        m.store.update(session.id, runtime=session.runtime)
    return now


def remove_unused_repos(m: SessionManager, now: float, dry_run: bool = False) -> list[str]:
    """The service's copies of repositories that no session uses and that nobody used for the policy's
    ``delete_unused_repos_after`` (default 7 days): removed. Returns what was (or would be) removed."""
    from ..model.naming import owner_folder
    from .workspace import remove_tree

    policy = load_policy()
    sessions = m.reader().all()
    used = {(owner_folder(s.owner), s.runtime.get("repo_key")) for s in sessions}
    owners = {owner_folder(s.owner): s for s in sessions}
    removed: list[str] = []
    for folder in sorted((m.home / "repos").glob("*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        sample = owners.get(folder.name)
        rules = policy.for_user(sample.owner, sample.recorded_groups()) if sample else policy
        found = rules.limit("delete_unused_repos_after")
        grace = found[0] if found else DEFAULT_UNUSED_REPO_GRACE
        for bare in sorted(folder.glob("*.git")):
            key = bare.name.removesuffix(".git")
            try:
                idle = now - os.lstat(bare).st_mtime
            except OSError:
                continue
            if (folder.name, key) in used or idle < grace:
                continue
            removed.append(f"{folder.name}/{bare.name}")
            if not dry_run:
                remove_tree(bare)
    return removed


def _last_line(text: str | Iterator[str]) -> str | None:
    if not isinstance(text, str):
        return None
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""

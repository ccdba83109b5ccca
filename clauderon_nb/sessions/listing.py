"""Finding sessions and reconciling their records with what the engines run: ``list``, ``get``, orphans.

A record says what was made; the engine says what runs. Each listing asks every backend once,
updates records whose state changed, and shows engine objects with our labels and no record as
orphans. Another owner's session is never revealed to a non-admin.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config.environment import docker_engine_present
from ..errors import ClauderonError, PolicyError, did_you_mean
from ..model.choices import Backend
from ..model.naming import is_dns_label
from ..model.session import Session, Status
from .removal import recover
from .store import StoreError

if TYPE_CHECKING:
    from .manager import SessionManager


class NotFound(ClauderonError):
    """No such session (among the caller's; another owner's sessions are not revealed)."""


def find(m: SessionManager, name_or_id: str) -> Session:
    """One of the caller's sessions by name or id, as recorded. Another owner's session is not found (its
    existence is not revealed) unless the caller is an admin, who may name it ``owner/name`` or by its id."""
    store = m.reader()
    owner, _, name = name_or_id.rpartition("/")
    session = None
    if owner and m.is_admin:
        session = store.find(name, owner)
    elif not owner:
        session = store.find(name_or_id, m.owner)
        if session is None:  # an admin may name anyone's session by its id (the policy is read only then)
            other = store.find_any(name_or_id)
            session = other if other is not None and m.is_admin else None
    if session is None:
        names = [s.name for s in store.all(m.owner)]
        raise NotFound(f"no session named {name_or_id!r}{did_you_mean(name_or_id, names)}")
    if not is_dns_label(session.name) or session.backend not in {b.value for b in Backend}:
        raise StoreError(f"{store.path}: session {session.name!r} has a damaged record; delete the store entry")
    return session


def get(m: SessionManager, name_or_id: str) -> Session:
    """One of the caller's sessions, reconciled with its backend."""
    session = recover(m, find(m, name_or_id))
    if session is None:
        raise ClauderonError(f"no session named {name_or_id!r} (an interrupted delete of it was just finished)")
    if session.status not in (Status.CREATING, Status.DELETING):
        try:
            observed = m.backend(session.backend).observe([session])
        except ClauderonError as exc:
            session.error = f"state unknown: {exc}"
        else:
            apply(m, session, observed.get(session.id))
    return session


def list_sessions(m: SessionManager, all_owners: bool = False) -> list[Session]:
    """Sessions (the caller's, or everyone's), reconciled with each backend in one call per backend."""
    store = m.reader()
    if all_owners and m.shared and not m.is_admin:
        raise PolicyError("list --all: only hub admins see every user's sessions")
    engine = docker_engine_present()
    if engine:  # the engine answers while the records are read
        early = getattr(m.backend("docker"), "survey_early", None)
        if early is not None:
            early(m.deployment())
    rows = store.all(None if all_owners else m.owner)
    # Only the caller's interrupted steps are finished here; others' are left to them (or an admin).
    sessions = [s for s in (recover(m, s) if s.owner == m.owner else s for s in rows) if s]
    by_backend: dict[str, list[Session]] = {}
    for s in sessions:
        if s.status not in (Status.CREATING, Status.DELETING):
            by_backend.setdefault(s.backend, []).append(s)
    if "docker" not in by_backend and engine:
        by_backend["docker"] = []  # no docker record, but labelled containers may still be there
    candidates: list[Session] = []
    read = {s.id for s in rows}
    for name, group in by_backend.items():
        try:
            observed, found = m.backend(name).survey(group, read, None if all_owners else m.owner, m.deployment())
        except ClauderonError as exc:
            for s in group:  # keep the records; say why their state is unknown
                s.error = f"state unknown: {exc}"
            continue
        candidates += found
        for s in group:
            apply(m, s, observed.get(s.id))
    # Containers without a record read above: read the records again, after the engine (a create writes
    # its record before its container, so one made meanwhile is known by now, never taken for an orphan).
    known = {s.id for s in m.reader().all()} if candidates else set()
    sessions += [o for o in candidates if o.id not in known]
    if all_owners and not m.is_admin:
        sessions = [s if s.owner == m.owner else redacted(s) for s in sessions]
    return sessions


def orphan(m: SessionManager, name: str) -> Session | None:
    """The caller's orphan of that name (an engine object with our labels and no record), if any."""
    if not docker_engine_present():
        return None
    if m.shared:
        return None  # the service's engine is shared: orphans are an admin's matter (list --all)
    known = {s.id for s in m.reader().all()}
    _, found = m.backend("docker").survey([], known, m.owner, m.deployment())  # errors say so
    return next((o for o in found if o.name == name), None)


def apply(m: SessionManager, session: Session, observed: Any) -> None:
    """Bring the record in line with what the engine reports (``observed``) and with its workspace."""
    from ..backends.base import reconcile

    if session.runtime.get("delete_failed"):
        return  # half deleted: what the engine shows is beside the point until delete finishes
    what = f"{session.backend} object {session.runtime.get('container') or session.runtime.get('pod') or ''}"
    change = reconcile(session.status, observed, " ".join(what.split()))
    error = change[1] if change else session.error
    status = change[0] if change else session.status
    missing = missing_workspace(m, session)
    if missing and status is not Status.FAILED:
        error = missing
    if status != session.status or error != session.error:
        session.status, session.error = status, error
        m.store.update(session.id, status=session.status, error=session.error)


def missing_workspace(m: SessionManager, session: Session) -> str | None:
    """Why the session has no workspace, if it was removed behind clauderon's back (``None``: it is there)."""
    if session.backend == "kubernetes" or session.status in (Status.CREATING, Status.DELETING):
        return None
    git = m.workspace_text(session) + os.sep + ".git"
    if os.path.lexists(git):  # never followed: the agent may have made it a link
        return None
    return (
        f"the workspace of session {session.name} was removed outside clauderon; the agent has no workspace: "
        "delete the session and create it again"
    )


def redacted(session: Session) -> Session:
    """Another owner's session as a non-admin may see it: name, owner, backend and state only."""
    is_orphan = bool(session.runtime.get("orphan"))
    return replace(
        session,
        prompt="(hidden: another owner's session)",
        settings={},
        repo="-",
        worktree="-",
        runtime={"orphan": True} if is_orphan else {},
        backend_id=None,
        error=session.error if is_orphan else None,
    )

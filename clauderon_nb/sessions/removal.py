"""Taking sessions apart: delete's steps, finishing a create or delete that was interrupted, and purging an
owner on the service.

A delete is written ahead (``deleting``, with the process doing it) so a delete killed half-way is
finished by the next ``list``, ``get`` or ``delete``. Workspaces are removed without following links.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import ClauderonError, EngineUnavailable
from ..model.naming import owner_folder
from ..model.session import LAYOUT, Session, Status
from .branches import keep_branch
from .liveness import process_gone, refuse_if_busy, this_process

if TYPE_CHECKING:
    from ..model.answers import CullAction
    from .manager import SessionManager


def recover(m: SessionManager, session: Session) -> Session | None:
    """Finish what an interrupted create or delete left: returns the session, or None if now deleted."""
    if session.status is Status.CREATING and process_gone(session.runtime.get("creator")):
        who = session.runtime.get("creator") or {}
        error = (
            f"create was interrupted (process {who.get('pid', '?')} ended before it finished); "
            "what it had made was removed: delete the session, then create it again"
        )
        try:
            remove_parts(m, session, keep_work=False)
        except ClauderonError as exc:
            error = f"create was interrupted, and cleaning up failed ({exc}); run delete"
        session.status, session.error = Status.FAILED, error
        session.runtime.pop("creator", None)
        m.store.update(session.id, status=session.status, error=error, runtime=session.runtime)
    elif session.status is Status.DELETING and process_gone(session.runtime.get("deleter")):
        try:
            remove_parts(m, session)
        except ClauderonError as exc:
            session.status, session.error = Status.FAILED, f"delete did not finish ({exc}); run delete again"
            m.store.update(session.id, status=session.status, error=session.error)
            return session
        m.store.delete(session.id)
        return None
    return session


def remove_parts(m: SessionManager, session: Session, keep_work: bool = True) -> str | None:
    """Remove the backend's objects, then the workspace; with ``keep_work`` the agent's branch is first
    brought back (kept when it has commits). Idempotent."""
    backend = m.backend(session.backend)
    backend.remove(session)
    if not backend.local_workspace:
        return None
    path = m.workspace_of(session)
    if session.runtime.get("layout") != LAYOUT:
        remove_workspace(m, session)
        return (
            f"made by an earlier clauderon-nb as a git worktree: its branch {session.branch} and the "
            f"worktree's entry in {session.repo}/.git/worktrees were left for you to review"
        )
    note = keep_branch(m, session) if keep_work and os.path.lexists(path) else None
    remove_workspace(m, session)
    return note


def remove_workspace(m: SessionManager, session: Session) -> None:
    """Remove the workspace without following links; files of another uid (a service that is not root)
    are removed by the backend in a throwaway container first."""
    from .workspace import remove_tree

    path = m.workspace_of(session)
    try:
        remove_tree(path)
    except PermissionError:
        clear = getattr(m.backend(session.backend), "clear_workspace", None)
        image = session.settings.get("image")
        if clear is None or not isinstance(image, str):
            raise
        clear(path, session.agent_uid(), image)
        remove_tree(path)


def remove_session(m: SessionManager, session: Session, *, by: str, reason: str, keep_work: bool = True) -> str | None:
    """Delete one session (written ahead); returns a note about its branch. An unreachable engine leaves the
    record as it was; any other failure marks it ``failed`` until a delete finishes."""
    if session.status is Status.CREATING:
        refuse_if_busy(session, "delete")
    if by != session.owner:
        import logging

        logging.getLogger("clauderon").info("%s delete %s/%s (%s)", by, session.owner, session.name, reason)
    before = (session.status, dict(session.runtime))
    runtime = {**session.runtime, "deleter": this_process()}
    m.store.update(session.id, status=Status.DELETING, runtime=runtime)
    session.runtime = runtime
    try:
        note = remove_parts(m, session, keep_work=keep_work)
    except EngineUnavailable:
        # The engine could not be asked: nothing was done, so the record stays as it was.
        session.status, session.runtime = before
        m.store.update(session.id, status=session.status, runtime=session.runtime)
        raise
    except BaseException as exc:
        message = str(exc) if isinstance(exc, ClauderonError) else type(exc).__name__
        runtime.pop("deleter", None)
        runtime["delete_failed"] = True  # the error stands until a delete finishes
        m.store.update(
            session.id,
            status=Status.FAILED,
            error=f"delete did not finish ({message}); run delete again",
            runtime=runtime,
        )
        raise
    m.store.delete(session.id)
    return note


def purge(m: SessionManager, reason: str, dry_run: bool = False) -> list[CullAction]:
    """Remove everything of the manager's owner on the service: sessions (nothing kept), repository copies
    and workspaces."""
    from ..model.answers import CullAction
    from .workspace import remove_tree

    message = "removed by the clauderon service: its owner's hub account was deleted"
    actions = []
    for session in m.reader().all(m.owner):
        actions.append(CullAction(session.id, session.owner, session.name, "delete", reason, message))
        if not dry_run:
            remove_session(m, session, by="clauderon-service", reason=reason, keep_work=False)
    if not dry_run:
        for folder in ("repos", "workspaces"):
            remove_tree(m.home / folder / owner_folder(m.owner))
    return actions

"""Stopping, starting and deleting a session.

The record is untrusted input: ``start`` checks every stored setting against today's policy and
the quotas again, and the local backend's command is derived again from the agent table, never
run from the store. Steps taken on someone's behalf (an admin, the culler) go into the history.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ClauderonError
from ..model.image import is_built_image, parse_image
from ..model.session import LAYOUT, Session, Status
from .branches import keep_branch
from .listing import find, get, missing_workspace, orphan
from .liveness import refuse_if_busy
from .removal import recover, remove_session
from .store import StoreError

if TYPE_CHECKING:
    from .manager import SessionManager

#: How many entries a session's history keeps (the newest).
HISTORY_LENGTH = 50


def stop(m: SessionManager, name: str) -> Session:
    """Stop what the engine actually runs for the session (found by its labels)."""
    session = get(m, name)
    refuse_if_busy(session, "stop")
    return stop_session(m, session, None, m.owner, "stop")


def stop_session(m: SessionManager, session: Session, error: str | None, by: str, reason: str) -> Session:
    """Stop a session on someone's behalf (``by``: an admin, the culler) with the reason it is given.
    A branch with commits is brought back (kept) once the agent has stopped."""
    backend = m.backend(session.backend)
    backend.stop(session)
    now = time.time()
    runtime = with_history({**session.runtime, "stopped_at": now}, now, by, "stop", reason, session.owner)
    runtime.pop("branch_note", None)
    if backend.local_workspace and session.runtime.get("layout") == LAYOUT:
        note = keep_branch(m, session)
        if note:
            runtime["branch_note"] = note
    session.status, session.error, session.runtime = Status.STOPPED, error, runtime
    m.store.update(session.id, status=session.status, error=error, runtime=runtime)
    return session


def start(m: SessionManager, name: str) -> Session:
    """Start a stopped session, once its stored settings pass today's policy and quotas."""
    from .culling import ACTIVITY_KEY

    session = get(m, name)
    if session.status is Status.RUNNING:
        return session
    refuse_if_busy(session, "start")
    recheck(m, session)
    backend = m.backend(session.backend)
    if backend.local_workspace:
        missing = missing_workspace(m, session)
        if missing:
            raise BackendError(missing.replace("; the agent has no workspace", ""), step="start")
    if session.backend == "local":
        session.runtime = local_runtime(m, session)
    spec = m.planner().respec(session) if session.backend == "kubernetes" else None
    claim_running(m, session)
    try:
        runtime = backend.start(session, spec)
    except BaseException:
        m.store.update(session.id, status=Status.STOPPED)
        raise
    runtime = {k: v for k, v in runtime.items() if k not in (ACTIVITY_KEY, "stopped_at")}
    if m.shared and session.owner == m.owner:
        runtime["groups"] = list(m.groups)  # what the culler applies from now on
    runtime = with_history(runtime, time.time(), m.owner, "start", "start", session.owner)
    session.runtime, session.status, session.error = runtime, Status.RUNNING, None
    m.store.update(session.id, status=session.status, error=None, runtime=runtime)
    return session


def claim_running(m: SessionManager, session: Session) -> None:
    """Count the session as running before it starts, if the quotas allow (one writer at a time)."""
    from ..config.policy import load_policy
    from .quotas import check_quotas, quota_lock

    policy = load_policy().for_user(session.owner, m.groups_for(session))
    with quota_lock(m.home):
        others = [s for s in m.store.all(session.owner) if s.id != session.id]
        check_quotas(policy, others, stored_settings(session), new=False)
        m.store.update(session.id, status=Status.RUNNING)


def recheck(m: SessionManager, session: Session) -> None:
    """The stored settings against today's policy, every one of them (agent, GPUs, build, image…)."""
    from ..config.agents import agent_env, all_agents, find_agent
    from ..config.files import agents_of, load_system_config, load_user_config
    from ..config.policy import load_policy

    settings = stored_settings(session)
    policy = load_policy().for_user(session.owner, m.groups_for(session))
    policy.check(settings, {k: "stored session" for k in settings})
    config = find_agent(
        session.agent,
        all_agents(agents_of(load_system_config(), load_user_config(m.home))),
        source="stored session",
    )
    forwarded = agent_env(session.agent, config, names_only=True)
    policy.check_pass_env(session.agent, forwarded.required + forwarded.optional_present)


def local_runtime(m: SessionManager, session: Session) -> dict[str, Any]:
    """A local session's command, folder and log files, derived again (never taken from the store)."""
    from ..config.agents import agent_command, all_agents, find_agent, render_command
    from ..config.files import agents_of, load_system_config, load_user_config

    agents = agents_of(load_system_config(), load_user_config(m.home))
    config = find_agent(session.agent, all_agents(agents), source="stored session")
    logs = m.home / "logs"
    return {
        **session.runtime,
        "argv": render_command(agent_command(config, has_terminal=False), session.prompt),
        "cwd": str(m.workspace_of(session)),
        "log": str(logs / f"{session.name}.log"),
        "exit_file": str(logs / f"{session.name}.exit"),
    }


def delete(m: SessionManager, name: str) -> str | None:
    """Remove the container or process, the workspace and the record; an orphan by name."""
    try:
        session = find(m, name)
    except StoreError:
        raise
    except ClauderonError as missing:
        try:
            found = orphan(m, name)
        except ClauderonError as exc:  # say both: no record, and the engine could not be asked either
            raise ClauderonError(f"{missing}; labelled containers could not be checked: {exc}") from None
        if found is None:
            raise
        m.backend(found.backend).remove(found)
        return "an orphan: its container was removed; it had no record (a workspace folder is left for you)"
    recovered = recover(m, session)
    if recovered is None:
        return None
    return remove_session(m, recovered, by=m.owner, reason="delete")


def stored_settings(session: Session) -> dict[str, Any]:
    """A record's settings, every one parsed again with the model's own parsers (the store is untrusted):
    what ``start`` checks against the policy and counts against the quotas."""
    from ..config.resolve import ResolvedSettings

    try:
        settings = ResolvedSettings.from_json({**session.settings, "backend": session.backend, "agent": session.agent})
    except ValueError as exc:
        raise StoreError(f"session {session.name!r}: its stored settings are damaged ({exc}); delete it") from None
    out = {k: getattr(settings, k) for k in settings.__dataclass_fields__}
    out = {k: v for k, v in out.items() if v is not None and v != {} and v != ()}
    if isinstance(out.get("image"), str):
        ref = parse_image(out["image"], "image")
        # A built image is pinned to the digest clauderon pushed; the policy judged its tag. (The store is
        # untrusted: only a clauderon-build name loses its digest here, never any other image.)
        if settings.build is not None and ref.tag and is_built_image(str(ref)):
            out["image"] = str(replace(ref, digest=None))
    return out


def with_history(runtime: dict[str, Any], at: float, by: str, action: str, reason: str, owner: str) -> dict[str, Any]:
    """The runtime with one more history entry (the newest 50 are kept). Steps the owner takes
    themselves are not recorded; the culler's and an admin's are, with who did it."""
    if by == owner:
        return runtime
    import logging

    before = runtime.get("history")
    history: list[Any] = before if isinstance(before, list) else []
    entry = {"at": at, "by": by, "action": action, "reason": reason}
    where = runtime.get("container") or runtime.get("pod") or ""
    logging.getLogger("clauderon").info("%s %s %s/%s (%s)", by, action, owner, where, reason)
    return {**runtime, "history": [*history, entry][-HISTORY_LENGTH:]}

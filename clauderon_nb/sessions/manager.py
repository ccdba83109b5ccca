"""``SessionManager``: the one place every entry point calls."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.environment import clauderon_home
from ..errors import ClauderonError
from ..model.naming import current_owner, workspace_root
from ..model.progress import ProgressCallback
from ..model.session import LAYOUT, Session
from . import listing
from .listing import NotFound
from .liveness import Busy
from .store import Store

if TYPE_CHECKING:
    from ..backends.base import SessionBackend
    from ..config.policy import AdminPolicy
    from ..config.resolve import Resolution
    from ..model.answers import CullAction, ImageListing, Options
    from ..model.diff import Diff
    from ..model.request import CreateSessionRequest
    from ..render.plan import Plan
    from ..repos.gitrepo import RepoInfo
    from .creating import FromClient
    from .harvest import Harvest
    from .planning import Planner

__all__ = ["Busy", "NotFound", "SessionManager"]

#: On the service: how long one engine listing answers everyone's list.
SURVEY_SECONDS = 1.0


class SessionManager:
    """Plans, creates and manages agent sessions under one ``CLAUDERON_HOME``.

    ``defaults``: a front end's own defaults (``%config Clauderon.default_backend``, the
    form's), resolved as a layer of their own below the repository file.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        owner: str | None = None,
        defaults: dict[str, Any] | None = None,
        defaults_origin: str = "kernel defaults (%config Clauderon)",
        shared: bool = False,
        admin: bool | None = None,
        workspace_url: str | None = None,
        groups: tuple[str, ...] = (),
        store: Store | None = None,
        backends: dict[str, SessionBackend] | None = None,
    ) -> None:
        self.home: Path = clauderon_home(home)
        self.owner: str = owner or current_owner()
        #: The hub's service: one store for every hub user, per-owner workspace folders, no local processes.
        self.shared = shared
        self._admin = admin  # None: as the admin policy's ``admins`` says
        self.workspace_url = workspace_url  # the service as pods reach it
        self.groups = tuple(groups)  # the owner's hub groups: [groups.X] sections of the policy apply
        self.defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
        self.defaults_origin = defaults_origin
        # ``store`` and ``backends``: shared by a long-running caller (the service: one store opened once,
        # one engine client), else made on first use.
        self._store: Store | None = store
        self._backends: dict[str, SessionBackend] = {} if backends is None else backends
        self._roots: dict[str, str] = {}  # owner -> their workspaces' folder (derived, never stored)

    def __repr__(self) -> str:
        return f"SessionManager(home={str(self.home)!r}, owner={self.owner!r})"

    def with_defaults(self, defaults: dict[str, Any], origin: str) -> SessionManager:
        """The same manager with other front-end defaults (a form's own)."""
        return SessionManager(
            self.home,
            owner=self.owner,
            defaults=defaults,
            defaults_origin=origin,
            shared=self.shared,
            admin=self._admin,
            workspace_url=self.workspace_url,
            groups=self.groups,
        )

    @property
    def store(self) -> Store:
        """The session store, created on first write."""
        if self._store is None:
            self._store = Store(self.home / "sessions.sqlite")
        return self._store

    def reader(self) -> Store:
        """The store for reading: never creates a file (a missing store reads as empty)."""
        if self._store is not None:
            return self._store
        reader = Store(self.home / "sessions.sqlite", create=False)
        if reader.exists:  # opened like any store (an existing file is never made again): kept for writes too
            self._store = reader
        return reader

    def backend(self, name: str) -> SessionBackend:
        if name not in self._backends:
            from ..backends import get_backend

            made = get_backend(name)
            if self.shared and hasattr(made, "survey_seconds"):
                # The service's one engine client: a listing serves every request of the next second.
                made.survey_seconds = SURVEY_SECONDS
            self._backends[name] = made
        return self._backends[name]

    # --- planning (loads the resolver and pydantic only when used) -------------

    def planner(self) -> Planner:
        """The planner for this owner: resolves requests into plans (loads the resolver and pydantic)."""
        from .planning import Planner

        return Planner(
            home=self.home,
            owner=self.owner,
            defaults=self.defaults,
            defaults_origin=self.defaults_origin,
            shared=self.shared,
            workspace_url=self.workspace_url,
            groups=self.groups,
        )

    def policy(self) -> AdminPolicy:
        """The admin policy as it applies to this manager's owner and hub groups."""
        from ..config.policy import load_policy

        return load_policy().for_user(self.owner, self.groups)

    def groups_for(self, session: Session) -> tuple[str, ...]:
        """The owner's hub groups as they are now: the caller's own when they act on their own session (a
        user removed from a wider group gets its narrower bounds at once); the recorded ones otherwise."""
        return self.groups if session.owner == self.owner and self.shared else session.recorded_groups()

    def deployment(self) -> str:
        """This home's deployment id (every object made carries it), without creating one."""
        from .deployment import deployment_id

        return deployment_id(self.home, create=False)

    def workspace_text(self, session: Session) -> str:
        """Where the session's workspace must be: derived from its owner and name, never taken from the store.
        (A string: ``list`` asks it of every session.)"""
        if session.runtime.get("layout") != LAYOUT:  # made by an earlier version: a worktree of the repository
            return str(self.home / "worktrees" / session.name)
        root = self._roots.get(session.owner)
        if root is None:
            root = self._roots[session.owner] = str(workspace_root(self.home, session.owner, self.shared))
        return f"{root}{os.sep}{session.name}"

    def workspace_of(self, session: Session) -> Path:
        """The session's workspace folder (see ``workspace_text``)."""
        return Path(self.workspace_text(session))

    @property
    def is_admin(self) -> bool:
        """May see every owner's sessions and act on them (``owner/name`` or an id)."""
        return self._admin if self._admin is not None else _is_admin(self.owner)

    def resolve(self, request: CreateSessionRequest) -> Resolution:
        """Resolved settings with sources, reading config files and policy; creates nothing."""
        return self.planner().resolve(request)

    def plan(
        self,
        request: CreateSessionRequest | None = None,
        *,
        workspace: RepoInfo | None = None,
        remote: str | None = None,
        check_image: bool = False,
        **fields: Any,
    ) -> Plan:
        """A dry run of ``create``: resolved settings, their sources and the backend-native spec.

        Pass a ``CreateSessionRequest`` or its fields as keywords. Creates nothing,
        reads no secret values (they show as ``***``). The name is the one ``create``
        will use unless it is taken by then. ``check_image``: also ask the engine or the
        registry whether the image is there (``plan.image_check``; the create's error if not).
        """
        plan = self.planner().plan(_request(request, fields), repo=workspace, remote=remote)
        if check_image and plan.backend != "local":
            from dataclasses import replace

            from ..errors import EngineUnavailable

            # A dry run always shows the plan: what the check found is one of its lines, refusing is the create's.
            try:
                found = self.backend(plan.backend).check_image(plan.session_spec)
                line = found.line()
            except EngineUnavailable as exc:
                line = f"not checked: {exc}"
            except ClauderonError as exc:
                line = f"would fail: {exc}"
            plan = replace(plan, image_check=line)
        return plan

    # --- images -------------------------------------------------------------

    def images(self, target: str | None = None) -> ImageListing:
        """``images``: with no target the policy's and the engine's images; ``REGISTRY``: its repositories;
        ``[REGISTRY/]REPOSITORY``: its tags with digest, size and created time. Each marked allowed or not."""
        from .images import browser_for

        return browser_for(self).listing(target)

    def image_suggestions(self, typed: str = "") -> builtins.list[str]:
        """Suggestions for an image field: the policy's literal images, recent ones, the engine's, and the
        tags of a registry repository being typed (cached for a minute)."""
        from .images import suggestions_for

        return suggestions_for(self, typed)

    def trust_repo(self, repo: str | os.PathLike[str]) -> str:
        """Trust the current content of a repository's ``.clauderon.toml``; returns a one-line summary."""
        from ..config.trust import trust_files
        from ..repos.gitrepo import inspect_repo_cached

        return trust_files(self.home, inspect_repo_cached(repo).root)

    def options(self) -> Options:
        """Choices and bounds for a form: agents, presets, and what the admin policy allows."""
        return self.planner().options(self.reader().all(self.owner))

    # --- create (sessions/creating.py) ---------------------------------------

    def create(
        self,
        request: CreateSessionRequest | None = None,
        progress: ProgressCallback | None = None,
        *,
        wait: bool = True,
        client: FromClient | None = None,
        **fields: Any,
    ) -> Session:
        """Create and start a session. All or nothing: on any failure nothing is left behind.

        What the create will make is recorded before it is made, and every object
        carries the session's labels, so a create killed half-way is found and
        cleaned up by the next ``list``, ``get`` or ``delete``.
        ``wait=False`` returns once the container or pod is submitted. ``client``: what the service
        brings from a client (``sessions.creating.FromClient``: sent credentials and workspace); without it
        credentials come from this process's environment and the workspace from the request's repository.
        """
        from .creating import create

        return create(self, _request(request, fields), progress, wait, client)

    def precheck(self, plan: Plan, name_given: bool) -> None:
        """What would refuse a create before anything is sent or imported: the quotas, a taken name."""
        from .creating import precheck

        precheck(self, plan, name_given)

    # --- queries (sessions/listing.py) ------------------------------------------

    def list(self, all_owners: bool = False) -> list[Session]:
        """Sessions (the caller's, or everyone's), reconciled with each backend in one call per backend.

        Engine objects with our labels and no record are listed too, as orphans that
        ``delete`` removes. With ``all_owners``, other owners' prompts and settings are
        hidden unless the admin policy lists the caller in ``admins``.
        """
        return listing.list_sessions(self, all_owners)

    def get(self, name_or_id: str) -> Session:
        """One of the caller's sessions, reconciled with its backend."""
        return listing.get(self, name_or_id)

    def find(self, name_or_id: str) -> Session:
        """One of the caller's sessions as recorded (not asked of its backend); admins may name any."""
        return listing.find(self, name_or_id)

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> str | Iterator[str]:
        """The agent's output: all of it, the last ``tail`` lines, or a stream when ``follow``."""
        session = self.find(name)
        return self.backend(session.backend).logs(session, tail, follow)

    def attach_command(self, name: str) -> str:
        """The terminal command that attaches to the session's agent."""
        session = self.find(name)
        return self.backend(session.backend).attach_command(session)

    # --- the agent's branch (sessions/branches.py) -----------------------------

    def fetch(self, name: str, repo: str | os.PathLike[str] | None = None) -> str:
        """Bring the session's branch into your repository (default: the one it was made from) as
        ``clauderon/<name>``; returns a one-line summary. The branch is read from the workspace as data."""
        from .branches import fetch

        return fetch(self, self.find(name), repo)

    def bring_back(self, session: Session, dest: Path | None = None, *, only_if_ahead: bool = False) -> Harvest:
        """Bring the session's branch from its workspace into ``dest`` (default: where it came from), as data:
        the host never runs git in the workspace (see ``sessions/harvest.py``)."""
        from .branches import bring_back

        return bring_back(self, session, dest, only_if_ahead=only_if_ahead)

    def diff(self, name: str) -> Diff:
        """What the agent changed against the session's base: its commits, and what it has not committed yet,
        read by git inside the session's container (the host never runs git in the workspace). Docker sessions;
        others are refused with one line."""
        from ..model.diff import parse_diff

        session = self.find(name)
        changes = getattr(self.backend(session.backend), "changes", None)
        if changes is None:
            raise ClauderonError(
                f"session {session.name!r} runs on the {session.backend} backend: its changes are read only inside a "
                "Docker container; use `fetch` to bring its branch into your repository and diff it there"
            )
        return parse_diff(changes(session, session.base_commit() or ""))

    # --- lifecycle (sessions/lifecycle.py) ----------------------------------------

    def stop(self, name: str) -> Session:
        """Stop what the engine actually runs for the session (found by its labels)."""
        from .lifecycle import stop

        return stop(self, name)

    def stop_session(self, session: Session, error: str | None, by: str, reason: str) -> Session:
        """Stop a session on someone's behalf (``by``: an admin, the culler) with the reason it is given.
        A branch with commits is brought back (kept) once the agent has stopped."""
        from .lifecycle import stop_session

        return stop_session(self, session, error, by, reason)

    def start(self, name: str) -> Session:
        """Start a stopped session. The record is untrusted: the policy is checked again, and the local
        backend's command is derived again from the agent table, never run from the store."""
        from .lifecycle import start

        return start(self, name)

    def delete(self, name: str) -> str | None:
        """Remove the container or process, the workspace and the record.

        The session branch is deleted too unless the agent committed work on it;
        then it is kept and the returned note says so. Idempotent: a delete that
        failed half-way leaves the session ``failed``, and the next delete finishes it.
        Orphans (engine objects with our labels and no record) are removed by name.
        """
        from .lifecycle import delete

        return delete(self, name)

    # --- lifetimes (sessions/culling.py, sessions/removal.py) ---------------------

    def cull(self, now: float | None = None, dry_run: bool = False) -> builtins.list[CullAction]:
        """One pass of the policy's lifetimes over every owner's sessions: stop the ones that ran
        too long or sat idle, delete the ones stopped too long. ``now``: the clock (default: now)."""
        from .culling import cull

        return cull(self, now, dry_run)

    def purge(self, reason: str, dry_run: bool = False) -> builtins.list[CullAction]:
        """Remove everything of this owner on the service: sessions (nothing kept), repository copies and
        workspaces. For an owner whose hub account was deleted, or whose name now belongs to a new account."""
        from .removal import purge

        return purge(self, reason, dry_run)

    def remove_unused_repos(self, now: float, dry_run: bool = False) -> builtins.list[str]:
        """The service's copies of repositories that no session uses and that nobody used for the policy's
        ``delete_unused_repos_after`` (default 7 days): removed. Returns what was (or would be) removed."""
        from .culling import remove_unused_repos

        return remove_unused_repos(self, now, dry_run)


def _is_admin(owner: str) -> bool:
    from ..config.policy import load_policy

    return load_policy().is_admin(owner)


def _request(request: CreateSessionRequest | None, fields: dict[str, Any]) -> CreateSessionRequest:
    from ..model.request import as_request  # pydantic loads only when a command plans

    return as_request(request, fields)

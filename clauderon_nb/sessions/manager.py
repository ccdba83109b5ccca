"""``SessionManager``: the one place every entry point calls."""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.environment import clauderon_home, docker_engine_present
from ..errors import BackendError, ClauderonError, ConfigError, EngineUnavailable, PolicyError, did_you_mean
from ..model.choices import Backend
from ..model.git_ids import is_commit_hash
from ..model.image import is_built_image, parse_image
from ..model.naming import current_owner, is_dns_label, name_from_prompt, owner_folder, workspace_root
from ..model.progress import ProgressCallback, ProgressEvent, no_progress
from ..model.redact import redact_text, strip_credentials
from ..model.session import Session, Status
from .liveness import process_gone, this_process
from .store import NameTaken, Store, StoreError
from .workspace import SEED_PACKS

if TYPE_CHECKING:
    from ..model.answers import CullAction
    from ..repos.bundles import Incoming
    from ..repos.gitrepo import RepoInfo
    from .harvest import Harvest


class _Log:
    """The ``clauderon`` logger, loaded when something is logged (``list`` and ``show`` log nothing)."""

    def __getattr__(self, name: str) -> Any:
        import logging

        return getattr(logging.getLogger("clauderon"), name)


_log = _Log()
#: Sessions made with a workspace of their own (not a git worktree of the user's repository).
LAYOUT = "workspace"
ACTIVITY_KEY = "activity"  # the agent's last CPU/output marker and when it changed (for idle_timeout)


class Busy(ClauderonError):
    """Another step (a create or delete) is running on the session."""


class NotFound(ClauderonError):
    """No such session (among the caller's; another owner's sessions are not revealed)."""


if TYPE_CHECKING:
    from ..backends.base import SessionBackend
    from ..config.resolve import Resolution
    from ..model.answers import ImageListing, Options
    from ..model.request import CreateSessionRequest
    from ..render.plan import Plan
    from .images import ImageBrowser
    from .planning import Planner

_NAME_ATTEMPTS = 8
SURVEY_SECONDS = 1.0  # on the service: how long one engine listing answers everyone's list
# The service's bounds when its policy sets none: how long a repository copy no session uses is kept, how large
# a sent workspace's checkout may be, and how much one user's repository copies may take together.
DEFAULT_UNUSED_REPO_GRACE = 7 * 24 * 3600.0
DEFAULT_MAX_CHECKOUT = 10 * 1024**3
DEFAULT_MAX_REPO_STORAGE = 20 * 1024**3


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

    def _reader(self) -> Store:
        """The store for reading: never creates a file (a missing store reads as empty)."""
        if self._store is not None:
            return self._store
        reader = Store(self.home / "sessions.sqlite", create=False)
        return self.store if reader.exists else reader

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

    def _planner(self) -> Planner:
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

    @property
    def is_admin(self) -> bool:
        """May see every owner's sessions and act on them (``owner/name`` or an id)."""
        return self._admin if self._admin is not None else _is_admin(self.owner)

    def resolve(self, request: CreateSessionRequest) -> Resolution:
        """Resolved settings with sources, reading config files and policy; creates nothing."""
        return self._planner().resolve(request)

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
        plan = self._planner().plan(_request(request, fields), repo=workspace, remote=remote)
        if check_image and plan.backend != "local":
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

    def _image_browser(self) -> ImageBrowser:
        from ..config.environment import docker_engine_present
        from ..config.files import load_system_config, load_user_config
        from ..config.policy import load_policy
        from .images import ImageBrowser, canonical_image

        policy = load_policy().for_user(self.owner, self.groups)
        auth = (
            load_user_config(self.home).docker.data.image.registry_auth
            or load_system_config().docker.data.image.registry_auth
        )
        local = None
        if docker_engine_present():

            def local() -> builtins.list[str]:
                tags = list(self.backend("docker").local_images())  # type: ignore[attr-defined]
                # Only what the policy lets this user use; on the service's engine, nothing unless the policy
                # names images, and never anyone's builds.
                if self.shared and policy.first("allowed_images") is None:
                    return []
                return [
                    t
                    for t in tags
                    if policy.image_allowed(canonical_image(t))
                    and not (self.shared and is_built_image(canonical_image(t)))
                ]

        return ImageBrowser(policy, auth, local, only_allowed_registries=self.shared)

    def images(self, target: str | None = None) -> ImageListing:
        """``images``: with no target the policy's and the engine's images; ``REGISTRY``: its repositories;
        ``[REGISTRY/]REPOSITORY``: its tags with digest, size and created time. Each marked allowed or not."""
        return self._image_browser().listing(target)

    def image_suggestions(self, typed: str = "") -> builtins.list[str]:
        """Suggestions for an image field: the policy's literal images, recent ones, the engine's, and the
        tags of a registry repository being typed (cached for a minute)."""
        from .images import cached

        browser = self._image_browser()
        out = list(self.options().images)
        if browser.local is not None:
            with contextlib.suppress(ClauderonError):
                out += cached(("local", self.owner), browser.local, 10.0)
        out += browser.suggestions(typed)
        return list(dict.fromkeys(out))

    def fetch(self, name: str, repo: str | os.PathLike[str] | None = None) -> str:
        """Bring the session's branch into your repository (default: the one it was made from) as
        ``clauderon/<name>``; returns a one-line summary. The branch is read from the workspace as data."""
        from ..repos.bundles import set_branch
        from ..repos.gitrepo import inspect_repo

        session = self._find(name)
        if not self.backend(session.backend).local_workspace:
            raise ClauderonError(
                f"session {session.name!r} runs in a Kubernetes pod: its work comes back by a push from the pod to "
                "the repository's remote, not by fetch"
            )
        if session.runtime.get("layout") != LAYOUT:
            return f"Session {session.name} works in your repository already: its branch is {session.branch}."
        info = inspect_repo(repo if repo is not None else session.repo)
        got = self.bring_back(session, info.root)
        if got.ahead == 0 and got.commit == _base_of(session):
            set_branch(info.root, session.branch, got.commit)
            return f"Session {session.name} has no commits yet; {session.branch} points at its base {got.commit[:12]}."
        plural = "s" if got.ahead != 1 else ""
        return f"Fetched {session.branch} ({got.commit[:12]}, {got.ahead} new commit{plural}) into {info.root}."

    def trust_repo(self, repo: str | os.PathLike[str]) -> str:
        """Trust the current content of a repository's ``.clauderon.toml``; returns a one-line summary."""
        from ..config.trust import trust_files
        from ..repos.gitrepo import inspect_repo_cached

        return trust_files(self.home, inspect_repo_cached(repo).root)

    def options(self) -> Options:
        """Choices and bounds for a form: agents, presets, and what the admin policy allows."""
        return self._planner().options(self._reader().all(self.owner))

    # --- create -------------------------------------------------------------

    def create(
        self,
        request: CreateSessionRequest | None = None,
        progress: ProgressCallback | None = None,
        *,
        wait: bool = True,
        secrets: dict[str, str] | None = None,
        workspace: RepoInfo | None = None,
        remote: str | None = None,
        extra_runtime: dict[str, str] | None = None,
        incoming: Incoming | None = None,
        **fields: Any,
    ) -> Session:
        """Create and start a session. All or nothing: on any failure nothing is left behind.

        What the create will make is recorded before it is made, and every object
        carries the session's labels, so a create killed half-way is found and
        cleaned up by the next ``list``, ``get`` or ``delete``.
        ``wait=False`` returns once the container or pod is submitted. ``secrets``: credential
        values sent by a client (the service); others come from this process's environment.
        ``workspace``: the repository the service made from a client's bundle; ``remote``: the
        client repository's remote (a pod clones it). ``incoming``: the service's quarantine of a sent
        workspace, accepted into the user's copy once nothing refuses the create (else left to be discarded).
        """
        request = _request(request, fields)
        report = progress or no_progress
        plan, session, token = self._reserve(
            request, workspace, remote, extra_runtime or {}, secrets if self.shared else None
        )
        spec = plan.session_spec
        given = {**(secrets or {}), **plan.settings.extra_env}  # the config's own values win over a client's
        # On the service a session gets what its user sent, and of the service's own environment only
        # what the admin named for the agent (``service_env``).
        values = {
            n: given[n] if n in given and n not in spec.service_env else _own_env(n, spec.service_env, self.shared)
            for n in spec.secret_env
        }
        secret_values = {n: v for n, v in values.items() if v is not None}
        if token:
            from ..render.kubernetes import WORKSPACE_TOKEN_KEY

            secret_values[WORKSPACE_TOKEN_KEY] = token
        missing = [n for n in spec.secret_env if n not in secret_values]
        backend = self.backend(session.backend)
        undo: list[Any] = [lambda: self.store.delete(session.id)]
        try:
            for note in plan.notes:
                report(ProgressEvent("note", note, detail=True))
            if missing:
                whose = "the clauderon service's environment (ask the admin)"
                raise ConfigError(
                    f"agent {spec.settings.agent!r}: credential {missing[0]} is not set in "
                    f"{whose if missing[0] in spec.service_env else 'your environment'}",
                    field="agent",
                )
            prepared = backend.preflight(spec, report)
            if prepared is not None and prepared is not spec:  # e.g. a built image, pinned to its digest
                spec = prepared
                session.settings = {**session.settings, "image": spec.settings.image}
                self.store.update(session.id, settings=session.settings)
            if incoming is not None:
                spec = self._accept(spec, incoming)
            job = None
            if backend.local_workspace:
                report(ProgressEvent("worktree", f"creating the session's workspace on branch {spec.branch}"))
                job = self._start_workspace(spec, remote)
                undo.append(job.remove)
            # Registered before the call: an interrupt inside it still removes what it made (found by label).
            undo.append(lambda: backend.remove(session))
            backend_id, runtime = backend.create(spec, secret_values, report, wait=wait, workspace=job)
            if job is not None:
                runtime = {**runtime, SEED_PACKS: job.seed_packs}
            session.backend_id, session.runtime = backend_id, {**session.runtime, **runtime}
            session.runtime.pop("creator", None)
            self.store.update(session.id, backend_id=backend_id, runtime=session.runtime, status=Status.RUNNING)
            session.status = Status.RUNNING
            report(ProgressEvent("ready", f"session {session.name} is running"))
        except BaseException as exc:  # create either returns a session or leaves nothing behind
            _rollback(undo)
            if isinstance(exc, ClauderonError) or not isinstance(exc, Exception):
                raise
            raise BackendError(redact_text(" ".join(str(exc).split())) or type(exc).__name__, step="create") from exc
        return session

    def _accept(self, spec: Any, incoming: Incoming) -> Any:
        """Check the checkout's size and the owner's repository storage, then move the sent workspace into the
        owner's copy; the session is made from the copy."""
        from ..config.policy import load_policy
        from ..repos.bundles import tree_size
        from .quotas import check_repo_storage
        from .workspace import check_size, checkout_size

        policy = load_policy().for_user(self.owner, self.groups)
        limit = policy.limit("max_workspace_size")
        size, _ = checkout_size(incoming.root, incoming.commit)
        check_size(size, limit[0] if limit else DEFAULT_MAX_CHECKOUT, limit[1] if limit else "(the service's default)")
        storage = policy.limit("max_repo_storage")
        default = (DEFAULT_MAX_REPO_STORAGE, "the service's default")
        check_repo_storage(tree_size(incoming.bare.parent), incoming.size(), storage or default)
        incoming.accept()
        return replace(spec, repo_root=incoming.bare)

    def precheck(self, plan: Plan, name_given: bool) -> None:
        """What would refuse a create before anything is sent or imported: the quotas, a taken name."""
        from ..config.policy import load_policy
        from .quotas import check_quotas

        policy = load_policy().for_user(self.owner, self.groups)
        check_quotas(policy, self._reader().all(self.owner), plan.settings.to_json(), new=True)
        if name_given and self._reader().find(plan.name, self.owner) is not None:
            raise NameTaken(f"you already have a session named {plan.name!r}; choose another --name")

    def _start_workspace(self, spec: Any, remote: str | None) -> Any:
        """Check the checkout's size against the policy, then make the workspace in a thread (the backend
        waits for it before the agent starts)."""
        from ..config.policy import load_policy
        from ..repos.gitrepo import branch_exists, inspect_repo_cached, remote_url_cached
        from .workspace import WorkspaceJob, check_size, checkout_size

        policy = load_policy().for_user(self.owner, self.groups)
        limit = policy.limit("max_workspace_size")
        if limit is not None:
            size, _ = checkout_size(spec.repo_root, spec.base_commit)
            check_size(size, limit[0], limit[1])
        if not self.shared:
            if branch_exists(spec.repo_root, spec.branch):
                raise BackendError(
                    f"branch {spec.branch} already exists in {spec.repo_root}; delete it (git branch -D "
                    f"{spec.branch}) or choose another name",
                    step="create workspace",
                )
            remote = remote_url_cached(inspect_repo_cached(spec.repo_root))
        clean = strip_credentials(remote) if remote else None
        return WorkspaceJob(spec.repo_root, spec.base_commit, spec.workspace, spec.branch, clean)

    def _reserve(
        self,
        request: CreateSessionRequest,
        workspace: RepoInfo | None,
        remote: str | None,
        extra_runtime: dict[str, str],
        credentials: Mapping[str, str] | None,
    ) -> tuple[Plan, Session, str | None]:
        """Plan and insert a ``creating`` record naming what will be made (write-ahead); the unique
        name is taken atomically here. The first try uses the dry run's name."""
        from .deployment import deployment_id

        self.store  # noqa: B018 - made first: its errors say what to do about an unusable home
        deployment_id(self.home)  # made now: the objects about to be made carry it
        planner = self._planner()
        for attempt in range(_NAME_ATTEMPTS):
            name = None if attempt == 0 or request.name else name_from_prompt(request.prompt)
            plan = planner.plan(request, name, workspace, credentials if self.shared else None, remote)
            if plan.needs_trust:
                raise ConfigError(plan.notes[-1], field="image")
            spec = plan.session_spec
            now = time.time()
            token = None
            extra = dict(extra_runtime)
            if spec.workspace_url:  # one fetch of the workspace by the pod; only its hash is kept
                import hashlib
                import secrets as secret_tokens

                token = secret_tokens.token_urlsafe(32)
                extra["workspace_token_sha256"] = hashlib.sha256(token.encode()).hexdigest()
            runtime = {
                **extra,
                "base_commit": spec.base_commit,
                "layout": LAYOUT,
                "creator": this_process(),
                **self.backend(plan.backend).plan_runtime(spec),
            }
            session = Session(
                id=spec.session_id,
                name=spec.name,
                owner=self.owner,
                backend=plan.backend,
                agent=spec.settings.agent,
                repo=str(spec.repo_root),
                worktree=str(spec.workspace) if plan.backend != "kubernetes" else "/workspace (in the pod)",
                branch=spec.branch,
                prompt=request.prompt,
                settings=plan.settings.to_json(),
                backend_id=None,
                status=Status.CREATING,
                error=None,
                created_at=now,
                updated_at=now,
                runtime=runtime,
            )
            if self.groups:
                session.runtime["groups"] = list(self.groups)
            try:
                self._insert_within_quotas(session)
            except NameTaken:
                if request.name:
                    raise
                continue
            return plan, session, token
        raise ClauderonError("could not find a free session name; pass --name")

    def _insert_within_quotas(self, session: Session) -> None:
        """Check the owner's quotas and write the record as one step (one writer at a time)."""
        from ..config.policy import load_policy
        from .quotas import check_quotas, quota_lock

        policy = load_policy().for_user(self.owner, self.groups)
        with quota_lock(self.home):
            check_quotas(policy, self.store.all(self.owner), session.settings, new=True)
            self.store.insert(session)

    # --- queries ------------------------------------------------------------

    def list(self, all_owners: bool = False) -> list[Session]:
        """Sessions (the caller's, or everyone's), reconciled with each backend in one call per backend.

        Engine objects with our labels and no record are listed too, as orphans that
        ``delete`` removes. With ``all_owners``, other owners' prompts and settings are
        hidden unless the admin policy lists the caller in ``admins``.
        """
        store = self._reader()
        if all_owners and self.shared and not self.is_admin:
            raise PolicyError("list --all: only hub admins see every user's sessions")
        engine = docker_engine_present()
        if engine:  # the engine answers while the records are read
            early = getattr(self.backend("docker"), "survey_early", None)
            if early is not None:
                early(self._deployment())
        rows = store.all(None if all_owners else self.owner)
        # Only the caller's interrupted steps are finished here; others' are left to them (or an admin).
        sessions = [s for s in (self._recover(s) if s.owner == self.owner else s for s in rows) if s]
        by_backend: dict[str, list[Session]] = {}
        for s in sessions:
            if s.status not in (Status.CREATING, Status.DELETING):
                by_backend.setdefault(s.backend, []).append(s)
        if "docker" not in by_backend and engine:
            by_backend["docker"] = []  # no docker record, but labelled containers may still be there
        candidates: builtins.list[Session] = []
        read = {s.id for s in rows}
        for name, group in by_backend.items():
            try:
                observed, found = self.backend(name).survey(
                    group, read, None if all_owners else self.owner, self._deployment()
                )
            except ClauderonError as exc:
                for s in group:  # keep the records; say why their state is unknown
                    s.error = f"state unknown: {exc}"
                continue
            candidates += found
            for s in group:
                self._apply(s, observed.get(s.id))
        # Containers without a record read above: read the records again, after the engine (a create writes
        # its record before its container, so one made meanwhile is known by now, never taken for an orphan).
        known = {s.id for s in self._reader().all()} if candidates else set()
        sessions += [o for o in candidates if o.id not in known]
        if all_owners and not self.is_admin:
            sessions = [s if s.owner == self.owner else _redacted(s) for s in sessions]
        return sessions

    def _orphan(self, name: str) -> Session | None:
        """The caller's orphan of that name (an engine object with our labels and no record), if any."""
        if not docker_engine_present():
            return None
        if self.shared:
            return None  # the service's engine is shared: orphans are an admin's matter (list --all)
        known = {s.id for s in self._reader().all()}
        _, found = self.backend("docker").survey([], known, self.owner, self._deployment())  # errors say so
        return next((o for o in found if o.name == name), None)

    def _deployment(self) -> str:
        from .deployment import deployment_id

        return deployment_id(self.home, create=False)

    def _apply(self, session: Session, observed: Any) -> None:
        from ..backends.base import reconcile

        if session.runtime.get("delete_failed"):
            return  # half deleted: what the engine shows is beside the point until delete finishes
        what = f"{session.backend} object {session.runtime.get('container') or session.runtime.get('pod') or ''}"
        change = reconcile(session.status, observed, " ".join(what.split()))
        error = change[1] if change else session.error
        status = change[0] if change else session.status
        missing = self._missing_workspace(session)
        if missing and status is not Status.FAILED:
            error = missing
        if status != session.status or error != session.error:
            session.status, session.error = status, error
            self.store.update(session.id, status=session.status, error=session.error)

    def _missing_workspace(self, session: Session) -> str | None:
        if session.backend == "kubernetes" or session.status in (Status.CREATING, Status.DELETING):
            return None
        if session.runtime.get("layout") == LAYOUT:  # the common case, without pathlib (list looks at every one)
            root = self._roots.get(session.owner)
            if root is None:
                root = self._roots[session.owner] = str(workspace_root(self.home, session.owner, self.shared))
            git = f"{root}{os.sep}{session.name}{os.sep}.git"
        else:
            git = str(self._workspace(session) / ".git")
        if os.path.lexists(git):  # never followed: the agent may have made it a link
            return None
        return (
            f"the workspace of session {session.name} was removed outside clauderon; the agent has no workspace: "
            "delete the session and create it again"
        )

    def get(self, name_or_id: str) -> Session:
        """One of the caller's sessions, reconciled with its backend."""
        session = self._recover(self._find(name_or_id))
        if session is None:
            raise ClauderonError(f"no session named {name_or_id!r} (an interrupted delete of it was just finished)")
        if session.status not in (Status.CREATING, Status.DELETING):
            try:
                observed = self.backend(session.backend).observe([session])
            except ClauderonError as exc:
                session.error = f"state unknown: {exc}"
            else:
                self._apply(session, observed.get(session.id))
        return session

    def _find(self, name_or_id: str) -> Session:
        """One of the caller's sessions by name or id. Another owner's session is not found (its existence
        is not revealed) unless the caller is an admin, who may name it ``owner/name`` or by its id."""
        store = self._reader()
        owner, _, name = name_or_id.rpartition("/")
        session = None
        if owner and self.is_admin:
            session = store.find(name, owner)
        elif not owner:
            session = store.find(name_or_id, self.owner)
            if session is None and self.is_admin:
                session = store.find_any(name_or_id)
        if session is None:
            names = [s.name for s in store.all(self.owner)]
            raise NotFound(f"no session named {name_or_id!r}{did_you_mean(name_or_id, names)}")
        if not is_dns_label(session.name) or session.backend not in {b.value for b in Backend}:
            raise StoreError(f"{store.path}: session {session.name!r} has a damaged record; delete the store entry")
        return session

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> str | Iterator[str]:
        """The agent's output: all of it, the last ``tail`` lines, or a stream when ``follow``."""
        session = self._find(name)
        return self.backend(session.backend).logs(session, tail, follow)

    def attach_command(self, name: str) -> str:
        """The terminal command that attaches to the session's agent."""
        session = self._find(name)
        return self.backend(session.backend).attach_command(session)

    # --- interrupted steps ----------------------------------------------------

    def _recover(self, session: Session) -> Session | None:
        """Finish what an interrupted create or delete left: returns the session, or None if now deleted."""
        if session.status is Status.CREATING and process_gone(session.runtime.get("creator")):
            who = session.runtime.get("creator") or {}
            error = (
                f"create was interrupted (process {who.get('pid', '?')} ended before it finished); "
                "what it had made was removed: delete the session, then create it again"
            )
            try:
                self._remove_parts(session, keep_work=False)
            except ClauderonError as exc:
                error = f"create was interrupted, and cleaning up failed ({exc}); run delete"
            session.status, session.error = Status.FAILED, error
            session.runtime.pop("creator", None)
            self.store.update(session.id, status=session.status, error=error, runtime=session.runtime)
        elif session.status is Status.DELETING and process_gone(session.runtime.get("deleter")):
            try:
                self._remove_parts(session)
            except ClauderonError as exc:
                session.status, session.error = Status.FAILED, f"delete did not finish ({exc}); run delete again"
                self.store.update(session.id, status=session.status, error=session.error)
                return session
            self.store.delete(session.id)
            return None
        return session

    def _workspace(self, session: Session) -> Path:
        """Where the session's workspace must be: derived from its owner and name, never taken from the store."""
        if session.runtime.get("layout") != LAYOUT:  # made by an earlier version: a worktree of the repository
            return self.home / "worktrees" / session.name
        return workspace_root(self.home, session.owner, self.shared) / session.name

    def _remove_parts(self, session: Session, keep_work: bool = True) -> str | None:
        """Remove the backend's objects, then the workspace; with ``keep_work`` the agent's branch is first
        brought back (kept when it has commits). Idempotent."""
        backend = self.backend(session.backend)
        backend.remove(session)
        if not backend.local_workspace:
            return None
        path = self._workspace(session)
        if session.runtime.get("layout") != LAYOUT:
            self._remove_workspace(session, path)
            return (
                f"made by an earlier clauderon-nb as a git worktree: its branch {session.branch} and the "
                f"worktree's entry in {session.repo}/.git/worktrees were left for you to review"
            )
        note = None
        if keep_work and os.path.lexists(path):
            note = self._keep_branch(session, path)
        self._remove_workspace(session, path)
        return note

    def _remove_workspace(self, session: Session, path: Path) -> None:
        """Remove the workspace without following links; files of another uid (a service that is not root)
        are removed by the backend in a throwaway container first."""
        from .workspace import remove_tree

        try:
            remove_tree(path)
        except PermissionError:
            clear = getattr(self.backend(session.backend), "clear_workspace", None)
            image = session.settings.get("image")
            if clear is None or not isinstance(image, str):
                raise
            clear(path, _agent_uid(session), image)
            remove_tree(path)

    def _bring_back_to(self, session: Session) -> Path:
        """Where a session's branch comes back to: your repository, or on the service its copy of it."""
        if not self.shared:
            return Path(session.repo)
        from ..repos.bundles import is_repo_key, service_repo

        key = session.runtime.get("repo_key")
        if not is_repo_key(key):
            raise ClauderonError(f"session {session.name!r} was not made from a sent workspace")
        return service_repo(self.home, session.owner, key)

    def bring_back(self, session: Session, dest: Path | None = None, *, only_if_ahead: bool = False) -> Harvest:
        """Bring the session's branch from its workspace into ``dest`` (default: where it came from), as data:
        the host never runs git in the workspace (see ``sessions/harvest.py``)."""
        from ..config.policy import load_policy
        from .harvest import harvest

        limit = load_policy().for_user(session.owner, _groups_of(session)).max_upload_size()
        seeds = session.runtime.get(SEED_PACKS)
        return harvest(
            self._workspace(session),
            session.branch,
            _base_of(session),
            dest or self._bring_back_to(session),
            seed_packs=frozenset(str(p) for p in seeds) if isinstance(seeds, list) else frozenset(),
            only_if_ahead=only_if_ahead,
            **({"limit": limit} if limit else {}),
        )

    def _keep_branch(self, session: Session, path: Path) -> str | None:
        """Keep the agent's branch when it has commits; a note says what happened (never what was read)."""
        from .harvest import HarvestError

        try:
            kept = self.bring_back(session, only_if_ahead=True)
        except HarvestError as exc:
            return f"its branch could not be kept: {exc}"
        if kept.ahead == 0:
            return None
        return f"branch {session.branch} kept: it has {kept.ahead} new commit{'s' if kept.ahead != 1 else ''}"

    # --- lifecycle ----------------------------------------------------------

    def _busy(self, session: Session, action: str) -> None:
        if session.status in (Status.CREATING, Status.DELETING):
            who = session.runtime.get("creator" if session.status is Status.CREATING else "deleter") or {}
            raise Busy(
                f"session {session.name!r} is {session.status.value} (process {who.get('pid', '?')}); "
                f"{action} it when that is done"
            )

    def stop(self, name: str) -> Session:
        """Stop what the engine actually runs for the session (found by its labels)."""
        session = self.get(name)
        self._busy(session, "stop")
        return self.stop_session(session, None, self.owner, "stop")

    def stop_session(self, session: Session, error: str | None, by: str, reason: str) -> Session:
        """Stop a session on someone's behalf (``by``: an admin, the culler) with the reason it is given.
        A branch with commits is brought back (kept) once the agent has stopped."""
        backend = self.backend(session.backend)
        backend.stop(session)
        now = time.time()
        runtime = _with_history({**session.runtime, "stopped_at": now}, now, by, "stop", reason, session.owner)
        runtime.pop("branch_note", None)
        if backend.local_workspace and session.runtime.get("layout") == LAYOUT:
            note = self._keep_branch(session, self._workspace(session))
            if note:
                runtime["branch_note"] = note
        session.status, session.error, session.runtime = Status.STOPPED, error, runtime
        self.store.update(session.id, status=session.status, error=error, runtime=runtime)
        return session

    # --- lifetimes ------------------------------------------------------------

    def cull(self, now: float | None = None, dry_run: bool = False) -> builtins.list[CullAction]:
        """One pass of the policy's lifetimes over every owner's sessions: stop the ones that ran
        too long or sat idle, delete the ones stopped too long. ``now``: the clock (default: now)."""
        from ..config.policy import load_policy
        from .culling import due

        clock = time.time() if now is None else now
        policy = load_policy()
        actions: builtins.list[CullAction] = []
        for session in self._reader().all():
            if session.status in (Status.CREATING, Status.DELETING) or session.runtime.get("orphan"):
                continue
            rules = policy.for_user(session.owner, _groups_of(session))
            action = due(session, rules, clock, lambda s: self._last_active(s, clock, dry_run))
            if action is None:
                continue
            actions.append(action)
            if dry_run:
                continue
            try:
                if action.action == "stop":
                    self.stop_session(session, action.message, "cull", action.reason)
                else:
                    self._remove_session(session, by="cull", reason=action.reason)
            except ClauderonError as exc:
                _log.warning("cull %s/%s: %s", session.owner, session.name, exc)
                continue
            _log.info("cull: %r", action)
        return actions

    def _last_active(self, session: Session, now: float, dry_run: bool) -> float | None:
        """When the agent was last seen doing something (CPU or output changed between two passes)."""
        backend = self.backend(session.backend)
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
            self.store.update(session.id, runtime=session.runtime)
        return now

    def start(self, name: str) -> Session:
        """Start a stopped session. The record is untrusted: the policy is checked again, and the local
        backend's command is derived again from the agent table, never run from the store."""
        session = self.get(name)
        if session.status is Status.RUNNING:
            return session
        self._busy(session, "start")
        self._recheck(session)
        backend = self.backend(session.backend)
        if backend.local_workspace:
            missing = self._missing_workspace(session)
            if missing:
                raise BackendError(missing.replace("; the agent has no workspace", ""), step="start")
        if session.backend == "local":
            session.runtime = self._local_runtime(session)
        spec = self._planner().respec(session) if session.backend == "kubernetes" else None
        self._claim_running(session)
        try:
            runtime = backend.start(session, spec)
        except BaseException:
            self.store.update(session.id, status=Status.STOPPED)
            raise
        runtime = {k: v for k, v in runtime.items() if k not in (ACTIVITY_KEY, "stopped_at")}
        if self.shared and session.owner == self.owner:
            runtime["groups"] = list(self.groups)  # what the culler applies from now on
        runtime = _with_history(runtime, time.time(), self.owner, "start", "start", session.owner)
        session.runtime, session.status, session.error = runtime, Status.RUNNING, None
        self.store.update(session.id, status=session.status, error=None, runtime=runtime)
        return session

    def _groups_for(self, session: Session) -> tuple[str, ...]:
        """The owner's hub groups as they are now: the caller's own when they act on their own session (a
        user removed from a wider group gets its narrower bounds at once); the recorded ones otherwise."""
        return self.groups if session.owner == self.owner and self.shared else _groups_of(session)

    def _claim_running(self, session: Session) -> None:
        """Count the session as running before it starts, if the quotas allow (one writer at a time)."""
        from ..config.policy import load_policy
        from .quotas import check_quotas, quota_lock

        policy = load_policy().for_user(session.owner, self._groups_for(session))
        with quota_lock(self.home):
            others = [s for s in self.store.all(session.owner) if s.id != session.id]
            check_quotas(policy, others, stored_settings(session), new=False)
            self.store.update(session.id, status=Status.RUNNING)

    def _recheck(self, session: Session) -> None:
        """The stored settings against today's policy, every one of them (agent, GPUs, build, image…)."""
        from ..config.agents import agent_env, all_agents, find_agent
        from ..config.files import agents_of, load_system_config, load_user_config
        from ..config.policy import load_policy

        settings = stored_settings(session)
        policy = load_policy().for_user(session.owner, self._groups_for(session))
        policy.check(settings, {k: "stored session" for k in settings})
        config = find_agent(
            session.agent,
            all_agents(agents_of(load_system_config(), load_user_config(self.home))),
            source="stored session",
        )
        forwarded = agent_env(session.agent, config, names_only=True)
        policy.check_pass_env(session.agent, forwarded.required + forwarded.optional_present)

    def _local_runtime(self, session: Session) -> dict[str, Any]:
        from ..config.agents import agent_command, all_agents, find_agent, render_command
        from ..config.files import agents_of, load_system_config, load_user_config

        agents = agents_of(load_system_config(), load_user_config(self.home))
        config = find_agent(session.agent, all_agents(agents), source="stored session")
        logs = self.home / "logs"
        return {
            **session.runtime,
            "argv": render_command(agent_command(config, has_terminal=False), session.prompt),
            "cwd": str(self._workspace(session)),
            "log": str(logs / f"{session.name}.log"),
            "exit_file": str(logs / f"{session.name}.exit"),
        }

    def delete(self, name: str) -> str | None:
        """Remove the container or process, the workspace and the record.

        The session branch is deleted too unless the agent committed work on it;
        then it is kept and the returned note says so. Idempotent: a delete that
        failed half-way leaves the session ``failed``, and the next delete finishes it.
        Orphans (engine objects with our labels and no record) are removed by name.
        """
        try:
            session = self._find(name)
        except StoreError:
            raise
        except ClauderonError as missing:
            try:
                orphan = self._orphan(name)
            except ClauderonError as exc:  # say both: no record, and the engine could not be asked either
                raise ClauderonError(f"{missing}; labelled containers could not be checked: {exc}") from None
            if orphan is None:
                raise
            self.backend(orphan.backend).remove(orphan)
            return "an orphan: its container was removed; it had no record (a workspace folder is left for you)"
        recovered = self._recover(session)
        if recovered is None:
            return None
        return self._remove_session(recovered, by=self.owner, reason="delete")

    def purge(self, reason: str, dry_run: bool = False) -> builtins.list[CullAction]:
        """Remove everything of this owner on the service: sessions (nothing kept), repository copies and
        workspaces. For an owner whose hub account was deleted, or whose name now belongs to a new account."""
        from ..model.answers import CullAction
        from .workspace import remove_tree

        message = "removed by the clauderon service: its owner's hub account was deleted"
        actions = []
        for session in self._reader().all(self.owner):
            actions.append(CullAction(session.id, session.owner, session.name, "delete", reason, message))
            if not dry_run:
                self._remove_session(session, by="clauderon-service", reason=reason, keep_work=False)
        if not dry_run:
            for folder in ("repos", "workspaces"):
                remove_tree(self.home / folder / owner_folder(self.owner))
        return actions

    def remove_unused_repos(self, now: float, dry_run: bool = False) -> builtins.list[str]:
        """The service's copies of repositories that no session uses and that nobody used for the policy's
        ``delete_unused_repos_after`` (default 7 days): removed. Returns what was (or would be) removed."""
        from ..config.policy import load_policy
        from .workspace import remove_tree

        policy = load_policy()
        used = {(owner_folder(s.owner), s.runtime.get("repo_key")) for s in self._reader().all()}
        owners = {owner_folder(s.owner): s for s in self._reader().all()}
        removed: builtins.list[str] = []
        for folder in sorted((self.home / "repos").glob("*")):
            if not folder.is_dir() or folder.is_symlink():
                continue
            sample = owners.get(folder.name)
            rules = policy.for_user(sample.owner, _groups_of(sample)) if sample else policy
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

    def _remove_session(self, session: Session, *, by: str, reason: str, keep_work: bool = True) -> str | None:
        if session.status is Status.CREATING:
            self._busy(session, "delete")
        if by != session.owner:
            _log.info("%s delete %s/%s (%s)", by, session.owner, session.name, reason)
        before = (session.status, dict(session.runtime))
        runtime = {**session.runtime, "deleter": this_process()}
        self.store.update(session.id, status=Status.DELETING, runtime=runtime)
        session.runtime = runtime
        try:
            note = self._remove_parts(session, keep_work=keep_work)
        except EngineUnavailable:
            # The engine could not be asked: nothing was done, so the record stays as it was.
            session.status, session.runtime = before
            self.store.update(session.id, status=session.status, runtime=session.runtime)
            raise
        except BaseException as exc:
            message = str(exc) if isinstance(exc, ClauderonError) else type(exc).__name__
            runtime.pop("deleter", None)
            runtime["delete_failed"] = True  # the error stands until a delete finishes
            self.store.update(
                session.id,
                status=Status.FAILED,
                error=f"delete did not finish ({message}); run delete again",
                runtime=runtime,
            )
            raise
        self.store.delete(session.id)
        return note


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


def _with_history(runtime: dict[str, Any], at: float, by: str, action: str, reason: str, owner: str) -> dict[str, Any]:
    """The runtime with one more history entry (the newest 50 are kept). Steps the owner takes
    themselves are not recorded; the culler's and an admin's are, with who did it."""
    if by == owner:
        return runtime
    before = runtime.get("history")
    history: list[Any] = before if isinstance(before, list) else []
    entry = {"at": at, "by": by, "action": action, "reason": reason}
    _log.info("%s %s %s/%s (%s)", by, action, owner, runtime.get("container") or runtime.get("pod") or "", reason)
    return {**runtime, "history": [*history, entry][-50:]}


def _last_line(text: str | Iterator[str]) -> str | None:
    if not isinstance(text, str):
        return None
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _own_env(name: str, service_env: tuple[str, ...], shared: bool) -> str | None:
    """A credential from this process's environment: always in a kernel; on the service only ``service_env``."""
    return os.environ.get(name) if not shared or name in service_env else None


def _groups_of(session: Session) -> tuple[str, ...]:
    """The hub groups the owner had when the session was made (what its policy sections were)."""
    groups = session.runtime.get("groups")
    return tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()


def _is_admin(owner: str) -> bool:
    from ..config.policy import load_policy

    return load_policy().is_admin(owner)


def _base_of(session: Session) -> str | None:
    base = session.runtime.get("base_commit")
    return base if is_commit_hash(base) else None


def _agent_uid(session: Session) -> int:
    """The uid the session's agent ran as (recorded at create)."""
    uid = session.runtime.get("uid")
    return uid if type(uid) is int and 0 < uid < 2**31 else 1000


def _redacted(session: Session) -> Session:
    """Another owner's session as a non-admin may see it: name, owner, backend and state only."""
    orphan = bool(session.runtime.get("orphan"))
    return replace(
        session,
        prompt="(hidden: another owner's session)",
        settings={},
        repo="-",
        worktree="-",
        runtime={"orphan": True} if orphan else {},
        backend_id=None,
        error=session.error if orphan else None,
    )


def _request(request: CreateSessionRequest | None, fields: dict[str, Any]) -> CreateSessionRequest:
    from ..model.request import as_request  # pydantic loads only when a command plans

    return as_request(request, fields)


def _rollback(undo: list[Any]) -> None:
    """Undo in reverse order; keep going past failures so as much as possible is cleaned."""
    for step in reversed(undo):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort: the original error is what the user needs
            continue

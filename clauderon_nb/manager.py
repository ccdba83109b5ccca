"""``SessionManager``: the one place every entry point calls."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agents import agent_command, agent_env, all_agents
from .config_files import clauderon_home, load_repo_config, load_user_config
from .errors import BackendError, ClauderonError, ConfigError
from .fields import Backend
from .gitrepo import inspect_repo, remote_url
from .naming import current_owner, name_from_prompt
from .plan import Plan
from .policy import load_policy
from .presets import all_presets
from .progress import ProgressCallback, ProgressEvent, no_progress
from .pull_policy import PullPolicy
from .request import CreateSessionRequest
from .resolve import Resolution, resolve
from .session import Session, Status
from .spec import SessionSpec, build_spec
from .store import NameTaken, Store
from .worktree import add_worktree, remove_worktree

if TYPE_CHECKING:
    from .backends.base import SessionBackend

_NAME_ATTEMPTS = 8


@dataclass(frozen=True)
class Options:
    """What a form offers: every choice already filtered by the admin policy."""

    agents: list[str]
    presets: dict[str, str]
    backends: list[str]
    pull_policies: list[str]
    allowed_images: list[str]  # the policy's globs (empty: any image)
    images: list[str]  # suggestions: the policy's literal images, then recently used ones
    max_cpu: int | None
    max_memory: int | None


class SessionManager:
    """Plans, creates and manages agent sessions under one ``CLAUDERON_HOME``."""

    def __init__(self, home: str | os.PathLike[str] | None = None, *, owner: str | None = None) -> None:
        self.home: Path = clauderon_home(home)
        self.owner: str = owner or current_owner()
        self._store: Store | None = None
        self._backends: dict[str, SessionBackend] = {}

    def __repr__(self) -> str:
        return f"SessionManager(home={str(self.home)!r}, owner={self.owner!r})"

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.home / "sessions.sqlite")
        return self._store

    def backend(self, name: str) -> SessionBackend:
        if name not in self._backends:
            from .backends import get_backend

            self._backends[name] = get_backend(name)
        return self._backends[name]

    # --- planning -----------------------------------------------------------

    def resolve(self, request: CreateSessionRequest) -> Resolution:
        """Resolved settings with sources, reading config files and policy; creates nothing."""
        repo = inspect_repo(request.repo)
        return resolve(
            request, load_user_config(self.home), load_repo_config(repo.root), load_policy(), owner=self.owner
        )

    def plan(self, request: CreateSessionRequest | None = None, **fields: Any) -> Plan:
        """A dry run of ``create``: resolved settings, their sources and the backend-native spec.

        Pass a ``CreateSessionRequest`` or its fields as keywords. Creates nothing,
        reads no secret values (they show as ``***``).
        """
        request = _request(request, fields)
        return self._plan(request, request.name or name_from_prompt(request.prompt))

    def _plan(self, request: CreateSessionRequest, name: str) -> Plan:
        repo = inspect_repo(request.repo)
        res = resolve(
            request, load_user_config(self.home), load_repo_config(repo.root), load_policy(), owner=self.owner
        )
        settings = res.settings
        credentials = agent_env(settings.agent, res.agent_config)
        url = None
        if settings.backend is Backend.KUBERNETES:
            url = settings.git_remote_url or remote_url(repo)
            if not url:
                raise ConfigError(
                    f"repo '{repo.root}': the kubernetes backend clones the repository's remote, and it has none; "
                    "add a remote (git remote add origin URL) or set git_remote_url in k8s-config.toml"
                )
        spec = build_spec(
            session_id=str(uuid.uuid4()),
            name=name,
            owner=self.owner,
            prompt=request.prompt,
            settings=settings,
            agent_command=agent_command(res.agent_config, has_terminal=settings.backend is not Backend.LOCAL),
            credentials=credentials,
            env_from_secret=res.agent_config.env_from_secret,
            repo_root=repo.root,
            git_common_dir=repo.common_dir,
            base_branch=repo.branch,
            base_commit=repo.commit,
            home=self.home,
            remote_url=url,
            uid=os.getuid(),
            gid=os.getgid(),
        )
        return Plan(
            session_spec=spec, settings=settings, sources=res.sources, origins=res.origins, spec=render_native(spec)
        )

    def options(self) -> Options:
        """Choices and bounds for a form: agents, presets, and what the admin policy allows."""
        user = load_user_config(self.home)
        policy = load_policy()
        backends = [b.value for b in Backend if policy.allows("allowed_backends", b)]
        pulls = [p.value for p in PullPolicy if policy.allows("allowed_pull_policies", p)]
        found = policy.first("allowed_images")
        globs = list(found[0]) if found else []
        recent: list[str] = []
        if (self.home / "sessions.sqlite").exists():
            for s in reversed(self.store.all(self.owner)):
                image = s.settings.get("image")
                if image and image not in recent:
                    recent.append(image)
        return Options(
            agents=sorted(all_agents(user.general.data.agents)),
            presets={k: v.description or "" for k, v in all_presets(user.general.data.presets).items()},
            backends=backends,
            pull_policies=pulls,
            allowed_images=globs,
            images=[g for g in globs if not any(c in g for c in "*?[")] + recent[:10],
            max_cpu=policy.max_cpu(),
            max_memory=policy.max_memory(),
        )

    # --- create -------------------------------------------------------------

    def create(
        self,
        request: CreateSessionRequest | None = None,
        progress: ProgressCallback | None = None,
        *,
        wait: bool = True,
        **fields: Any,
    ) -> Session:
        """Create and start a session. All or nothing: on any failure nothing is left behind.

        ``wait=False`` returns once the container or pod is submitted, without
        watching it come up.
        """
        request = _request(request, fields)
        report = progress or no_progress
        plan, session = self._reserve(request)
        spec = plan.session_spec
        secrets = {name: os.environ[name] for name in spec.secret_env if name in os.environ}
        missing = [n for n in spec.secret_env if n not in secrets]
        undo: list[Any] = [lambda: self.store.delete(session.id)]
        try:
            if missing:
                raise ConfigError(f"agent {spec.settings.agent!r}: variable {missing[0]} vanished from the environment")
            backend = self.backend(session.backend)
            backend.preflight(spec, report)
            if backend.local_worktree:
                report(ProgressEvent("worktree", f"creating worktree on branch {spec.branch}"))
                add_worktree(spec.repo_root, spec.worktree, spec.branch, spec.base_commit)
                undo.append(
                    lambda: remove_worktree(spec.repo_root, spec.worktree, spec.branch, base=None, keep_work=False)
                )
            backend_id, runtime = backend.create(spec, secrets, report, wait=wait)
            session.backend_id, session.runtime = backend_id, {**session.runtime, **runtime}
            undo.append(lambda: backend.remove(session))
            self.store.update(session.id, backend_id=backend_id, runtime=session.runtime, status=Status.RUNNING)
            session.status = Status.RUNNING
            report(ProgressEvent("ready", f"session {session.name} is running"))
        except BaseException as exc:  # create either returns a session or leaves nothing behind
            _rollback(undo)
            if isinstance(exc, ClauderonError) or not isinstance(exc, Exception):
                raise
            raise BackendError(" ".join(str(exc).split()) or type(exc).__name__, step="create") from exc
        return session

    def _reserve(self, request: CreateSessionRequest) -> tuple[Plan, Session]:
        """Plan and insert a ``creating`` record; the unique name is taken atomically here."""
        for _ in range(_NAME_ATTEMPTS):
            name = request.name or name_from_prompt(request.prompt)
            plan = self._plan(request, name)
            spec = plan.session_spec
            now = time.time()
            session = Session(
                id=spec.session_id,
                name=name,
                owner=self.owner,
                backend=plan.backend,
                agent=spec.settings.agent,
                repo=str(spec.repo_root),
                worktree=str(spec.worktree) if plan.backend != "kubernetes" else "/workspace (in the pod)",
                branch=spec.branch,
                prompt=request.prompt,
                settings=plan.settings.to_json(),
                backend_id=None,
                status=Status.CREATING,
                error=None,
                created_at=now,
                updated_at=now,
                runtime={"base_commit": spec.base_commit},
            )
            try:
                self.store.insert(session)
            except NameTaken:
                if request.name:
                    raise
                continue
            return plan, session
        raise ClauderonError("could not find a free session name; pass --name")

    # --- queries ------------------------------------------------------------

    def list(self, all_owners: bool = False) -> list[Session]:
        """Sessions (the caller's, or everyone's), reconciled with each backend in one call per backend."""
        sessions = self.store.all(None if all_owners else self.owner)
        by_backend: dict[str, list[Session]] = {}
        for s in sessions:
            if s.status not in (Status.CREATING, Status.DELETING):
                by_backend.setdefault(s.backend, []).append(s)
        for name, group in by_backend.items():
            try:
                observed = self.backend(name).observe(group)
            except ClauderonError as exc:
                for s in group:  # keep the records; say why their state is unknown
                    s.error = f"state unknown: {exc}"
                continue
            for s in group:
                self._apply(s, observed.get(s.id))
        return sessions

    def _apply(self, session: Session, observed: Any) -> None:
        from .backends.base import reconcile

        what = f"{session.backend} object {session.runtime.get('container') or session.backend_id}"
        change = reconcile(session.status, observed, what)
        if change and (change[0] != session.status or change[1] != session.error):
            session.status, session.error = change
            self.store.update(session.id, status=session.status, error=session.error)

    def get(self, name_or_id: str) -> Session:
        """One of the caller's sessions, reconciled with its backend."""
        session = self._find(name_or_id)
        if session.status not in (Status.CREATING, Status.DELETING):
            try:
                observed = self.backend(session.backend).observe([session])
            except ClauderonError as exc:
                session.error = f"state unknown: {exc}"
            else:
                self._apply(session, observed.get(session.id))
        return session

    def _find(self, name_or_id: str) -> Session:
        session = self.store.find(name_or_id)
        if session is None:
            from .errors import did_you_mean

            names = [s.name for s in self.store.all(self.owner)]
            raise ClauderonError(f"no session named {name_or_id!r}{did_you_mean(name_or_id, names)}")
        if session.owner != self.owner:
            raise ClauderonError(f"session {session.name!r} belongs to {session.owner!r}, not to you ({self.owner!r})")
        return session

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> str | Iterator[str]:
        """The agent's output: all of it, the last ``tail`` lines, or a stream when ``follow``."""
        session = self._find(name)
        return self.backend(session.backend).logs(session, tail, follow)

    def attach_command(self, name: str) -> str:
        """The terminal command that attaches to the session's agent."""
        session = self._find(name)
        return self.backend(session.backend).attach_command(session)

    # --- lifecycle ----------------------------------------------------------

    def stop(self, name: str) -> Session:
        session = self.get(name)
        if session.status is Status.RUNNING:
            self.backend(session.backend).stop(session)
        session.status, session.error = Status.STOPPED, None
        self.store.update(session.id, status=session.status, error=None)
        return session

    def start(self, name: str) -> Session:
        session = self.get(name)
        if session.status is Status.RUNNING:
            return session
        if session.status in (Status.CREATING, Status.DELETING):
            raise ClauderonError(f"session {session.name!r} is {session.status.value}; try again when it is done")
        runtime = self.backend(session.backend).start(session)
        session.runtime, session.status, session.error = runtime, Status.RUNNING, None
        self.store.update(session.id, status=session.status, error=None, runtime=runtime)
        return session

    def delete(self, name: str) -> str | None:
        """Remove the container or process, the worktree and the record.

        The session branch is deleted too unless the agent committed work on it;
        then it is kept and the returned note says so.
        """
        session = self._find(name)
        self.store.update(session.id, status=Status.DELETING)
        backend = self.backend(session.backend)
        backend.remove(session)
        note = None
        if backend.local_worktree:
            note = remove_worktree(
                Path(session.repo),
                Path(session.worktree),
                session.branch,
                base=session.runtime.get("base_commit"),
                keep_work=True,
            )
        self.store.delete(session.id)
        return note


def _request(request: CreateSessionRequest | None, fields: dict[str, Any]) -> CreateSessionRequest:
    if request is None:
        return CreateSessionRequest(**fields)
    if fields:
        raise TypeError("pass a CreateSessionRequest or keyword fields, not both")
    return request


def _rollback(undo: list[Any]) -> None:
    """Undo in reverse order; keep going past failures so as much as possible is cleaned."""
    for step in reversed(undo):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort: the original error is what the user needs
            continue


def render_native(spec: SessionSpec) -> Any:
    """The backend-native form of ``spec`` with secrets masked."""
    backend = spec.settings.backend
    if backend is Backend.DOCKER:
        from .render_docker import render_docker

        return render_docker(spec)
    if backend is Backend.KUBERNETES:
        from .render_kubernetes import render_kubernetes

        return render_kubernetes(spec)
    return {
        "argv": list(spec.command),
        "cwd": str(spec.worktree),
        "env": {**spec.env, **{n: "***" for n in spec.secret_env}},
    }

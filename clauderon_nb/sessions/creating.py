"""Creating a session, all or nothing.

What the create will make is recorded before it is made (a ``creating`` record naming the process,
inserted under the owner's quotas), and every object carries the session's labels, so a create
killed half-way is found and cleaned up by the next ``list``, ``get`` or ``delete``. Any failure
undoes every step taken, in reverse.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ClauderonError, ConfigError
from ..model.naming import name_from_prompt
from ..model.progress import ProgressCallback, ProgressEvent, no_progress
from ..model.redact import redact_text, strip_credentials
from ..model.session import LAYOUT, SEED_PACKS, Session, Status
from .liveness import this_process
from .store import NameTaken

if TYPE_CHECKING:
    from ..model.request import CreateSessionRequest
    from ..render.plan import Plan
    from ..render.spec import SessionSpec
    from ..repos.bundles import Incoming
    from ..repos.gitrepo import RepoInfo
    from .manager import SessionManager
    from .workspace import WorkspaceJob

_NAME_ATTEMPTS = 8
# The service's bounds when its policy sets none: how large a sent workspace's checkout may be, and how much
# one user's repository copies may take together.
DEFAULT_MAX_CHECKOUT = 10 * 1024**3
DEFAULT_MAX_REPO_STORAGE = 20 * 1024**3


@dataclass(frozen=True)
class FromClient:
    """What a create through the service brings besides the request: the credentials the client sent, the
    repository made from its bundle (``workspace``) and its remote (a pod clones it), what the record keeps of
    the client (``runtime``: its repository's path and key), and the quarantine of a sent workspace, accepted
    into the owner's copy once nothing refuses the create (``incoming``; else left to be discarded)."""

    workspace: RepoInfo
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    remote: str | None = None
    runtime: dict[str, str] = field(default_factory=dict)
    incoming: Incoming | None = None


def create(
    m: SessionManager,
    request: CreateSessionRequest,
    progress: ProgressCallback | None = None,
    wait: bool = True,
    client: FromClient | None = None,
) -> Session:
    """Create and start a session (see ``SessionManager.create``). All or nothing."""
    report = progress or no_progress
    secrets = client.secrets if client is not None and m.shared else {}
    remote = client.remote if client is not None else None
    incoming = client.incoming if client is not None else None
    plan, session, token = reserve(m, request, client, secrets)
    spec = plan.session_spec
    secret_values = _credentials(m, spec, {**secrets, **plan.settings.extra_env})
    if token:
        from ..render.kubernetes import WORKSPACE_TOKEN_KEY

        secret_values[WORKSPACE_TOKEN_KEY] = token
    missing = [n for n in spec.secret_env if n not in secret_values]
    backend = m.backend(session.backend)
    undo: list[Callable[[], object]] = [lambda: m.store.delete(session.id)]
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
            m.store.update(session.id, settings=session.settings)
        if incoming is not None:
            spec = accept(m, spec, incoming)
        job = None
        if backend.local_workspace:
            report(ProgressEvent("worktree", f"creating the session's workspace on branch {spec.branch}"))
            job = start_workspace(m, spec, remote)
            undo.append(job.remove)
        # Registered before the call: an interrupt inside it still removes what it made (found by label).
        undo.append(lambda: backend.remove(session))
        backend_id, runtime = backend.create(spec, secret_values, report, wait=wait, workspace=job)
        if job is not None:
            runtime = {**runtime, SEED_PACKS: job.seed_packs}
        session.backend_id, session.runtime = backend_id, {**session.runtime, **runtime}
        session.runtime.pop("creator", None)
        m.store.update(session.id, backend_id=backend_id, runtime=session.runtime, status=Status.RUNNING)
        session.status = Status.RUNNING
        report(ProgressEvent("ready", f"session {session.name} is running"))
    except BaseException as exc:  # create either returns a session or leaves nothing behind
        rollback(undo)
        if isinstance(exc, ClauderonError) or not isinstance(exc, Exception):
            raise
        raise BackendError(redact_text(" ".join(str(exc).split())) or type(exc).__name__, step="create") from exc
    return session


def _credentials(m: SessionManager, spec: SessionSpec, given: dict[str, str]) -> dict[str, str]:
    """The agent's credential values: the config's own (in ``given``, winning over a client's), else this
    process's environment. On the service a session gets what its user sent, and of the service's own
    environment only what the admin named for the agent (``service_env``)."""
    out = {}
    for name in spec.secret_env:
        if name in given and name not in spec.service_env:
            value: str | None = given[name]
        else:
            value = os.environ.get(name) if not m.shared or name in spec.service_env else None
        if value is not None:
            out[name] = value
    return out


def accept(m: SessionManager, spec: SessionSpec, incoming: Incoming) -> SessionSpec:
    """Check the checkout's size and the owner's repository storage, then move the sent workspace into the
    owner's copy; the session is made from the copy."""
    from ..repos.bundles import tree_size
    from .quotas import check_repo_storage
    from .workspace import check_size, checkout_size

    policy = m.policy()
    limit = policy.limit("max_workspace_size")
    size, _ = checkout_size(incoming.root, incoming.commit)
    check_size(size, limit[0] if limit else DEFAULT_MAX_CHECKOUT, limit[1] if limit else "(the service's default)")
    storage = policy.limit("max_repo_storage")
    default = (DEFAULT_MAX_REPO_STORAGE, "the service's default")
    check_repo_storage(tree_size(incoming.bare.parent), incoming.size(), storage or default)
    incoming.accept()
    return replace(spec, repo_root=incoming.bare)


def precheck(m: SessionManager, plan: Plan, name_given: bool) -> None:
    """What would refuse a create before anything is sent or imported: the quotas, a taken name."""
    from .quotas import check_quotas

    check_quotas(m.policy(), m.reader().all(m.owner), plan.settings.to_json(), new=True)
    if name_given and m.reader().find(plan.name, m.owner) is not None:
        raise NameTaken(f"you already have a session named {plan.name!r}; choose another --name")


def start_workspace(m: SessionManager, spec: SessionSpec, remote: str | None) -> WorkspaceJob:
    """Check the checkout's size against the policy, then make the workspace in a thread (the backend
    waits for it before the agent starts)."""
    from ..repos.gitrepo import branch_exists, inspect_repo_cached, remote_url_cached
    from .workspace import WorkspaceJob, check_size, checkout_size

    limit = m.policy().limit("max_workspace_size")
    if limit is not None:
        size, _ = checkout_size(spec.repo_root, spec.base_commit)
        check_size(size, limit[0], limit[1])
    if not m.shared:
        if branch_exists(spec.repo_root, spec.branch):
            raise BackendError(
                f"branch {spec.branch} already exists in {spec.repo_root}; delete it (git branch -D "
                f"{spec.branch}) or choose another name",
                step="create workspace",
            )
        remote = remote_url_cached(inspect_repo_cached(spec.repo_root))
    clean = strip_credentials(remote) if remote else None
    return WorkspaceJob(spec.repo_root, spec.base_commit, spec.workspace, spec.branch, clean)


def reserve(
    m: SessionManager, request: CreateSessionRequest, client: FromClient | None, credentials: Mapping[str, str]
) -> tuple[Plan, Session, str | None]:
    """Plan and insert a ``creating`` record naming what will be made (write-ahead); the unique
    name is taken atomically here. The first try uses the dry run's name."""
    from .deployment import deployment_id

    m.store  # noqa: B018 - made first: its errors say what to do about an unusable home
    deployment_id(m.home)  # made now: the objects about to be made carry it
    planner = m.planner()
    for attempt in range(_NAME_ATTEMPTS):
        name = None if attempt == 0 or request.name else name_from_prompt(request.prompt)
        plan = planner.plan(
            request,
            name,
            client.workspace if client else None,
            credentials if m.shared else None,
            client.remote if client else None,
        )
        if plan.needs_trust:
            raise ConfigError(plan.notes[-1], field="image")
        spec = plan.session_spec
        now = time.time()
        token = None
        extra: dict[str, Any] = dict(client.runtime) if client else {}
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
            **m.backend(plan.backend).plan_runtime(spec),
        }
        if m.groups:
            runtime["groups"] = list(m.groups)
        session = Session(
            id=spec.session_id,
            name=spec.name,
            owner=m.owner,
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
        try:
            insert_within_quotas(m, session)
        except NameTaken:
            if request.name:
                raise
            continue
        return plan, session, token
    raise ClauderonError("could not find a free session name; pass --name")


def insert_within_quotas(m: SessionManager, session: Session) -> None:
    """Check the owner's quotas and write the record as one step (one writer at a time)."""
    from .quotas import check_quotas, quota_lock

    with quota_lock(m.home):
        check_quotas(m.policy(), m.store.all(m.owner), session.settings, new=True)
        m.store.insert(session)


def rollback(undo: list[Callable[[], object]]) -> None:
    """Undo in reverse order; keep going past failures so as much as possible is cleaned."""
    for step in reversed(undo):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort: the original error is what the user needs
            continue

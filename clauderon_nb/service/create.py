"""Creating a session through the service: the plan (``/plan``) and the create (``POST /sessions``).

A create's body is one line of JSON, then (``application/x-clauderon-create``) the workspace bundle.
The JSON is validated and checked against the policy, the quotas and the names as soon as it has
arrived, before any of the bundle is read; the bundle waits in a quarantine until nothing refuses the
create. The progress stream sends a keepalive comment as JupyterHub's spawn progress does, and a
create counts as in flight until it has ended, whether or not its client stayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tornado.iostream import StreamClosedError

from ..model.git_ids import is_commit_hash
from ..model.progress import ProgressEvent, progress_fraction
from ..model.redact import has_credentials
from ..remote.wire import credential_names, error_body, rename_aliases, session_json
from ..repos.bundles import Incoming, has_commit, is_repo_key, keep_tip, receive_bundle, tips, touch
from ..repos.gitrepo import RepoInfo
from ..sessions.creating import FromClient
from ..sessions.manager import SessionManager
from ..sessions.quotas import QuotaError
from .answers import MAX_JSON, ApiError, parse_json
from .http import ApiHandler
from .state import Caller, Service

#: A create with its workspace: one line of JSON, a newline, then the bundle's bytes.
CREATE_WITH_BUNDLE = "application/x-clauderon-create"
KEEPALIVE = 8.0  # seconds between keepalive comments of a progress stream (JupyterHub's own interval)


@dataclass
class CreateBody:
    """A create or plan body, taken apart: the request model's fields and the service's own keys."""

    request: Any  # CreateSessionRequest
    workspace: RepoInfo
    key: str
    client_repo: str
    remote: str | None
    env: dict[str, str]
    wait: bool
    problem: ApiError | None = None  # a missing or malformed workspace: answered after the policy check


def take_apart(service: Service, caller: Caller, data: dict[str, Any]) -> CreateBody:
    """Validate a body with the one request model; the workspace names the caller's own copy only."""
    from ..model.request import CreateSessionRequest

    data = rename_aliases(data)
    workspace = data.pop("workspace", None)
    env = data.pop("env", None) or {}
    wait = data.pop("wait", True)
    data.pop("repo", None)  # a path on the client's machine: meaningless here, and never read
    request = CreateSessionRequest(**data, repo="/")  # the request's own fields first: 400 names the field
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ApiError("ValidationError", "env: expected an object of variable names to string values")
    if not isinstance(wait, bool):
        raise ApiError("ValidationError", "wait: expected true or false")
    try:
        info, key, path, remote = _workspace_of(service, caller, workspace)
    except ApiError as problem:  # said after the policy has had its say: a refused create is 403 either way
        unsent = service.repo_dir(caller.name, "0" * 24)
        info = RepoInfo(root=unsent, common_dir=unsent, branch="HEAD", commit="0" * 40)
        return CreateBody(request, info, "0" * 24, "-", None, dict(env), wait, problem)
    return CreateBody(request, info, key, path, remote, dict(env), wait)


def _workspace_of(service: Service, caller: Caller, workspace: Any) -> tuple[RepoInfo, str, str, str | None]:
    """The caller's own copy of the repository a create names; ``ApiError`` for a malformed workspace."""
    if not isinstance(workspace, dict):
        raise ApiError(
            "ValidationError",
            "workspace: required, {'key': …, 'commit': …}; the service never reads a path you name, "
            "it makes the session's workspace from the repository you send",
            "repo",
        )
    key, commit = workspace.get("key"), workspace.get("commit")
    if not is_repo_key(key):
        raise ApiError("ValidationError", f"workspace.key {str(key)[:80]!r}: expected 8-64 lowercase hex digits")
    if not is_commit_hash(commit):
        raise ApiError("ValidationError", f"workspace.commit {str(commit)[:80]!r}: expected a full commit hash")
    given_branch = workspace.get("branch")
    branch = given_branch if isinstance(given_branch, str) else "HEAD"
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch) or ".." in branch:
        raise ApiError("ValidationError", f"workspace.branch {branch[:80]!r}: not a branch name")
    given_path, given_remote = workspace.get("path"), workspace.get("remote")
    path = given_path if isinstance(given_path, str) else "-"
    remote = given_remote if isinstance(given_remote, str) else None
    if remote is not None and (has_credentials(remote) or not re.fullmatch(r"[^\s\x00]{1,2000}", remote)):
        raise ApiError("ValidationError", "workspace.remote: send the remote URL without credentials", "repo")
    bare = service.repo_dir(caller.name, key)
    return RepoInfo(root=bare, common_dir=bare, branch=branch, commit=commit), key, path[:400], remote


def check_env(body: CreateBody, plan: Any) -> None:
    """Credentials may be sent only for the names the agent takes; a value never appears in an answer."""
    wanted = set(credential_names(plan.session_spec.secret_env, plan.settings.extra_env, plan.session_spec.service_env))
    extra = sorted(set(body.env) - wanted)
    if extra:
        raise ApiError(
            "ValidationError",
            f"env {extra[0]}: agent {plan.settings.agent!r} does not take it "
            f"(it takes {', '.join(sorted(wanted)) or 'none'})",
            "agent",
        )


class PlanHandler(ApiHandler):
    """A dry run with provenance; also says whether the service has the workspace's commit."""

    async def post(self) -> None:
        data = self.json_body()
        intent = data.pop("intent", None)  # "create": the first step of a client's create (refusals count)
        try:
            await self._plan(data, intent == "create")
        except Exception as exc:
            if intent == "create":
                count_refusal(self.service, exc)
            raise

    async def _plan(self, data: dict[str, Any], for_create: bool) -> None:
        mgr = self.manager()
        check_image = data.pop("check_image", False) is True
        body = take_apart(self.service, self.caller, data)
        plan = await self.service.run(
            lambda: mgr.plan(body.request, workspace=body.workspace, remote=body.remote, check_image=check_image)
        )
        check_env(body, plan)
        if body.problem is not None:
            raise body.problem
        if for_create:  # the quotas and a taken name refuse before anything is sent
            await self.service.run(lambda: mgr.precheck(plan, bool(body.request.name)))
        bare = body.workspace.root
        have = await self.call(lambda: (has_commit(bare, body.workspace.commit), tips(bare)))
        self.send_json(
            {
                "plan": plan.to_json(),
                "credentials": credential_names(
                    plan.session_spec.secret_env, plan.settings.extra_env, plan.session_spec.service_env
                ),
                "has_commit": have[0],
                "have": have[1],
                "max_upload_size": self.service.max_upload(self.caller),
            }
        )


def count_refusal(service: Service, exc: BaseException) -> None:
    """A create refused (by the policy, a quota, validation…) counts in ``clauderon_creates_total`` with
    its reason, as one that failed later does."""
    metrics = service.metrics
    if isinstance(exc, QuotaError):
        metrics.quota_refusals.labels(exc.quota).inc()
    reason = exc.kind if isinstance(exc, ApiError) else type(exc).__name__
    metrics.creates.labels("failure", reason).inc()


class CreateHandler(ApiHandler):
    """``POST /api/v1/sessions``: JSON, or JSON + newline + bundle (``application/x-clauderon-create``).

    The request is validated and checked against the policy as soon as its JSON has arrived, before
    any of the bundle is read: a refused create never uploads a repository.
    """

    _head: bytearray
    _body: CreateBody | None
    _plan: Any
    _upload: Any
    _limit: int | None = None
    _holding = False  # counted in the owner's creates in flight
    _working = False  # the create itself runs: it gives the count back when it ends

    def body_limit(self) -> int:
        if self._limit is None:
            self._limit = self.service.max_upload(self.caller) + MAX_JSON
        return self._limit

    def too_large(self, size: int, limit: int) -> str:
        return _too_large(size, limit - MAX_JSON)

    async def admitted(self) -> None:
        self._head, self._body, self._plan, self._upload = bytearray(), None, None, None
        self._bundle_size = 0
        kind = self.request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        self._framed = kind == CREATE_WITH_BUNDLE
        if kind not in ("application/json", CREATE_WITH_BUNDLE):
            raise ApiError(
                "ValidationError", f"Content-Type {kind!r}: expected application/json or {CREATE_WITH_BUNDLE}"
            )
        self.service.begin_create(self.caller.name)
        self._holding = True

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self.service.end_create(self.caller.name)

    def on_finish(self) -> None:
        if not self._working:
            self._release()
        self._discard()

    def on_connection_close(self) -> None:
        self.on_finish()

    def _discard(self) -> None:
        upload = getattr(self, "_upload", None)
        if upload is not None:
            upload.close()
            Path(upload.name).unlink(missing_ok=True)
            self._upload = None

    async def reject(self, exc: BaseException) -> None:
        if self._rejected is None and not self._finished and hasattr(self, "caller"):
            count_refusal(self.service, exc)
        self._discard()
        await super().reject(exc)

    async def take(self, chunk: bytes) -> None:
        if self._body is None:
            self._head += chunk
            if not self._framed:
                if len(self._head) > MAX_JSON:
                    raise ApiError("TooLarge", f"the request body is over {MAX_JSON} bytes")
                return
            cut = self._head.find(b"\n")
            if cut < 0:
                if len(self._head) > MAX_JSON:
                    raise ApiError("TooLarge", f"the create's JSON line is over {MAX_JSON} bytes")
                return
            rest = bytes(self._head[cut + 1 :])
            await self._check(bytes(self._head[:cut]))
            folder = self.service.data_dir / "uploads"
            folder.mkdir(parents=True, exist_ok=True)
            self._upload = tempfile.NamedTemporaryFile(dir=folder, suffix=".bundle", delete=False)  # noqa: SIM115
            chunk = rest
        self._bundle_size += len(chunk)
        upload_limit = self.body_limit() - MAX_JSON
        if self._bundle_size > upload_limit:
            raise ApiError("TooLarge", _too_large(self._bundle_size, upload_limit))
        self._upload.write(chunk)

    async def _check(self, raw: bytes) -> None:
        """Validation, policy, quotas and the name, before anything is uploaded or made."""
        self._body = take_apart(self.service, self.caller, parse_json(raw))
        body = self._body
        mgr = self.manager()
        self._plan = await self.service.run(
            lambda: mgr.plan(body.request, workspace=body.workspace, remote=body.remote)
        )
        check_env(body, self._plan)
        if body.problem is not None:
            raise body.problem
        plan = self._plan
        await self.service.run(lambda: mgr.precheck(plan, bool(body.request.name)))

    async def post(self) -> None:
        if self._body is None:
            try:
                if self._framed:
                    raise ApiError("ValidationError", "the create's JSON line is missing (no newline after it)")
                await self._check(bytes(self._head))
            except Exception as exc:  # noqa: BLE001 - answered as the refusal it is
                await self.reject(exc)
                self.finish()
                return
        body = self._body
        assert body is not None
        mgr = self.manager()
        incoming = await self.call(lambda: self._workspace(body), background=True)
        self._working = True
        if "text/event-stream" not in self.request.headers.get("Accept", ""):
            try:
                session = await self.call(lambda: self._create(mgr, body, lambda e: None, incoming), background=True)
            finally:
                self._release()
            self.send_json(session_json(session), 201)
            return
        await self._stream(mgr, body, incoming)

    async def _stream(self, mgr: SessionManager, body: CreateBody, incoming: Incoming | None) -> None:
        """Progress events as the create goes (server-sent events, like JupyterHub's spawn progress)."""
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx in front: pass each event on at once
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        done = 0.0

        def report(event: ProgressEvent) -> None:
            # Like JupyterHub's spawn progress: a percentage and a message, plus our step details.
            nonlocal done
            done = progress_fraction(event, done)
            data = {"progress": round(100 * done), **asdict(event)}
            loop.call_soon_threadsafe(events.put_nowait, ("progress", data))

        async def produce() -> None:
            try:
                session = await self.service.run_create(lambda: self._create(mgr, body, report, incoming))
            except Exception as exc:  # noqa: BLE001 - sent as the stream's last event
                error = self.answer_for(exc)
                await events.put(
                    ("error", {**error_body(error.kind, error.message, error.field), "request_id": self.request_id})
                )
            else:
                await events.put(("session", {**session_json(session), "progress": 100, "ready": True}))
            finally:
                self._release()  # the create has ended: only now does it stop counting

        task = asyncio.ensure_future(produce())
        gone = False
        while True:
            try:
                kind, data = await asyncio.wait_for(events.get(), KEEPALIVE)
                text = f"event: {kind}\ndata: {json.dumps(self.service.scrub(data))}\n\n"
            except asyncio.TimeoutError:
                kind, text = "keepalive", ": keepalive\n\n"  # a comment: clients skip it, proxies see traffic
            if not gone:
                try:
                    self.write(text)
                    await self.flush()
                except StreamClosedError:
                    gone = True  # the client left; the create still finishes (or rolls back) on its own
            if kind in ("session", "error"):
                break
        await task
        if not gone:
            self.finish()

    def _workspace(self, body: CreateBody) -> Incoming | None:
        """The sent bundle in a quarantine of its own (accepted into the caller's copy only when the create
        goes ahead), or None when the service has the workspace's commit already."""
        bare = body.workspace.root
        if self._upload is not None:
            self._upload.close()
            try:
                return receive_bundle(bare, Path(self._upload.name), body.workspace.commit, self.service.incoming)
            finally:
                self._discard()
        if not has_commit(bare, body.workspace.commit):
            raise ApiError(
                "Conflict",
                f"the service does not have commit {body.workspace.commit[:12]} of this repository; "
                f"send the workspace bundle with the create ({CREATE_WITH_BUNDLE})",
                "repo",
            )
        return None

    def _create(
        self,
        mgr: SessionManager,
        body: CreateBody,
        report: Callable[[ProgressEvent], None],
        incoming: Incoming | None = None,
    ) -> Any:
        import time

        from .metrics import PullTimer

        metrics = self.service.metrics
        pull = PullTimer(metrics.pull_duration.observe, time.monotonic)

        def progress(event: ProgressEvent) -> None:
            pull(event.step)
            report(event)

        started = time.monotonic()
        workspace = body.workspace
        if incoming is not None:  # planned (and built) from the quarantine until the create is accepted
            workspace = replace(workspace, root=incoming.root, common_dir=incoming.root)
        try:
            # A Docker create works the engine and the CPUs throughout; a Kubernetes one mostly waits.
            docker = self._plan is not None and getattr(self._plan, "backend", "") == "docker"
            with self.service.create_slots if docker else contextlib.nullcontext():
                client = FromClient(
                    workspace,
                    secrets=body.env,
                    remote=body.remote,
                    runtime={"client_repo": body.client_repo, "repo_key": body.key},
                    incoming=incoming,
                )
                session = mgr.create(body.request, progress=progress, wait=body.wait, client=client)
            if incoming is None:
                keep_tip(body.workspace.root, body.workspace.commit)
                touch(body.workspace.root)
        except Exception as exc:
            if incoming is not None:
                incoming.discard()  # refused or failed before it was accepted: nothing of it stays
            if isinstance(exc, QuotaError):
                metrics.quota_refusals.labels(exc.quota).inc()
            metrics.creates.labels("failure", type(exc).__name__).inc()
            raise
        metrics.creates.labels("success", "").inc()
        metrics.create_duration.labels(session.backend).observe(time.monotonic() - started)
        return session


def _too_large(size: int, limit: int) -> str:
    return (
        f"the workspace bundle is {size} bytes, over the service's limit of {limit} bytes (max_upload_size); "
        "make the repository smaller or ask the admin"
    )

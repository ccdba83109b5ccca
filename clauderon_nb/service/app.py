"""The service's HTTP API (``/api/v1``): tornado handlers over the one ``SessionManager`` store.

Every request is identified by the caller's JupyterHub token (``HubAuth``); the identity is
the hub username, never a header or field the client chose. Blocking work (the engine, git,
SQLite) runs in a thread pool so one slow pull never stalls other users.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tornado import web
from tornado.iostream import StreamClosedError

from .._version import __version__
from ..errors import BackendError, ClauderonError, ConfigError, EngineUnavailable, PolicyError
from ..model.progress import ProgressEvent, progress_fraction
from ..model.redact import has_credentials, redact_text
from ..remote.wire import API, credential_names, error_body, rename_aliases, session_json, status_of
from ..sessions.bundles import (
    TIP_PREFIX,
    BundleError,
    Incoming,
    export_branch,
    has_commit,
    keep_tip,
    receive_bundle,
    service_repo,
    tips,
    touch,
)
from ..sessions.culling import CullAction
from ..sessions.gitrepo import RepoInfo, run_git
from ..sessions.manager import LAYOUT, Busy, NotFound, SessionManager
from ..sessions.quotas import QuotaError
from ..sessions.store import NameTaken, Store

T = TypeVar("T")
MAX_JSON = 1024 * 1024  # a create's JSON: the prompt (≤128 KiB) and credentials fit many times over
DEFAULT_MAX_UPLOAD = 1024**3
BUNDLE_TYPE = "application/x-git-bundle"
#: A create with its workspace: one line of JSON, a newline, then the bundle's bytes.
CREATE_WITH_BUNDLE = "application/x-clauderon-create"
_TOKEN = re.compile(r"(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)
_KEY = re.compile(r"^[0-9a-f]{8,64}$")
ACCOUNT_CHECK_EVERY = 300.0  # seconds between the culler's questions to the hub about one owner


class ApiError(web.HTTPError):
    """An answer other than success: ``{"error": kind, "message": one line}`` with its status."""

    def __init__(self, kind: str, message: str, field: str | None = None, status: int | None = None) -> None:
        super().__init__(status or status_of(kind))
        self.kind, self.message, self.field = kind, message, field


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the hub says."""

    name: str
    admin: bool
    groups: tuple[str, ...] = ()


@dataclass
class Service:
    """What every handler shares: the data folder, the hub's auth client and the worker pool."""

    data_dir: Path
    hub_auth: Any  # jupyterhub.services.auth.HubAuth
    admin_scope: str = "custom:clauderon:admin"
    workspace_url: str | None = None  # the service as pods reach it: Kubernetes sessions fetch workspaces here
    max_inflight_creates: int = 4  # per user; more answer 429
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "clauderon"))
    backends: dict[str, Any] = field(default_factory=dict)
    _inflight: dict[str, int] = field(default_factory=dict)
    _store: Store | None = None
    _cull_lock: threading.Lock = field(default_factory=threading.Lock)
    metrics_public: bool = False  # /metrics without a token (else: hub admins and the admin scope)
    _warned_scope: bool = False
    _metrics: Any = None
    _account_cache: dict[str, str] | None = None  # owner -> when the hub created the account (accounts.json)
    _checked: dict[str, float] = field(default_factory=dict)  # owner -> when the culler last asked the hub
    _created: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    @property
    def metrics(self) -> Any:
        """The Prometheus metrics (made on first use: prometheus_client loads only then)."""
        if self._metrics is None:
            from .metrics import Metrics

            self._metrics = Metrics(lambda: self.store_reader().all())
        return self._metrics

    def store_reader(self) -> Store:
        if self._store is None:
            self._store = Store(self.data_dir / "sessions.sqlite")
        return self._store

    _lock: threading.Lock = field(default_factory=threading.Lock)

    def manager(self, caller: Caller) -> SessionManager:
        return SessionManager(
            self.data_dir,
            owner=caller.name,
            shared=True,
            admin=caller.admin or None,
            workspace_url=self.workspace_url,
            groups=caller.groups,
            store=self.store_reader(),  # one store, opened once
            backends=self.backends,  # one engine client for the whole service
        )

    def cull(self, now: float | None = None, dry_run: bool = False, thorough: bool = False) -> list[CullAction]:
        """One pass of the policy's lifetimes over every user's sessions (the timer's, or an admin's), the
        accounts the hub deleted or gave to someone new, and repository copies no session uses.
        ``thorough``: ask the hub about every owner now (an admin's pass), not only those not asked lately."""
        import time

        mgr = SessionManager(
            self.data_dir,
            owner="clauderon-service",
            shared=True,
            admin=True,
            store=self.store_reader(),
            backends=self.backends,
        )
        with self._cull_lock:
            actions = mgr.cull(now, dry_run)
            actions += self._gone_owners(mgr, dry_run, thorough)
            removed = mgr.remove_unused_repos(time.time() if now is None else now, dry_run)
        if removed:
            logging.getLogger("clauderon").info("removed %d unused repository copies", len(removed))
        if not dry_run:
            for action in actions:
                self.metrics.culls.labels(action.action, action.reason).inc()
        return actions

    def _gone_owners(self, mgr: SessionManager, dry_run: bool, thorough: bool) -> list[CullAction]:
        """Remove everything of owners whose hub account was deleted (the hub answers 404), or whose name
        now belongs to a new account (another creation time): never handed to a new account."""
        import time

        owners = {s.owner for s in mgr.store.all()} | set(self._accounts())
        actions: list[CullAction] = []
        for owner in sorted(owners):
            if not thorough and time.monotonic() - self._checked.get(owner, -1e9) < ACCOUNT_CHECK_EVERY:
                continue
            self._checked[owner] = time.monotonic()
            status, model = self._hub_user(owner)
            if status == 404:
                actions += self.purge_owner(owner, "owner_deleted", dry_run)
            elif status == 200 and isinstance(model.get("created"), str) and not dry_run:
                actions += self.check_account(owner, model["created"])
        return actions

    def purge_owner(self, owner: str, reason: str, dry_run: bool = False) -> list[CullAction]:
        """Everything of ``owner`` removed: sessions (nothing kept), repository copies, workspaces, and the
        account on record."""
        mgr = SessionManager(
            self.data_dir, owner=owner, shared=True, admin=True, store=self.store_reader(), backends=self.backends
        )
        actions = mgr.purge(reason, dry_run)
        if not dry_run:
            logging.getLogger("clauderon").warning(
                "removed %d sessions and the repository copies of %r (%s)", len(actions), owner, reason
            )
            with self._lock:
                accounts = self._accounts()
                if accounts.pop(owner, None) is not None:
                    self._save_accounts(accounts)
        return actions

    def check_account(self, owner: str, created: str | None) -> list[CullAction]:
        """Remember when ``owner``'s hub account was created; when the hub says another time, the name was
        given to a new account: the old account's sessions and repositories are removed first."""
        if not created:
            return []
        with self._lock:
            recorded = self._accounts().get(owner)
        if recorded == created:
            return []
        actions = self.purge_owner(owner, "account_recreated") if recorded is not None else []
        with self._lock:
            accounts = self._accounts()
            accounts[owner] = created
            self._save_accounts(accounts)
        return actions

    def account_created(self, owner: str, model: dict[str, Any]) -> str | None:
        """When the caller's hub account was created: from the token's model, else asked of the hub (needs
        the ``read:users`` scope; remembered for a minute)."""
        import time

        given = model.get("created")
        if isinstance(given, str):
            return given
        # Asked again for each new token (a new account has new tokens), else once a minute.
        key = f"{owner}\0{model.get('token_id') or ''}"
        cached = self._created.get(key)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        status, found = self._hub_user(owner)
        created = found.get("created") if status == 200 and isinstance(found.get("created"), str) else None
        if len(self._created) > 10_000:
            self._created.clear()
        self._created[key] = (created, time.monotonic() + 60)
        return created

    def _accounts(self) -> dict[str, str]:
        if self._account_cache is None:
            try:
                data = json.loads((self.data_dir / "accounts.json").read_text())
            except (OSError, ValueError):
                data = {}
            self._account_cache = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return dict(self._account_cache)

    def _save_accounts(self, accounts: dict[str, str]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.data_dir / "accounts.json.tmp"
        tmp.write_text(json.dumps(accounts, sort_keys=True))
        os.replace(tmp, self.data_dir / "accounts.json")
        self._account_cache = dict(accounts)

    def _hub_user(self, name: str) -> tuple[int, dict[str, Any]]:
        """The hub's answer about a user: (status, model); (0, {}) when the hub could not be asked."""
        import urllib.error
        import urllib.parse
        import urllib.request

        hub = self.hub_auth
        url = f"{hub.api_url.rstrip('/')}/users/{urllib.parse.quote(name, safe='')}"
        request = urllib.request.Request(url, headers={"Authorization": f"token {hub.api_token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read() or b"{}")
                return 200, body if isinstance(body, dict) else {}
        except urllib.error.HTTPError as exc:
            if exc.code == 403 and not self._warned_scope:
                self._warned_scope = True
                logging.getLogger("clauderon").warning(
                    "cannot ask the hub about users (403): give the service the read:users scope "
                    "to remove the sessions of deleted accounts"
                )
            return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

    def repo_dir(self, owner: str, key: str) -> Path:
        return service_repo(self.data_dir, owner, key)

    def scrub(self, value: Any) -> Any:
        """A JSON answer with the service's own paths (its data folder: repository copies, workspaces) said
        as ``<service data>``: users learn nothing of the host's layout or of repository keys."""
        roots = sorted({str(self.data_dir), str(self.data_dir.resolve())}, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(r) + r"[^\s'\",;)]*" for r in roots))

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                return pattern.sub("<service data>", item) if any(r in item for r in roots) else item
            if isinstance(item, dict):
                return {walk(k): walk(v) for k, v in item.items()}
            if isinstance(item, (list, tuple)):
                return [walk(v) for v in item]
            return item

        return walk(value)

    @property
    def incoming(self) -> Path:
        """Where sent workspaces wait in quarantine until their create goes ahead."""
        return self.data_dir / "incoming"

    def max_upload(self) -> int:
        from ..config.policy import load_policy

        return load_policy().max_upload_size() or DEFAULT_MAX_UPLOAD

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def begin_create(self, owner: str) -> None:
        with self._lock:
            if self._inflight.get(owner, 0) >= self.max_inflight_creates:
                raise ApiError(
                    "TooManyRequests",
                    f"you have {self.max_inflight_creates} creates in progress already; wait for one to finish",
                )
            self._inflight[owner] = self._inflight.get(owner, 0) + 1

    def end_create(self, owner: str) -> None:
        with self._lock:
            self._inflight[owner] -= 1


def classify(exc: BaseException) -> ApiError:
    """The API error for an exception raised by the manager, validation or git."""
    pydantic = __import__("sys").modules.get("pydantic")
    if isinstance(exc, ApiError):
        return exc
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from ..errors import describe_validation_error
        from ..model.hints import HINTS

        return ApiError("ValidationError", describe_validation_error(exc, fields=HINTS))
    field_name = getattr(exc, "field", None)
    message = redact_text(str(exc))
    for cls, kind in (
        (NotFound, "NotFound"),
        (NameTaken, "Conflict"),
        (Busy, "Conflict"),
        (QuotaError, "PolicyError"),
        (BundleError, "ValidationError"),
        (PolicyError, "PolicyError"),
        (ConfigError, "ConfigError"),
        (EngineUnavailable, "EngineUnavailable"),
        (BackendError, "BackendError"),
    ):
        if isinstance(exc, cls):
            return ApiError(kind, message, field_name)
    if isinstance(exc, ClauderonError):
        return ApiError("ClauderonError", message, field_name, status=400)
    return ApiError("ClauderonError", f"internal error ({type(exc).__name__}); see the service log", status=500)


class ApiHandler(web.RequestHandler):
    """Authenticates every request; answers errors as one-line JSON."""

    service: Service
    caller: Caller

    def initialize(self, service: Service) -> None:
        self.service = service

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API: no cookies are accepted, so there is no XSRF to check."""

    async def prepare(self) -> None:
        self.caller = await self._identify()

    async def _identify(self) -> Caller:
        match = _TOKEN.match(self.request.headers.get("Authorization", ""))
        if not match:
            raise ApiError("Unauthorized", "no JupyterHub token: send 'Authorization: token <your hub API token>'")
        hub = self.service.hub_auth
        try:
            model = await hub.user_for_token(match.group(1), sync=False)
        except Exception as exc:  # noqa: BLE001 - the hub is down or answered oddly
            raise ApiError("EngineUnavailable", f"cannot reach the JupyterHub API to check the token ({exc})") from None
        if not model:
            raise ApiError("Unauthorized", "the token is not a valid JupyterHub token (expired or revoked?)")
        if model.get("kind", "user") != "user":
            raise ApiError("Forbidden", "only hub users have sessions; this token belongs to a service")
        scopes = set(model.get("scopes") or ())
        if hub.access_scopes and not hub.check_scopes(hub.access_scopes, model):
            need = ", ".join(sorted(hub.access_scopes))
            raise ApiError("Forbidden", f"this token does not grant {need}; ask the hub admin for access")
        admin = bool(model.get("admin")) or self.service.admin_scope in scopes
        name = str(model["name"])
        created = await self.service.run(self.service.account_created, name, model)
        if created is not None:  # a name given to a new account never inherits the old account's sessions
            await self.service.run(self.service.check_account, name, created)
        return Caller(name, admin, tuple(model.get("groups") or ()))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if exc is not None and not isinstance(exc, web.HTTPError):
            exc = classify(exc)  # validation, policy, engine… raised outside ``call``
            self.set_status(exc.status_code)
        if isinstance(exc, ApiError):
            body = error_body(exc.kind, exc.message, exc.field)
        elif status_code == 405:
            body = error_body("NotFound", f"{self.request.method} is not supported here")
        else:
            body = error_body("ClauderonError", self._reason or "error")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.service.scrub(body)))

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.service.scrub(data)))

    def manager(self) -> SessionManager:
        return self.service.manager(self.caller)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking manager work in the pool; errors become API errors."""
        try:
            return await self.service.run(fn, *args)
        except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
            raise classify(exc) from None

    def json_body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_JSON:
            raise ApiError("TooLarge", f"the request body is over {MAX_JSON} bytes")
        return parse_json(self.request.body)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("ValidationError", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("ValidationError", "the request body must be a JSON object")
    return data


class RootHandler(ApiHandler):
    async def get(self) -> None:
        self.send_json({"version": __version__, "api": "v1", "user": self.caller.name, "admin": self.caller.admin})


class OptionsHandler(ApiHandler):
    async def get(self) -> None:
        mgr = self.manager()
        options = await self.call(mgr.options)
        data = asdict(options)
        data["backends"] = [b for b in data["backends"] if b != "local"]
        data["max_upload_size"] = self.service.max_upload()
        self.send_json(data)


class ImagesHandler(ApiHandler):
    """``GET /api/v1/images[?target=REGISTRY[/REPOSITORY]]``: the browser, with the service's credentials
    and the caller's policy; ``?typed=…&suggest=1``: suggestions for an image field."""

    async def get(self) -> None:
        mgr = self.manager()
        if self.get_argument("suggest", ""):
            typed = self.get_argument("typed", "")[:300]
            self.send_json({"images": await self.call(lambda: mgr.image_suggestions(typed))})
            return
        target = self.get_argument("target", "")[:300] or None
        listing = await self.call(lambda: mgr.images(target))
        self.send_json(listing.to_json())


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
    if not isinstance(key, str) or not _KEY.match(key):
        raise ApiError("ValidationError", f"workspace.key {str(key)[:80]!r}: expected 8-64 lowercase hex digits")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}(?:[0-9a-f]{24})?", commit):
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
        mgr = self.manager()
        data = self.json_body()
        check_image = data.pop("check_image", False) is True if isinstance(data, dict) else False
        body = take_apart(self.service, self.caller, data)
        plan = await self.call(
            lambda: mgr.plan(body.request, workspace=body.workspace, remote=body.remote, check_image=check_image)
        )
        check_env(body, plan)
        if body.problem is not None:
            raise body.problem
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
                "max_upload_size": self.service.max_upload(),
            }
        )


class SessionsListHandler(ApiHandler):
    async def get(self) -> None:
        everyone = self.get_argument("all", "") in ("1", "true", "yes")
        mgr = self.manager()
        sessions = await self.call(lambda: mgr.list(all_owners=everyone))
        self.send_json({"sessions": [session_json(s) for s in sessions]})


@web.stream_request_body
class CreateHandler(ApiHandler):
    """``POST /api/v1/sessions``: JSON, or JSON + newline + bundle (``application/x-clauderon-create``).

    The request is validated and checked against the policy as soon as its JSON has arrived, before
    any of the bundle is read: a refused create never uploads a repository.
    """

    _head: bytearray
    _body: CreateBody | None
    _plan: Any
    _upload: Any
    _size: int
    _limit: int

    async def prepare(self) -> None:
        self._head, self._body, self._plan, self._upload, self._size = bytearray(), None, None, None, 0
        await super().prepare()
        kind = self.request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        self._framed = kind == CREATE_WITH_BUNDLE
        if kind not in ("application/json", CREATE_WITH_BUNDLE):
            raise ApiError(
                "ValidationError", f"Content-Type {kind!r}: expected application/json or {CREATE_WITH_BUNDLE}"
            )
        self._limit = self.service.max_upload()
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self._limit + MAX_JSON:
            raise ApiError("TooLarge", _too_large(int(length), self._limit))
        self.service.begin_create(self.caller.name)
        self._counted = True

    def on_finish(self) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.service.end_create(self.caller.name)
        self._discard()

    def on_connection_close(self) -> None:
        self.on_finish()

    def _discard(self) -> None:
        if self._upload is not None:
            self._upload.close()
            Path(self._upload.name).unlink(missing_ok=True)
            self._upload = None

    async def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        try:
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
            self._size += len(chunk)
            if self._size > self._limit:
                raise ApiError("TooLarge", _too_large(self._size, self._limit))
            self._upload.write(chunk)
        except Exception as exc:  # noqa: BLE001 - answer now; the rest of the body is never read
            self._discard()
            error = classify(exc)
            self.send_error(error.status_code, exc_info=(type(error), error, None))

    async def _check(self, raw: bytes) -> None:
        """Validation and policy, before anything is uploaded or made."""
        self._body = take_apart(self.service, self.caller, parse_json(raw))
        body = self._body
        mgr = self.manager()
        self._plan = await self.call(lambda: mgr.plan(body.request, workspace=body.workspace, remote=body.remote))
        check_env(body, self._plan)
        if body.problem is not None:
            raise body.problem
        # The quotas and a taken name refuse now, before any of the bundle is read.
        plan = self._plan
        await self.call(lambda: mgr.precheck(plan, bool(body.request.name)))

    async def post(self) -> None:
        if self._finished:
            return
        if self._body is None:
            if self._framed:
                raise ApiError("ValidationError", "the create's JSON line is missing (no newline after it)")
            await self._check(bytes(self._head))
        body = self._body
        assert body is not None
        mgr = self.manager()
        incoming = await self.call(lambda: self._workspace(body))
        stream = "text/event-stream" in self.request.headers.get("Accept", "")
        if not stream:
            session = await self.call(lambda: self._create(mgr, body, lambda e: None, incoming))
            self.send_json(session_json(session), 201)
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
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
                session = await self.service.run(lambda: self._create(mgr, body, report, incoming))
            except Exception as exc:  # noqa: BLE001 - sent as the stream's last event
                error = classify(exc)
                await events.put(("error", error_body(error.kind, error.message, error.field)))
            else:
                await events.put(("session", {**session_json(session), "progress": 100, "ready": True}))

        task = asyncio.ensure_future(produce())
        while True:
            kind, data = await events.get()
            try:
                self.write(f"event: {kind}\ndata: {json.dumps(self.service.scrub(data))}\n\n")
                await self.flush()
            except StreamClosedError:
                pass  # the client left; the create still finishes (or rolls back) on its own
            if kind in ("session", "error"):
                break
        await task
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
            session = mgr.create(
                body.request,
                progress=progress,
                wait=body.wait,
                secrets=body.env,
                workspace=workspace,
                remote=body.remote,
                extra_runtime={"client_repo": body.client_repo, "repo_key": body.key},
                incoming=incoming,
            )
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


class SessionHandler(ApiHandler):
    async def get(self, name: str) -> None:
        mgr = self.manager()
        session = await self.call(lambda: mgr.get(name))
        self.send_json(session_json(session))

    async def delete(self, name: str) -> None:
        mgr = self.manager()

        def remove() -> tuple[str, str | None]:
            session = mgr.get(name)
            return session.name, mgr.delete(session.id)

        removed, note = await self.call(remove)
        self.send_json({"message": f"Deleted session {removed}." + (f" ({note})" if note else ""), "note": note})


class ActionHandler(ApiHandler):
    async def post(self, name: str, action: str) -> None:
        mgr = self.manager()
        fn = mgr.stop if action == "stop" else mgr.start

        def act() -> Any:
            try:
                return fn(mgr.get(name).id)
            except QuotaError as exc:
                self.service.metrics.quota_refusals.labels(exc.quota).inc()
                raise

        session = await self.call(act)
        self.send_json(session_json(session))


class LogsHandler(ApiHandler):
    """The agent's output: all, ``?tail=N``, or ``?follow=1`` streamed until the client leaves."""

    _gone = False

    def on_connection_close(self) -> None:
        self._gone = True

    async def get(self, name: str) -> None:
        tail_arg = self.get_argument("tail", "")
        if tail_arg and not re.fullmatch(r"[0-9]{1,9}", tail_arg):
            raise ApiError("ValidationError", f"tail {tail_arg[:20]!r}: expected a whole number of lines")
        tail = int(tail_arg) if tail_arg else None
        follow = self.get_argument("follow", "") in ("1", "true", "yes")
        mgr = self.manager()
        output = await self.call(lambda: mgr.logs(mgr.get(name).id, tail=tail, follow=follow))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if isinstance(output, str):
            self.finish(output)
            return
        chunks = iter(output)
        while not self._gone:
            chunk = await self.service.run(next, chunks, None)
            if chunk is None:
                break
            try:
                self.write(chunk)
                await self.flush()
            except StreamClosedError:
                break
        if not self._gone:
            self.finish()


class BundleHandler(ApiHandler):
    """``GET …/bundle``: the session branch's commits beyond its base, as a git bundle (``fetch``)."""

    async def get(self, name: str) -> None:
        mgr = self.manager()
        session = await self.call(lambda: mgr.get(name))
        if session.backend == "kubernetes":
            raise ApiError(
                "ConfigError",
                f"session {session.name!r} runs in a Kubernetes pod: its work comes back by a push from the pod "
                "to the repository's remote, not by fetch",
            )
        key = session.runtime.get("repo_key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise ApiError("ConfigError", f"session {session.name!r} was not made from a sent workspace")
        bare = self.service.repo_dir(session.owner, key)  # derived again, never taken from the record
        base = session.runtime.get("base_commit") if isinstance(session.runtime.get("base_commit"), str) else None
        touch(bare)
        self.set_header("X-Clauderon-Branch", f"clauderon/{session.name}")
        if session.runtime.get("layout") == LAYOUT:  # read back from the workspace as data, into the copy
            got = await self.call(lambda: mgr.bring_back(session))
            if got.commit == base:  # nothing of its own yet
                self.set_header("X-Clauderon-Commit", base)
                self.set_status(204)
                self.finish()
                return
        with temporary_bundle(self.service) as tmp:
            commit = await self.call(lambda: export_branch(bare, f"clauderon/{session.name}", base, tmp))
            self.set_header("X-Clauderon-Commit", commit or (base or ""))
            if commit is None:
                self.set_status(204)
                self.finish()
                return
            await send_bundle(self, tmp)


@contextlib.contextmanager
def temporary_bundle(service: Service) -> Iterator[Path]:
    """A temporary file for a bundle in the service's data folder, removed afterwards."""
    folder = service.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".bundle")
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


async def send_bundle(handler: web.RequestHandler, path: Path) -> None:
    """Stream a bundle file as the answer."""
    handler.set_header("Content-Type", BUNDLE_TYPE)
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            handler.write(block)
            await handler.flush()
    handler.finish()


class WorkspaceHandler(web.RequestHandler):
    """``GET /api/v1/workspaces/{session_id}``: a Kubernetes session's init container fetches its
    workspace here, once, with the one-time token from the session's Secret (no hub token)."""

    def initialize(self, service: Service) -> None:
        self.service = service

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body("Unauthorized", "no such workspace, or the token was used already")))

    async def get(self, session_id: str) -> None:
        match = _TOKEN.match(self.request.headers.get("Authorization", ""))
        if not match or not re.fullmatch(r"[0-9a-f-]{36}", session_id):
            raise web.HTTPError(401)
        bare, base = await self.service.run(self._redeem, session_id, match.group(1))
        with temporary_bundle(self.service) as tmp:
            args = ["bundle", "create", "-q", str(tmp), f"{TIP_PREFIX}{base}"]
            out = await self.service.run(lambda: run_git(args, bare))
            if out.returncode != 0:
                raise web.HTTPError(500)
            await send_bundle(self, tmp)

    def _redeem(self, session_id: str, token: str) -> tuple[Path, str]:
        """Check the token against the session's record and strike it (it works once)."""
        import hashlib
        import hmac

        with self.service._lock:
            store = Store(self.service.data_dir / "sessions.sqlite", create=False)
            session = store.find_any(session_id)
            want = session.runtime.get("workspace_token_sha256") if session else None
            got = hashlib.sha256(token.encode()).hexdigest()
            if session is None or not isinstance(want, str) or not hmac.compare_digest(want, got):
                raise web.HTTPError(401)
            runtime = {k: v for k, v in session.runtime.items() if k != "workspace_token_sha256"}
            store.update(session.id, runtime=runtime)
        key, base = session.runtime.get("repo_key"), session.runtime.get("base_commit")
        if not isinstance(key, str) or not _KEY.match(key) or not isinstance(base, str):
            raise web.HTTPError(401)
        return self.service.repo_dir(session.owner, key), base


class CullHandler(ApiHandler):
    """``POST /api/v1/cull[?dry_run=1][&now=EPOCH]``: a pass of the lifetimes now (admins only)."""

    async def post(self) -> None:
        if not self.caller.admin and not self.manager().is_admin:
            raise ApiError("Forbidden", "cull: only hub admins (or holders of the admin scope) may run a pass")
        now_arg = self.get_argument("now", "")
        try:
            now = float(now_arg) if now_arg else None
        except ValueError:
            raise ApiError("ValidationError", f"now {now_arg[:40]!r}: expected epoch seconds") from None
        dry = self.get_argument("dry_run", "") in ("1", "true", "yes")
        actions = await self.call(lambda: self.service.cull(now, dry, thorough=True))
        self.send_json({"actions": [a.to_json() for a in actions], "dry_run": dry})


class MetricsHandler(ApiHandler):
    """``GET /metrics``: Prometheus text format (hub admins, the admin scope, or anyone with ``--metrics-public``)."""

    async def prepare(self) -> None:
        if not self.service.metrics_public:
            await super().prepare()
            if not self.caller.admin and not self.manager().is_admin:
                raise ApiError("Forbidden", "/metrics: only hub admins (or holders of the admin scope) may read it")

    async def get(self) -> None:
        body, kind = await self.service.run(self.service.metrics.render)
        self.set_header("Content-Type", kind)
        self.finish(body)


class NotFoundHandler(ApiHandler):
    async def prepare(self) -> None:
        await super().prepare()
        raise ApiError("NotFound", f"no such API endpoint: {self.request.path}")


def make_app(service: Service, prefix: str) -> web.Application:
    """The tornado application, every route under ``prefix`` (the hub proxies ``/services/<name>/``)."""
    base = prefix.rstrip("/") + "/" + API
    name = r"(?P<name>[^/]+)"
    routes: list[Any] = [
        (rf"{base}/?", RootHandler),
        (rf"{base}/options", OptionsHandler),
        (rf"{base}/plan", PlanHandler),
        (rf"{base}/images", ImagesHandler),
        (rf"{base}/sessions", SessionsRouter),
        (rf"{base}/sessions/{name}", SessionHandler),
        (rf"{base}/sessions/{name}/(?P<action>stop|start)", ActionHandler),
        (rf"{base}/sessions/{name}/logs", LogsHandler),
        (rf"{base}/sessions/{name}/bundle", BundleHandler),
        (rf"{base}/workspaces/(?P<session_id>[^/]+)", WorkspaceHandler),
        (rf"{base}/cull", CullHandler),
        (rf"{prefix.rstrip('/')}/metrics", MetricsHandler),
        (r".*", NotFoundHandler),
    ]
    return web.Application(
        [(pattern, handler, {"service": service}) for pattern, handler in routes],
        default_handler_class=NotFoundHandler,
        default_handler_args={"service": service},
    )


@web.stream_request_body
class SessionsRouter(CreateHandler):
    """``/api/v1/sessions``: GET lists, POST creates (streamed body)."""

    async def prepare(self) -> None:
        if self.request.method == "GET":
            self._head, self._body, self._upload = bytearray(), None, None
            self.caller = await self._identify()
            return
        await super().prepare()

    async def get(self) -> None:
        await SessionsListHandler.get(self)  # type: ignore[arg-type]

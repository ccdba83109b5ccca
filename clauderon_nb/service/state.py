"""What every request of the service shares: the data folder, the hub's auth client, the worker pools,
the per-user counters (creates in flight, open streams), the accounts on record, and the culler's pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..model.answers import CullAction
from ..repos.bundles import service_repo
from ..sessions.manager import SessionManager
from ..sessions.store import Store
from .answers import ApiError

T = TypeVar("T")
DEFAULT_MAX_UPLOAD = 1024**3
ACCOUNT_CHECK_EVERY = 300.0  # seconds between the culler's questions to the hub about one owner
MAX_STREAMS = 64  # followed logs open at once, everyone together (each holds a thread of their own pool)
MAX_STREAMS_PER_USER = 8


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
    #: Creates doing their heavy part (build, workspace, container) at once, everyone together: a burst
    #: waits its turn instead of taking the engine and the CPUs from every other user's requests.
    create_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "clauderon"))
    #: Creates and the workspaces they receive run in threads of lower CPU priority (and so do the git and
    #: build processes they start): a burst of creates slows other creates, not everyone's short requests.
    create_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, "clauderon-create", initializer=_background_priority)
    )
    #: Followed logs wait on the engine in threads of their own, so they never starve short requests.
    stream_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(MAX_STREAMS, "clauderon-stream")
    )
    _streams: dict[str, int] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    _inflight: dict[str, int] = field(default_factory=dict)
    _store: Store | None = None
    _cull_lock: threading.Lock = field(default_factory=threading.Lock)
    metrics_public: bool = False  # /metrics without a token (else: hub admins and the admin scope)
    _warned_scope: bool = False
    _warned_unreachable: bool = False
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

    def redeem_workspace_token(self, session_id: str, token: str) -> tuple[Path, str] | None:
        """A Kubernetes session's one-time workspace token: checked against the session's record and struck
        (it works once). The repository copy and the commit to send, or None for a wrong or used token."""
        import hashlib
        import hmac

        from ..model.git_ids import is_commit_hash
        from ..repos.bundles import is_repo_key
        from ..sessions.store import Store

        with self._lock:
            store = Store(self.data_dir / "sessions.sqlite", create=False)
            session = store.find_any(session_id)
            want = session.runtime.get("workspace_token_sha256") if session else None
            got = hashlib.sha256(token.encode()).hexdigest()
            if session is None or not isinstance(want, str) or not hmac.compare_digest(want, got):
                return None
            runtime = {k: v for k, v in session.runtime.items() if k != "workspace_token_sha256"}
            store.update(session.id, runtime=runtime)
        key, base = session.runtime.get("repo_key"), session.runtime.get("base_commit")
        if not is_repo_key(key) or not is_commit_hash(base):
            return None
        return self.repo_dir(session.owner, key), base

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

    def account_settled(self, owner: str, model: dict[str, Any]) -> bool:
        """True when nothing is left to ask or do about this caller's account (answered from memory, on the
        event loop: most requests need no thread for it)."""
        import time

        given = model.get("created")
        if not isinstance(given, str):
            cached = self._created.get(f"{owner}\0{model.get('token_id') or ''}")
            if cached is None or time.monotonic() >= cached[1]:
                return False
            given = cached[0]
        return given is None or (self._account_cache or {}).get(owner) == given

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
            with urllib.request.urlopen(request, timeout=10, context=self._hub_tls()) as response:
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
        except (OSError, ValueError) as exc:
            if not self._warned_unreachable:
                self._warned_unreachable = True
                logging.getLogger("clauderon").warning(
                    "cannot ask the hub about users at %s (%s): deleted accounts are not noticed until it answers",
                    hub.api_url,
                    exc,
                )
            return 0, {}

    def _hub_tls(self) -> Any:
        """The TLS context HubAuth itself uses for the hub's API (JupyterHub's internal_ssl: the service's
        certificate, key and the internal CA); None for plain HTTP or the system's defaults."""
        hub = self.hub_auth
        keyfile, certfile, cafile = (getattr(hub, k, None) for k in ("keyfile", "certfile", "client_ca"))
        if keyfile and certfile:
            from jupyterhub.utils import make_ssl_context

            return make_ssl_context(keyfile, certfile, cafile=cafile)
        if cafile:
            import ssl

            return ssl.create_default_context(cafile=cafile)
        return None

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

    def max_upload(self, caller: Caller) -> int:
        """The largest workspace bundle this caller may send (their policy sections count)."""
        from ..config.policy import load_policy

        return load_policy().for_user(caller.name, caller.groups).max_upload_size() or DEFAULT_MAX_UPLOAD

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_create(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` in a create thread (lower CPU priority than the threads serving short requests)."""
        return await asyncio.get_running_loop().run_in_executor(self.create_executor, fn, *args)

    def begin_create(self, owner: str) -> None:
        with self._lock:
            if self._inflight.get(owner, 0) >= self.max_inflight_creates:
                raise ApiError(
                    "TooManyRequests",
                    f"you have {self.max_inflight_creates} creates in progress already; wait for one to finish",
                )
            self._inflight[owner] = self._inflight.get(owner, 0) + 1
            self.metrics.creates_in_progress.inc()

    def end_create(self, owner: str) -> None:
        with self._lock:
            self._inflight[owner] -= 1
            self.metrics.creates_in_progress.dec()

    @contextlib.contextmanager
    def stream_slot(self, owner: str) -> Iterator[None]:
        """A place for one followed stream: at most ``MAX_STREAMS_PER_USER`` per user and ``MAX_STREAMS`` in
        all (429 beyond), given back when the stream ends or its client leaves."""
        with self._lock:
            mine, everyone = self._streams.get(owner, 0), sum(self._streams.values())
            if mine >= MAX_STREAMS_PER_USER:
                raise ApiError(
                    "TooManyRequests",
                    f"you follow {mine} logs already (the limit is {MAX_STREAMS_PER_USER}); close one first",
                )
            if everyone >= MAX_STREAMS:
                raise ApiError("TooManyRequests", "the service follows as many logs as it can; try again later")
            self._streams[owner] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                self._streams[owner] -= 1

    async def run_stream(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.stream_executor, fn, *args)


def _background_priority() -> None:
    """Lower the calling thread's CPU priority by 10 (on Linux a thread's own; the processes it starts
    inherit it). Without the right to, nothing changes."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))

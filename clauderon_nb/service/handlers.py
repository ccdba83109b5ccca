"""The service's HTTP API (``/api/v1``): its routes, and the handlers that are not about creating.

Every request is identified by the caller's JupyterHub token (``service/http.py``); the identity is the
hub username, never a header or field the client chose. Blocking work (the engine, git, SQLite) runs in a
thread pool so one slow pull never stalls other users; followed logs wait in a pool of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from .._version import __version__
from ..model.session import LAYOUT
from ..remote.wire import API, error_body, session_json
from ..repos.bundles import TIP_PREFIX, export_branch, is_repo_key, touch
from ..repos.gitrepo import run_git
from ..sessions.quotas import QuotaError
from .answers import MAX_JSON, ApiError
from .create import CreateHandler, PlanHandler
from .http import ApiHandler, bearer_token
from .state import Service

BUNDLE_TYPE = "application/x-git-bundle"


class RootHandler(ApiHandler):
    async def get(self) -> None:
        self.send_json({"version": __version__, "api": "v1", "user": self.caller.name, "admin": self.caller.admin})


class OptionsHandler(ApiHandler):
    async def get(self) -> None:
        mgr = self.manager()
        options = await self.call(mgr.options)
        data = asdict(options)
        data["backends"] = [b for b in data["backends"] if b != "local"]
        data["max_upload_size"] = self.service.max_upload(self.caller)
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


class SessionsListHandler(ApiHandler):
    async def get(self) -> None:
        everyone = self.get_argument("all", "") in ("1", "true", "yes")
        mgr = self.manager()
        sessions = await self.call(lambda: mgr.list(all_owners=everyone))
        self.send_json({"sessions": [session_json(s) for s in sessions]})


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
    """The agent's output: all, ``?tail=N``, or ``?follow=1`` streamed until the session ends or the client
    leaves. A followed stream waits in the stream pool (never the one short requests use), takes one of the
    user's stream places, and is closed within a moment of its client leaving."""

    _gone = False
    _follow: Any = None

    def on_connection_close(self) -> None:
        self._gone = True
        if self._follow is not None:
            self._follow.close()  # a read blocked on the engine ends: its thread is free again

    async def get(self, name: str) -> None:
        tail_arg = self.get_argument("tail", "")
        if tail_arg and not re.fullmatch(r"[0-9]{1,9}", tail_arg):
            raise ApiError("ValidationError", f"tail {tail_arg[:20]!r}: expected a whole number of lines")
        tail = int(tail_arg) if tail_arg else None
        follow = self.get_argument("follow", "") in ("1", "true", "yes")
        mgr = self.manager()
        if not follow:
            output = await self.call(lambda: mgr.logs(mgr.get(name).id, tail=tail))
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(str(output))
            return
        with self.service.stream_slot(self.caller.name):
            self._follow = await self.call(lambda: mgr.logs(mgr.get(name).id, tail=tail, follow=True))
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            try:
                await self._relay(iter(self._follow))
            finally:
                self._follow.close()
        if not self._gone:
            self.finish()

    async def _relay(self, chunks: Iterator[str]) -> None:
        while not self._gone:
            try:
                chunk = await self.service.run_stream(next, chunks, None)
            except Exception:  # noqa: BLE001 - the engine's stream broke: the follow ends
                return
            if chunk is None:
                return
            try:
                self.write(chunk)
                await self.flush()
            except StreamClosedError:
                return


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
        if not is_repo_key(key):
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
        token = bearer_token(self.request.headers.get("Authorization", ""))
        if token is None or not re.fullmatch(r"[0-9a-f-]{36}", session_id):
            raise web.HTTPError(401)
        bare, base = await self.service.run(self._redeem, session_id, token)
        with temporary_bundle(self.service) as tmp:
            args = ["bundle", "create", "-q", str(tmp), f"{TIP_PREFIX}{base}"]
            out = await self.service.run(lambda: run_git(args, bare))
            if out.returncode != 0:
                raise web.HTTPError(500)
            await send_bundle(self, tmp)

    def _redeem(self, session_id: str, token: str) -> tuple[Path, str]:
        found = self.service.redeem_workspace_token(session_id, token)
        if found is None:
            raise web.HTTPError(401)
        return found


class OpenApiHandler(web.RequestHandler):
    """``GET /api/v1/openapi.json``: the API as an OpenAPI document (no token needed: it holds no data)."""

    def initialize(self, service: Service, server: str) -> None:
        self.service, self.server = service, server

    def get(self) -> None:
        from ..remote.openapi import openapi_document

        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi_document(self.server)))


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
            return
        self._chunks, self._size = [], 0
        self.set_header("X-Request-Id", self.request_id)

    async def admitted(self) -> None:
        if not self.caller.admin and not self.manager().is_admin:
            raise ApiError("Forbidden", "/metrics: only hub admins (or holders of the admin scope) may read it")

    async def get(self) -> None:
        body, kind = await self.service.run(self.service.metrics.render)
        self.set_header("Content-Type", kind)
        self.finish(body)


class NotFoundHandler(ApiHandler):
    async def admitted(self) -> None:
        raise ApiError("NotFound", f"no such API endpoint: {self.request.path}")

    async def get(self, *args: Any) -> None:
        raise ApiError("NotFound", f"no such API endpoint: {self.request.path}")

    post = put = delete = patch = get


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
    spec = (rf"{base}/openapi\.json", OpenApiHandler, {"service": service, "server": base})
    return web.Application(
        [spec, *((pattern, handler, {"service": service}) for pattern, handler in routes)],
        default_handler_class=NotFoundHandler,
        default_handler_args={"service": service},
    )


class SessionsRouter(CreateHandler):
    """``/api/v1/sessions``: GET lists, POST creates (streamed body)."""

    def body_limit(self) -> int:
        return MAX_JSON if self.request.method == "GET" else super().body_limit()

    async def admitted(self) -> None:
        if self.request.method != "GET":
            await super().admitted()

    async def get(self) -> None:
        await SessionsListHandler.get(self)  # type: ignore[arg-type]

"""The base of every API handler: who is asking is settled before a byte of the body is read.

Every handler streams its body (``stream_request_body``), so ``prepare`` runs as soon as the headers
have arrived: the token is checked with the hub, and only then may the body be read, up to what that
handler takes (``body_limit``: a small JSON everywhere, a workspace bundle for a create). A refused
request is answered at once; what is left of its body is read and dropped (bounded), so a proxy in
front (the hub's) delivers the answer instead of an error page of its own. Every request has an id,
sent back as ``X-Request-Id`` and in every error body; an unexpected failure is logged with it and its
traceback.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from tornado import web

from ..remote.wire import error_body
from ..sessions.manager import SessionManager
from .answers import MAX_JSON, ApiError, classify, parse_json
from .state import Caller, Service

T = TypeVar("T")
_TOKEN = re.compile(r"(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: token …`` (or ``Bearer …``) header, or None."""
    match = _TOKEN.match(authorization)
    return match.group(1) if match else None


#: Bytes of a refused request's body read and dropped before its connection is closed, when the caller is
#: not identified (identified callers get twice their limit).
DRAIN_UNIDENTIFIED = 64 * 1024
_log = logging.getLogger("clauderon")
_VERBS = ("get", "post", "put", "delete", "patch")


def _answers_rejected(method: Callable[..., Any]) -> Callable[..., Any]:
    """A handler method that finishes a request refused in ``prepare`` instead of running."""

    @functools.wraps(method)
    async def run(self: ApiHandler, *args: Any, **kwargs: Any) -> Any:
        if self._rejected is not None:
            if not self._finished:
                self.finish()
            return None
        result = method(self, *args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    run._answers_rejected = True  # type: ignore[attr-defined]
    return run


@web.stream_request_body
class ApiHandler(web.RequestHandler):
    """Identifies the caller first; reads the body only then, within ``body_limit``; answers errors as one
    line of JSON with the request's id."""

    service: Service
    caller: Caller
    request_id: str
    _rejected: ApiError | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for verb in _VERBS:
            method = cls.__dict__.get(verb)
            if method is not None and not getattr(method, "_answers_rejected", False):
                setattr(cls, verb, _answers_rejected(method))

    def initialize(self, service: Service) -> None:
        self.service = service
        self.request_id = secrets.token_hex(6)

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API: no cookies are accepted, so there is no XSRF to check."""

    # --- the caller, then the body ---------------------------------------------------------------

    def body_limit(self) -> int:
        """Bytes an identified caller may send here."""
        return MAX_JSON

    async def prepare(self) -> None:
        self.set_header("X-Request-Id", self.request_id)
        self._chunks: list[bytes] = []
        self._size = 0
        self._read_at_most(DRAIN_UNIDENTIFIED)
        try:
            self.caller = await self.identify()
            limit = self.body_limit()
            self._read_at_most(2 * limit + MAX_JSON)
            declared = self.request.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise ApiError("TooLarge", self.too_large(int(declared), limit))
            await self.admitted()
        except Exception as exc:  # noqa: BLE001 - every refusal is answered as JSON, at once
            await self.reject(exc)

    def _read_at_most(self, size: int) -> None:
        """The most of this request's body the connection reads (beyond it, it is closed)."""
        setter = getattr(self.request.connection, "set_max_body_size", None)
        if setter is not None:
            setter(size)

    async def admitted(self) -> None:
        """What a handler checks once the caller is known, before the body is read."""

    def too_large(self, size: int, limit: int) -> str:
        return f"the request body is {size} bytes, over the {limit} bytes this endpoint takes"

    async def identify(self) -> Caller:
        token = bearer_token(self.request.headers.get("Authorization", ""))
        if token is None:
            raise ApiError("Unauthorized", "no JupyterHub token: send 'Authorization: token <your hub API token>'")
        hub = self.service.hub_auth
        try:
            model = await hub.user_for_token(token, sync=False)
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
        if not self.service.account_settled(name, model):
            created = await self.service.run(self.service.account_created, name, model)
            if created is not None:  # a name given to a new account never inherits the old account's sessions
                await self.service.run(self.service.check_account, name, created)
        return Caller(name, admin, tuple(model.get("groups") or ()))

    async def data_received(self, chunk: bytes) -> None:
        if self._rejected is not None:
            return  # read and dropped (tornado's per-request limit bounds how much)
        self._size += len(chunk)
        limit = self.body_limit()
        if self._size > limit:
            await self.reject(ApiError("TooLarge", self.too_large(self._size, limit)))
            return
        try:
            await self.take(chunk)
        except Exception as exc:  # noqa: BLE001 - answered now; the rest of the body is dropped
            await self.reject(exc)

    async def take(self, chunk: bytes) -> None:
        """A piece of an admitted request's body (default: kept for ``json_body``)."""
        self._chunks.append(chunk)

    def json_body(self) -> dict[str, Any]:
        return parse_json(b"".join(self._chunks))

    # --- answers ---------------------------------------------------------------------------------

    def answer_for(self, exc: BaseException) -> ApiError:
        """The API error for ``exc``; an unexpected one is logged with its traceback and the request id."""
        error = classify(exc)
        if error.status_code >= 500 and error.kind == "ClauderonError":
            who = getattr(self, "caller", None)
            _log.error(
                "request %s: %s %s (%s) failed",
                self.request_id,
                self.request.method,
                self.request.path,
                who.name if who else "unidentified",
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            error = ApiError(
                "ClauderonError",
                f"internal error ({type(exc).__name__}); the service log has it under request id {self.request_id}",
                status=500,
            )
        return error

    def error_json(self, error: ApiError) -> bytes:
        body = {**error_body(error.kind, error.message, error.field), "request_id": self.request_id}
        return json.dumps(self.service.scrub(body)).encode()

    async def reject(self, exc: BaseException) -> None:
        """Answer with the error now; the handler's method will only finish the request."""
        if self._rejected is not None or self._finished:
            return
        error = exc if isinstance(exc, ApiError) and exc.status_code < 500 else self.answer_for(exc)
        self._rejected = error
        body = self.error_json(error)
        self.set_status(error.status_code)
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        await self.flush()  # out before the connection could be closed for an over-long body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif exc is not None and not isinstance(exc, web.HTTPError):
            error = self.answer_for(exc)  # validation, policy, engine… raised outside ``call``
        elif status_code == 405:
            error = ApiError("NotFound", f"{self.request.method} is not supported here", status=405)
            allowed = [v.upper() for v in _VERBS if getattr(type(self), v) is not getattr(web.RequestHandler, v)]
            self.set_header("Allow", ", ".join(allowed))
        else:
            error = ApiError("ClauderonError", self._reason or "error", status=status_code)
        self.set_status(error.status_code)
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Request-Id", self.request_id)  # send_error cleared the headers
        self.finish(self.error_json(error))

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.service.scrub(data)))

    # --- work ------------------------------------------------------------------------------------

    def manager(self) -> SessionManager:
        return self.service.manager(self.caller)

    async def call(self, fn: Callable[..., T], *args: Any, background: bool = False) -> T:
        """Run blocking manager work in the pool (``background``: a create's, at lower CPU priority);
        errors become API errors."""
        try:
            run = self.service.run_create if background else self.service.run
            return await run(fn, *args)
        except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
            raise self.answer_for(exc) from None

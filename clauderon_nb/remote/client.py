"""``RemoteManager``: the ``SessionManager`` interface, over the clauderon service's HTTP API.

The magics, the CLI and the widgets take whichever manager they are given; with this one
the sessions live on the service, the repository travels as a git bundle, and errors come
back as the same exception classes with the same one line. Only the standard library is
used for HTTP, so importing the package stays light.
"""

from __future__ import annotations

import builtins
import http.client
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from ..config.environment import clauderon_home
from ..errors import ClauderonError, ConfigError, EngineUnavailable
from ..model.answers import CullAction, ImageListing, Options, PlanView
from ..model.hints import DEFAULTABLE_FIELDS
from ..model.progress import ProgressCallback, ProgressEvent, no_progress
from ..model.redact import redact_url, strip_credentials
from ..model.session import Session
from ..model.units import approx_size
from .wire import API, Endpoint, error_from_body, session_from_json

if TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..model.request import CreateSessionRequest

CREATE_WITH_BUNDLE = "application/x-clauderon-create"
#: Request fields sent to the service when a client-side layer set them (never policy or built-in defaults);
#: a preset is sent as the values it gave.
SENT_FIELDS = tuple(f for f in DEFAULTABLE_FIELDS if f not in ("preset", "preset_options"))
#: The sources a client sends values from (not "system": the service has its own /etc/clauderon).
CLIENT_SOURCES = ("session", "preset", "repo", "devcontainer", "kernel", "user")


class ServiceClient:
    """Small HTTP client: one connection per call, JSON in and out, errors as exceptions."""

    def __init__(self, endpoint: Endpoint, timeout: float = 600.0) -> None:
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"service_url {redact_url(endpoint.url)!r}: expected http(s)://HOST[:PORT]/PREFIX/")
        self.endpoint = endpoint
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = (parts.path.rstrip("/") + "/" + API).replace("//", "/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ServiceClient({redact_url(self.endpoint.url)!r})"

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def open(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        streaming: bool = False,
    ) -> http.client.HTTPResponse:
        """Send a request; an error answer raises the service's own exception class. ``streaming``: the
        answer may stay quiet for long (a followed log): no read timeout once it has started."""
        url = self._base + path + (("?" + urlencode(query)) if query else "")
        sent = {"Authorization": f"token {self.endpoint.token}", "Accept": "application/json", **(headers or {})}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn = self._connection()
        try:
            conn.request(method, url, body=body, headers=sent)
            sock = conn.sock  # kept: an answer that closes the connection takes it from ``conn``
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise EngineUnavailable(
                f"cannot reach the clauderon service at {redact_url(self.endpoint.url)} ({exc})"
            ) from None
        if streaming and response.status < 400 and sock is not None:
            sock.settimeout(None)  # the answer has started: from now on it may be quiet for as long as the agent
        if response.status >= 400:
            raw = response.read(65536)
            conn.close()
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            raise error_from_body(data, response.status)
        return response

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.open(method, path, body, **kwargs)
        try:
            raw = response.read()
        finally:
            response.close()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise ClauderonError("the clauderon service sent a malformed answer") from None


def _session_path(name: str) -> str:
    return "/sessions/" + quote(name, safe="")


class RemoteManager:
    """Sessions on the clauderon service; same methods and errors as ``SessionManager``.

    Your own layers (``.clauderon.toml``, your config files and presets, the kernel's
    defaults) are resolved here and sent as requested values; the service adds its own
    defaults and enforces the admin policy.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        home: str | os.PathLike[str] | None = None,
        *,
        defaults: dict[str, Any] | None = None,
        defaults_origin: str = "kernel defaults (%config Clauderon)",
    ) -> None:
        self.client = ServiceClient(endpoint)
        self.home: Path = clauderon_home(home)
        self.defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
        self.defaults_origin = defaults_origin
        self._owner: str | None = None

    def __repr__(self) -> str:
        return f"RemoteManager({redact_url(self.client.endpoint.url)!r})"

    def with_defaults(self, defaults: dict[str, Any], origin: str) -> RemoteManager:
        """The same service, with other front-end defaults (a form's own)."""
        return RemoteManager(self.client.endpoint, self.home, defaults=defaults, defaults_origin=origin)

    @property
    def owner(self) -> str:
        """Your hub username, as the service knows it."""
        if self._owner is None:
            self._owner = str(self.client.json("GET", "/").get("user", ""))
        return self._owner

    # --- planning -----------------------------------------------------------

    def resolve(self, request: CreateSessionRequest) -> Resolution:
        """Your side of the settings (the service adds its defaults and policy at create)."""
        from ..config.devcontainer import load_devcontainer
        from ..config.files import load_repo_config, load_system_config, load_user_config
        from ..config.policy import AdminPolicy
        from ..config.resolve import resolve
        from ..repos.gitrepo import inspect_repo_cached

        repo = inspect_repo_cached(request.repo)
        return resolve(
            request,
            load_user_config(self.home),
            load_repo_config(repo.root),
            AdminPolicy(),  # advisory here; the service enforces its own
            engine_present=lambda: True,
            owner=os.environ.get("JUPYTERHUB_USER", ""),
            frontend=self.defaults,
            frontend_origin=self.defaults_origin,
            agents_elsewhere=True,
            presets_elsewhere=True,
            system=load_system_config(),
            devcontainer=load_devcontainer(repo.root),
        )

    def _own_preset(self, name: str) -> bool:
        """Whether a preset is one of yours (built in, or in your config files): it is applied here and its
        values sent; any other is the service's to apply."""
        from ..config.files import load_system_config, load_user_config, presets_of
        from ..config.presets import all_presets

        return name in all_presets(presets_of(load_system_config(), load_user_config(self.home)))

    def trust_repo(self, repo: str | os.PathLike[str]) -> str:
        from ..config.trust import trust_files
        from ..repos.gitrepo import inspect_repo_cached

        return trust_files(self.home, inspect_repo_cached(repo).root)

    def _body(self, request: CreateSessionRequest) -> tuple[dict[str, Any], Any, dict[str, str]]:
        """The JSON the service gets, the repository, and where each sent value came from."""
        from ..config.trust import options_refusal, trust_refusal
        from ..model.settings_json import request_json
        from ..repos.bundles import repo_key
        from ..repos.gitrepo import inspect_repo_cached, remote_url_cached

        repo = inspect_repo_cached(request.repo)
        res = self.resolve(request)
        sent: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for key in SENT_FIELDS:
            value = getattr(res.settings, key, None)
            if value is not None and res.sources.get(key) in CLIENT_SOURCES:
                sent[key] = value
                origins[key] = res.sources[key]
        if res.sources.get("backend") not in CLIENT_SOURCES:
            sent.pop("backend", None)
        preset = res.settings.preset
        if preset is not None and res.sources.get("preset") in CLIENT_SOURCES and not self._own_preset(preset):
            sent["preset"] = preset  # one of the service's profiles: it applies it, and its options
            origins["preset"] = res.sources["preset"]
            if res.settings.preset_options:
                sent["preset_options"] = res.settings.preset_options
                origins["preset_options"] = res.sources.get("preset_options", res.sources["preset"])
                refusal = options_refusal(self.home, repo.root, res)
                if refusal:
                    raise ConfigError(refusal, field="preset_options")
        if "build" in sent:  # the service builds it and tags it by its hash
            sent.pop("image", None)
        from ..model.settings_table import DEVCONTAINER_KEYS

        unsent = [k for k in DEVCONTAINER_KEYS if res.sources.get(k) == "devcontainer"]
        if unsent:
            raise ConfigError(
                f"{res.origins[unsent[0]]}: {unsent[0]} from a devcontainer.json is not sent to the clauderon "
                "service (it takes the image or build only); put it in the image's Dockerfile",
                field="image",
            )
        refusal = trust_refusal(self.home, repo.root, res, to_service=True)
        if refusal:
            raise ConfigError(refusal, field="image")
        body = request_json(sent)
        body["prompt"] = request.prompt
        if request.name:
            body["name"] = request.name
        remote = remote_url_cached(repo)
        body["workspace"] = {
            "key": repo_key(repo.root),
            "commit": repo.commit,
            "branch": repo.branch,
            "path": str(repo.root),
            **({"remote": strip_credentials(remote)} if remote else {}),
        }
        return body, repo, origins

    def plan(
        self, request: CreateSessionRequest | None = None, *, check_image: bool = False, **fields: Any
    ) -> PlanView:
        """The service's dry run of this create (its settings, sources and the rendered spec);
        ``check_image``: the service also checks the image with its engine or registry."""
        body, _, origins = self._body(_request(request, fields))
        if check_image:
            body["check_image"] = True
        return self._plan(body, origins)[0]

    def _plan(
        self, body: dict[str, Any], origins: dict[str, str], for_create: bool = False
    ) -> tuple[PlanView, dict[str, Any]]:

        answer = self.client.json("POST", "/plan", {**body, "intent": "create"} if for_create else body)
        try:
            view = PlanView.from_json(answer["plan"])
        except (KeyError, TypeError, ValueError):
            raise ClauderonError("the clauderon service sent a malformed plan") from None
        rows = tuple(
            (k, v, origins[k], "your side") if k in origins and src == "session" else (k, v, src, o)
            for k, v, src, o in view.row_values
        )
        from dataclasses import replace

        return replace(view, row_values=rows, sources={**view.sources, **origins}), answer

    def options(self) -> Options:

        data = self.client.json("GET", "/options")
        try:
            return Options(
                agents=list(data["agents"]),
                presets=dict(data["presets"]),
                backends=list(data["backends"]),
                pull_policies=list(data["pull_policies"]),
                allowed_images=list(data["allowed_images"]),
                images=list(data["images"]),
                max_cpu=data.get("max_cpu"),
                max_memory=data.get("max_memory"),
                bounds=[(str(k), str(v), str(w)) for k, v, w in data.get("bounds") or []],
                preset_options=dict(data.get("preset_options") or {}),
            )
        except (KeyError, TypeError):
            raise ClauderonError("the clauderon service sent malformed options") from None

    def images(self, target: str | None = None) -> ImageListing:
        """The service's image browser (its credentials, your policy)."""

        query = f"?target={quote(target, safe='')}" if target else ""
        data = self.client.json("GET", f"/images{query}")
        try:
            return ImageListing.from_json(data)
        except (KeyError, TypeError, ValueError):
            raise ClauderonError("the clauderon service sent a malformed image list") from None

    def image_suggestions(self, typed: str = "") -> builtins.list[str]:
        """The service's suggestions for an image field (its engine's images, a typed repository's tags)."""
        data = self.client.json("GET", f"/images?suggest=1&typed={quote(typed, safe='')}")
        images = data.get("images") if isinstance(data, dict) else None
        return [str(i) for i in images] if isinstance(images, list) else []

    # --- create -------------------------------------------------------------

    def create(
        self,
        request: CreateSessionRequest | None = None,
        progress: ProgressCallback | None = None,
        *,
        wait: bool = True,
        **fields: Any,
    ) -> Session:
        """Create on the service: a dry run there first (so a refused create uploads nothing),
        then the create with only the commits the service does not have yet."""
        from ..repos.bundles import make_bundle

        report = progress or no_progress
        request = _request(request, fields)
        body, repo, origins = self._body(request)
        view, answer = self._plan(body, origins, for_create=True)
        for note in view.notes:
            report(ProgressEvent("note", note, detail=True))
        names = answer.get("credentials")
        wanted = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        body["env"] = {n: os.environ[n] for n in wanted if n in os.environ}
        body["wait"] = wait
        body["name"] = view.name if not request.name else request.name
        with tempfile.TemporaryDirectory(prefix="clauderon-upload-") as tmp:
            bundle = Path(tmp) / "workspace.bundle"
            send = not answer.get("has_commit") and make_bundle(repo, list(answer.get("have") or []), bundle)
            if send:
                size = bundle.stat().st_size
                limit = answer.get("max_upload_size")
                if isinstance(limit, int) and size > limit:
                    raise ConfigError(
                        f"repo '{repo.root}': the workspace bundle is {size} bytes, over the service's limit of "
                        f"{limit} bytes (max_upload_size)",
                        field="repo",
                    )
                report(ProgressEvent("upload", f"sending the repository ({approx_size(size)})"))
            return self._post_create(body, bundle if send else None, report)

    def _post_create(self, body: dict[str, Any], bundle: Path | None, report: ProgressCallback) -> Session:
        line = json.dumps(body).encode() + b"\n"
        headers = {"Accept": "text/event-stream"}
        if bundle is None:
            payload: Any = line
            headers["Content-Type"] = "application/json"
        else:
            size = bundle.stat().st_size
            headers["Content-Type"] = CREATE_WITH_BUNDLE
            headers["Content-Length"] = str(len(line) + size)
            payload = _chunks(line, bundle)
        response = self.client.open("POST", "/sessions", payload, headers=headers)
        try:
            return _read_events(response, report)
        finally:
            response.close()

    # --- queries and lifecycle ------------------------------------------------

    def list(self, all_owners: bool = False) -> list[Session]:
        data = self.client.json("GET", "/sessions", query={"all": "1"} if all_owners else None)
        rows = data.get("sessions") if isinstance(data, dict) else None
        return [session_from_json(s) for s in (rows if isinstance(rows, list) else [])]

    def get(self, name_or_id: str) -> Session:
        return session_from_json(self.client.json("GET", _session_path(name_or_id)))

    def stop(self, name: str) -> Session:
        return session_from_json(self.client.json("POST", _session_path(name) + "/stop"))

    def start(self, name: str) -> Session:
        return session_from_json(self.client.json("POST", _session_path(name) + "/start"))

    def delete(self, name: str) -> str | None:
        data = self.client.json("DELETE", _session_path(name))
        note = data.get("note")
        return note if isinstance(note, str) else None

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> str | Iterator[str]:
        query = {**({"tail": str(tail)} if tail is not None else {}), **({"follow": "1"} if follow else {})}
        response = self.client.open("GET", _session_path(name) + "/logs", query=query or None, streaming=follow)
        if not follow:
            try:
                return response.read().decode("utf-8", errors="replace")
            finally:
                response.close()
        return _stream(response)

    def cull(self, now: float | None = None, dry_run: bool = False) -> builtins.list[CullAction]:
        """Ask the service for a pass of the policy's lifetimes now (hub admins only)."""

        query = {**({"dry_run": "1"} if dry_run else {}), **({"now": repr(now)} if now is not None else {})}
        data = self.client.json("POST", "/cull", b"", query=query or None)
        try:
            return [
                CullAction(a["id"], a["owner"], a["name"], a["action"], a["reason"], a["message"])
                for a in data["actions"]
            ]
        except (KeyError, TypeError):
            raise ClauderonError("the clauderon service sent a malformed cull report") from None

    def attach_command(self, name: str) -> str:
        session = self.get(name)
        raise ClauderonError(
            f"session {session.name!r} runs on the clauderon service, which has no terminal for you to attach to; "
            f"follow it with `clauderon-nb logs {session.name} -f` and bring its work back with "
            f"`clauderon-nb fetch {session.name}`"
        )

    def fetch(self, name: str, repo: str | os.PathLike[str] | None = None) -> str:
        """Bring the session's branch into your repository as ``clauderon/<name>``; returns a one-line summary."""
        from ..repos.bundles import fetch_branch, set_branch
        from ..repos.gitrepo import inspect_repo

        info = inspect_repo("." if repo is None else repo)
        session = self.get(name)
        response = self.client.open("GET", _session_path(name) + "/bundle")
        branch = response.getheader("X-Clauderon-Branch") or session.branch
        commit = response.getheader("X-Clauderon-Commit") or ""
        if not branch.startswith("clauderon/") or ".." in branch:
            raise ClauderonError(f"the clauderon service named an unexpected branch {branch[:80]!r}")
        with tempfile.TemporaryDirectory(prefix="clauderon-fetch-") as tmp:
            path = Path(tmp) / "session.bundle"
            try:
                with open(path, "wb") as fh:
                    while block := response.read(1024 * 1024):
                        fh.write(block)
            finally:
                response.close()
            if response.status == 204:
                set_branch(info.root, branch, commit)
                return f"Session {session.name} has no commits yet; {branch} points at its base {commit[:12]}."
            head = fetch_branch(info.root, path, branch)
        return f"Fetched {branch} ({head[:12]}) into {info.root}."


def _chunks(line: bytes, bundle: Path) -> Iterator[bytes]:
    yield line
    with open(bundle, "rb") as fh:
        while block := fh.read(256 * 1024):
            yield block


def _read_events(response: http.client.HTTPResponse, report: ProgressCallback) -> Session:
    """Server-sent events of a create: progress, then the session or an error."""
    kind, data = "", ""
    for raw in response:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:].removeprefix(" ")  # one optional space after the colon, as the SSE spec says
            data = f"{data}\n{value}" if data else value  # several data lines are one value, joined by \n
        elif not line and kind:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = None
            if kind == "progress" and isinstance(payload, dict):
                report(_event(payload))
            elif kind == "session":
                return session_from_json(payload)
            elif kind == "error":
                raise error_from_body(payload, 500)
            kind, data = "", ""
    raise ClauderonError("the clauderon service closed the connection before the create finished")


def _event(data: dict[str, Any]) -> ProgressEvent:
    def number(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) else None

    return ProgressEvent(
        step=str(data.get("step", "")),
        message=str(data.get("message", ""))[:500],
        layer=data.get("layer") if isinstance(data.get("layer"), str) else None,
        current=number("current"),
        total=number("total"),
        detail=bool(data.get("detail")),
    )


def _stream(response: http.client.HTTPResponse) -> Iterator[str]:
    """A followed stream: quiet for as long as the agent is (no read timeout); a broken connection is one
    line, not a bare socket error."""
    try:
        while True:
            try:
                block = response.read1(65536) if hasattr(response, "read1") else response.read(4096)
            except (OSError, http.client.HTTPException) as exc:
                raise EngineUnavailable(
                    f"the connection to the clauderon service broke ({exc or type(exc).__name__})"
                ) from None
            if not block:
                return
            yield block.decode("utf-8", errors="replace")
    finally:
        response.close()


def _request(request: CreateSessionRequest | None, fields: dict[str, Any]) -> CreateSessionRequest:
    from ..model.request import as_request  # pydantic loads only when a command plans

    return as_request(request, fields)

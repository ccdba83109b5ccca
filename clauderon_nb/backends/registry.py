"""A small Registry HTTP API v2 client: manifests, tags and the catalog, with the credentials of
``docker login`` (or a given config.json), over basic auth or the bearer-token flow that Docker Hub,
GHCR and most registries use.

HTTP goes through urllib3 (kept connections per registry), through the proxy the environment names
(``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``), trusting the system's CAs plus Docker's per-registry
``certs.d`` (``ca.crt``, and ``client.cert``/``client.key`` for registries that want a client
certificate) as the engine does. No credential value ever reaches a message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import socket
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.cache import Memo
from ..errors import BackendError
from ..model.image import DEFAULT_REGISTRY, normalize_registry
from ..model.redact import redact_url

#: What a manifest request accepts: single-platform manifests and multi-platform indexes, Docker and OCI.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = MANIFEST_TYPES[:2]
DEFAULT_TIMEOUT = 5.0
MAX_BODY = 8 * 1024 * 1024  # a manifest, a tag list or an image config; more is not a registry answer
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_DIGEST = re.compile(r"sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})")


class RegistryError(BackendError):
    """A registry answer, sorted into what went wrong: ``kind`` is tag, repository, denied,
    unreachable or other."""

    def __init__(self, kind: str, message: str, *, step: str | None = None) -> None:
        super().__init__(message, step=step, field="image")
        self.kind = kind
        self.detail = message


@dataclass(frozen=True)
class Credentials:
    """A user name and secret for one registry, and where they came from (shown; the secret never is)."""

    username: str
    secret: str = field(repr=False)
    source: str
    identity_token: bool = False

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def engine_auth(self) -> dict[str, str]:
        """As the Docker engine takes them for a pull or a push (docker-py's ``auth_config``)."""
        if self.identity_token:
            return {"identitytoken": self.secret}
        return {"username": self.username, "password": self.secret}


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    size: int | None = None


@dataclass(frozen=True)
class TagInfo:
    """One tag as the registry describes it; size and created are None where it does not say."""

    tag: str
    digest: str | None = None
    size: int | None = None
    created: str | None = None


def api_host(registry: str) -> str:
    """The host that serves a registry's API (Docker Hub's is not ``docker.io``)."""
    registry = normalize_registry(registry)
    return "registry-1.docker.io" if registry == DEFAULT_REGISTRY else registry


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def credentials_for(registry: str, config_file: Path | None = None) -> Credentials | None:
    """The credentials ``docker login`` stored for ``registry`` (in ``config_file``, or the user's
    ``$DOCKER_CONFIG/config.json`` / ``~/.docker/config.json``), credential helpers included."""
    from docker import auth as docker_auth

    registry = normalize_registry(registry)
    where = str(config_file) if config_file else "docker login"
    try:
        config = docker_auth.load_config(config_path=str(config_file) if config_file else None)
        found = docker_auth.resolve_authconfig(config, registry=None if registry == DEFAULT_REGISTRY else registry)
    except Exception as exc:  # noqa: BLE001 - an unreadable config or a failing helper is one line
        detail = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:200]
        raise RegistryError(
            "denied", f"cannot read the credentials for {registry} from {where}: {detail}", step="registry auth"
        ) from None
    if not found:
        return None
    values = {str(k).lower(): v for k, v in dict(found).items()}
    token = values.get("identitytoken")
    if token:
        return Credentials(str(values.get("username") or "<token>"), str(token), where, identity_token=True)
    if values.get("username") and values.get("password") is not None:
        return Credentials(str(values["username"]), str(values["password"]), where)
    return None


class RegistryClient:
    """One registry's API, authenticating on demand: a 401 with a Basic challenge is answered with the
    credentials, a Bearer challenge with a token from the realm it names (cached per scope)."""

    def __init__(
        self, registry: str, credentials: Credentials | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.registry = normalize_registry(registry)
        self.host = api_host(self.registry)
        self.credentials = credentials
        self.timeout = timeout
        self.scheme = "http" if is_loopback(self.host) else "https"
        self._tokens: dict[str, str] = {}
        self._basic = False

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, credentials={self.credentials!r})"

    # --- HTTP ---------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, headers: dict[str, str], redirects: int = 3, data: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        import urllib3

        parts = urllib.parse.urlsplit(url)
        try:
            response = _pool_for(url).request(
                method,
                url,
                body=data,
                headers={"User-Agent": "clauderon-nb", **headers},
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=self.timeout,
            )
            try:
                body = response.read(MAX_BODY) if method != "HEAD" else b""
                status, got = response.status, {k.lower(): v for k, v in response.headers.items()}
            finally:
                response.release_conn()
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise RegistryError("unreachable", f"registry {self.registry} is unreachable ({_reason(exc)})") from None
        location = got.get("location")
        if status in (301, 302, 303, 307, 308) and location and method == "GET" and redirects > 0:
            # Blobs are often served from storage elsewhere: follow, without credentials for another host.
            nxt = urllib.parse.urljoin(url, location)
            new = urllib.parse.urlsplit(nxt)
            if new.scheme not in ("http", "https") or (new.scheme == "http" and parts.scheme == "https"):
                raise RegistryError("other", f"registry {self.registry} redirected to an unsafe address")
            keep = {k: v for k, v in headers.items() if k != "Authorization" or new.netloc == parts.netloc}
            return self._send(method, nxt, keep, redirects - 1)
        return status, got, body

    def request(
        self, method: str, path: str, *, accept: tuple[str, ...] = (), scope: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """``method`` on ``/v2{path}``, authenticating when the registry asks; returns status, headers, body."""
        url = f"{self.scheme}://{self.host}/v2{path}"
        headers = {"Accept": ", ".join(accept)} if accept else {}
        sent = self._auth_header(scope)
        status, got, body = self._send(method, url, {**headers, **sent})
        if status != 401:
            return status, got, body
        challenge = got.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if sent:  # the credentials were sent and refused
                raise RegistryError("denied", self._denied(f"registry {self.registry} refused"))
            if self.credentials is None:
                raise RegistryError(
                    "denied",
                    f"registry {self.registry} wants a login and there are no credentials for it "
                    f"(docker login {self.registry}, or [image.registry_auth] config_file)",
                )
            self._basic = True
        elif scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            self._tokens[scope or ""] = self._token(params, scope)
        else:
            raise RegistryError("denied", f"registry {self.registry} answered 401 with no usable challenge")
        status, got, body = self._send(method, url, {**headers, **self._auth_header(scope)})
        if status == 401:
            raise RegistryError("denied", self._denied(f"registry {self.registry} refused"))
        return status, got, body

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        token = self._tokens.get(scope or "")
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _token(self, params: dict[str, str], scope: str | None) -> str:
        """The bearer-token flow: ask the realm for a token for ``scope``, with the credentials if any."""
        realm = params.get("realm", "")
        parts = urllib.parse.urlsplit(realm)
        shown = redact_url(realm)[:200]
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError("denied", f"registry {self.registry} names an unusable token realm {shown!r}")
        if parts.scheme == "http" and not is_loopback(parts.netloc):
            raise RegistryError("denied", f"registry {self.registry} names a token realm over plain http: {shown}")
        query = [("service", params["service"])] if params.get("service") else []
        wanted = scope or params.get("scope")
        if wanted:
            query.append(("scope", wanted))
        headers: dict[str, str] = {}
        creds = self.credentials
        if creds is not None and creds.identity_token:  # an OAuth2 refresh token: exchanged with a form POST
            form = [
                *query,
                ("grant_type", "refresh_token"),
                ("client_id", "clauderon-nb"),
                ("refresh_token", creds.secret),
            ]
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            status, _, body = self._send("POST", realm, headers, data=urllib.parse.urlencode(form).encode())
        else:
            if creds is not None:
                raw = f"{creds.username}:{creds.secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            sep = "&" if parts.query else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
            status, _, body = self._send("GET", url, headers)
        if status in (401, 403):
            raise RegistryError("denied", self._denied(f"the token service of {self.registry} refused"))
        if status != 200:
            raise RegistryError("other", f"the token service of {self.registry} answered HTTP {status}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError("other", f"the token service of {self.registry} sent no token")
        return token

    def _denied(self, who: str, what: str = "") -> str:
        if self.credentials is None:
            return f"{who} anonymous access{what} (no credentials for it: docker login {self.registry})"
        return (
            f"{who} the credentials of user {self.credentials.username!r} (from {self.credentials.source}){what}; "
            f"check them, or log in again with docker login {self.registry}"
        )

    # --- API ----------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str) -> Manifest:
        """HEAD of a manifest: its digest, or a ``RegistryError`` saying whether the tag or the
        repository is missing, or access is denied."""
        scope = f"repository:{repository}:pull"
        path = f"/{repository}/manifests/{reference}"
        status, headers, body = self.request("HEAD", path, accept=MANIFEST_TYPES, scope=scope)
        if status == 404:  # the tag or the whole repository? the tag list says (and which tags there are)
            status_tags, _, body_tags = self.request("GET", f"/{repository}/tags/list?n=100", scope=scope)
            if status_tags == 404 or "NAME_UNKNOWN" in _error_codes(body_tags):
                raise RegistryError("repository", f"repository {repository!r} not found in registry {self.registry}")
            error = self._error(404, b"", repository, reference)
            try:
                tags = [str(t) for t in json.loads(body_tags or b"{}").get("tags") or []]
            except (ValueError, AttributeError):
                tags = []
            if status_tags == 200 and not reference.startswith("sha256:"):
                shown = ", ".join(sorted(tags)[:8]) + (", …" if len(tags) > 8 else "")
                error = RegistryError("tag", f"{error.detail} (its tags: {shown or 'none'})")
            raise error
        if status == 200:
            digest = headers.get("docker-content-digest")
            if not digest or not _DIGEST.fullmatch(digest):
                status, headers, body = self.request("GET", path, accept=MANIFEST_TYPES, scope=scope)
                import hashlib

                digest = headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
            size = headers.get("content-length")
            return Manifest(digest, headers.get("content-type", ""), int(size) if size and size.isdigit() else None)
        raise self._error(status, body, repository, reference)

    def _error(self, status: int, body: bytes, repository: str, reference: str) -> RegistryError:
        codes = _error_codes(body)
        if status == 404 and "NAME_UNKNOWN" in codes:
            return RegistryError("repository", f"repository {repository!r} not found in registry {self.registry}")
        if status == 404:
            what = "digest" if reference.startswith("sha256:") else "tag"
            return RegistryError("tag", f"{what} {reference!r} not found in {self.registry}/{repository}")
        if status in (401, 403) or "DENIED" in codes or "UNAUTHORIZED" in codes:
            return RegistryError(
                "denied",
                self._denied(f"registry {self.registry} denied", f" to {repository} (or it does not exist there)"),
            )
        return RegistryError("other", f"registry {self.registry} answered HTTP {status} for {repository}:{reference}")

    def tags(self, repository: str, limit: int = 1000) -> list[str]:
        """The repository's tags (following pagination), as the registry lists them."""
        out: list[str] = []
        path: str | None = f"/{repository}/tags/list?n=100"
        scope = f"repository:{repository}:pull"
        while path and len(out) < limit:
            status, headers, body = self.request("GET", path, scope=scope)
            if status != 200:
                raise self._error(status, body, repository, "-")
            out += [str(t) for t in (_json(body, self.registry, "tag list").get("tags") or [])]
            path = _next_page(headers.get("link"))
        return out[:limit]

    def catalog(self, limit: int = 1000) -> list[str]:
        """The registry's repositories, where it lists them (Docker Hub and GHCR do not)."""
        out: list[str] = []
        path: str | None = "/_catalog?n=100"
        while path and len(out) < limit:
            status, headers, body = self.request("GET", path, scope="registry:catalog:*")
            if status in (401, 403, 404, 405):
                raise RegistryError(
                    "denied" if status in (401, 403) else "other",
                    f"registry {self.registry} does not list its repositories (HTTP {status}); "
                    "name one: images REGISTRY/REPOSITORY",
                    step=None,
                )
            if status != 200:
                raise RegistryError("other", f"registry {self.registry} answered HTTP {status} for the catalog")
            out += [str(r) for r in (_json(body, self.registry, "catalog").get("repositories") or [])]
            path = _next_page(headers.get("link"))
        return out[:limit]

    def tag_info(self, repository: str, tag: str) -> TagInfo:
        """Digest, size (config and layers) and created time of one tag; an index's first platform."""
        scope = f"repository:{repository}:pull"
        status, headers, body = self.request(
            "GET", f"/{repository}/manifests/{tag}", accept=MANIFEST_TYPES, scope=scope
        )
        if status != 200:
            raise self._error(status, body, repository, tag)
        digest = headers.get("docker-content-digest")
        try:
            return self._describe(repository, tag, digest, _json(body, self.registry, "manifest"), scope)
        except (AttributeError, KeyError, TypeError, ValueError):  # a manifest of an unexpected shape
            return TagInfo(tag, digest)

    def _describe(self, repository: str, tag: str, digest: str | None, data: dict[str, Any], scope: str) -> TagInfo:
        if data.get("mediaType") in _INDEX_TYPES or "manifests" in data:
            entries = [m for m in data.get("manifests") or [] if _DIGEST.fullmatch(str(m.get("digest", "")))]
            chosen = next(
                (m for m in entries if (m.get("platform") or {}).get("architecture") == "amd64"),
                entries[0] if entries else None,
            )
            if chosen is None:
                return TagInfo(tag, digest)
            status, _, body = self.request(
                "GET", f"/{repository}/manifests/{chosen['digest']}", accept=MANIFEST_TYPES, scope=scope
            )
            if status != 200:
                return TagInfo(tag, digest)
            data = _json(body, self.registry, "manifest")
        config = data.get("config") or {}
        layers = data.get("layers") or []
        size = sum(int(x.get("size") or 0) for x in [config, *layers]) if layers else None
        created = None
        if _DIGEST.fullmatch(str(config.get("digest", ""))):
            status, _, blob = self.request("GET", f"/{repository}/blobs/{config['digest']}", scope=scope)
            if status == 200:
                try:
                    created = _json(blob, self.registry, "image config").get("created")
                except RegistryError:
                    created = None
        return TagInfo(tag, digest, size, created if isinstance(created, str) else None)


def _json(body: bytes, registry: str, what: str) -> dict[str, Any]:
    """A registry's JSON answer as a dict; a ``RegistryError`` when it is not one."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise RegistryError("other", f"registry {registry} sent a malformed {what}")
    return data


def _error_codes(body: bytes) -> set[str]:
    try:
        return {str(e.get("code", "")) for e in json.loads(body or b"{}").get("errors") or []}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return set()


def _next_page(link: str | None) -> str | None:
    """The path of the next page from a ``Link: </v2/…>; rel="next"`` header."""
    match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link or "")
    if not match:
        return None
    target = urllib.parse.urlsplit(match.group(1))
    path = target.path.removeprefix("/v2")
    return path + (f"?{target.query}" if target.query else "")


def _reason(exc: BaseException) -> str:
    """A short cause: what the connection met under urllib3's wrapping (refused, unknown host, TLS …)."""
    seen: BaseException | None = exc
    for _ in range(6):  # MaxRetryError -> NewConnectionError -> ConnectionRefusedError, and so on
        inner = getattr(seen, "reason", None) if not isinstance(seen, ssl.SSLError) else None
        inner = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__ if seen else None)
        if inner is None:
            break
        seen = inner
    exc = seen or exc
    name = type(exc).__name__
    if name in ("ConnectTimeoutError", "ReadTimeoutError") or isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if name == "NameResolutionError":
        return "unknown host"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def select_credentials(
    registry: str, config_file: Path | None = None, config_registry: str | None = None
) -> Credentials | None:
    """The credentials for ``registry``: those of ``config_file`` when it is for that registry
    (``[image.registry_auth]``; a file without them is an error), else those of ``docker login``."""
    from ..model.image import same_registry

    use_file = config_file if config_file and config_registry and same_registry(config_registry, registry) else None
    creds = credentials_for(registry, use_file)
    if creds is None and use_file is not None:
        raise RegistryError("denied", f"{use_file} has no credentials for {registry}", step="registry auth")
    return creds


def client_for(registry: str, config_file: Path | None = None, config_registry: str | None = None) -> RegistryClient:
    """A client for ``registry`` with the credentials ``select_credentials`` finds."""
    return RegistryClient(registry, select_credentials(registry, config_file, config_registry))


#: Docker's folders of per-registry certificates (the engine's, and a rootless engine's).
CERTS_D = (Path("/etc/docker/certs.d"), Path.home() / ".config" / "docker" / "certs.d")


def _tls_files(host: str) -> tuple[str | None, tuple[str, str] | None]:
    """Docker's ``certs.d/<host>/``: an extra CA (``ca.crt``) and a client certificate (``client.cert`` with
    ``client.key``) for this registry, when there are any. A name that is not a host (``..``, a slash) has none:
    it never names a folder outside ``certs.d``."""
    from ..model.image import is_host

    if not is_host(host):
        return None, None
    for root in CERTS_D:
        folder = root / host
        if folder.is_dir():
            ca = folder / "ca.crt"
            cert, key = folder / "client.cert", folder / "client.key"
            return (
                str(ca) if ca.is_file() else None,
                (str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            )
    return None, None


def _proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``, minus ``NO_PROXY``)."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _new_pool(proxy: str | None, host: str) -> Any:
    import urllib3

    context = ssl.create_default_context()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        context.load_verify_locations(bundle)
    ca, client = _tls_files(host)
    if ca:
        context.load_verify_locations(ca)
    if client:
        context.load_cert_chain(*client)
    if proxy:
        return urllib3.ProxyManager(proxy, ssl_context=context, num_pools=4, maxsize=4)
    return urllib3.PoolManager(ssl_context=context, num_pools=4, maxsize=4)


_POOLS = Memo(64)  # (proxy, registry host) -> a urllib3 pool manager, its connections kept between requests


def _pool_for(url: str) -> Any:
    host = urllib.parse.urlsplit(url).netloc
    proxy = _proxy(url)
    return _POOLS.get((proxy, host), lambda: _new_pool(proxy, host))

"""A bearer-token front for the test registry: the flow Docker Hub, GHCR and most registries use.

Clients get ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``, fetch a token from
``/token`` (basic auth with the user's credentials; anonymous gets a token that grants nothing, as on
Docker Hub), and retry with ``Authorization: Bearer``. Authorised requests are passed on to the
htpasswd registry behind it. Runs on a free loopback port in a thread.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .dockerkit import Registry


@dataclass
class TokenFront:
    host: str  # 127.0.0.1:PORT, as clients name the registry
    backend: Registry
    user: str
    password: str
    readable: set[str] = field(default_factory=set)  # repositories this user may pull; empty: all
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> granted scopes
    token_requests: list[str] = field(default_factory=list)  # the scopes asked for, in order
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))  # an identity token (OAuth2)

    def registry(self) -> Registry:
        """This front as a ``Registry`` (its host, and the credentials it takes)."""
        return Registry(self.host, self.user, self.password)


def _handler(front: TokenFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token(self) -> None:
            query = dict(re.findall(r"([^&=?]+)=([^&]*)", self.path.split("?", 1)[-1]))
            scope = query.get("scope", "").replace("%3A", ":").replace("%2A", "*").replace("%2F", "/")
            front.token_requests.append(scope)
            auth = self.headers.get("Authorization", "")
            granted: set[str] = set()
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if (user, password) != (front.user, front.password):
                    self._send(401, json.dumps({"details": "incorrect username or password"}).encode())
                    return
                repo = scope.split(":")[1] if scope.count(":") >= 2 else ""
                if (
                    scope.startswith("repository:") and (not front.readable or repo in front.readable)
                ) or scope == "registry:catalog:*":
                    granted.add(scope)
            token = secrets.token_urlsafe(24)
            front.tokens[token] = granted
            self._send(
                200, json.dumps({"token": token, "expires_in": 300}).encode(), {"Content-Type": "application/json"}
            )

        def _registry(self) -> None:
            path = self.path.split("?", 1)[0]
            match = re.match(r"/v2/(.+)/(manifests|blobs|tags)/", path)
            if path.startswith("/v2/_catalog"):
                scope = "registry:catalog:*"
            elif match:
                scope = f"repository:{match.group(1)}:pull"
            else:
                scope = ""
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if scope and (token is None or scope not in front.tokens.get(token, set())):
                challenge = f'Bearer realm="http://{front.host}/token",service="clauderon-test"'
                challenge += f',scope="{scope}"'
                error = "UNAUTHORIZED" if token is None else "DENIED"
                body = json.dumps({"errors": [{"code": error, "message": "authentication required"}]}).encode()
                self._send(401, body, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
                return
            conn = http.client.HTTPConnection(front.backend.host, timeout=30)
            basic = base64.b64encode(f"{front.backend.user}:{front.backend.password}".encode()).decode()
            headers = {"Authorization": f"Basic {basic}"}
            if self.headers.get("Accept"):
                headers["Accept"] = self.headers["Accept"]
            conn.request(self.command, self.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            keep = {
                k: v
                for k, v in response.getheaders()
                if k.lower() in ("content-type", "docker-content-digest", "link", "docker-distribution-api-version")
            }
            if self.command == "HEAD":
                keep["Content-Length"] = response.getheader("Content-Length") or "0"
                self.send_response(response.status)
                for k, v in keep.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            self._send(response.status, body, keep)

        def do_POST(self) -> None:
            """OAuth2: an identity token (what ``docker login`` stores for some registries) for an access token."""
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(re.findall(r"([^&=]+)=([^&]*)", self.rfile.read(length).decode()))
            scope = form.get("scope", "").replace("%3A", ":").replace("%2A", "*").replace("%2F", "/")
            front.token_requests.append(scope)
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != front.refresh_token:
                self._send(401, b'{"error": "invalid_grant"}')
                return
            token = secrets.token_urlsafe(24)
            front.tokens[token] = {scope} if scope else set()
            self._send(200, json.dumps({"access_token": token}).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._token()
            else:
                self._registry()

        def do_HEAD(self) -> None:
            self._registry()

    return Handler


@contextmanager
def token_front(backend: Registry, readable: set[str] | None = None) -> Iterator[TokenFront]:
    """Run a token front for ``backend`` with a user and password of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    front = TokenFront(
        host=f"127.0.0.1:{server.server_address[1]}",
        backend=backend,
        user="tokenuser",
        password=secrets.token_urlsafe(12),
        readable=set(readable or ()),
    )
    server.RequestHandlerClass = _handler(front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield front
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

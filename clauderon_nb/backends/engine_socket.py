"""One read from the Docker engine over its unix socket, with the standard library only.

``list`` and ``show`` need a single ``GET /containers/json``; docker-py costs more to
import (about 80 ms) than the whole command should take, so that one call goes
straight to the socket. Everything else uses docker-py.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..errors import BackendError

TIMEOUT = 60.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(str(self._path))
        self.sock = sock


def get_json(path: Path, url: str, params: dict[str, str], step: str) -> Any:
    """``GET url?params`` on the engine at the unix socket ``path``; one-line ``BackendError`` on failure."""
    conn = _UnixConnection(path)
    try:
        conn.request("GET", f"{url}?{urlencode(params)}", headers={"Host": "docker"})
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise BackendError(
            f"cannot reach the Docker engine at unix://{path} ({exc.strerror or exc}); is dockerd running?",
            step="connect to Docker engine",
        ) from None
    finally:
        conn.close()
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if response.status >= 400:
        message = data.get("message") if isinstance(data, dict) else body.decode(errors="replace")
        raise BackendError(" ".join(str(message).split()) or f"HTTP {response.status}", step=step)
    return data

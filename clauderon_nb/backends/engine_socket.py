"""One read from the Docker engine over its unix socket, with the standard library only.

``list`` and ``show`` need a single ``GET /containers/json``; docker-py costs more to
import (about 80 ms) than the whole command should take, so that one call goes
straight to the socket. Everything else uses docker-py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from ..errors import BackendError, EngineUnavailable

TIMEOUT = 60.0


def _exchange(path: Path, request: bytes) -> tuple[int, bytes]:
    """Send one HTTP/1.0 request (so the answer is never chunked) and read the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise OSError("the engine sent no HTTP answer")
    return int(status_line[1]), body


def _quote(text: str) -> str:
    """Percent-encode a query value (what urllib.parse.quote does, without importing it)."""
    return "".join(chr(b) if (chr(b).isalnum() and b < 128) or b in b"-._~" else f"%{b:02X}" for b in text.encode())


def get_json(path: Path, url: str, params: dict[str, str], step: str) -> Any:
    """``GET url?params`` on the engine at the unix socket ``path``; one-line ``BackendError`` on failure."""
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params.items())
    try:
        status, body = _exchange(path, f"GET {url}?{query} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
    except OSError as exc:
        raise EngineUnavailable(
            f"cannot reach the Docker engine at unix://{path} ({exc.strerror or exc}); is dockerd running?",
            step="connect to Docker engine",
        ) from None
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if status >= 400:
        message = data.get("message") if isinstance(data, dict) else body.decode(errors="replace")
        raise BackendError(" ".join(str(message).split()) or f"HTTP {status}", step=step)
    return data

"""Facts about where we run, read without pydantic: the home folder and whether an engine is here."""

from __future__ import annotations

import os
from pathlib import Path


def clauderon_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``home``, else ``$CLAUDERON_HOME``, else ``~/.clauderon``."""
    if home is not None:
        return Path(home).expanduser().absolute()
    env = os.environ.get("CLAUDERON_HOME", "").strip()
    return Path(env).expanduser().absolute() if env else Path.home() / ".clauderon"


DEFAULT_SOCKET = Path("/var/run/docker.sock")


def docker_socket() -> Path | None:
    """The engine's unix socket from ``$DOCKER_HOST`` (or the default), or None for a tcp/ssh engine."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    return Path(host[len("unix://") :]) if host.startswith("unix://") else None


def docker_engine_present() -> bool:
    """Cheap, side-effect-free: is a Docker engine configured here? ``$DOCKER_HOST``, ``$DOCKER_CONTEXT`` or
    a docker context chosen in ``~/.docker/config.json`` say so whether or not it answers (an engine you
    chose that is down is an error, never a quiet run on the host); otherwise the default socket's file."""
    if os.environ.get("DOCKER_HOST", "").strip() or os.environ.get("DOCKER_CONTEXT", "").strip():
        return True
    if _docker_context() not in ("", "default"):
        return True
    return DEFAULT_SOCKET.exists()


def _docker_context() -> str:
    """The docker CLI's current context (``currentContext`` in its config.json), "" when none is chosen."""
    import json

    folder = os.environ.get("DOCKER_CONFIG", "").strip()
    path = Path(folder).expanduser() / "config.json" if folder else Path.home() / ".docker" / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError):
        # It may name a context we cannot read: never take that for "no engine" (and run on the host).
        return f"(unreadable {path})"
    context = data.get("currentContext") if isinstance(data, dict) else None
    return context if isinstance(context, str) else ""

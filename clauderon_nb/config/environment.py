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


def docker_socket() -> Path | None:
    """The engine's unix socket from ``$DOCKER_HOST`` (or the default), or None for a tcp/ssh engine."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return Path("/var/run/docker.sock")
    return Path(host[len("unix://") :]) if host.startswith("unix://") else None


def docker_engine_present() -> bool:
    """Cheap, side-effect-free guess: is a Docker engine configured here?"""
    socket = docker_socket()
    return socket is None or socket.exists()

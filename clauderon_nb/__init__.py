"""clauderon-nb: AI coding-agent sessions from Jupyter, in Docker, Kubernetes or local processes.

Importing this package is cheap: the public names load on first use, and
docker, kubernetes and ipywidgets load only when a backend or widget needs them.

The code is laid out by layer, each importing only from the ones before it
(``tests/test_architecture.py`` enforces it; docs/architecture.md explains it):
``model`` → ``config`` → ``repos`` → ``render`` → ``backends`` → ``sessions`` → ``remote`` → ``service``
→ ``frontends`` (``remote`` imports only ``repos``, ``config`` and ``model``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "CreateSessionRequest": "model.request",
    "SessionManager": "sessions.manager",
    "Plan": "render.plan",
    "PullPolicy": "model.pull_policy",
    "Backend": "model.choices",
    "ResolvedSettings": "config.resolve",
    "ClauderonError": "errors",
    "CreateSessionForm": "frontends.widgets",
    "SessionList": "frontends.widgets",
    "Session": "model.session",
    "ConfigError": "errors",
    "PolicyError": "errors",
    "BackendError": "errors",
    "ImageRef": "model.image",
    "parse_image": "model.image",
    "parse_cpu": "model.units",
    "parse_memory": "model.units",
}

__all__ = [
    "Backend",
    "BackendError",
    "ClauderonError",
    "ConfigError",
    "CreateSessionForm",
    "CreateSessionRequest",
    "ImageRef",
    "Plan",
    "PolicyError",
    "PullPolicy",
    "ResolvedSettings",
    "Session",
    "SessionList",
    "SessionManager",
    "__version__",
    "parse_cpu",
    "parse_image",
    "parse_memory",
]

if TYPE_CHECKING:
    from .config.resolve import ResolvedSettings
    from .errors import BackendError, ClauderonError, ConfigError, PolicyError
    from .frontends.widgets import CreateSessionForm, SessionList
    from .model.choices import Backend
    from .model.image import ImageRef, parse_image
    from .model.pull_policy import PullPolicy
    from .model.request import CreateSessionRequest
    from .model.session import Session
    from .model.units import parse_cpu, parse_memory
    from .render.plan import Plan
    from .sessions.manager import SessionManager


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clauderon_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext clauderon_nb``: register ``%clauderon`` and ``%%clauderon``."""
    from .frontends.magics import load

    load(ip)

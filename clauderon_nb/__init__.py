"""clauderon-nb: AI coding-agent sessions from Jupyter, in Docker, Kubernetes or local processes.

Importing this package is cheap: the public names load on first use, and
docker, kubernetes and ipywidgets load only when a backend or widget needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "CreateSessionRequest": "request",
    "SessionManager": "manager",
    "Plan": "plan",
    "PullPolicy": "pull_policy",
    "Backend": "fields",
    "ResolvedSettings": "resolve",
    "ClauderonError": "errors",
    "CreateSessionForm": "widgets",
    "SessionList": "widgets",
    "Session": "session",
    "ConfigError": "errors",
    "PolicyError": "errors",
    "BackendError": "errors",
    "ImageRef": "image",
    "parse_image": "image",
    "parse_cpu": "units",
    "parse_memory": "units",
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
    from .errors import BackendError, ClauderonError, ConfigError, PolicyError
    from .fields import Backend
    from .image import ImageRef, parse_image
    from .manager import SessionManager
    from .plan import Plan
    from .pull_policy import PullPolicy
    from .request import CreateSessionRequest
    from .resolve import ResolvedSettings
    from .session import Session
    from .units import parse_cpu, parse_memory
    from .widgets import CreateSessionForm, SessionList


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
    from .magics import load

    load(ip)

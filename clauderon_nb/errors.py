"""Exception types and one-line error formatting shared by every entry point."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ClauderonError(Exception):
    """Base class for every error clauderon-nb raises on purpose.

    ``field`` names the request field the error is about, when there is one, so a
    form can show it beside that field.
    """

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(ClauderonError):
    """A config file, or the request in the light of the config, is wrong."""


class PolicyError(ClauderonError):
    """The admin policy forbids the requested or resolved value."""


class BackendError(ClauderonError):
    """The backend (Docker engine, Kubernetes API, local process) failed."""

    def __init__(self, message: str, *, step: str | None = None, field: str | None = None) -> None:
        super().__init__(f"{step}: {message}" if step else message, field=field)
        self.step = step


class EngineUnavailable(BackendError):
    """The Docker engine or Kubernetes API cannot be reached at all (the service answers 503)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest choice, or ""."""
    options = list(choices)
    import difflib  # loaded for a typo only

    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match and len(word) >= 3:  # "cpu" -> "cpu_limit", "mem" -> "memory"
        match = [c for c in options if c.startswith(word) or word.startswith(c)][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def describe_validation_error(exc: Any, *, fields: Iterable[str] = ()) -> str:
    """Turn a pydantic ValidationError into one line, naming field and value.

    Values are echoed only where our own validators chose to echo them, so a
    secret never reaches a message.
    """
    known = list(fields)
    parts: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = _loc(err.get("loc", ()))
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if kind == "value_error" and "error" in ctx:
            parts.append(str(ctx["error"]))
        elif kind == "extra_forbidden":
            name = str(err["loc"][-1]) if err.get("loc") else loc
            parts.append(f"unknown field '{name}'{did_you_mean(name, known)}")
        elif kind == "missing":
            parts.append(f"{loc}: required")
        else:
            parts.append(f"{loc}: {err.get('msg', kind)}")
    return "; ".join(parts) if parts else str(exc).splitlines()[0]

"""The service's JSON: sessions, errors and request field names, the same on both ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, ClauderonError, ConfigError, EngineUnavailable, PolicyError
from ..model.redact import redact_url
from ..model.session import Session, Status

API = "api/v1"
#: Clauderon's own HTTP API names, accepted as aliases so its clients can talk to us.
ALIASES = {"container_image": "image"}
#: Error classes as they travel, with their HTTP status; a client raises the same class again.
ERRORS: dict[str, tuple[type[ClauderonError], int]] = {
    "ValidationError": (ConfigError, 400),
    "ConfigError": (ConfigError, 400),
    "UsageError": (ConfigError, 400),
    "Unauthorized": (ClauderonError, 401),
    "PolicyError": (PolicyError, 403),
    "Forbidden": (PolicyError, 403),
    "NotFound": (ClauderonError, 404),
    "Conflict": (ClauderonError, 409),
    "TooLarge": (ConfigError, 413),
    "TooManyRequests": (ClauderonError, 429),
    "BackendError": (BackendError, 502),
    "EngineUnavailable": (EngineUnavailable, 503),
    "ClauderonError": (ClauderonError, 500),
}


@dataclass(frozen=True)
class Endpoint:
    """Where the service is (base URL including its prefix) and the token to show it."""

    url: str
    token: str = ""

    def __repr__(self) -> str:  # the token never appears in a repr
        return f"Endpoint({redact_url(self.url)!r})"


def status_of(kind: str) -> int:
    return ERRORS.get(kind, (ClauderonError, 500))[1]


def error_body(kind: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": kind, "message": " ".join(message.split())}
    if field:
        body["field"] = field
    return body


def error_from_body(body: Any, status: int) -> ClauderonError:
    """The exception a client raises for an error answer: the same class and line as on the service."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return ClauderonError(f"the clauderon service answered HTTP {status}")
    given = body.get("error")
    kind = given if isinstance(given, str) else "ClauderonError"
    cls = ERRORS.get(kind, (ClauderonError, 500))[0]
    field = body.get("field") if isinstance(body.get("field"), str) else None
    message = body["message"][:2000]
    return cls(message, field=field)


def rename_aliases(values: dict[str, Any]) -> dict[str, Any]:
    """Clauderon's field names to ours; both spellings of one field at once is an error."""
    out = dict(values)
    for alias, name in ALIASES.items():
        if alias in out:
            if name in out:
                raise ConfigError(f"give {name} or {alias}, not both", field=name)
            out[name] = out.pop(alias)
    return out


def session_json(session: Session) -> dict[str, Any]:
    """A session as the service sends it (the service's own paths are not shown)."""
    runtime = session.runtime
    return {
        "id": session.id,
        "name": session.name,
        "owner": session.owner,
        "backend": session.backend,
        "agent": session.agent,
        "repo": runtime.get("client_repo") or "-",
        "worktree": "/workspace (on the service)",
        "branch": session.branch,
        "prompt": session.prompt,
        "settings": session.settings,
        "backend_id": session.backend_id,
        "status": session.status.value,
        "error": session.error,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "runtime": {k: runtime[k] for k in _SHOWN_RUNTIME if k in runtime},
    }


_SHOWN_RUNTIME = ("container", "pod", "namespace", "base_commit", "orphan", "history", "branch_note")


def session_from_json(data: Any) -> Session:
    """A session from the service's JSON; anything malformed is an error, not a crash."""
    if not isinstance(data, dict):
        raise ClauderonError("the clauderon service sent a malformed session")
    try:
        return Session(
            id=str(data["id"]),
            name=str(data["name"]),
            owner=str(data["owner"]),
            backend=str(data["backend"]),
            agent=str(data["agent"]),
            repo=str(data.get("repo") or "-"),
            worktree=str(data.get("worktree") or "-"),
            branch=str(data["branch"]),
            prompt=str(data.get("prompt") or ""),
            settings=dict(data.get("settings") or {}),
            backend_id=data.get("backend_id") if isinstance(data.get("backend_id"), str) else None,
            status=Status(data["status"]),
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            created_at=float(data.get("created_at") or 0),
            updated_at=float(data.get("updated_at") or 0),
            runtime=dict(data.get("runtime") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ClauderonError(f"the clauderon service sent a malformed session ({exc})") from None


def credential_names(
    secret_env: tuple[str, ...], extra_env: dict[str, str], service_env: tuple[str, ...] = ()
) -> list[str]:
    """The agent credentials a client may send: its ``pass_env`` names (``extra_env`` and ``service_env``
    are the service's own)."""
    return [n for n in secret_env if n not in extra_env and n not in service_env]

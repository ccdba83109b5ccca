"""What the service answers when it cannot do what was asked: one error class, one mapping.

Every failure is one line of JSON, ``{"error": kind, "message": …, "request_id": …}``, with the HTTP status
of its kind (``remote/wire.py``), so a client raises the same class with the same line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tornado import web

from ..errors import BackendError, ClauderonError, ConfigError, EngineUnavailable, PolicyError
from ..model.redact import redact_text
from ..remote.wire import status_of
from ..repos.bundles import BundleError
from ..sessions.listing import NotFound
from ..sessions.liveness import Busy
from ..sessions.quotas import QuotaError
from ..sessions.store import NameTaken

MAX_JSON = 1024 * 1024  # a request's JSON: a create's prompt (≤128 KiB) and credentials fit many times over


class ApiError(web.HTTPError):
    """An answer other than success: ``{"error": kind, "message": one line}`` with its status."""

    def __init__(self, kind: str, message: str, field: str | None = None, status: int | None = None) -> None:
        super().__init__(status or status_of(kind))
        self.kind, self.message, self.field = kind, message, field


def classify(exc: BaseException) -> ApiError:
    """The API error for an exception raised by the manager, validation or git."""
    pydantic = sys.modules.get("pydantic")
    if isinstance(exc, ApiError):
        return exc
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from ..errors import describe_validation_error
        from ..model.hints import HINTS

        return ApiError("ValidationError", describe_validation_error(exc, fields=HINTS))
    field_name = getattr(exc, "field", None)
    message = redact_text(str(exc))
    for cls, kind in (
        (NotFound, "NotFound"),
        (NameTaken, "Conflict"),
        (Busy, "Conflict"),
        (QuotaError, "PolicyError"),
        (BundleError, "ValidationError"),
        (PolicyError, "PolicyError"),
        (ConfigError, "ConfigError"),
        (EngineUnavailable, "EngineUnavailable"),
        (BackendError, "BackendError"),
    ):
        if isinstance(exc, cls):
            return ApiError(kind, message, field_name)
    if isinstance(exc, ClauderonError):
        return ApiError("ClauderonError", message, field_name, status=400)
    return ApiError("ClauderonError", f"internal error ({type(exc).__name__}); see the service log", status=500)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("ValidationError", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("ValidationError", "the request body must be a JSON object")
    return data

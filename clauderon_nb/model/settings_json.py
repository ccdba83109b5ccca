"""Settings as JSON: the one encoder for the session store, the service's answers and a create's body.

Stored and answered settings use one form per field (CPU in millicores, memory in bytes, enums by
value, builds and registry auth as tables, lists for tuples). Values that may be secret never
leave as JSON: environment maps keep their names only and URLs lose their credentials. A create's
body differs in one rule only, because its parser reads a bare number as cores: CPU goes as
``"1500m"`` (``request_value``). ``config/resolve.ResolvedSettings.from_json`` and the request model
parse both forms back to the same values (``tests/test_rules.py`` round-trips every field).
"""

from __future__ import annotations

from enum import Enum
from pathlib import PurePath
from typing import Any

from .redact import mask_env, redact_url

#: Maps whose values may be secret: stored and answered as their names only.
ENV_MAPS = ("extra_env", "container_env")


def setting_json(key: str, value: Any) -> Any:
    """One setting in its stored (and answered) JSON form."""
    if value is None:
        return None
    if key in ENV_MAPS:
        return mask_env(value) if value or key == "extra_env" else value
    if key == "git_remote_url":
        return redact_url(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "to_json"):  # a build: its table, the Dockerfile's path made explicit
        return value.to_json()
    if hasattr(value, "model_dump"):  # registry auth: the registry and the config file's path
        return value.model_dump(mode="json", exclude_none=True)
    return value


def settings_json(values: dict[str, Any]) -> dict[str, Any]:
    """Every setting in its stored JSON form (``None`` kept: the store shows what was not set)."""
    return {key: setting_json(key, value) for key, value in values.items()}


def request_value(key: str, value: Any) -> Any:
    """One setting as a create's JSON body carries it: the stored form, with CPU as ``"<millicores>m"``."""
    out = setting_json(key, value)
    return f"{int(out)}m" if key.startswith("cpu_") and out is not None else out


def request_json(values: dict[str, Any]) -> dict[str, Any]:
    """Settings as a create's JSON body (unset ones left out)."""
    return {key: request_value(key, value) for key, value in values.items() if value is not None}

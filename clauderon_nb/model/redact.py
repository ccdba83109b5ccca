"""Keeping secrets out of what we print, store and send: the one place that masks them."""

from __future__ import annotations

import re
from typing import Any, TypeGuard

SECRET_MASK = "***"

# scheme://user[:password]@host…  — the userinfo part is a credential (a token is often the user).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
_SECRET_WORDS = frozenset(
    ("PASSWORD", "PASSWD", "PASS", "PWD", "TOKEN", "SECRET", "KEY", "APIKEY", "IDENTITYTOKEN", "AUTH")
) | {"CREDENTIAL", "CREDENTIALS"}
_SECRET_SUFFIXES = ("_PAT", "_DSN", "_COOKIE", "_SESSION", "_CERT")


def redact_url(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://***@host/x``; other URLs unchanged."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{SECRET_MASK}@", url)


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``."""
    return _URL_USERINFO.sub(lambda m: m["scheme"], url)


def redact_text(text: str) -> str:
    """Mask credentials embedded in any URL inside ``text`` (errors, logs of git, JSON)."""
    return redact_url(text) if "@" in text else text


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a user or password."""
    return bool(_URL_USERINFO.search(url))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_env_name(name: object) -> TypeGuard[str]:
    """An environment variable (or build argument) name: ``ANTHROPIC_API_KEY``, ``NODE_VERSION``."""
    return isinstance(name, str) and _ENV_NAME.fullmatch(name) is not None


def looks_secret(name: str) -> bool:
    """A name that usually holds a secret, as an environment variable or a config key (any case):
    ``GITHUB_TOKEN``, ``password``, ``SMTP_PASS``, ``api_key``, ``identitytoken``, ``*PRIVATE_KEY*``, ``*_PAT``…"""
    upper = name.upper()
    parts = set(re.split(r"[_\-.]", upper))
    return (
        bool(parts & _SECRET_WORDS) or "PRIVATE_KEY" in upper or "API_KEY" in upper or upper.endswith(_SECRET_SUFFIXES)
    )


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """Every value masked: ``extra_env`` values are treated as possibly secret wherever they are shown."""
    return {name: SECRET_MASK for name in env}


def redact_json(value: Any) -> Any:
    """A JSON-like value with credentials in URLs masked, recursively."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_json(v) for v in value]
    return value

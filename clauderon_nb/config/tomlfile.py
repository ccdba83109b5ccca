"""Read a TOML file into a pydantic model with loud, one-line errors."""

from __future__ import annotations

import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, did_you_mean
from ..model.redact import looks_secret
from .cache import remember, stat_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

M = TypeVar("M", bound=BaseModel)

# Keys whose values name a secret (a Secret object, a variable, a file) rather than hold one.
_NAMES_A_SECRET = {
    "registry_auth",
    "env_from_secret",
    "image_pull_secrets",
    "pass_env",
    "pass_env_optional",
    "allowed_pass_env",
    "tolerations",  # Kubernetes scheduling data ("key" is a taint's key), never a secret
    "node_selector",
}


def display_path(path: Path) -> str:
    """``~/…`` for paths under the home directory, else the path."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError):
        return str(path)


#: Tables passed to the engine as they are (model/extra_config.py refuses env and volumes in them).
_ENGINE_TABLES = frozenset({"extra_container_config", "extra_pod_config"})


def _find_secret(data: Any, trail: tuple[str, ...] = ()) -> str | None:
    if isinstance(data, dict):
        for key, value in data.items():
            path = (*trail, str(key))
            if key in _ENGINE_TABLES:
                continue  # the engine's own structures ("key" of a toleration); env in them is refused
            if key in _NAMES_A_SECRET:
                if key == "registry_auth":
                    found = _find_secret(value, path)
                    if found:
                        return found
                continue
            if looks_secret(str(key)):
                return ".".join(path)
            found = _find_secret(value, path)
            if found:
                return found
    elif isinstance(data, list):
        for item in data:
            found = _find_secret(item, trail)
            if found:
                return found
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The sub-model that the error location points into."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0]
        if typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a file model as a dotted path (``image.registry_check``), tables included."""
    out: list[str] = []
    for name in model.model_fields:
        path = f"{prefix}{name}"
        out.append(path)
        inner = _model_at(model, (name,))
        if inner is not None and inner is not model:
            out += _key_paths(inner, f"{path}.")
    return out


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not isinstance(p, int))


def describe_file_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line for the first problem in a config file: key, value, reason, suggestion."""
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    key = _where(loc)
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), parent.model_fields if parent else [])
        if not hint:  # the right key in the wrong table: registry_check at the top instead of under [image]
            elsewhere = [p for p in _key_paths(model) if p.rsplit(".", 1)[-1] == str(loc[-1])]
            hint = f" (did you mean '{elsewhere[0]}'?)" if elsewhere else ""
        return f"unknown key '{key}'{hint}"
    ctx = err.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        msg = str(ctx["error"])
        section = _where(loc[:-1])
        return f"[{section}] {msg}" if section else msg
    return f"key '{key}': {err.get('msg', kind)}"


def _secret_hint(key: str) -> str:
    if key.startswith(("image", "registry")):
        return 'use `docker login`, or [image.registry_auth] config_file = "/path/config.json"'
    if key.startswith("k8s") or "secret" in key:
        return "name an existing Kubernetes Secret (image_pull_secrets, env_from_secret)"
    return "list the variable's name in an agent's pass_env; its value is read from your environment at create time"


def readable_file(path: Path, *, what: str, missing_ok: bool) -> bool:
    """True if ``path`` is a file we can read; False if absent (and ``missing_ok``).

    A file that is there but cannot be reached (a folder without permission, a
    directory in its place) is a ``ConfigError``: it is never treated as absent.
    """
    where = display_path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if missing_ok:
            return False
        raise ConfigError(f"{where}: no such file") from None
    except NotADirectoryError:
        return False if missing_ok else _raise(f"{where}: no such file")
    except PermissionError:
        raise ConfigError(
            f"{where}: cannot read {what} (permission denied on a folder above it); "
            "make it readable (e.g. chmod 755 on the folder, 644 on the file) or ask your administrator"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {what}: {exc.strerror or exc}") from None
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where}: {what} must be a regular file")
    if not os.access(path, os.R_OK):
        raise ConfigError(
            f"{where}: cannot read {what} (permission denied); make it readable (chmod 644) or ask your administrator"
        )
    return True


def _raise(message: str) -> bool:
    raise ConfigError(message)


def load_toml(path: Path, model: type[M]) -> M:
    """Parse ``path`` into ``model``; any problem is a ``ConfigError`` naming the file.

    Served from memory while the file is unchanged (``cache``).
    """
    key = stat_key(path)
    if key is None:
        return _load_toml(path, model)
    return remember(("toml", str(path), model, key), lambda: _load_toml(path, model))


def _load_toml(path: Path, model: type[M]) -> M:
    where = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    secret = _find_secret(data)
    if secret:
        raise ConfigError(
            f"{where}: key '{secret}' would hold an inline secret, which is never read from config files; "
            f"{_secret_hint(secret)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_file_error(exc, model)}") from None

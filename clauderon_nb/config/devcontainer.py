"""A repository's ``.devcontainer/devcontainer.json`` (or ``.devcontainer.json``) as a settings layer.

Taken: ``image`` or ``build`` (``dockerfile``, ``context``, ``args``, ``target``), ``containerEnv``,
``containerUser``/``remoteUser`` and ``postCreateCommand``. Every other key that changes the container
(``features``, ``mounts``, ``runArgs``, …) is listed once as ignored; editor-only keys (``name``,
``customizations``, …) are not about the container and are passed over quietly. The file is JSON with
comments and trailing commas, read with ``json5``. Like ``.clauderon.toml``, it is untrusted input.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..model.build import BuildConfig
from ..model.image import parse_image
from ..model.redact import is_env_name, looks_secret
from .cache import remember, stat_key
from .tomlfile import display_path, readable_file

CANDIDATES = (".devcontainer/devcontainer.json", ".devcontainer.json")
#: Keys about the editor or the file itself, not the container: neither used nor worth a note.
_EDITOR_KEYS = {
    "$schema",
    "name",
    "customizations",
    "extensions",
    "settings",
    "hostRequirements",
    "otherPortsAttributes",
    "portsAttributes",
    "forwardPorts",
    "shutdownAction",
    "waitFor",
    "userEnvProbe",
    "updateRemoteUserUID",
    "remoteEnv",
}
_USED = {"image", "build", "dockerFile", "context", "containerEnv", "containerUser", "remoteUser", "postCreateCommand"}
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?")
MAX_FILE = 1024 * 1024


@dataclass(frozen=True)
class Devcontainer:
    """What a devcontainer.json sets (request-field names), its path, and the keys it ignores."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return display_path(self.path) if self.path else ""

    def note(self) -> str | None:
        """The one line that lists what the file asks for and is not done here."""
        if not self.ignored:
            return None
        return (
            f"{self.where}: ignored (not supported by clauderon-nb): {', '.join(self.ignored)}; "
            "put what the session needs in the image or its Dockerfile"
        )


def find_devcontainer(repo_root: Path) -> Path | None:
    for name in CANDIDATES:
        path = repo_root / name
        if path.is_file():
            return path
    return None


def load_devcontainer(repo_root: Path) -> Devcontainer:
    """The repository's devcontainer.json as settings; a file that is there but wrong is a ``ConfigError``.
    Kept until the file changes (a form plans on every keystroke)."""
    path = find_devcontainer(repo_root)
    if path is None or not readable_file(path, what="the devcontainer file", missing_ok=True):
        return Devcontainer()
    return remember(("devcontainer", str(path), stat_key(path)), lambda: _load(repo_root, path))


def _load(repo_root: Path, path: Path) -> Devcontainer:
    where = display_path(path)
    if path.stat().st_size > MAX_FILE:
        raise ConfigError(f"{where}: larger than {MAX_FILE // 1024} KiB; not a devcontainer.json")
    import json5

    try:
        data = json5.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON with comments ({' '.join(str(exc).split())[:160]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a devcontainer.json") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object at the top level")
    folder = posixpath.dirname(path.relative_to(repo_root).as_posix())  # "" or ".devcontainer"
    values: dict[str, Any] = {}
    try:
        _take(data, folder, values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    ignored = tuple(sorted(k for k in data if k not in _USED and k not in _EDITOR_KEYS))
    if "remoteUser" in data and "containerUser" in data:
        ignored = tuple(sorted({*ignored, "remoteUser (containerUser wins)"}))
    return Devcontainer(path, values, ignored)


def _take(data: dict[str, Any], folder: str, values: dict[str, Any]) -> None:
    build = data.get("build")
    if build is None and "dockerFile" in data:  # the older spelling
        build = {"dockerfile": data["dockerFile"], "context": data.get("context", ".")}
    if build is not None:
        if not isinstance(build, dict):
            raise ValueError(f"build {build!r}: expected an object with dockerfile, context, args, target")
        values["build"] = _build(build, folder)
    if data.get("image") is not None:
        if "build" in values:
            raise ValueError("has both image and build; a dev container uses one")
        values["image"] = str(parse_image(data["image"], "image"))
    env = data.get("containerEnv")
    if env is not None:
        if not isinstance(env, dict) or not all(is_env_name(k) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("containerEnv: expected an object of variable names to text values")
        secret = next((k for k in env if looks_secret(k)), None)
        if secret is not None:
            raise ValueError(
                f"containerEnv.{secret}: looks like a secret, which clauderon-nb never takes from a repository's "
                "file; list the variable in an agent's pass_env (its value then comes from your environment)"
            )
        if any("${" in v for v in env.values()):
            bad = next(k for k, v in env.items() if "${" in v)
            raise ValueError(
                f"containerEnv.{bad}: uses a ${{…}} variable, which clauderon-nb does not expand; give the value"
            )
        values["container_env"] = dict(env)
    user = data.get("containerUser", data.get("remoteUser"))
    if user is not None:
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise ValueError(f"containerUser {user!r}: expected a user name or uid (optionally :group)")
        values["container_user"] = user
    command = data.get("postCreateCommand")
    if command is not None:
        values["post_create_command"] = post_create_argv(command)


def _build(build: dict[str, Any], folder: str) -> BuildConfig:
    """A devcontainer ``build`` (paths relative to the devcontainer.json) as repository-relative paths."""
    unknown = sorted(set(build) - {"dockerfile", "context", "args", "target", "cacheFrom", "options"})
    if unknown:
        raise ValueError(f"build.{unknown[0]}: not a devcontainer build key (dockerfile, context, args, target)")

    def rel(value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise ValueError(f"build.{what} {value!r}: expected a path")
        return posixpath.normpath(posixpath.join(folder, value)) if folder else value

    context = rel(build.get("context", "."), "context")
    fields: dict[str, Any] = {"context": context}
    if "dockerfile" in build:
        fields["dockerfile"] = rel(build["dockerfile"], "dockerfile")
    if "args" in build:
        fields["args"] = build["args"]
    if "target" in build:
        fields["target"] = build["target"]
    try:
        return BuildConfig.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def post_create_argv(command: Any) -> list[str]:
    """``postCreateCommand`` as one argv: a string runs in ``/bin/sh -c``, an array as is, an object's
    commands one after another (the spec runs them in parallel; here they run in order, and any failure
    fails the create)."""
    if isinstance(command, str) and command.strip():
        return ["/bin/sh", "-c", command]
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        return list(command)
    if isinstance(command, dict) and command:
        parts = []
        for name, item in command.items():
            if isinstance(item, str) and item.strip():
                parts.append(item)
            elif isinstance(item, list) and item and all(isinstance(c, str) for c in item):
                parts.append(shlex.join(item))
            else:
                raise ValueError(f"postCreateCommand.{name}: expected a command (text or a list of arguments)")
        return ["/bin/sh", "-c", " && ".join(f"( {p} )" for p in parts)]
    raise ValueError(f"postCreateCommand {command!r}: expected a command (text, a list of arguments, or an object)")

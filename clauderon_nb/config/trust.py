"""Workspace trust for a repository's ``.clauderon.toml`` and devcontainer.json.

A repository's files are untrusted input: when they choose the image (or a build), the agent, or
commands and variables of the container that would receive the user's credentials, the user confirms
them once per repository and per content (a hash of the files), as editors do for workspace trust. Any
change to either file asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .resolve import Resolution

TRUST_FILE = "trusted-repos.json"
#: Settings that choose what runs with the user's credentials: a repository's files need trust to set them.
TRUSTED_KEYS = ("image", "build", "agent", "post_create_command", "container_env", "container_user")
#: The sources that are a repository's own files.
REPO_SOURCES = ("repo", "devcontainer")


def repo_files(repo_root: Path) -> list[Path]:
    """The repository's own settings files that exist: ``.clauderon.toml``, then its devcontainer.json."""
    from .devcontainer import find_devcontainer

    found = [repo_root / ".clauderon.toml"] if (repo_root / ".clauderon.toml").is_file() else []
    dev = find_devcontainer(repo_root)
    return found + ([dev] if dev else [])


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_hash(repo_root: Path, files: list[Path]) -> str:
    """One hash of the files' names and contents (a lone .clauderon.toml: its own hash, as before)."""
    if len(files) == 1 and files[0].name == ".clauderon.toml":
        return file_hash(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(repo_root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _load(home: Path) -> dict[str, str]:
    path = home / TRUST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the list of trusted repositories ({exc}); remove the file") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def is_trusted(home: Path, repo_root: Path) -> bool:
    files = repo_files(repo_root)
    return bool(files) and _load(home).get(str(repo_root.resolve())) == files_hash(repo_root, files)


def trust_files(home: Path, repo_root: Path) -> str:
    """Trust the current content of a repository's ``.clauderon.toml`` and devcontainer.json (a broken file
    is refused, not trusted); a one-line summary."""
    from .devcontainer import load_devcontainer
    from .files import load_repo_config

    files = repo_files(repo_root)
    if not files:
        return f"{repo_root} has no .clauderon.toml or devcontainer.json: nothing to trust"
    load_repo_config(repo_root)
    load_devcontainer(repo_root)
    digest = trust(home, repo_root)
    names = " and ".join(str(p) for p in files)
    return f"Trusted {names} (sha256 {digest[:12]}); any change to {'them' if len(files) > 1 else 'it'} asks again."


def trust(home: Path, repo_root: Path) -> str:
    """Record the current content of the repository's files as trusted; returns their hash."""
    data = _load(home)
    digest = files_hash(repo_root, repo_files(repo_root))
    data[str(repo_root.resolve())] = digest
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{TRUST_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, home / TRUST_FILE)
    return digest


def options_refusal(home: Path, repo_root: Path, res: Resolution) -> str | None:
    """For a preset the service applies: the repository's own files choosing its options (which may pick the
    image that gets your credentials) need trust, as choosing the image does."""
    if res.sources.get("preset_options") not in REPO_SOURCES or is_trusted(home, repo_root):
        return None
    files = " and ".join(p.relative_to(repo_root).as_posix() for p in repo_files(repo_root))
    chosen = ", ".join(f"{k}={v}" for k, v in (res.settings.preset_options or {}).items())
    return (
        f"the repository's {files} chooses the options {chosen} of the service's preset "
        f"{res.settings.preset!r}, which may pick what receives your credentials; review it, then trust it once "
        f"with `clauderon-nb trust {shlex.quote(str(repo_root))}` (or %clauderon trust), or override it with flags"
    )


def trust_refusal(
    home: Path, repo_root: Path, res: Resolution, *, secret_env: Sequence[str] = (), to_service: bool = False
) -> str | None:
    """The one trust decision. When the repository's own files choose what runs with the user's credentials
    (``TRUSTED_KEYS``; and ``backend`` when it puts the agent on this machine), and it would get them, a
    line saying so and how to trust the files; None when nothing is at stake or the user trusted this
    content. ``secret_env``: the credentials the agent would get here; ``to_service``: the service adds
    its own (every chosen key is at stake)."""
    from ..model.choices import Backend
    from ..model.display import show_value

    chosen = [k for k in TRUSTED_KEYS if res.sources.get(k) in REPO_SOURCES]
    if res.sources.get("preset_options") in REPO_SOURCES and res.sources.get("image") == "preset":
        chosen.append("image")  # the repository chose the preset's image through its options (a free value)
    on_host = not to_service and res.sources.get("backend") == "repo" and res.settings.backend is Backend.LOCAL
    if on_host:
        chosen.append("backend")
    gets = []
    if to_service:
        gets.append("would receive your credentials")
    elif secret_env:
        gets.append(f"would receive your credentials ({', '.join(secret_env)})")
    if on_host:
        gets.append("would run the agent on this machine as you, outside any container")
    if not chosen or not gets or is_trusted(home, repo_root):
        return None
    what = ", ".join(f"{k} {show_value(k, getattr(res.settings, k))!r}" for k in chosen)
    files = " and ".join(p.relative_to(repo_root).as_posix() for p in repo_files(repo_root))
    return (
        f"the repository's {files} chooses {what}, which {' and '.join(gets)}; review it, then "
        f"trust it once with `clauderon-nb trust {shlex.quote(str(repo_root))}` (or %clauderon trust), "
        "or override it with flags"
    )

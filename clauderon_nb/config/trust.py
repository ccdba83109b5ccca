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
from pathlib import Path

from ..errors import ConfigError

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

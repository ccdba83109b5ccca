"""Workspace trust for a repository's ``.clauderon.toml``.

A repository's file is untrusted input: when it chooses the image or the agent
that would receive the user's credentials, the user confirms it once per
repository and per content (a hash of the file), as editors do for workspace
trust. Any change to the file asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import ConfigError

TRUST_FILE = "trusted-repos.json"
#: Keys of ``.clauderon.toml`` that choose what runs with the user's credentials.
TRUSTED_KEYS = ("image", "agent")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(home: Path) -> dict[str, str]:
    path = home / TRUST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the list of trusted repositories ({exc}); remove the file") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def is_trusted(home: Path, repo_root: Path, config: Path) -> bool:
    return _load(home).get(str(repo_root.resolve())) == file_hash(config)


def trust(home: Path, repo_root: Path, config: Path) -> str:
    """Record the current content of ``config`` as trusted; returns its hash."""
    data = _load(home)
    digest = file_hash(config)
    data[str(repo_root.resolve())] = digest
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{TRUST_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, home / TRUST_FILE)
    return digest

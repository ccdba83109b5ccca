"""Which deployment engine objects belong to: an id made once per store (a laptop's ``CLAUDERON_HOME``, a
service's data folder) and put on every container and pod as ``clauderon.io/deployment``.

Two deployments on one engine (a staging and a production hub, two users' laptops with one daemon)
then never take each other's containers for orphans of their own: ``list``, orphan detection and
``delete`` consider only objects with their own id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ClauderonError

FILE = "deployment-id"
_ID = re.compile(r"[0-9a-f]{16}")
_known: dict[str, str] = {}


def deployment_id(home: Path, create: bool = True) -> str:
    """The store's deployment id, made on first use (``<home>/deployment-id``); ``create`` False: "" when
    it has not been made yet (a dry run makes nothing)."""
    key = str(home)
    if key in _known:
        return _known[key]
    path = home / FILE
    found = _read(path)
    if found is None and not create:
        return ""
    if found is None:
        import secrets

        made = secrets.token_hex(8)
        tmp = home / f".{FILE}.{made}"
        try:
            home.mkdir(parents=True, exist_ok=True)
            tmp.write_text(made + "\n")
            try:
                os.link(tmp, path)  # whole or not at all: a reader never sees it half-written
                found = made
            except FileExistsError:  # another process made it first: use theirs
                found = _read(path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ClauderonError(
                f"cannot create {path} ({(exc.strerror or str(exc)).lower()}); set CLAUDERON_HOME to a folder of "
                "your own"
            ) from None
    if found is None:
        raise ClauderonError(f"{path}: not a deployment id (16 hex digits); remove the file")
    _known[key] = found
    return found


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text if _ID.fullmatch(text) else None

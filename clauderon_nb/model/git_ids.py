"""Git object ids: the one rule for a full commit hash (SHA-1, or SHA-256 repositories)."""

from __future__ import annotations

import re
from typing import TypeGuard

#: A full object id: 40 lowercase hex digits (SHA-1) or 64 (SHA-256).
OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def is_commit_hash(value: object) -> TypeGuard[str]:
    """A full commit hash (never an abbreviation, a ref name or anything with spaces or a newline)."""
    return isinstance(value, str) and OBJECT_ID.fullmatch(value) is not None

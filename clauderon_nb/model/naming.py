"""Names that are valid everywhere: DNS-1123 labels, label values, branches."""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

MAX_NAME = 40  # before the "-xxxx" suffix
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def slugify(text: str, limit: int = MAX_NAME) -> str:
    """Lowercase DNS-1123 slug of ``text`` (may be empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def name_from_prompt(prompt: str) -> str:
    """A session name from the first words of a prompt plus ``-`` and 4 random characters."""
    words = re.findall(r"[A-Za-z0-9]+", prompt)[:6]
    base = slugify(" ".join(words)) or "session"
    return f"{base}-{random_suffix()}"


def stable_name(prompt: str, context: str) -> str:
    """The name a dry run shows and the create that follows uses: the prompt's words plus 4 characters
    derived from the prompt and ``context`` (owner, repository, commit); a create falls back to random
    suffixes only if that name is taken by then."""
    import hashlib

    words = re.findall(r"[A-Za-z0-9]+", prompt)[:6]
    base = slugify(" ".join(words)) or "session"
    digest = int.from_bytes(hashlib.sha256(f"{context}\0{prompt}".encode(errors="surrogatepass")).digest()[:8], "big")
    suffix = "".join(_SUFFIX_ALPHABET[(digest >> (6 * i)) % len(_SUFFIX_ALPHABET)] for i in range(4))
    return f"{base}-{suffix}"


def object_name(name: str, owner: str) -> str:
    """The container or pod name of a session: ``clauderon-<name>-<6 hex of the owner>``.

    Session names are per user; on an engine shared by several users two of them may
    pick the same name, so the engine's name carries a short hash of the owner and one
    user's create can never collide with (or reveal) another user's container.
    """
    import hashlib

    return f"clauderon-{name}-{hashlib.sha256(owner.encode(errors='surrogatepass')).hexdigest()[:6]}"


def owner_folder(owner: str) -> str:
    """A folder name for ``owner`` that no other owner maps to (slug plus a hash of the exact name)."""
    import hashlib

    digest = hashlib.sha256(owner.encode(errors="surrogatepass")).hexdigest()[:16]
    return f"{slugify(owner, 20) or 'u'}-{digest}"


def workspace_root(home: Path, owner: str, shared: bool) -> Path:
    """The folder of an owner's session workspaces; on the shared service a folder per owner (names are
    per owner)."""
    if not shared:
        return home / "workspaces"
    return home / "workspaces" / owner_folder(owner)


def random_suffix() -> str:
    import secrets

    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(4))


def is_dns_label(value: str) -> bool:
    return bool(_DNS_LABEL.match(value))


def label_safe(value: str) -> str:
    """A Kubernetes/Docker label value for ``value``; escaped values carry a hash so they stay unique."""
    if _LABEL_VALUE.match(value) and value:
        return value
    import hashlib

    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")[:54].rstrip("-_.")
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"u-{digest}"


def current_owner() -> str:
    """``$JUPYTERHUB_USER`` when set, else the OS user."""
    hub = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub:
        return hub
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (e.g. a container uid)
        return f"uid-{os.getuid()}"

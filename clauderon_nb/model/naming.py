"""Names that are valid everywhere: DNS-1123 labels, label values, branches."""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_NAME = 40  # before the "-xxxx" suffix
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
#: Every label and annotation clauderon puts on an engine object starts with it.
LABEL_PREFIX = "clauderon.io/"
#: Where a session's workspace is inside its container or pod.
WORKSPACE = "/workspace"


def slugify(text: str, limit: int = MAX_NAME) -> str:
    """Lowercase DNS-1123 slug of ``text`` (may be empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def short_hash(value: str, digits: int = 8) -> str:
    """``digits`` hex of a hash of the exact value (any string, lone surrogates included)."""
    import hashlib

    return hashlib.sha256(value.encode(errors="surrogatepass")).hexdigest()[:digits]


def safe_slug(value: str, limit: int = 63, valid: re.Pattern[str] | None = None) -> str:
    """The package's one rule for a name made from someone's input, after KubeSpawner's safe slugs.

    A value that is already valid (a DNS label unless ``valid`` says otherwise), at most ``limit``
    characters long and without ``--`` is used as it is. Any other becomes its lowercase slug, ``--`` and
    8 hex of a hash of the exact value. A value of the first kind never holds ``--`` and one of the second
    always does, so two different values never share a slug (``Jane.Doe`` and ``jane-doe--<hash>``
    included), and the result is always valid, lowercase-safe and at most ``limit`` characters.
    """
    if (valid or _DNS_LABEL).match(value) and value and len(value) <= limit and "--" not in value:
        return value
    base = slugify(value, max(limit - 10, 1)).strip("-")
    return f"{base}--{short_hash(value)}" if base else f"x--{short_hash(value)}"


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
    return f"clauderon-{name}-{short_hash(owner, 6)}"


def owner_folder(owner: str) -> str:
    """A folder name for ``owner`` that no other owner maps to (slug plus a hash of the exact name)."""
    return f"{slugify(owner, 20) or 'u'}-{short_hash(owner, 16)}"


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
    """A Kubernetes/Docker label value for ``value`` (``safe_slug``: a valid value without ``--`` is itself)."""
    return safe_slug(value, 63, _LABEL_VALUE)


def owner_labels(owner: str) -> frozenset[str]:
    """The owner labels that are ``owner``'s: as ``label_safe`` writes it, and as versions before 0.9 wrote a
    name that needed escaping (``Jane.Doe@x`` -> ``Jane.Doe-x-<8 hex>``), so that sessions made before an
    upgrade are still found. Work it out once per owner, then test each object's label against it."""
    labels = {label_safe(owner)}
    if not _LABEL_VALUE.match(owner):
        cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", owner).strip("-_.")[:54].rstrip("-_.")
        labels.add(f"{cleaned or 'u'}-{short_hash(owner)}")
    return frozenset(labels)


def owner_label_matches(label: object, owner: str) -> bool:
    """Whether an object's owner label is ``owner``'s (``owner_labels``)."""
    return label in owner_labels(owner)


def current_owner() -> str:
    """``$JUPYTERHUB_USER`` when set, else the OS user."""
    hub = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub:
        return hub
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # as getpass.getuser, without its terminal imports
        user = os.environ.get(name)
        if user:
            return user
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (e.g. a container uid)
        return f"uid-{os.getuid()}"

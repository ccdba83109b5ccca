"""Container image references: the full Docker reference grammar.

``[registry[:port]/]path[:tag][@algo:hex]``. The first component is a registry
only if it contains ``.`` or ``:`` or is ``localhost``. Familiar names are
normalised (``ubuntu`` -> ``docker.io/library/ubuntu:latest``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRIES = {"index.docker.io", "registry-1.docker.io"}
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$", re.ASCII)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", re.ASCII)
_DIGESTS = {"sha256": 64, "sha384": 96, "sha512": 128}
_FORBIDDEN = re.compile(r"[\s;&|$`'\"\\<>(){}*?!#~%^,=+]")
MAX_NAME = 255

IMAGE_HELP = "[registry[:port]/]path[:tag][@sha256:<64 hex>], e.g. ubuntu:24.04 or ghcr.io/org/dev:1"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; ``str(ref)`` is the canonical form."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest (what a pull takes)."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """Short form as ``docker images`` prints it (``ubuntu:latest``)."""
        name = self.repository.removeprefix("library/") if self.registry == DEFAULT_REGISTRY else self.name
        out = name + (f":{self.tag}" if self.tag else "")
        return out + (f"@{self.digest}" if self.digest else "")

    @property
    def pull_tag(self) -> str:
        """The tag or digest to ask the registry for."""
        return self.digest or self.tag or "latest"


#: The repository path under which clauderon tags the images it builds (``localhost/clauderon-build/…``).
BUILD_REPOSITORY = "clauderon-build"


def is_built_image(image: str) -> bool:
    """Whether ``image`` (canonical) is one clauderon built: a ``clauderon-build`` component in its path."""
    path = image.split("@", 1)[0].split("/")[1:-1] if "/" in image else []
    return BUILD_REPOSITORY in path or image.startswith(f"{BUILD_REPOSITORY}/")


def is_host(text: str) -> bool:
    """A registry host as image references allow it: DNS names or an IPv6 literal, an optional port
    (never ``..``, a slash or an empty part: safe to name a folder after)."""
    return bool(_HOST.match(text))


def is_registry_host(first: str) -> bool:
    """Docker's rule for a reference's first part: a registry when it holds ``.`` or ``:`` or is ``localhost``
    (``ghcr.io``, ``127.0.0.1:5000``), else a path on Docker Hub (``library``, ``team``)."""
    return "." in first or ":" in first or first == "localhost"


def normalize_registry(host: str) -> str:
    """One spelling per registry: a URL becomes its host, and Docker Hub's aliases become ``docker.io``.

    The case of other hosts is kept, as Docker keeps it; compare hosts with ``same_registry``.
    """
    host = host.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return DEFAULT_REGISTRY if host.lower() in (*_LEGACY_REGISTRIES, DEFAULT_REGISTRY) else host


def same_registry(a: str, b: str) -> bool:
    """Whether two registry spellings name one registry (host names are case-insensitive)."""
    return normalize_registry(a).lower() == normalize_registry(b).lower()


def parse_image(value: object, field: str = "image") -> ImageRef:
    """Parse and normalise an image reference; ``ValueError`` names the bad part."""
    if not isinstance(value, str):
        raise ValueError(f"{field} of type {type(value).__name__}: expected {IMAGE_HELP}")
    text = value.strip()
    bad = f"{field} {value!r}"
    if not text:
        raise ValueError(f"{field} '': empty; expected {IMAGE_HELP}")
    forbidden = _FORBIDDEN.search(text)
    if forbidden:
        raise ValueError(f"{bad}: character {forbidden.group()!r} is not allowed in an image reference")

    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        algo, _, hexpart = digest.partition(":")
        want = _DIGESTS.get(algo)
        if want is None or len(hexpart) != want or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise ValueError(f"{bad}: digest must be sha256:<64 lowercase hex digits>, got {digest!r}")

    registry, path = DEFAULT_REGISTRY, rest
    first, slash, remainder = rest.partition("/")
    if slash and is_registry_host(first):
        if not _HOST.match(first):
            raise ValueError(f"{bad}: invalid registry host {first!r}")
        port = re.search(r":([0-9]+)$", first)
        if port and not 0 < int(port.group(1)) <= 65535:
            raise ValueError(f"{bad}: registry port {port.group(1)} is not between 1 and 65535")
        registry, path = first, remainder

    tag = None
    if ":" in path:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ValueError(
                f"{bad}: tag must be at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-': {tag!r}"
            )
    if not path:
        raise ValueError(f"{bad}: repository path is empty; expected {IMAGE_HELP}")
    if path != path.lower():
        raise ValueError(f"{bad}: repository path must be lowercase: {path!r}")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            raise ValueError(
                f"{bad}: invalid path component {component!r} (lowercase letters and digits, "
                "separated by '.', '_', '__' or '-')"
            )
    full_name = f"{registry}/{path}" if registry != DEFAULT_REGISTRY or "/" in path else path
    if len(full_name) > MAX_NAME:
        raise ValueError(f"{bad}: name is longer than {MAX_NAME} characters")

    registry = normalize_registry(registry)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > MAX_NAME:  # the engine checks the canonical name, not the short one
        raise ValueError(f"{bad}: name is longer than {MAX_NAME} characters in its full form {registry}/{path}")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


__all__ = [
    "DEFAULT_REGISTRY",
    "IMAGE_HELP",
    "MAX_NAME",
    "ImageRef",
    "normalize_registry",
    "parse_image",
    "same_registry",
]

"""Is the session's image there? One fast answer before anything is made, for both backends.

The registry is asked with the Registry HTTP API v2 (a manifest HEAD, with the user's credentials):
a missing tag, a missing repository, refused credentials and an unreachable registry are four
different one-line errors that name the image. ``registry_check = false`` turns the registry
request off (offline, air-gapped); the engine then finds out as it pulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model.image import parse_image
from .registry import Manifest, RegistryError, client_for

if TYPE_CHECKING:
    from ..config.files import RegistryAuth

STEP = "check image"


@dataclass(frozen=True)
class ImageCheck:
    """What the check found, as the dry run says it."""

    image: str
    found: str  # local, registry, built, build, unchecked
    digest: str | None = None
    detail: str = ""

    def line(self) -> str:
        """``found in registry, digest sha256:…; create pulls it`` and the like."""
        head = {"local": "present locally", "registry": "found in registry"}.get(self.found)
        if head is None:  # built, build, unchecked: the detail says it all
            return self.detail + (f", digest {self.digest}" if self.digest else "")
        label = "image id" if self.found == "local" else "digest"
        return head + (f", {label} {self.digest}" if self.digest else "") + (f"; {self.detail}" if self.detail else "")


def in_registry(image: str, auth: RegistryAuth | None = None) -> Manifest:
    """The manifest of ``image`` in its registry; a ``RegistryError`` naming the image otherwise."""
    ref = parse_image(image)
    try:
        client = client_for(ref.registry, auth.config_file if auth else None, auth.registry if auth else None)
        return client.manifest(ref.repository, ref.pull_tag)
    except RegistryError as exc:
        raise RegistryError(exc.kind, f"image {image}: {exc.detail}", step=STEP) from None

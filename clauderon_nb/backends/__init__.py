"""Session backends: Docker, Kubernetes and local processes behind one protocol (``base``).

Each module imports its client library only when used. May import: ``render``, ``repos``,
``config``, ``model`` and ``errors`` — never ``sessions`` or ``frontends``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import SessionBackend


def get_backend(name: str) -> SessionBackend:
    """A backend instance by name (``docker``, ``kubernetes``, ``local``)."""
    if name == "docker":
        from .docker import DockerBackend

        return DockerBackend()
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "kubernetes":
        from .kubernetes import KubernetesBackend

        return KubernetesBackend()
    raise ValueError(f"backend {name!r}: expected one of docker, kubernetes, local")

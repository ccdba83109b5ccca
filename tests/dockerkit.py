"""Real Docker test infrastructure: tiny images, a password-protected registry, cleanup.

Images are built from the host's static busybox (and git with its libraries),
imported through the SDK; the registry is Debian's docker-registry on a free
loopback port with an htpasswd file. Everything made here is removed again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest_paths import clauderon_demo as demo

RUN = uuid.uuid4().hex[:8]
IMAGE_PREFIX = f"clauderon-test-{RUN}"


def need(reason: str) -> None:
    """Skip (on a laptop) or fail (under CI=true) when real infrastructure is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Registry:
    host: str
    user: str
    password: str

    def config_json(self, directory: Path, password: str | None = None) -> Path:
        """A Docker config.json holding this registry's credentials."""
        return demo.docker_config_json(directory, self.host, self.user, password or self.password)


class Kit:
    """Builds and pushes test images; remembers everything to remove it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.images: set[str] = set()

    def build(self, name: str, version: str = "1", with_git: bool = False) -> str:
        ref = f"{IMAGE_PREFIX}/{name}:{version}"
        try:
            demo.build_image(self.client, ref, f"{name}:{version}:{uuid.uuid4().hex}", with_git)
        except FileNotFoundError as exc:
            need(f"{exc} is not installed (apt-get install busybox-static git)")
        self.images.add(ref)
        return ref

    def push(self, local: str, registry: Registry, name: str, tag: str, keep_local: bool = True) -> str:
        """Push ``local`` as ``registry/prefix/name:tag``; ``keep_local=False`` removes both local tags,
        so a later pull has to download the layers."""
        repo = f"{registry.host}/{IMAGE_PREFIX}/{name}"
        self.client.api.tag(local, repo, tag)
        self.images.add(f"{repo}:{tag}")
        auth = {"username": registry.user, "password": registry.password}
        for event in self.client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
            assert "error" not in event, event
        if not keep_local:
            self.forget_local(f"{repo}:{tag}")
            self.forget_local(local)
        return f"{repo}:{tag}"

    def image_id(self, ref: str) -> str | None:
        import docker

        try:
            return str(self.client.api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None

    def forget_local(self, ref: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(ref, force=True)

    def cleanup(self) -> None:
        import docker

        for ref in sorted(self.images):
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.api.remove_image(ref, force=True)
        for image in self.client.api.images(filters={"dangling": True}):
            with contextlib.suppress(docker.errors.DockerException):
                self.client.api.remove_image(image["Id"], force=True)


def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        need(f"no Docker engine reachable ({type(exc).__name__}: {str(exc)[:120]})")
    return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(workdir: Path) -> Iterator[Registry]:
    try:
        started = demo.DemoRegistry.start(workdir)
    except FileNotFoundError as exc:
        need(f"{exc} is not installed")
    except RuntimeError as exc:
        need(str(exc))
    try:
        yield Registry(host=started.host, user=started.user, password=started.password)
    finally:
        started.stop()

"""Real Docker test infrastructure: tiny images, a password-protected registry, cleanup.

Images are built from the host's static busybox (and git with its libraries),
imported through the SDK; the registry is Debian's docker-registry on a free
loopback port with an htpasswd file. Everything made here is removed again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
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
        directory.mkdir(parents=True, exist_ok=True)
        token = base64.b64encode(f"{self.user}:{password or self.password}".encode()).decode()
        path = directory / "config.json"
        path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
        return path


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
    binary = shutil.which("docker-registry")
    htpasswd = shutil.which("htpasswd")
    if binary is None or htpasswd is None:
        need("docker-registry or htpasswd is not installed (apt-get install docker-registry apache2-utils)")
    assert binary is not None and htpasswd is not None
    user, password = "clauderon", secrets.token_urlsafe(16)
    users = workdir / "htpasswd"
    users.write_text(
        subprocess.run([htpasswd, "-Bbn", user, password], capture_output=True, text=True, check=True).stdout
    )
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: clauderon-test\n    path: {users}\n"
    )
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            pass
        if proc.poll() is not None:
            need(f"docker-registry did not start: {(workdir / 'registry.log').read_text()[-300:]}")
        yield Registry(host=f"127.0.0.1:{port}", user=user, password=password)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

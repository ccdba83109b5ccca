"""Render a session spec as the keyword arguments of docker-py's ``containers.create``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .spec import SECRET_MASK, WORKSPACE, SessionSpec
from .units import docker_cpu_shares, docker_nano_cpus


def render_docker(spec: SessionSpec, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``containers.create(**kwargs)``. Secret values are masked unless ``secrets`` supplies them."""
    s = spec.settings
    environment = dict(spec.env)
    for name in spec.secret_env:
        environment[name] = secrets[name] if secrets is not None else SECRET_MASK
    kwargs: dict[str, Any] = {
        "image": s.image,
        "command": list(spec.command),
        "name": spec.object_name,
        "hostname": spec.name,
        "labels": dict(spec.labels),
        "environment": environment,
        "working_dir": WORKSPACE,
        "user": f"{spec.uid}:{spec.gid}",
        "init": True,
        "tty": True,
        "stdin_open": True,
        "network_mode": s.network,
        "volumes": {
            str(spec.worktree): {"bind": WORKSPACE, "mode": "rw"},
            # The worktree's .git file points into the repository's .git directory.
            str(spec.git_common_dir): {"bind": str(spec.git_common_dir), "mode": "rw"},
        },
    }
    if s.cpu_limit is not None:
        kwargs["nano_cpus"] = docker_nano_cpus(s.cpu_limit)
    if s.memory_limit is not None:
        kwargs["mem_limit"] = s.memory_limit
    if s.cpu_request is not None:
        kwargs["cpu_shares"] = docker_cpu_shares(s.cpu_request)
    if s.memory_request is not None:
        kwargs["mem_reservation"] = s.memory_request
    return kwargs

"""Render a session spec as the keyword arguments of docker-py's ``containers.create``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model.extra_config import merge
from ..model.naming import WORKSPACE
from ..model.redact import SECRET_MASK
from ..model.units import docker_cpu_shares, docker_nano_cpus
from .spec import SessionSpec, container_command, container_environment


def workspace_volumes(spec: SessionSpec) -> dict[str, dict[str, str]]:
    """The session's own workspace at /workspace, and nothing else of the host: the user's repository
    (and the service's copy of it) is never mounted."""
    return {str(spec.workspace): {"bind": WORKSPACE, "mode": "rw"}}


def render_docker(spec: SessionSpec, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``containers.create(**kwargs)``. Secret values are masked unless ``secrets`` supplies them."""
    s = spec.settings
    environment = container_environment(spec)
    for name in spec.secret_env:
        environment[name] = secrets[name] if secrets is not None else SECRET_MASK
    kwargs: dict[str, Any] = {
        "image": s.image,
        "command": container_command(spec),
        "name": spec.object_name,
        "hostname": spec.name,
        "labels": dict(spec.labels),
        "environment": environment,
        "working_dir": WORKSPACE,
        "user": s.container_user or f"{spec.uid}:{spec.gid}",
        "init": True,
        # Whatever the image asks: no capabilities, and no process may gain privileges (setuid binaries).
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "tty": True,
        "stdin_open": True,
        "network_mode": s.network,
        "volumes": workspace_volumes(spec),
    }
    if s.cpu_limit is not None:
        kwargs["nano_cpus"] = docker_nano_cpus(s.cpu_limit)
    if s.memory_limit is not None:
        kwargs["mem_limit"] = s.memory_limit
    if s.cpu_request is not None:
        kwargs["cpu_shares"] = docker_cpu_shares(s.cpu_request)
    if s.memory_request is not None:
        kwargs["mem_reservation"] = s.memory_request
    if s.pids_limit is not None:
        kwargs["pids_limit"] = s.pids_limit
    if s.gpus:  # docker-py turns each dict into a DeviceRequest (-1: every GPU)
        kwargs["device_requests"] = [{"count": s.gpus, "capabilities": [["gpu"]]}]
    if s.extra_container_config:  # the admin's, checked against the policy (model/extra_config.py)
        kwargs = merge(kwargs, s.extra_container_config)
    return kwargs

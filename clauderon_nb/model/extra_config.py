"""Extra engine configuration an admin adds without forking: ``extra_container_config`` (Docker's create
arguments; the Kubernetes agent container's fields) and ``extra_pod_config`` (the pod spec's fields).

Three kinds of key: ones clauderon sets from a setting of its own (refused, naming the setting to use);
ones that would loosen containment (privileged, capabilities, host mounts, host networking and
namespaces, devices, security options, root): refused unless the admin policy names their gate in
``allow_extra_config``; and the rest, merged as given. An unknown key is refused with one line.
"""

from __future__ import annotations

import copy
from typing import Any

#: What a loosening key is gated by, as ``allow_extra_config`` names it.
GATES = ("privileged", "capabilities", "host_mounts", "host_network", "host_namespaces", "devices", "security", "root")

#: docker-py's ``create_container`` arguments (the container's own config).
DOCKER_CONTAINER_KEYS = frozenset(
    {
        "image", "command", "hostname", "user", "detach", "stdin_open", "tty", "ports", "environment", "volumes",
        "network_disabled", "name", "entrypoint", "working_dir", "domainname", "mac_address", "labels",
        "stop_signal", "healthcheck", "stop_timeout", "runtime", "platform",
    }
)  # fmt: skip
#: docker-py's ``create_host_config`` arguments (the engine API's HostConfig).
DOCKER_HOST_KEYS = frozenset(
    {
        "binds", "port_bindings", "lxc_conf", "publish_all_ports", "links", "privileged", "dns", "dns_search",
        "volumes_from", "network_mode", "restart_policy", "cap_add", "cap_drop", "devices", "extra_hosts",
        "read_only", "pid_mode", "ipc_mode", "security_opt", "ulimits", "log_config", "mem_limit", "memswap_limit",
        "mem_reservation", "kernel_memory", "mem_swappiness", "cgroup_parent", "group_add", "cpu_quota",
        "cpu_period", "blkio_weight", "blkio_weight_device", "device_read_bps", "device_write_bps",
        "device_read_iops", "device_write_iops", "oom_kill_disable", "shm_size", "sysctls", "tmpfs",
        "oom_score_adj", "dns_opt", "cpu_shares", "cpuset_cpus", "userns_mode", "uts_mode", "pids_limit",
        "isolation", "auto_remove", "storage_opt", "init", "init_path", "volume_driver", "cpu_count",
        "cpu_percent", "nano_cpus", "cpuset_mems", "mounts", "cpu_rt_period", "cpu_rt_runtime",
        "device_cgroup_rules", "device_requests", "cgroupns",
    }
)  # fmt: skip
#: Docker keys clauderon sets from its own settings: the setting to use instead.
DOCKER_OWNED = {
    "image": "image",
    "command": "the agent's command (config.toml [agents.NAME])",
    "entrypoint": "the agent's command (config.toml [agents.NAME])",
    "name": "the session's name",
    "hostname": "the session's name",
    "labels": "nothing: clauderon's labels find the container again",
    "environment": "extra_env, or an agent's pass_env",
    "user": "run_as_user (root only where the policy says allow_root = true)",
    "working_dir": "nothing: the workspace is /workspace",
    "detach": "nothing",
    "stdin_open": "nothing",
    "tty": "nothing",
    "volumes": "nothing: the session's workspace is its only mount",
    "binds": "nothing: the session's workspace is its only mount",
    "network_mode": "network (bounded by the policy's allowed_networks)",
    "network_disabled": "network = 'none'",
    "mem_limit": "memory_limit",
    "mem_reservation": "memory_request",
    "memswap_limit": "memory_limit",
    "nano_cpus": "cpu_limit",
    "cpu_quota": "cpu_limit",
    "cpu_period": "cpu_limit",
    "cpu_count": "cpu_limit",
    "cpu_percent": "cpu_limit",
    "cpu_shares": "cpu_request",
    "pids_limit": "pids_limit (bounded by the policy's max_pids)",
    "device_requests": "gpus",
    "auto_remove": "nothing: delete removes the container",
    "init": "nothing",
}
#: Docker keys that loosen containment, by gate.
DOCKER_GATED = {
    "privileged": "privileged",
    "cap_add": "capabilities",
    "cap_drop": "capabilities",
    "mounts": "host_mounts",
    "volumes_from": "host_mounts",
    "volume_driver": "host_mounts",
    "pid_mode": "host_namespaces",
    "ipc_mode": "host_namespaces",
    "uts_mode": "host_namespaces",
    "userns_mode": "host_namespaces",
    "cgroupns": "host_namespaces",
    "links": "host_network",
    "port_bindings": "host_network",
    "publish_all_ports": "host_network",
    "ports": "host_network",
    "devices": "devices",
    "device_cgroup_rules": "devices",
    "security_opt": "security",
    "cgroup_parent": "security",
    "oom_kill_disable": "security",
    "lxc_conf": "security",
    "runtime": "security",
    "sysctls": "security",
    "init_path": "security",
}

#: Pod spec fields clauderon sets from its own settings.
POD_OWNED = {
    "containers": "extra_container_config (the agent container's fields)",
    "initContainers": "nothing: the workspace fetch is clauderon's",
    "ephemeralContainers": "nothing",
    "restartPolicy": "nothing",
    "serviceAccountName": "service_account",
    "serviceAccount": "service_account",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "priorityClassName": "priority_class_name",
    "imagePullSecrets": "image_pull_secrets",
    "nodeName": "node_selector",
}
POD_GATED = {
    "hostNetwork": "host_network",
    "hostPID": "host_namespaces",
    "hostIPC": "host_namespaces",
    "shareProcessNamespace": "host_namespaces",
    "automountServiceAccountToken": "security",
    "securityContext": "root",
}
#: The agent container's fields clauderon sets.
CONTAINER_OWNED = {
    "name": "nothing",
    "image": "image",
    "imagePullPolicy": "pull_policy",
    "command": "the agent's command (config.toml [agents.NAME])",
    "args": "the agent's command (config.toml [agents.NAME])",
    "env": "extra_env, or an agent's pass_env",
    "envFrom": "an agent's env_from_secret",
    "resources": "cpu_limit, memory_limit, cpu_request, memory_request, gpus",
    "workingDir": "nothing: the workspace is /workspace",
    "stdin": "nothing",
    "tty": "nothing",
}
CONTAINER_GATED = {"securityContext": "security", "volumeDevices": "devices", "ports": "host_network"}


def _refusal(key: str, where: str, owned: dict[str, str], known: frozenset[str] | None) -> str | None:
    if key in owned:
        return f"{where}: {key} is clauderon's to set; use {owned[key]}"
    if known is not None and key not in known:
        return f"{where}: {key!r} is not a key the Docker engine's create call takes"
    return None


def check_shape(kind: str, value: dict[str, Any]) -> str | None:
    """Why ``value`` cannot be ``kind`` (``docker``, ``pod``, ``container``), in one line; ``None`` if it can."""
    if kind == "docker":
        owned, known, where = DOCKER_OWNED, DOCKER_CONTAINER_KEYS | DOCKER_HOST_KEYS, "extra_container_config"
    elif kind == "pod":
        owned, known, where = POD_OWNED, None, "extra_pod_config"
    else:
        owned, known, where = CONTAINER_OWNED, None, "extra_container_config"
    for key in value:
        if not isinstance(key, str):
            return f"{where}: {key!r} is not a key"
        refusal = _refusal(key, where, owned, known)
        if refusal:
            return refusal
    return None


def gates(kind: str, value: dict[str, Any]) -> list[tuple[str, str]]:
    """The (gate, key) pairs of what ``value`` would loosen: the gate ``allow_extra_config`` must name."""
    out: list[tuple[str, str]] = []
    if kind == "docker":
        for key, val in value.items():
            gate = DOCKER_GATED.get(key)
            if gate == "privileged" and val is False:
                continue
            if key == "cap_drop" and isinstance(val, list) and "ALL" in val:
                continue  # dropping every capability is what clauderon does already
            if gate:
                out.append((gate, key))
        return out
    table = POD_GATED if kind == "pod" else CONTAINER_GATED
    for key, val in value.items():
        gate = table.get(key)
        if kind == "pod" and key == "volumes":
            if any(isinstance(v, dict) and "hostPath" in v for v in (val if isinstance(val, list) else [])):
                out.append(("host_mounts", "volumes[].hostPath"))
            continue
        if key == "securityContext" and isinstance(val, dict):
            out += _security_gates(kind, val)
            continue
        if gate == "security" and key == "automountServiceAccountToken" and val is not True:
            continue
        if gate and (gate != "host_network" or val) and (gate != "host_namespaces" or val):
            out.append((gate, key))
    return out


def _security_gates(kind: str, context: dict[str, Any]) -> list[tuple[str, str]]:
    """What a securityContext loosens: privileged, added capabilities, privilege escalation, root."""
    out: list[tuple[str, str]] = []
    where = "securityContext"
    if context.get("privileged"):
        out.append(("privileged", f"{where}.privileged"))
    caps = context.get("capabilities")
    if isinstance(caps, dict) and (caps.get("add") or ("drop" in caps and "ALL" not in (caps.get("drop") or []))):
        out.append(("capabilities", f"{where}.capabilities"))
    if context.get("allowPrivilegeEscalation"):
        out.append(("security", f"{where}.allowPrivilegeEscalation"))
    if context.get("runAsUser") == 0 or context.get("runAsGroup") == 0 or context.get("runAsNonRoot") is False:
        out.append(("root", f"{where}.runAsUser"))
    for key in ("seccompProfile", "appArmorProfile", "procMount", "seLinuxOptions", "sysctls"):
        if key in context:
            out.append(("security", f"{where}.{key}"))
    return out


def merge(base: Any, extra: Any, appended: frozenset[str] = frozenset({"volumes", "volumeMounts"})) -> Any:
    """``extra`` merged into a copy of ``base``: tables key by key, lists named in ``appended`` added to,
    anything else replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            if key in out and isinstance(out[key], list) and isinstance(value, list) and key in appended:
                out[key] = [*out[key], *copy.deepcopy(value)]
            elif key in out:
                out[key] = merge(out[key], value, appended)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(extra)

"""Which settings each backend resolves, and which of them ``config`` and ``--dry-run`` show: one table."""

from __future__ import annotations

#: The CPU and memory limits and requests (the fields the quotas and the policy bound).
RESOURCE_FIELDS = ("cpu_limit", "memory_limit", "cpu_request", "memory_request")
CONTAINER_KEYS = ("image", "build", "pull_policy", *RESOURCE_FIELDS, "gpus")
#: What a devcontainer.json gives a container besides its image (see config.devcontainer).
DEVCONTAINER_KEYS = ("container_env", "container_user", "post_create_command")
#: Kubernetes settings that are resolved but are plumbing, not shown by ``config``/``--dry-run``.
_K8S_PLUMBING = (
    "git_remote_url",
    "workspace",
    "run_as_user",
    "pod_start_timeout",
    "kubeconfig",
    "context",
    "gpu_resource",
)
#: Resolved per backend (besides backend, agent and preset), in display order.
BACKEND_KEYS: dict[str, tuple[str, ...]] = {
    "local": (),
    "docker": (
        *CONTAINER_KEYS,
        *DEVCONTAINER_KEYS,
        "registry_check",
        "network",
        "extra_env",
        "registry_auth",
        "run_as_user",
        "pids_limit",
        "extra_container_config",
    ),
    "kubernetes": (
        *CONTAINER_KEYS,
        *DEVCONTAINER_KEYS,
        "registry_check",
        "build_push_registry",
        "namespace",
        "service_account",
        "storage_class",
        "workspace_size",
        "image_pull_secrets",
        "node_selector",
        "tolerations",
        "priority_class_name",
        "extra_pod_config",
        "extra_container_config",
        *_K8S_PLUMBING,
    ),
}
#: Resolved but not listed by ``config``/``--dry-run`` (secret-bearing, or plumbing).
_NOT_SHOWN = {"extra_env", "registry_auth", "run_as_user", *_K8S_PLUMBING}
#: Shown only when set (a devcontainer's extras, a push target): most sessions have none.
SHOWN_WHEN_SET = ("build", *DEVCONTAINER_KEYS, "build_push_registry", "extra_container_config", "extra_pod_config")
#: Settings shown by ``config``/``--dry-run``, per backend, in display order.
SHOWN: dict[str, tuple[str, ...]] = {
    backend: ("backend", "agent", *(("preset",) if keys else ()), *(k for k in keys if k not in _NOT_SHOWN))
    for backend, keys in BACKEND_KEYS.items()
}

"""Render a session spec as Kubernetes manifests (API field names): a PVC and a Pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model.extra_config import merge
from ..model.naming import WORKSPACE
from ..model.redact import SECRET_MASK, redact_url, strip_credentials
from ..model.units import k8s_cpu, k8s_memory
from .spec import SessionSpec, container_command, container_environment

AGENT_CONTAINER = "agent"
VOLUME_ROOT = "/clauderon"  # where the init container sees the whole volume; the agent sees only repo/
REPO_SUBPATH = "repo"
REMOTE_ENV = "CLAUDERON_GIT_REMOTE"  # the URL to clone (from the Secret when it holds credentials)
REMOTE_KEY = "CLAUDERON_GIT_REMOTE"
# Positional parameters keep every value out of the script text: no shell parses them.
# $1 remote URL without credentials, $2 base branch, $3 session branch, $4 base commit (used when pushed).
# Idempotent: a kept volume (start after stop) already holds the clone; a fresh volume may hold lost+found,
# so the clone goes into a sub-directory, made under a temporary name and renamed when complete.
_INIT_SCRIPT = (
    "set -eu\n"
    f"dest={VOLUME_ROOT}/{REPO_SUBPATH}\n"
    'if [ -e "$dest/.git" ]; then echo "workspace kept from before: not cloning again"; exit 0; fi\n'
    'rm -rf "$dest.partial"\n'
    f'git -c core.hooksPath=/dev/null clone -- "${REMOTE_ENV}" "$dest.partial"\n'
    'cd "$dest.partial"\n'
    'git checkout -b "$3" "$4" 2>/dev/null || git checkout -b "$3" "origin/$2"\n'
    'git remote set-url origin "$1"\n'
    'cd / && rm -rf "$dest" && mv "$dest.partial" "$dest"\n'
)
WORKSPACE_TOKEN_KEY = "CLAUDERON_WORKSPACE_TOKEN"  # the one-time token, only in the init container's env
# The workspace from the clauderon service: $1 its URL, $3 session branch, $4 base commit. The token is
# sent as a header (never in the URL); the bundle is removed once cloned.
_FETCH_SCRIPT = (
    "set -eu\n"
    f"dest={VOLUME_ROOT}/{REPO_SUBPATH}\n"
    'if [ -e "$dest/.git" ]; then echo "workspace kept from before: not fetching again"; exit 0; fi\n'
    f"bundle={VOLUME_ROOT}/workspace.bundle\n"
    'rm -rf "$dest.partial" "$bundle"\n'
    f'auth="Authorization: token ${WORKSPACE_TOKEN_KEY}"\n'
    'if command -v curl >/dev/null 2>&1; then curl -fsS -H "$auth" -o "$bundle" "$1"\n'
    'else wget -q --header "$auth" -O "$bundle" "$1"; fi\n'
    'git -c core.hooksPath=/dev/null init -q "$dest.partial"\n'
    'cd "$dest.partial"\n'
    'git -c core.hooksPath=/dev/null fetch -q --no-tags "$bundle" "refs/clauderon/tips/$4"\n'
    'git -c core.hooksPath=/dev/null checkout -q -b "$3" "$4"\n'
    'rm -f "$bundle"\n'
    'cd / && rm -rf "$dest" && mv "$dest.partial" "$dest"\n'
)


def _container_security(root: bool) -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": not root}


def _resources(spec: SessionSpec) -> dict[str, dict[str, str]]:
    s = spec.settings
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if s.cpu_request is not None:
        requests["cpu"] = k8s_cpu(s.cpu_request)
    if s.memory_request is not None:
        requests["memory"] = k8s_memory(s.memory_request)
    if s.cpu_limit is not None:
        limits["cpu"] = k8s_cpu(s.cpu_limit)
    if s.memory_limit is not None:
        limits["memory"] = k8s_memory(s.memory_limit)
    if s.gpus:  # an extended resource: a limit (the request is implied and must equal it)
        limits[s.gpu_resource or "nvidia.com/gpu"] = str(s.gpus)
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def pvc_name(spec: SessionSpec) -> str:
    return f"{spec.object_name}-workspace"


def secret_name(spec: SessionSpec) -> str:
    return f"{spec.object_name}-env"


def render_kubernetes(spec: SessionSpec, secrets: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """``[Secret?, PersistentVolumeClaim?, Pod]`` with API field names.

    Agent credentials (``pass_env``) go into a per-session Secret that the pod
    references, never into the pod spec; their values are masked unless
    ``secrets`` supplies them. An ephemeral workspace is an ``emptyDir`` (no PVC).
    """
    s = spec.settings
    if s.image is None or s.pull_policy is None or s.workspace_size is None:
        raise ValueError("render_kubernetes needs resolved kubernetes settings")
    meta = {"namespace": s.namespace, "labels": dict(spec.labels)}
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": pvc_name(spec), **meta},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": k8s_memory(s.workspace_size)}},
        },
    }
    if s.storage_class:
        pvc["spec"]["storageClassName"] = s.storage_class

    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in container_environment(spec).items()]
    env += [{"name": n, "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": n}}} for n in spec.secret_env]
    mounts = [{"name": "workspace", "mountPath": WORKSPACE, "subPath": REPO_SUBPATH}]
    remote = spec.remote_url or ""
    remote_secret = spec.remote_in_secret
    secret_data = {n: secrets[n] if secrets is not None else SECRET_MASK for n in spec.secret_env}
    if spec.workspace_url:  # the one-time token: in the Secret, read by the init container only
        secret_data[WORKSPACE_TOKEN_KEY] = secrets[WORKSPACE_TOKEN_KEY] if secrets is not None else SECRET_MASK
        remote_env: dict[str, Any] = {
            "name": WORKSPACE_TOKEN_KEY,
            "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": WORKSPACE_TOKEN_KEY}},
        }
    elif remote_secret:  # never in the pod spec: the init container reads it from the Secret
        secret_data[REMOTE_KEY] = remote if secrets is not None else redact_url(remote)
        remote_env = {
            "name": REMOTE_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": REMOTE_KEY}},
        }
    else:
        remote_env = {"name": REMOTE_ENV, "value": remote}
    agent: dict[str, Any] = {
        "name": AGENT_CONTAINER,
        "image": s.image,
        "imagePullPolicy": s.pull_policy.kubernetes,
        "command": container_command(spec),
        "env": env,
        "workingDir": WORKSPACE,
        "stdin": True,
        "tty": True,
        "volumeMounts": mounts,
        "securityContext": _container_security(spec.uid == 0),
    }
    resources = _resources(spec)
    if resources:
        agent["resources"] = resources
    if spec.env_from_secret:
        agent["envFrom"] = [{"secretRef": {"name": spec.env_from_secret}}]
    init: dict[str, Any] = {
        "name": "workspace-init",
        "image": s.image,
        "imagePullPolicy": s.pull_policy.kubernetes,
        "command": [
            "sh",
            "-c",
            _FETCH_SCRIPT if spec.workspace_url else _INIT_SCRIPT,
            "clauderon-init",
            spec.workspace_url or strip_credentials(remote),
            spec.base_branch,
            spec.branch,
            spec.base_commit,
        ],
        "env": [remote_env],
        "volumeMounts": [{"name": "workspace", "mountPath": VOLUME_ROOT}],
        "securityContext": _container_security(spec.uid == 0),
    }
    if resources:
        init["resources"] = resources
    ephemeral = s.workspace == "ephemeral"
    volume: dict[str, Any] = {"name": "workspace"}
    if ephemeral:
        volume["emptyDir"] = {"sizeLimit": k8s_memory(s.workspace_size)}
    else:
        volume["persistentVolumeClaim"] = {"claimName": pvc_name(spec)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The agent gets no API token: a pod that needs the API names a service account that grants it.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": spec.uid != 0,
            "runAsUser": spec.uid,
            "runAsGroup": spec.gid,
            "fsGroup": spec.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [init],
        "containers": [agent],
        "volumes": [volume],
    }
    if s.service_account:
        pod_spec["serviceAccountName"] = s.service_account
    if s.node_selector:
        pod_spec["nodeSelector"] = dict(s.node_selector)
    if s.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in s.tolerations]
    if s.priority_class_name:
        pod_spec["priorityClassName"] = s.priority_class_name
    if s.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in s.image_pull_secrets]
    if s.extra_container_config:  # the admin's, checked against the policy (model/extra_config.py)
        pod_spec["containers"] = [merge(agent, s.extra_container_config)]
    if s.extra_pod_config:
        pod_spec = merge(pod_spec, s.extra_pod_config)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec.object_name, **meta},
        "spec": pod_spec,
    }
    manifests: list[dict[str, Any]] = []
    if secret_data:
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name(spec), **meta},
                "type": "Opaque",
                "stringData": secret_data,
            }
        )
    if not ephemeral:
        manifests.append(pvc)
    manifests.append(pod)
    return manifests

"""Merge the request, config files, presets and policy into resolved settings.

Highest first, field by field: session values, a preset named by the session,
the repo's ``.clauderon.toml``, a preset named there, the user's files, the
admin policy's defaults, built-in defaults. Every value records its source.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, describe_validation_error, did_you_mean
from ..model.choices import Backend
from ..model.display import show_value
from ..model.hints import CONTAINER_FIELDS, DEFAULTABLE_FIELDS, RESOURCE_FIELDS, local_backend_refusal
from ..model.pull_policy import PullPolicy
from ..model.redact import mask_env, redact_url
from ..model.request import CreateSessionRequest, check_request_within_limit
from .agents import all_agents, find_agent
from .environment import docker_engine_present
from .files import AgentConfig, Loaded, RegistryAuth, UserConfig
from .policy import AdminPolicy
from .presets import all_presets, preset_values
from .tomlfile import display_path

DEFAULT_IMAGE = "ghcr.io/shepherdjerred/dotfiles:latest"
DEFAULT_AGENT = "claude"
DEFAULT_WORKSPACE_SIZE = 10 * 1024**3
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SOURCES = ("session", "preset", "repo", "kernel", "user", "policy", "default")

CONTAINER_KEYS = ("image", "pull_policy", *RESOURCE_FIELDS)
DOCKER_KEYS = ("network", "extra_env", "registry_auth")
K8S_KEYS = (
    "namespace",
    "service_account",
    "storage_class",
    "workspace_size",
    "image_pull_secrets",
    "git_remote_url",
    "workspace",
    "run_as_user",
    "pod_start_timeout",
    "kubeconfig",
    "context",
)


@dataclass(frozen=True)
class ResolvedSettings:
    """Effective values for one session. Container fields are ``None`` on the local backend."""

    backend: Backend
    agent: str
    preset: str | None = None
    image: str | None = None
    pull_policy: PullPolicy | None = None
    cpu_limit: int | None = None
    memory_limit: int | None = None
    cpu_request: int | None = None
    memory_request: int | None = None
    network: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)  # values possibly secret: never in a repr
    registry_auth: RegistryAuth | None = None
    namespace: str | None = None
    service_account: str | None = None
    storage_class: str | None = None
    workspace_size: int | None = None
    image_pull_secrets: tuple[str, ...] = ()
    git_remote_url: str | None = None
    workspace: str | None = None
    run_as_user: int | None = None
    pod_start_timeout: float | None = None
    kubeconfig: Path | None = None
    context: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, as stored with the session (no secrets: auth is a file path)."""
        out: dict[str, Any] = {}
        for key, value in self.as_dict().items():
            if isinstance(value, RegistryAuth):
                value = {"registry": value.registry, "config_file": str(value.config_file)}
            elif key == "extra_env":
                value = mask_env(value)  # possibly secret: names only, wherever settings are stored or shown
            elif key == "git_remote_url" and value:
                value = redact_url(value)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Path):
                value = str(value)
            out[key] = value
        return out


@dataclass(frozen=True)
class Layer:
    source: str  # one of SOURCES
    origin: str  # human detail: a file, "preset large", "built-in default"
    values: dict[str, Any]


@dataclass(frozen=True)
class Resolution:
    settings: ResolvedSettings
    sources: dict[str, str]
    origins: dict[str, str]
    agent_config: AgentConfig
    notes: tuple[str, ...] = ()  # things the user must be told (e.g. running on the host without an engine)


def _pick(key: str, layers: list[Layer]) -> tuple[Any, Layer | None]:
    for layer in layers:
        if layer.values.get(key) is not None:
            return layer.values[key], layer
    return None, None


def _where(loaded: Loaded) -> str:
    return display_path(loaded.path) if loaded.path else ""


def _default_namespace() -> str:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def owner_namespace_part(owner: str) -> str:
    """The owner as a DNS-label fragment (for ``namespace_template``).

    Used as is when it already is one; otherwise (``jane.doe``, ``JaneDoe``, a long
    name) a short hash of the raw owner is added, so different owners never share a namespace.
    """
    if re.fullmatch(r"[a-z0-9](?:[-a-z0-9]{0,20}[a-z0-9])?", owner):
        return owner
    base = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")[:15].strip("-")
    digest = hashlib.sha256(owner.encode()).hexdigest()[:6]
    return f"{base}-{digest}" if base else f"u-{digest}"


def _user_values(backend: Backend, user: UserConfig, owner: str) -> tuple[dict[str, Any], str]:
    if backend is Backend.DOCKER:
        d = user.docker.data
        values = {
            "image": d.image.image,
            "pull_policy": d.image.pull_policy,
            "registry_auth": d.image.registry_auth,
            "cpu_limit": d.resources.cpu,
            "memory_limit": d.resources.memory,
            "network": d.network,
            "extra_env": d.extra_env or None,
        }
        return values, _where(user.docker)
    k = user.kubernetes.data
    values = {key: getattr(k, key) for key in (*CONTAINER_KEYS, *K8S_KEYS) if key != "pull_policy"}
    values["pull_policy"] = k.image_pull_policy
    values["image_pull_secrets"] = tuple(k.image_pull_secrets) or None
    if k.namespace_template and not k.namespace:
        values["namespace"] = k.namespace_template.replace("{owner}", owner_namespace_part(owner))
    return values, _where(user.kubernetes)


def _defaults(backend: Backend) -> dict[str, Any]:
    common: dict[str, Any] = {"image": DEFAULT_IMAGE, "pull_policy": PullPolicy.IF_NOT_PRESENT}
    if backend is Backend.DOCKER:
        return {**common, "network": "bridge", "extra_env": {}}
    return {
        **common,
        "namespace": _default_namespace(),
        "workspace_size": DEFAULT_WORKSPACE_SIZE,
        "image_pull_secrets": (),
    }


def _check_preset_within_policy(name: str, where: str, values: dict[str, Any], policy: AdminPolicy) -> None:
    """An admin's default preset must fit the admin's own maximums: say so once, about the file."""
    for key, maximum in (("cpu", policy.max_cpu()), ("memory", policy.max_memory())):
        for field_name in (f"{key}_limit", f"{key}_request"):
            value = values.get(field_name)
            if maximum is not None and value is not None and value > maximum:
                raise ConfigError(
                    f"policy {where}: default_preset {name!r} sets {field_name} {show_value(field_name, value)}, "
                    f"above max_{key} {show_value(field_name, maximum)}; choose a smaller preset or raise max_{key}"
                )


def _frontend_values(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    """A front end's defaults, validated by the request model like any other value."""
    given = {k: v for k, v in raw.items() if v not in (None, "")}
    if not given:
        return {}
    unknown = [k for k in given if k not in DEFAULTABLE_FIELDS]
    if unknown:
        raise ConfigError(f"{origin}: unknown setting {unknown[0]!r}{did_you_mean(unknown[0], DEFAULTABLE_FIELDS)}")
    try:
        parsed = CreateSessionRequest(prompt="-", **given).explicit()
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_validation_error(exc)}") from None
    return {k: v for k, v in parsed.items() if k in given}


def resolve(
    request: CreateSessionRequest,
    user: UserConfig,
    repo: Loaded,
    policy: AdminPolicy,
    *,
    engine_present: Callable[[], bool] | None = None,
    owner: str = "",
    frontend: dict[str, Any] | None = None,
    frontend_origin: str = "kernel defaults (%config Clauderon)",
) -> Resolution:
    """Resolve every setting for ``request``; raises ``ConfigError`` or ``PolicyError``.

    ``frontend``: defaults of the front end in use (``%config Clauderon.default_backend``, the
    form's defaults), a layer of their own below the repository file, with source ``kernel``.
    """
    session = request.explicit()
    kernel_values = _frontend_values(frontend or {}, frontend_origin)
    notes: list[str] = []
    repo_values = {k: getattr(repo.data, k) for k in type(repo.data).model_fields if getattr(repo.data, k) is not None}
    general = user.general.data
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}

    def record(key: str, layer: Layer | None) -> None:
        sources[key] = layer.source if layer else "default"
        origins[key] = layer.origin if layer else "built-in default"

    # 1. Backend: it decides which user file applies.
    front = [
        Layer("session", "this request", session),
        Layer("repo", _where(repo), repo_values),
        Layer("kernel", frontend_origin, kernel_values),
        Layer("user", _where(user.general), {"backend": general.default_backend, "agent": general.default_agent}),
    ]
    backend, layer = _pick("backend", front)
    if backend is None:
        default = Backend.DOCKER if (engine_present or docker_engine_present)() else Backend.LOCAL
        reason = "Docker engine found" if default is Backend.DOCKER else "no Docker engine found"
        if not policy.allows("allowed_backends", default):
            allowed = policy.first("allowed_backends")
            assert allowed is not None
            backend, layer = allowed[0][0], Layer("policy", allowed[1].where, {})
        else:
            backend, layer = default, Layer("default", f"built-in default ({reason})", {})
        if backend is Backend.LOCAL:
            notes.append(
                "no Docker engine was found and no backend was chosen: the agent runs as a local process on this "
                "machine, as you, with no container around it (choose --backend docker or kubernetes to avoid this)"
            )
    record("backend", layer)

    # 2. Agent.
    agents = all_agents(general.agents)
    agent_name, layer = _pick("agent", front)
    agent_name = agent_name or DEFAULT_AGENT
    record("agent", layer)
    agent_config = find_agent(agent_name, agents, source=sources["agent"])

    if backend is Backend.LOCAL:
        policy.check({"backend": backend}, origins)
        given = [f for f in CONTAINER_FIELDS if f in session]
        if given:
            raise ConfigError(local_backend_refusal(given[0], origins["backend"]), field=given[0])
        settings = ResolvedSettings(backend=backend, agent=agent_name)
        return Resolution(settings, sources, origins, agent_config, tuple(notes))

    # 3. Presets slot in just below the layer that named them.
    presets = all_presets(general.presets)
    layers: list[Layer] = [Layer("session", "this request", session)]
    preset_name, preset_layer = _pick("preset", [layers[0], Layer("repo", _where(repo), repo_values)])
    if "preset" in session:
        layers.append(
            Layer(
                "preset", f"preset {session['preset']}", preset_values(session["preset"], presets, named_by="session")
            )
        )
    layers.append(Layer("repo", _where(repo), repo_values))
    if "preset" in repo_values and "preset" not in session:
        layers.append(
            Layer(
                "preset",
                f"preset {repo_values['preset']} ({_where(repo)})",
                preset_values(repo_values["preset"], presets, named_by=_where(repo)),
            )
        )
    if kernel_values.get("preset") and preset_name is None:
        preset_name, preset_layer = kernel_values["preset"], Layer("kernel", frontend_origin, {})
    layers.append(Layer("kernel", frontend_origin, kernel_values))
    if kernel_values.get("preset") and "preset" not in session and "preset" not in repo_values:
        layers.append(
            Layer(
                "preset",
                f"preset {kernel_values['preset']} ({frontend_origin})",
                preset_values(kernel_values["preset"], presets, named_by=frontend_origin),
            )
        )
    user_values, user_where = _user_values(backend, user, owner)
    layers.append(Layer("user", user_where, user_values))

    # 4. Policy defaults: the admin's default preset, maximums as default limits,
    #    an allowed image or pull policy when the built-in one is not allowed.
    defaults = _defaults(backend)
    policy_values: dict[str, Any] = {}
    policy_origin = policy.files[0].where if policy.files else ""
    if policy.max_cpu() is not None:
        policy_values["cpu_limit"] = policy.max_cpu()
    if policy.max_memory() is not None:
        policy_values["memory_limit"] = policy.max_memory()
    if not policy.allows("allowed_pull_policies", defaults["pull_policy"]):
        allowed = policy.first("allowed_pull_policies")
        assert allowed is not None
        policy_values["pull_policy"], policy_origin = allowed[0][0], allowed[1].where
    if "network" in defaults and not policy.allows("allowed_networks", defaults["network"]):
        allowed = policy.first("allowed_networks")
        assert allowed is not None
        policy_values["network"] = allowed[0][0]
    max_size = policy.max_workspace_size()
    if "workspace_size" in defaults and max_size is not None and max_size < defaults["workspace_size"]:
        policy_values["workspace_size"] = max_size
    if not policy.image_allowed(defaults["image"]):
        literal = policy.literal_images()
        if literal:
            policy_values["image"] = literal[0]
    default_preset = policy.first("default_preset")
    if default_preset and preset_name is None:
        values_of_preset = preset_values(default_preset[0], presets, named_by=f"policy {default_preset[1].where}")
        _check_preset_within_policy(default_preset[0], default_preset[1].where, values_of_preset, policy)
        policy_values.update(values_of_preset)
        preset_name, preset_layer = default_preset[0], Layer("policy", default_preset[1].where, {})
    layers.append(Layer("policy", policy_origin, policy_values))
    layers.append(Layer("default", "built-in default", defaults))
    record("preset", preset_layer)

    keys = CONTAINER_KEYS + (DOCKER_KEYS if backend is Backend.DOCKER else K8S_KEYS)
    values: dict[str, Any] = {"backend": backend, "agent": agent_name, "preset": preset_name}
    for key in keys:
        values[key], layer = _pick(key, layers)
        record(key, layer)

    if backend is Backend.KUBERNETES:
        for kind in ("cpu", "memory"):  # a limit without a request: request = limit, as Kubernetes does
            if values[f"{kind}_request"] is None and values[f"{kind}_limit"] is not None:
                values[f"{kind}_request"] = values[f"{kind}_limit"]
                sources[f"{kind}_request"] = sources[f"{kind}_limit"]
                origins[f"{kind}_request"] = f"{origins[f'{kind}_limit']} (= {kind}_limit)"
    policy.check(values, origins)
    try:
        check_request_within_limit(values, origins)
    except ValueError as exc:
        raise ConfigError(str(exc), field=str(getattr(exc, "field", "")) or None) from None
    if values.get("extra_env") is None and backend is Backend.DOCKER:
        values["extra_env"] = {}
    if values.get("image_pull_secrets") is None and backend is Backend.KUBERNETES:
        values["image_pull_secrets"] = ()
    settings = ResolvedSettings(**values)
    return Resolution(settings, sources, origins, agent_config, tuple(notes))

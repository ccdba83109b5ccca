"""Merge the request, config files, presets and policy into resolved settings.

Highest first, field by field: session values, a preset named by the session,
the repo's ``.clauderon.toml``, a preset named there, the user's files, the
system-wide files (``/etc/clauderon``), the admin policy's defaults, built-in defaults. Every value records its source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ..errors import ConfigError, describe_validation_error, did_you_mean
from ..model.build import BuildConfig
from ..model.choices import Backend
from ..model.display import show_value
from ..model.fields import BackendName, Build, Gpus, Identifier, Image, Memory, Policy, PresetOptions
from ..model.hints import CONTAINER_FIELDS, DEFAULTABLE_FIELDS, local_backend_refusal
from ..model.pull_policy import PullPolicy
from ..model.redact import is_env_name
from ..model.request import CreateSessionRequest, check_request_within_limit
from ..model.settings_json import settings_json
from ..model.settings_table import BACKEND_KEYS
from ..model.units import parse_cpu
from .agents import all_agents, find_agent
from .devcontainer import Devcontainer
from .environment import docker_engine_present
from .files import (
    AgentConfig,
    DnsLabel,
    DockerConfig,
    GeneralConfig,
    KubernetesConfig,
    LabelMap,
    Loaded,
    Network,
    ObjectName,
    RegistryAuth,
    ResourceName,
    Toleration,
    UserConfig,
    Workspace,
    agents_of,
    presets_of,
)
from .policy import AdminPolicy
from .presets import all_presets, default_profile, preset_values
from .tomlfile import display_path

DEFAULT_IMAGE = "ghcr.io/shepherdjerred/dotfiles:latest"
DEFAULT_AGENT = "claude"
DEFAULT_WORKSPACE_SIZE = 10 * 1024**3
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_PIDS_LIMIT = 1024  # a Docker session's processes (a fork bomb stops here); policy max_pids bounds it
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class ResolvedSettings:
    """Effective values for one session. Container fields are ``None`` on the local backend."""

    backend: Backend
    agent: str
    preset: str | None = None
    preset_options: dict[str, str] | None = None  # the choices made for the preset's options
    image: str | None = None
    build: BuildConfig | None = None  # the image is built from the repository (``image`` is then its tag)
    pull_policy: PullPolicy | None = None
    cpu_limit: int | None = None
    memory_limit: int | None = None
    cpu_request: int | None = None
    memory_request: int | None = None
    gpus: int | None = None  # -1: all
    container_env: dict[str, str] | None = field(default=None, repr=False)  # a devcontainer's containerEnv
    container_user: str | None = None
    post_create_command: list[str] | None = None
    registry_check: bool | None = None  # check the image in its registry before a create (off: air-gapped)
    build_push_registry: str | None = None  # Kubernetes: where built images are pushed for the cluster to pull
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
    gpu_resource: str | None = None  # the Kubernetes extended resource a GPU is (nvidia.com/gpu)
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    priority_class_name: str | None = None
    pids_limit: int | None = None  # Docker: processes the container may run at once
    # The admin's extra engine configuration (model/extra_config.py): Docker's create arguments, or the
    # Kubernetes agent container's fields; and the pod spec's.
    extra_container_config: dict[str, Any] | None = None
    extra_pod_config: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, as stored with the session (``model/settings_json.py``: no secrets)."""
        return settings_json(self.as_dict())

    @classmethod
    def from_json(cls, data: dict[str, Any], secrets: dict[str, str] | None = None) -> ResolvedSettings:
        """Settings as ``to_json`` stored them, every value parsed again (the store is untrusted input);
        ``ValueError`` names the first bad one. Masked values (``extra_env``, ``container_env``) come back
        from ``secrets`` when given, else as their names with empty values."""
        try:
            stored = _StoredSettings.model_validate(data)
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from None
        values = {k: getattr(stored, k) for k in type(stored).model_fields if k in cls.__dataclass_fields__}
        for key in ("extra_env", "container_env"):
            names = values.get(key)
            if names is not None:
                values[key] = {n: (secrets or {}).get(n, "") for n in names}
        values["image_pull_secrets"] = tuple(values.get("image_pull_secrets") or ())
        values["kubeconfig"] = Path(values["kubeconfig"]) if values.get("kubeconfig") else None
        values["registry_auth"] = None  # a file path for pulls, not needed to run the session again
        return cls(**values)


def _millicores(value: Any, info: Any) -> int:
    return parse_cpu(f"{value}m" if type(value) is int else value, info.field_name or "cpu")


def _tolerations(value: Any, info: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValueError(f"{info.field_name}: expected a list of tolerations")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError(f"{info.field_name}: expected a list of tolerations")
        renamed = {("toleration_seconds" if k == "tolerationSeconds" else k): v for k, v in item.items()}
        out.append(Toleration.model_validate(renamed).manifest())
    return out


def _names(value: Any, info: Any) -> list[str]:
    names = list(value) if isinstance(value, (dict, list)) else None
    if names is None or not all(is_env_name(n) for n in names):
        raise ValueError(f"{info.field_name}: expected environment variable names")
    return [str(n) for n in names]


_Millicores = Annotated[int, BeforeValidator(_millicores)]
_EnvNames = Annotated[list[str], BeforeValidator(_names)]
_Tolerations = Annotated[list[dict[str, Any]], BeforeValidator(_tolerations)]


class _StoredSettings(BaseModel):
    """The stored form of ``ResolvedSettings``, field by field with the parsers of the config files."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    backend: BackendName
    agent: Identifier
    preset: Identifier | None = None
    preset_options: PresetOptions | None = None
    image: Image | None = None
    build: Build | None = None
    pull_policy: Policy | None = None
    cpu_limit: _Millicores | None = None
    memory_limit: Memory | None = None
    cpu_request: _Millicores | None = None
    memory_request: Memory | None = None
    gpus: Gpus | None = None
    container_env: _EnvNames | None = None
    container_user: str | None = None
    post_create_command: list[str] | None = None
    registry_check: bool | None = None
    build_push_registry: str | None = None
    network: Network | None = None
    extra_env: _EnvNames | None = None
    namespace: DnsLabel | None = None
    service_account: ObjectName | None = None
    storage_class: ObjectName | None = None
    workspace_size: Memory | None = None
    image_pull_secrets: list[ObjectName] | None = None
    git_remote_url: str | None = None
    workspace: Workspace | None = None
    run_as_user: int | None = None
    pod_start_timeout: float | None = None
    kubeconfig: str | None = None
    context: str | None = None
    gpu_resource: ResourceName | None = None
    node_selector: LabelMap | None = None
    tolerations: _Tolerations | None = None
    priority_class_name: ObjectName | None = None
    pids_limit: int | None = None
    extra_container_config: dict[str, Any] | None = None
    extra_pod_config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _extra_config_shape(self) -> _StoredSettings:
        """A stored extra configuration is read again like the file it came from (owned keys refused)."""
        from ..model.extra_config import check_shape

        docker = self.backend is Backend.DOCKER
        for value, kind in (
            (self.extra_container_config, "docker" if docker else "container"),
            (self.extra_pod_config, "pod"),
        ):
            problem = check_shape(kind, value) if value is not None else None
            if problem:
                raise ValueError(problem)
        return self


@dataclass(frozen=True)
class Layer:
    source: str  # session, preset, repo, devcontainer, kernel, user, system, policy or default
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


_NO_SYSTEM = UserConfig(
    Path("/nonexistent"), Loaded(None, GeneralConfig()), Loaded(None, DockerConfig()), Loaded(None, KubernetesConfig())
)


def _default_namespace() -> str:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def owner_namespace_part(owner: str) -> str:
    """The owner as a DNS-label fragment (for ``namespace_template``), that no other owner maps to.

    As KubeSpawner's safe slugs do: a name that already is a short DNS label without ``--`` is used as
    it is; any other (``jane.doe``, ``JaneDoe``, a long name, one with ``--``) becomes a slug, ``--`` and
    a hash of the exact name. A plain name never holds ``--`` and a hashed one always does, so
    ``jane-doe-3f2a1b`` and ``Jane.Doe`` can never share a namespace.
    """
    from ..model.naming import safe_slug

    return safe_slug(owner, 22)


def _user_values(backend: Backend, user: UserConfig, owner: str) -> tuple[dict[str, Any], str]:
    if backend is Backend.DOCKER:
        d = user.docker.data
        values = {
            "image": d.image.image,
            "pull_policy": d.image.pull_policy,
            "registry_auth": d.image.registry_auth,
            "registry_check": d.image.registry_check,
            "cpu_limit": d.resources.cpu,
            "memory_limit": d.resources.memory,
            "network": d.network,
            "extra_env": d.extra_env or None,
            "run_as_user": d.run_as_user,
            "pids_limit": d.resources.pids,
            "extra_container_config": d.extra_container_config,
        }
        return values, _where(user.docker)
    k = user.kubernetes.data
    values = {key: getattr(k, key, None) for key in BACKEND_KEYS["kubernetes"] if key != "pull_policy"}
    values["node_selector"] = dict(k.node_selector) or None
    values["tolerations"] = [t.manifest() for t in k.tolerations] or None
    values["pull_policy"] = k.image_pull_policy
    values["image_pull_secrets"] = tuple(k.image_pull_secrets) or None
    if k.namespace_template and not k.namespace:
        values["namespace"] = k.namespace_template.replace("{owner}", owner_namespace_part(owner))
    return values, _where(user.kubernetes)


def _defaults(backend: Backend) -> dict[str, Any]:
    common: dict[str, Any] = {"image": DEFAULT_IMAGE, "pull_policy": PullPolicy.IF_NOT_PRESENT, "registry_check": True}
    if backend is Backend.DOCKER:
        return {**common, "network": "bridge", "extra_env": {}, "pids_limit": DEFAULT_PIDS_LIMIT}
    return {
        **common,
        "namespace": _default_namespace(),
        "workspace_size": DEFAULT_WORKSPACE_SIZE,
        "image_pull_secrets": (),
        "gpu_resource": DEFAULT_GPU_RESOURCE,
        "node_selector": None,
        "tolerations": None,
        "priority_class_name": None,
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


@dataclass(frozen=True)
class _Inputs:
    """Everything a resolution reads, gathered once."""

    session: dict[str, Any]
    repo_where: str
    repo_values: dict[str, Any]
    devcontainer_where: str
    devcontainer_values: dict[str, Any]
    kernel_origin: str
    kernel_values: dict[str, Any]
    user: UserConfig
    system: UserConfig
    policy: AdminPolicy
    owner: str
    presets: dict[str, Any]
    groups: tuple[str, ...] | None = None  # the owner's hub groups where known (a profile's allowed_groups)
    presets_elsewhere: bool = False  # a client of the service: a preset unknown here is the service's to resolve

    def preset_options(self) -> dict[str, str] | None:
        """The options chosen for the preset in force: from the highest layer that gives some."""
        return self.preset_options_from()[0]

    def preset_options_from(self) -> tuple[dict[str, str] | None, str, str]:
        """The chosen options, and the source and origin of the layer that gave them."""
        for source, origin, values in (
            ("session", "this request", self.session),
            ("repo", self.repo_where, self.repo_values),
            ("devcontainer", self.devcontainer_where, self.devcontainer_values),
            ("kernel", self.kernel_origin, self.kernel_values),
        ):
            if values.get("preset_options"):
                return dict(values["preset_options"]), source, origin
        return None, "default", "built-in default"


def _preset_layer(name: str, named_by: str, source_origin: str, inputs: _Inputs) -> Layer:
    if inputs.presets_elsewhere and name not in inputs.presets:
        return Layer("preset", f"preset {name} (the clauderon service's)", {})
    values = preset_values(
        name, inputs.presets, named_by=named_by, options=inputs.preset_options(), groups=inputs.groups
    )
    return Layer("preset", f"preset {name}{source_origin}", values)


def layers_for(inputs: _Inputs, backend: Backend | None) -> tuple[list[Layer], str | None, Layer | None]:
    """THE precedence, highest first — the only place it is written down.

    session > a preset it names > repo file > a preset it names > kernel/form defaults > a preset they
    name > user files > system files (/etc/clauderon) > policy defaults (its default preset when none was
    named) > built-in defaults.
    Only the highest layer's preset applies, just below that layer. With ``backend`` None (while the
    backend itself is chosen) the backend-specific user file, presets and policy defaults are left out.
    Returns the layers, the preset in force and the layer that chose it.
    """
    named = [
        ("session", "this request", inputs.session, ""),
        ("repo", inputs.repo_where, inputs.repo_values, f" ({inputs.repo_where})"),
        ("devcontainer", inputs.devcontainer_where, inputs.devcontainer_values, f" ({inputs.devcontainer_where})"),
        ("kernel", inputs.kernel_origin, inputs.kernel_values, f" ({inputs.kernel_origin})"),
    ]
    layers: list[Layer] = []
    preset_name: str | None = None
    preset_layer: Layer | None = None
    for source, origin, values, said in named:
        layers.append(Layer(source, origin, values))
        if backend is not None and preset_name is None and values.get("preset"):
            preset_name, preset_layer = values["preset"], layers[-1]
            named_by = "session" if source == "session" else origin
            layers.append(_preset_layer(preset_name, named_by, said, inputs))
    layers.append(_files_layer("user", inputs.user, backend, inputs.owner))
    layers.append(_files_layer("system", inputs.system, backend, inputs.owner))
    if backend is None:
        return layers, None, None
    defaults = _defaults(backend)
    if preset_name is None and inputs.policy.first("default_preset") is None:
        profile = default_profile(inputs.presets, inputs.groups)
        if profile is not None:  # a profile marked default = true: as if the user's files named it
            preset_name = profile
            layers.append(_preset_layer(profile, "the default profile", " (the default profile)", inputs))
            preset_layer = layers[-1]
    policy_values, policy_origin, default_preset = _policy_defaults(inputs, defaults, preset_name)
    layers.append(Layer("policy", policy_origin, policy_values))
    if default_preset is not None:
        preset_name, preset_layer = default_preset, layers[-1]
    if preset_name is None and inputs.preset_options():
        raise ConfigError(
            "preset_options: no preset is chosen to take them; give --preset (a profile's slug)", field="preset_options"
        )
    layers.append(Layer("default", "built-in default", defaults))
    return layers, preset_name, preset_layer


def _files_layer(source: str, files: UserConfig, backend: Backend | None, owner: str) -> Layer:
    """The layer of a set of config files (the user's, or the system's): config.toml, and the backend's file."""
    general = files.general
    values: dict[str, Any] = {"backend": general.data.default_backend, "agent": general.data.default_agent}
    where = _where(general)
    if backend is not None:
        file_values, where = _user_values(backend, files, owner)
        values.update(file_values)
    return Layer(source, where, values)


def _policy_defaults(
    inputs: _Inputs, defaults: dict[str, Any], preset_named: str | None
) -> tuple[dict[str, Any], str, str | None]:
    """The admin's defaults: maximums as default limits, an allowed image, pull policy or network when the
    built-in one is not allowed, and the default preset when no layer named one."""
    policy = inputs.policy
    values: dict[str, Any] = {}
    origin = policy.files[0].where if policy.files else ""
    if policy.max_cpu() is not None:
        values["cpu_limit"] = policy.max_cpu()
    if policy.max_memory() is not None:
        values["memory_limit"] = policy.max_memory()
    max_pids = policy.limit("max_pids")
    if "pids_limit" in defaults and max_pids is not None and max_pids[0] < defaults["pids_limit"]:
        values["pids_limit"] = max_pids[0]
    for key, rule in (("pull_policy", "allowed_pull_policies"), ("network", "allowed_networks")):
        if key in defaults and not policy.allows(rule, defaults[key]):
            allowed = policy.first(rule)
            assert allowed is not None
            values[key], origin = allowed[0][0], allowed[1].where
    for key in ("node_selector", "tolerations", "priority_class_name"):
        placed = policy.first(key)
        if placed is not None and key in defaults:
            value = placed[0]
            values[key] = [t.manifest() for t in value] if key == "tolerations" else value
    max_size = policy.max_workspace_size()
    if "workspace_size" in defaults and max_size is not None and max_size < defaults["workspace_size"]:
        values["workspace_size"] = max_size
    if not policy.image_allowed(defaults["image"]):
        literal = policy.literal_images()
        if literal:
            values["image"] = literal[0]
    found = policy.first("default_preset")
    if not found or preset_named is not None:
        return values, origin, None
    name, where = found[0], found[1].where
    preset = preset_values(
        name, inputs.presets, named_by=f"policy {where}", options=inputs.preset_options(), groups=inputs.groups
    )
    _check_preset_within_policy(name, where, preset, policy)
    return {**values, **preset}, where, name


def _image_or_build(
    values: dict[str, Any],
    picked: dict[str, Layer | None],
    layers: list[Layer],
    sources: dict[str, str],
    origins: dict[str, str],
    backend: Backend,
    build_tag: Callable[[BuildConfig, Backend, str | None], str] | None,
) -> None:
    """One choice of where the image comes from: the highest layer naming an image or a build wins (a
    repository's Dockerfile beats the user's default image; ``--image`` beats the repository's build)."""
    build = values.get("build")
    if build is None:
        return
    image_layer, build_layer = picked.get("image"), picked.get("build")
    order = {id(layer): i for i, layer in enumerate(layers)}
    if image_layer is not None and order.get(id(image_layer), len(layers)) < order.get(id(build_layer), len(layers)):
        values["build"] = None  # an image named above the build: the build is not used
        sources.pop("build", None)
        origins.pop("build", None)
        return
    if backend is Backend.KUBERNETES and not values.get("build_push_registry"):
        raise ConfigError(
            f"build {build.dockerfile_path} ({origins.get('build')}): a Kubernetes session's image must be "
            "pushed where the cluster can pull it; set build_push_registry in k8s-config.toml "
            '(e.g. build_push_registry = "ghcr.io/team"), or use --image',
            field="build",
        )
    if build_tag is not None:
        values["image"] = build_tag(build, backend, values.get("build_push_registry"))
        sources["image"] = sources.get("build", "session")
        origins["image"] = f"built from {build.dockerfile_path} ({origins.get('build')})"


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
    agents_elsewhere: bool = False,
    system: UserConfig | None = None,
    devcontainer: Devcontainer | None = None,
    build_tag: Callable[[BuildConfig, Backend, str | None], str] | None = None,
    groups: tuple[str, ...] | None = None,
    presets_elsewhere: bool = False,
) -> Resolution:
    """Resolve every setting for ``request``; raises ``ConfigError`` or ``PolicyError``.

    ``agents_elsewhere``: the agent table that counts is the clauderon service's (a client's
    side of a remote create), so an agent unknown here is left for the service to check;
    ``presets_elsewhere`` likewise for a preset (the service's profiles). ``groups``: the owner's hub
    groups, where known: a profile with ``allowed_groups`` is for their members only.

    ``frontend``: defaults of the front end in use (``%config Clauderon.default_backend``, the
    form's defaults), a layer of their own below the repository file, with source ``kernel``.
    Every value is picked from the one ordered list of ``layers_for``.

    ``devcontainer``: the repository's devcontainer.json, a layer just below its ``.clauderon.toml``.
    ``build_tag``: the tag a build of the repository gets (a hash of what it builds from); the highest
    layer that names an image or a build decides which one the session uses.
    """
    dev = devcontainer or Devcontainer()
    inputs = _Inputs(
        session=request.explicit(),
        repo_where=_where(repo),
        repo_values={
            k: getattr(repo.data, k) for k in type(repo.data).model_fields if getattr(repo.data, k) is not None
        },
        devcontainer_where=dev.where,
        devcontainer_values=dict(dev.values),
        kernel_origin=frontend_origin,
        kernel_values=_frontend_values(frontend or {}, frontend_origin),
        user=user,
        system=system or _NO_SYSTEM,
        policy=policy,
        owner=owner,
        presets=all_presets(presets_of(system or _NO_SYSTEM, user)),
        groups=groups,
        presets_elsewhere=presets_elsewhere,
    )
    notes: list[str] = []
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}

    def record(key: str, layer: Layer | None) -> None:
        sources[key] = layer.source if layer else "default"
        origins[key] = layer.origin if layer else "built-in default"

    # 1. Backend and agent, from the same list without the backend-specific layers.
    front, _, _ = layers_for(inputs, None)
    backend, layer = _pick("backend", front)
    if backend is None:
        default = Backend.DOCKER if (engine_present or docker_engine_present)() else Backend.LOCAL
        reason = "a Docker engine is configured" if default is Backend.DOCKER else "no Docker engine found"
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
    agent_name, layer = _pick("agent", front)
    agent_name = agent_name or DEFAULT_AGENT
    record("agent", layer)
    agents = all_agents(agents_of(system or _NO_SYSTEM, user))
    if agents_elsewhere and agent_name not in agents:
        agent_config = AgentConfig(command=[agent_name, "{prompt}"])  # never run here: the service has its own
    else:
        agent_config = find_agent(agent_name, agents, source=sources["agent"])

    if backend is Backend.LOCAL:
        policy.check({"backend": backend, "agent": agent_name}, origins)
        given = [f for f in CONTAINER_FIELDS if f in inputs.session]
        if given:
            raise ConfigError(local_backend_refusal(given[0], origins["backend"]), field=given[0])
        if dev.values:
            notes.append(
                f"{dev.where} is not used: the local backend runs the agent as a plain process, with no container "
                "(choose --backend docker or kubernetes to use it)"
            )
        settings = ResolvedSettings(backend=backend, agent=agent_name)
        return Resolution(settings, sources, origins, agent_config, tuple(notes))

    # 2. Every other setting, field by field, from the whole list.
    layers, preset_name, preset_layer = layers_for(inputs, backend)
    record("preset", preset_layer)
    options, options_source, options_origin = inputs.preset_options_from()
    values: dict[str, Any] = {"backend": backend, "agent": agent_name, "preset": preset_name}
    if options and preset_name is not None:
        values["preset_options"] = options
        sources["preset_options"], origins["preset_options"] = options_source, options_origin
    picked: dict[str, Layer | None] = {}
    for key in BACKEND_KEYS[backend.value]:
        values[key], layer = _pick(key, layers)
        picked[key] = layer
        record(key, layer)
    if dev.note() and any(sources.get(k) == "devcontainer" for k in sources):
        notes.append(str(dev.note()))
    _image_or_build(values, picked, layers, sources, origins, backend, build_tag)

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
        raise ConfigError(str(exc)) from None
    if values.get("extra_env") is None and backend is Backend.DOCKER:
        values["extra_env"] = {}
    if values.get("image_pull_secrets") is None and backend is Backend.KUBERNETES:
        values["image_pull_secrets"] = ()
    settings = ResolvedSettings(**values)
    return Resolution(settings, sources, origins, agent_config, tuple(notes))

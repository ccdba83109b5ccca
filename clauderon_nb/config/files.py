"""The user's config files and the per-repo file: their schemas and loading."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)

from ..errors import ConfigError, describe_validation_error
from ..model.fields import BackendName, Cpu, Gpus, Identifier, Image, Memory, Policy
from ..model.hints import DEFAULTABLE_FIELDS
from ..model.redact import has_credentials, is_env_name, redact_url
from ..model.request import CreateSessionRequest
from ..model.units import parse_memory
from .environment import clauderon_home as clauderon_home  # re-exported
from .profiles import Profile, ProfileOption, override_values, profiles_from_file
from .tomlfile import load_toml, readable_file


def _env_name(value: Any, info: ValidationInfo) -> str:
    if not is_env_name(value):
        raise ValueError(
            f"{info.field_name} {value!r}: expected an environment variable name such as ANTHROPIC_API_KEY"
        )
    return value


def _dns_label(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ValueError(f"{info.field_name} {value!r}: expected a DNS label (lowercase letters, digits and '-')")
    return value


def _dns_subdomain(value: Any, info: ValidationInfo) -> str:
    pattern = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    if not isinstance(value, str) or len(value) > 253 or not re.fullmatch(pattern, value):
        raise ValueError(
            f"{info.field_name} {value!r}: expected a Kubernetes object name (lowercase, digits, '-', '.')"
        )
    return value


def _storage(value: Any, info: ValidationInfo) -> int:
    return parse_memory(value, info.field_name or "size")


def _command(value: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value) or not value[0].strip():
        raise ValueError(
            f"{info.field_name} {value!r}: expected a non-empty list of strings (argv, no shell), "
            'e.g. ["claude", "{prompt}"]'
        )
    return list(value)


def _network(value: Any, info: ValidationInfo) -> str:
    if value not in ("bridge", "none", "host"):
        raise ValueError(f"{info.field_name} {value!r}: expected one of bridge, none, host")
    return str(value)


def _existing_file(value: Any, info: ValidationInfo) -> Path:
    path = Path(os.path.expanduser(str(value)))
    if not path.is_file():
        raise ValueError(f"{info.field_name} {str(value)!r}: no such file")
    return path


def _namespace_template(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or "{owner}" not in value:
        raise ValueError(
            f"{info.field_name} {value!r}: expected a pattern with {{owner}}, such as 'clauderon-{{owner}}'"
        )
    sample = value.replace("{owner}", "x")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", sample) or len(sample) > 40:
        raise ValueError(f"{info.field_name} {value!r}: must make a DNS label (lowercase letters, digits, '-')")
    return value


def _workspace(value: Any, info: ValidationInfo) -> str:
    if value not in ("volume", "ephemeral"):
        raise ValueError(
            f"{info.field_name} {value!r}: expected 'volume' (a PVC that survives stop) or 'ephemeral' (an emptyDir)"
        )
    return str(value)


MAX_UID = 2**31 - 1  # Kubernetes' runAsUser is an int64 but Linux uids stop here (and 65534+ are special)
MAX_POD_START_TIMEOUT = 24 * 3600.0


def _uid(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UID:
        raise ValueError(
            f"{info.field_name} {value!r}: expected a uid, a whole number from 0 to {MAX_UID} "
            "(0, root, only where the admin policy says allow_root = true)"
        )
    return value


def _pids(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 4_194_304:
        raise ValueError(f"{info.field_name} {value!r}: expected a number of processes from 16 to 4194304")
    return value


def _timeout(value: Any, info: ValidationInfo) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{info.field_name} {value!r}: expected a number of seconds")
    if not math.isfinite(value) or not 0 < value <= MAX_POD_START_TIMEOUT:
        raise ValueError(
            f"{info.field_name} {value!r}: expected a number of seconds above 0 and at most {MAX_POD_START_TIMEOUT:g}"
        )
    return float(value)


def _git_url(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() or ord(c) < 32 for c in value.strip()):
        raise ValueError(f"{info.field_name}: expected a git URL such as https://host/org/repo.git")
    if has_credentials(value):
        raise ValueError(
            f"{info.field_name} {redact_url(value)!r}: holds credentials; use a URL without them and give the pod "
            "its git credentials through an agent's env_from_secret"
        )
    return value.strip()


EnvName = Annotated[str, BeforeValidator(_env_name)]
NamespaceTemplate = Annotated[str, BeforeValidator(_namespace_template)]
Workspace = Annotated[str, BeforeValidator(_workspace)]
DnsLabel = Annotated[str, BeforeValidator(_dns_label)]
ObjectName = Annotated[str, BeforeValidator(_dns_subdomain)]
StorageSize = Annotated[int, BeforeValidator(_storage)]
Command = Annotated[list[str], BeforeValidator(_command)]
Network = Annotated[str, BeforeValidator(_network)]
ExistingFile = Annotated[Path, BeforeValidator(_existing_file)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Toleration(_File):
    """One Kubernetes toleration (``[[tolerations]]`` in k8s-config.toml or a preset)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operator": self.operator}
        for key, name in (
            ("key", "key"),
            ("value", "value"),
            ("effect", "effect"),
            ("toleration_seconds", "tolerationSeconds"),
        ):
            if getattr(self, key) is not None:
                out[name] = getattr(self, key)
        return out


def _label_map(value: Any, info: ValidationInfo) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str)
        and re.fullmatch(r"([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", k)
        and isinstance(v, str)
        and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", v)
        for k, v in value.items()
    ):
        raise ValueError(f"{info.field_name} {value!r}: expected a table of Kubernetes label keys to label values")
    return dict(value)


def _resource_name(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(
        r"[a-z0-9.-]{1,253}/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", value
    ):
        raise ValueError(f"{info.field_name} {value!r}: expected an extended resource name such as nvidia.com/gpu")
    return value


LabelMap = Annotated[dict[str, str], BeforeValidator(_label_map)]
ResourceName = Annotated[str, BeforeValidator(_resource_name)]


class PresetConfig(_File):
    """``[presets.NAME]`` in config.toml: a named resource template (and, for Kubernetes, placement); a
    ``[[profile_list]]`` profile becomes one too (``config/profiles.py``), with its options."""

    description: str | None = None
    display_name: str | None = None  # a profile's
    image: Image | None = None
    pull_policy: Policy | None = None
    cpu_limit: Cpu | None = None
    memory_limit: Memory | None = None
    cpu_request: Cpu | None = None
    memory_request: Memory | None = None
    gpus: Gpus | None = None
    node_selector: LabelMap | None = None
    tolerations: list[Toleration] | None = None
    priority_class_name: ObjectName | None = None
    gpu_resource: ResourceName | None = None  # a profile's extra_resource_limits
    default: bool = False  # a profile's: the one used when no layer names a preset
    allowed_groups: list[str] | None = None  # a profile's: only for members of these hub groups
    profile_options: dict[str, ProfileOption] = Field(default_factory=dict)

    #: What is about the preset rather than a setting it gives.
    ABOUT: ClassVar[frozenset[str]] = frozenset(
        {"description", "display_name", "default", "allowed_groups", "profile_options", "tolerations"}
    )


class AgentConfig(_File):
    """``[agents.NAME]`` in config.toml: how to run an agent."""

    command: Command
    headless_command: Command | None = None  # for the local backend, which has no terminal
    pass_env: list[EnvName] = Field(default_factory=list)
    pass_env_optional: list[EnvName] = Field(default_factory=list)
    # Credentials the admin gives everyone: taken from the environment of the process that creates the
    # session (on the clauderon service, the service's own), never sent by users.
    service_env: list[EnvName] = Field(default_factory=list)
    env_from_secret: ObjectName | None = None


class GeneralConfig(_File):
    """``$CLAUDERON_HOME/config.toml``."""

    default_backend: BackendName | None = None
    default_agent: Identifier | None = None
    presets: dict[str, PresetConfig] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    # KubeSpawner-style profiles: each becomes a preset named by its slug (``config/profiles.py``).
    profile_list: list[Profile] = Field(default_factory=list)
    # The same, from the file an admin already has: z2jh Helm values (singleuser.profileList), or a YAML or
    # JSON list of profiles. Its profiles come after the inline ones.
    profile_list_file: ExistingFile | None = None
    # "package.module:function": receives the backend-neutral SessionSpec and returns it changed (like
    # KubeSpawner's modify_pod_hook); the result is checked against the policy again.
    modify_spec_hook: Annotated[str, BeforeValidator(_hook_ref)] | None = None

    @model_validator(mode="after")
    def _profiles_are_presets(self) -> GeneralConfig:
        for index, profile in enumerate(self.profile_list):
            where = f"profile_list[{index}] ({profile.display_name!r})"
            name = profile.name
            if name in self.presets:
                raise ValueError(f"{where}: slug {name!r} is also a [presets.{name}]; give the profile another slug")
            self.presets[name] = profile_preset(profile, where)
        defaults = [p.name for p in self.profile_list if p.default]
        if len(defaults) > 1:
            raise ValueError(f"profile_list: {', '.join(defaults)} all say default = true; one may")
        return self


def _hook_ref(value: Any, info: ValidationInfo) -> str:
    pattern = r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*"
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise ValueError(f"{info.field_name} {value!r}: expected package.module:function")
    return value


def _registry_host(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", value):
        raise ValueError(f"{info.field_name} {value!r}: expected a registry host such as ghcr.io or 127.0.0.1:5000")
    return value


def _push_target(value: Any, info: ValidationInfo) -> str:
    """A registry host, optionally with a path under it (``ghcr.io/team``), where built images go."""
    from ..model.image import is_registry_host, parse_image

    text = value.strip().rstrip("/") if isinstance(value, str) else ""
    first = text.split("/", 1)[0]
    try:
        ref = parse_image(f"{text}/clauderon-build/x:1", info.field_name or "build_push_registry")
    except ValueError:
        ref = None
    if ref is None or not is_registry_host(first) or ref.registry == "docker.io":
        raise ValueError(
            f"{info.field_name} {value!r}: expected a registry the cluster pulls from, such as "
            "ghcr.io/team or 127.0.0.1:5000"
        )
    return text


class RegistryAuth(_File):
    """``[image.registry_auth]``: a Docker config.json to pull with."""

    registry: Annotated[str, BeforeValidator(_registry_host)]
    config_file: ExistingFile


class DockerImageSection(_File):
    image: Image | None = None
    pull_policy: Policy | None = None
    registry_auth: RegistryAuth | None = None
    registry_check: bool | None = None  # false: no registry request before a create (offline, air-gapped)


class DockerResources(_File):
    cpu: Cpu | None = None
    memory: Memory | None = None
    pids: Annotated[int, BeforeValidator(_pids)] | None = None  # processes the container may run at once


def _extra(kind: str) -> Any:
    """A validator for an ``extra_*_config`` table (``model/extra_config.py``: owned and unknown keys refused)."""

    def check(value: Any, info: ValidationInfo) -> dict[str, Any]:
        from ..model.extra_config import check_shape

        if not isinstance(value, dict):
            raise ValueError(f"{info.field_name} {value!r}: expected a table")
        problem = check_shape(kind, value)
        if problem:
            raise ValueError(problem)
        return dict(value)

    return BeforeValidator(check)


ExtraDocker = Annotated[dict[str, Any], _extra("docker")]
ExtraPod = Annotated[dict[str, Any], _extra("pod")]
ExtraContainer = Annotated[dict[str, Any], _extra("container")]


class DockerConfig(_File):
    """``$CLAUDERON_HOME/docker-config.toml`` (the seed's format)."""

    image: DockerImageSection = Field(default_factory=DockerImageSection)
    resources: DockerResources = Field(default_factory=DockerResources)
    network: Network | None = None
    extra_env: dict[EnvName, str] = Field(default_factory=dict)
    run_as_user: Annotated[int, BeforeValidator(_uid)] | None = None  # the agent's uid (and gid) in the container
    # Merged into the create arguments; what would loosen containment needs the policy's allow_extra_config.
    extra_container_config: ExtraDocker | None = None


class KubernetesConfig(_File):
    """``$CLAUDERON_HOME/k8s-config.toml`` (the seed's format)."""

    namespace: DnsLabel | None = None
    image: Image | None = None
    image_pull_policy: Policy | None = None
    cpu_request: Cpu | None = None
    cpu_limit: Cpu | None = None
    memory_request: Memory | None = None
    memory_limit: Memory | None = None
    service_account: ObjectName | None = None
    storage_class: ObjectName | None = None
    workspace_size: StorageSize | None = None
    image_pull_secrets: list[ObjectName] = Field(default_factory=list)
    git_remote_url: Annotated[str, BeforeValidator(_git_url)] | None = None
    namespace_template: NamespaceTemplate | None = None
    workspace: Workspace | None = None
    run_as_user: Annotated[int, BeforeValidator(_uid)] | None = None
    pod_start_timeout: Annotated[float, BeforeValidator(_timeout)] | None = None
    kubeconfig: ExistingFile | None = None
    context: str | None = None
    gpu_resource: ResourceName | None = None
    node_selector: LabelMap = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class_name: ObjectName | None = None
    registry_check: bool | None = None  # false: no registry request before a create (offline, air-gapped)
    build_push_registry: Annotated[str, BeforeValidator(_push_target)] | None = None
    # Merged into the pod spec and the agent container (schema-checked); what would loosen containment needs
    # the policy's allow_extra_config.
    extra_pod_config: ExtraPod | None = None
    extra_container_config: ExtraContainer | None = None


# ``.clauderon.toml`` at a repository root: per-repo defaults, keyed like the create flags. Built from the
# request model's own field declarations, so the file and the flags can never disagree.
RepoConfig: type[_File] = create_model(  # type: ignore[call-overload]
    "RepoConfig",
    __base__=_File,
    __doc__="``.clauderon.toml`` at a repository root: per-repo defaults, keyed like the create flags.",
    **{
        name: (CreateSessionRequest.model_fields[name].annotation, CreateSessionRequest.model_fields[name])
        for name in DEFAULTABLE_FIELDS
    },
)


@dataclass(frozen=True)
class Loaded:
    """A parsed config file and where it came from (``path`` is None when absent)."""

    path: Path | None
    data: Any


@dataclass(frozen=True)
class UserConfig:
    """Everything in ``$CLAUDERON_HOME``; missing files are empty."""

    home: Path
    general: Loaded
    docker: Loaded
    kubernetes: Loaded
    files: list[Path] = field(default_factory=list)


def _maybe(path: Path, model: type[BaseModel]) -> Loaded:
    if not readable_file(path, what="the config file", missing_ok=True):
        return Loaded(None, model())
    return Loaded(path, load_toml(path, model))


def load_user_config(home: Path) -> UserConfig:
    """Load the three user files; a file that exists but is wrong raises ``ConfigError``."""
    general = _maybe(home / "config.toml", GeneralConfig)
    docker = _maybe(home / "docker-config.toml", DockerConfig)
    kubernetes = _maybe(home / "k8s-config.toml", KubernetesConfig)
    files = [p for p in (general.path, docker.path, kubernetes.path) if p]
    return UserConfig(home=home, general=general, docker=docker, kubernetes=kubernetes, files=files)


SYSTEM_CONFIG = Path("/etc/clauderon")
#: Points the system-wide defaults folder elsewhere (tests, packaging).
SYSTEM_CONFIG_ENV = "CLAUDERON_SYSTEM_CONFIG"


def system_config_dir() -> Path:
    override = os.environ.get(SYSTEM_CONFIG_ENV, "").strip()
    return Path(override).expanduser() if override else SYSTEM_CONFIG


def load_system_config() -> UserConfig:
    """The admin's defaults for everyone: the same three files in ``/etc/clauderon`` (or
    ``$CLAUDERON_SYSTEM_CONFIG``), a layer of their own below each user's files."""
    return load_user_config(system_config_dir())


def agents_of(*configs: UserConfig) -> dict[str, AgentConfig]:
    """The agent tables of the given configs, later ones winning by name (system, then user)."""
    out: dict[str, AgentConfig] = {}
    for config in configs:
        out.update(config.general.data.agents)
    return out


def profile_preset(profile: Profile, where: str) -> PresetConfig:
    """A profile as a preset: its override mapped to our fields and parsed like any preset; its options kept
    (each choice's override is checked now, an unlisted choice's once its value is known)."""
    from ..errors import describe_validation_error

    def parsed(values: dict[str, Any], at: str) -> PresetConfig:
        try:
            return PresetConfig.model_validate(values)
        except ValidationError as exc:
            raise ValueError(f"{at}: {describe_validation_error(exc)}") from None

    for key, option in profile.profile_options.items():
        for choice, picked in option.choices.items():
            at = f"{where} option {key}={choice}"
            parsed(override_values(picked.kubespawner_override, at), at)
        unlisted = option.unlisted_choice
        if unlisted is not None and unlisted.enabled:
            override_values(unlisted.kubespawner_override, f"{where} option {key} (unlisted)")
    values = override_values(profile.kubespawner_override, where)
    about = {
        "description": profile.description or None,
        "display_name": profile.display_name,
        "default": profile.default,
        "allowed_groups": profile.allowed_groups,
        "profile_options": profile.profile_options,
    }
    return parsed({**values, **about}, where)


def presets_of(*configs: UserConfig) -> dict[str, PresetConfig]:
    """The presets of the given configs, later ones winning by name (system, then user); a config's
    ``profile_list_file`` is read when it changes (its profiles after the file's own)."""
    out: dict[str, PresetConfig] = {}
    for config in configs:
        general = config.general.data
        out.update(general.presets)
        if general.profile_list_file is not None:
            for name, preset in _file_presets(general.profile_list_file).items():
                if name in general.presets:
                    raise ConfigError(
                        f"{general.profile_list_file}: profile {name!r} is also a preset of {config.general.path}; "
                        "give the profile another slug",
                        field="preset",
                    )
                out[name] = preset
    return out


def _file_presets(path: Path) -> dict[str, PresetConfig]:
    """The presets of a profile file, remembered while the file is unchanged."""
    from .cache import remember, stat_key

    def load() -> dict[str, PresetConfig]:
        try:
            presets: dict[str, PresetConfig] = {}
            for index, profile in enumerate(profiles_from_file(path)):
                presets[profile.name] = profile_preset(profile, f"profile {index} ({profile.display_name!r})")
            return presets
        except (OSError, ValueError) as exc:
            text = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(f"{path}: {text}" if str(path) not in text else text, field="preset") from None

    return remember(("profile_list_file", str(path), stat_key(path)), load)


def load_repo_config(repo_root: Path) -> Loaded:
    """The repository's ``.clauderon.toml``, if any."""
    return _maybe(repo_root / ".clauderon.toml", RepoConfig)

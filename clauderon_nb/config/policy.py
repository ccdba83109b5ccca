"""The admin policy: bounds set for a shared environment that users cannot override.

In a user's own kernel this is advisory (the user controls the environment and
the package); only the clauderon service, a process users do not control, can
enforce it. ``$CLAUDERON_POLICY`` is exactly as strong as whatever sets it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from ..errors import ConfigError, PolicyError
from ..model.display import show_value
from ..model.fields import BackendName, Cpu, Identifier, Memory, Policy
from ..model.image import parse_image
from ..model.units import parse_duration, parse_memory
from .files import EnvName, LabelMap, ObjectName, Toleration
from .tomlfile import display_path, load_toml, readable_file

SYSTEM_POLICY = Path("/etc/clauderon/policy.toml")
#: Points the system policy elsewhere (tests, packaging). Like $CLAUDERON_POLICY, as strong as what sets it.
SYSTEM_POLICY_ENV = "CLAUDERON_SYSTEM_POLICY"
WILDCARDS = "*?"
_STAR, _QMARK = "0qqstarqq0", "0qqqmarkqq0"  # stand-ins that are valid in a host, a path and a tag


def canonical_pattern(entry: str) -> str:
    """An ``allowed_images`` entry in canonical form, wildcards kept (``python:3.*`` ->
    ``docker.io/library/python:3.*``); ``ValueError`` for an entry that is no image reference."""
    text = entry.strip()
    if not text or set(text) <= set(WILDCARDS):
        return text or entry
    name, at, digest = text.partition("@")
    if at:
        algo, colon, hexpart = digest.partition(":")
        if not colon or algo not in ("sha256", "sha384", "sha512") or not re.fullmatch(r"[0-9a-f*?]+", hexpart):
            raise ValueError(f"allowed_images entry {entry!r}: digest must be sha256:<hex> (wildcards allowed)")
    swapped = name.replace("*", _STAR).replace("?", _QMARK)
    ref = parse_image(swapped, "allowed_images entry")
    last = swapped.rsplit("/", 1)[-1]
    explicit_tag = ":" in last
    repository = ref.repository
    path_part = swapped.split("/", 1)[1] if ref.registry != "docker.io" or swapped.startswith("docker.io/") else swapped
    if "/" not in path_part and repository.startswith("library/") and repository[8:].strip(_STAR + _QMARK) == "":
        repository = repository[8:]  # "docker.io/*" means every docker.io image, not only official ones
    out = f"{ref.registry}/{repository}"
    if explicit_tag and ref.tag:
        out += f":{ref.tag}"
    elif not at and _STAR not in last and _QMARK not in last:
        out += ":latest"
    if at:
        out += f"@{digest}"
    return out.replace(_STAR, "*").replace(_QMARK, "?")


def _pattern_regex(pattern: str, digests: bool) -> re.Pattern[str]:
    """Only ``*`` and ``?`` are wildcards (``[`` is literal: ``[::1]:5000``). Unless ``digests``,
    a wildcard never crosses ``@``, so a tag glob admits no digest."""
    any_char = "." if digests else "[^@]"
    body = "".join(f"{any_char}*" if c == "*" else any_char if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


def _image_patterns(value: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{info.field_name} {value!r}: expected a list of image references or globs")
    return [canonical_pattern(v) for v in value]


def _networks(value: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(value, list) or any(v not in ("bridge", "none", "host") for v in value):
        raise ValueError(f"{info.field_name} {value!r}: expected a list of bridge, none, host")
    return list(value)


def _gates(value: Any, info: ValidationInfo) -> list[str]:
    from ..model.extra_config import GATES

    if not isinstance(value, list) or any(v not in GATES for v in value):
        raise ValueError(f"{info.field_name} {value!r}: expected a list of {', '.join(GATES)}")
    return list(value)


def _names(value: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{info.field_name} {value!r}: expected a list of user names")
    return [v.strip() for v in value]


def _size(value: Any, info: ValidationInfo) -> int:
    return parse_memory(value, info.field_name or "size")


def _bytes(value: Any, info: ValidationInfo) -> int:
    return parse_memory(value, info.field_name or "size", minimum=1)


def _duration(value: Any, info: ValidationInfo) -> float:
    return parse_duration(value, info.field_name or "duration")


def _count(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{info.field_name} {value!r}: expected a whole number, 0 or more")
    return value


def _positive(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{info.field_name} {value!r}: expected a whole number, 1 or more")
    return value


Count = Annotated[int, BeforeValidator(_count)]
Duration = Annotated[float, BeforeValidator(_duration)]


class PolicyRules(BaseModel):
    """The bounds one user gets: the top level of ``policy.toml``, or a ``[groups.X]``/``[users.X]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_images: Annotated[list[str], BeforeValidator(_image_patterns)] | None = None
    allow_digests: bool | None = None
    # Building the session image from a repository's Dockerfile runs that repository's RUN steps on the
    # engine: off unless a policy file says allow_builds = true.
    allow_builds: bool | None = None
    # A session's container runs as a non-root uid unless every policy file says allow_root = true.
    allow_root: bool | None = None
    max_pids: Annotated[int, BeforeValidator(_positive)] | None = None  # processes per session container
    max_cpu: Cpu | None = None
    max_memory: Memory | None = None
    max_workspace_size: Annotated[int, BeforeValidator(_size)] | None = None
    max_gpus: Count | None = None  # per session
    max_upload_size: Annotated[int, BeforeValidator(_bytes)] | None = None  # a workspace bundle sent to the service
    # The service's copies of a user's repositories, all together (bytes on disk).
    max_repo_storage: Annotated[int, BeforeValidator(_bytes)] | None = None
    allowed_backends: list[BackendName] | None = None
    allowed_pull_policies: list[Policy] | None = None
    allowed_networks: Annotated[list[str], BeforeValidator(_networks)] | None = None
    default_preset: Identifier | None = None
    allowed_agents: list[Identifier] | None = None
    allowed_pass_env: list[EnvName] | None = None  # credentials an agent may forward from the user's environment
    # Quotas, per user (enforced by the service; advisory in a user's own kernel).
    max_sessions: Count | None = None  # running and stopped
    max_running_sessions: Count | None = None
    max_total_cpu: Cpu | None = None
    max_total_memory: Memory | None = None
    max_total_gpus: Count | None = None
    # Kubernetes placement for the members (defaults, below the users' own files): e.g. a group's GPU pool.
    node_selector: LabelMap | None = None
    tolerations: list[Toleration] | None = None
    priority_class_name: ObjectName | None = None
    # Lifetimes: the service's culler (or `clauderon-nb cull`) stops and deletes.
    max_lifetime: Duration | None = None
    idle_timeout: Duration | None = None
    delete_stopped_after: Duration | None = None
    delete_unused_repos_after: Duration | None = None  # the service's copy of a repository no session uses
    # Extra engine configuration that loosens containment, by gate (privileged, capabilities, host_mounts, …):
    # refused unless named here (model/extra_config.py says which key needs which gate).
    allow_extra_config: Annotated[list[str], BeforeValidator(_gates)] | None = None


#: How several groups combine: the most permissive value of each key.
_LISTS = (
    "allow_extra_config",
    "allowed_images",
    "allowed_backends",
    "allowed_pull_policies",
    "allowed_networks",
    "allowed_agents",
    "allowed_pass_env",
)


_FLAGS = ("allow_digests", "allow_builds", "allow_root")
#: Keys no order of "permissive" applies to: the first group by name that sets one gives it whole.
_FIRST_BY_NAME = ("default_preset", "priority_class_name", "node_selector", "tolerations")


def _most_permissive(key: str, values: list[Any]) -> Any:
    if key in _LISTS:
        return list(dict.fromkeys(v for value in values for v in value))
    if key in _FLAGS:
        return any(values)
    if key in _FIRST_BY_NAME:
        return values[0]  # groups in name order: the first that sets it (placement cannot be "most permissive")
    return max(values)


class PolicyConfig(PolicyRules):
    """``policy.toml``: every key optional; absent means unbounded. ``[groups.NAME]`` and
    ``[users.NAME]`` sections change the bounds for the members of a hub group or one user."""

    admins: Annotated[list[str], BeforeValidator(_names)] | None = None
    groups: dict[str, PolicyRules] = Field(default_factory=dict)
    users: dict[str, PolicyRules] = Field(default_factory=dict)


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    rules: PolicyConfig
    sections: dict[str, str] = field(default_factory=dict)  # key -> "[groups.x]" when a section set it

    @property
    def where(self) -> str:
        return display_path(self.path)

    def where_for(self, key: str) -> str:
        """The file, and the section that set ``key`` for this user (if not the top level)."""
        section = self.sections.get(key)
        return f"{self.where} {section}" if section else self.where

    def image_allowed(self, image: str) -> bool:
        globs = self.rules.allowed_images
        if globs is None:
            return True
        return any(_pattern_regex(g, bool(self.rules.allow_digests)).fullmatch(image) for g in globs)

    def for_user(self, owner: str, groups: tuple[str, ...] = ()) -> PolicyFile:
        """The rules for ``owner``: an explicit ``[users.NAME]`` beats groups; several groups give the
        most permissive value of each key; keys no section sets stay as the top level says."""
        rules = self.rules
        update: dict[str, Any] = {}
        sections: dict[str, str] = {}
        member = sorted(g for g in groups if g in rules.groups)
        for key in PolicyRules.model_fields:
            user = rules.users.get(owner)
            if user is not None and getattr(user, key) is not None:
                update[key], sections[key] = getattr(user, key), f"[users.{owner}]"
                continue
            setting = [(g, getattr(rules.groups[g], key)) for g in member if getattr(rules.groups[g], key) is not None]
            if not setting:
                continue
            values = [v for _, v in setting]
            if len(setting) < len(member) and key not in _FIRST_BY_NAME and key not in _FLAGS:
                # A group that leaves the key alone gives its members the top level's value: it counts too.
                top = getattr(rules, key)
                if top is None:
                    continue  # unbounded at the top level: the most permissive value is no bound
                values.append(top)
            update[key] = _most_permissive(key, values)
            sections[key] = "[groups." + ", groups.".join(g for g, _ in setting) + "]"
        if not update:
            return self
        return PolicyFile(self.path, rules.model_copy(update=update), sections)


@dataclass(frozen=True)
class AdminPolicy:
    """All policy files in force; a value must satisfy every one of them."""

    files: tuple[PolicyFile, ...] = ()

    def check_extra_config(self, settings: dict[str, Any], sources: dict[str, str]) -> None:
        """Extra engine configuration that would loosen containment: refused unless every policy file in force
        names its gate in ``allow_extra_config`` (none in force: refused)."""
        from ..model.extra_config import gates

        docker = str(settings.get("backend")) == "docker"
        for key, kind in (("extra_container_config", "docker" if docker else "container"), ("extra_pod_config", "pod")):
            value = settings.get(key)
            if not isinstance(value, dict):
                continue
            for gate, where in gates(kind, value):
                refusing = next((f for f in self.files if gate not in (f.rules.allow_extra_config or [])), None)
                if refusing is None and self.files:
                    continue
                said = f"policy {refusing.where_for('allow_extra_config')}" if refusing else "the admin policy"
                raise PolicyError(
                    f"{key} {where} ({sources.get(key)}): loosens containment ({gate}); refused unless {said} "
                    f"lists '{gate}' in allow_extra_config",
                    field=key,
                )

    def first(self, key: str) -> tuple[Any, PolicyFile] | None:
        for f in self.files:
            value = getattr(f.rules, key)
            if value is not None:
                return value, f
        return None

    def _min(self, key: str) -> int | None:
        values = [getattr(f.rules, key) for f in self.files if getattr(f.rules, key) is not None]
        return min(values) if values else None

    def max_cpu(self) -> int | None:
        return self._min("max_cpu")

    def max_memory(self) -> int | None:
        return self._min("max_memory")

    def max_workspace_size(self) -> int | None:
        return self._min("max_workspace_size")

    def max_upload_size(self) -> int | None:
        return self._min("max_upload_size")

    def allows(self, key: str, value: Any) -> bool:
        return all(getattr(f.rules, key) is None or value in getattr(f.rules, key) for f in self.files)

    def image_allowed(self, image: str) -> bool:
        return all(f.image_allowed(image) for f in self.files)

    def literal_images(self) -> list[str]:
        """Allowed images that are no glob: usable as a default or a suggestion."""
        found = self.first("allowed_images")
        return [g for g in (found[0] if found else []) if not any(c in g for c in WILDCARDS)]

    def allows_root(self) -> bool:
        """Root in a session's container: only when a policy exists and every file says allow_root = true."""
        return bool(self.files) and all(f.rules.allow_root for f in self.files)

    def root_refusal(self, what: str) -> PolicyError:
        """The one line for a session that would run as root in its container."""
        where = ", ".join(f.where_for("allow_root") for f in self.files if not f.rules.allow_root) or "no policy file"
        return PolicyError(
            f"{what}: a session's container runs as a non-root uid; root needs allow_root = true in the admin "
            f"policy ({where}); use a non-root user (run_as_user, or containerUser in devcontainer.json)",
            field="image",
        )

    def names_registry(self, registry: str, repository: str | None = None) -> bool:
        """Whether ``allowed_images`` names this registry (and repository): what the clauderon service may
        contact on a user's behalf. No ``allowed_images``: no registry at all."""
        import fnmatch

        found = self.first("allowed_images")
        if found is None:
            return False
        for pattern in found[0]:
            host, _, path = pattern.partition("/")
            if not fnmatch.fnmatchcase(registry.lower(), host.lower()):
                continue
            if repository is None:
                return True
            bare = path.split("@", 1)[0]
            last = bare.rsplit("/", 1)[-1]
            if ":" in last:
                bare = bare[: len(bare) - len(last)] + last.split(":", 1)[0]
            if fnmatch.fnmatchcase(repository, bare) or fnmatch.fnmatchcase(f"{repository}:x", path):
                return True
        return False

    def is_admin(self, owner: str) -> bool:
        return any(f.rules.admins and owner in f.rules.admins for f in self.files)

    def check_pass_env(self, agent: str, names: tuple[str, ...]) -> None:
        """Refuse an agent that would forward a credential the policy does not let users forward."""
        for f in self.files:
            allowed = f.rules.allowed_pass_env
            refused = [n for n in names if allowed is not None and n not in allowed]
            if refused:
                raise PolicyError(
                    f"policy {f.where_for('allowed_pass_env')}: allowed_pass_env is {_listed(allowed or [])}; "
                    f"agent {agent!r} would forward {refused[0]} from your environment, which is not allowed",
                    field="agent",
                )

    def for_user(self, owner: str, groups: tuple[str, ...] = ()) -> AdminPolicy:
        """The bounds that apply to ``owner`` (a member of ``groups``), section by section."""
        return AdminPolicy(tuple(f.for_user(owner, groups) for f in self.files))

    def limit(self, key: str) -> tuple[Any, str] | None:
        """The tightest value of a quota or lifetime key over every file, and where it is set."""
        found = [(getattr(f.rules, key), f.where_for(key)) for f in self.files if getattr(f.rules, key) is not None]
        return min(found, key=lambda pair: pair[0]) if found else None

    def check(self, settings: dict[str, Any], sources: dict[str, str]) -> None:
        """Raise ``PolicyError`` (with ``.field``) for the first resolved value outside the bounds."""
        self.check_extra_config(settings, sources)
        for f in self.files:
            r = f.rules
            for key, rule in (
                ("backend", "allowed_backends"),
                ("pull_policy", "allowed_pull_policies"),
                ("network", "allowed_networks"),
                ("agent", "allowed_agents"),
            ):
                allowed, value = getattr(r, rule), settings.get(key)
                if allowed is not None and value is not None and value not in allowed:
                    raise PolicyError(
                        f"policy {f.where_for(rule)}: {rule} is {_listed(allowed)}; "
                        f"{key} '{value}' ({sources.get(key)}) is not allowed",
                        field=key,
                    )
            build = settings.get("build")
            if build is not None and not r.allow_builds:
                raise PolicyError(
                    f"policy {f.where_for('allow_builds')}: image builds are off (allow_builds = true turns them "
                    f"on); build {build.dockerfile_path} ({sources.get('build')}) is not allowed; "
                    "use a prebuilt image (--image)",
                    field="build",
                )
            image = settings.get("image")
            if image is not None and not f.image_allowed(image):
                digests = "" if r.allow_digests or "@" not in image else " (digests need allow_digests = true)"
                raise PolicyError(
                    f"policy {f.where_for('allowed_images')}: allowed_images is {_listed(r.allowed_images or [])}; "
                    f"image '{image}' ({sources.get('image')}) does not match{digests}",
                    field="image",
                )
            for key, rule in _MAXIMA:
                maximum, value = getattr(r, rule), settings.get(key)
                if key == "gpus" and value == -1 and maximum is not None:
                    raise PolicyError(
                        f"policy {f.where_for(rule)}: {rule} is {maximum}; gpus all ({sources.get(key)}) "
                        "could be more; ask for a number",
                        field=key,
                    )
                if maximum is not None and value is not None and value > maximum:
                    raise PolicyError(
                        f"policy {f.where_for(rule)}: {rule} is {show_value(key, maximum)}; "
                        f"{key} {show_value(key, value)} ({sources.get(key)}) is above it",
                        field=key,
                    )


#: (setting, the policy key that bounds it)
_MAXIMA = (
    ("cpu_limit", "max_cpu"),
    ("cpu_request", "max_cpu"),
    ("memory_limit", "max_memory"),
    ("memory_request", "max_memory"),
    ("workspace_size", "max_workspace_size"),
    ("gpus", "max_gpus"),
    ("pids_limit", "max_pids"),
)


def _listed(values: list[Any]) -> str:
    return ", ".join(map(str, values)) or "empty (nothing is allowed)"


def system_policy_path() -> Path:
    override = os.environ.get(SYSTEM_POLICY_ENV, "").strip()
    return Path(override).expanduser() if override else SYSTEM_POLICY


def load_policy() -> AdminPolicy:
    """The system policy and ``$CLAUDERON_POLICY``; both apply when both exist.

    A policy file that exists but cannot be read is an error, never skipped.
    """
    files: list[PolicyFile] = []
    system = system_policy_path()
    if readable_file(system, what="the admin policy", missing_ok=True):
        files.append(PolicyFile(system, load_toml(system, PolicyConfig)))
    env = os.environ.get("CLAUDERON_POLICY", "").strip()
    if env:
        path = Path(env).expanduser()
        if not readable_file(path, what="the admin policy", missing_ok=True):
            raise ConfigError(f"CLAUDERON_POLICY={env}: no such file")
        if not files or path.resolve() != system.resolve():
            files.append(PolicyFile(path, load_toml(path, PolicyConfig)))
    return AdminPolicy(tuple(files))

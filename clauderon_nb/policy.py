"""The admin policy: bounds set for a shared environment that users cannot override."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import ConfigError, PolicyError
from .fields import BackendName, Cpu, Identifier, Memory, Policy
from .tomlfile import display_path, load_toml
from .units import human_cpu, human_memory

SYSTEM_POLICY = Path("/etc/clauderon/policy.toml")


class PolicyConfig(BaseModel):
    """``policy.toml``: every key optional; absent means unbounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_images: list[str] | None = None
    max_cpu: Cpu | None = None
    max_memory: Memory | None = None
    allowed_backends: list[BackendName] | None = None
    allowed_pull_policies: list[Policy] | None = None
    default_preset: Identifier | None = None


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    rules: PolicyConfig

    @property
    def where(self) -> str:
        return display_path(self.path)


@dataclass(frozen=True)
class AdminPolicy:
    """All policy files in force; a value must satisfy every one of them."""

    files: tuple[PolicyFile, ...] = ()

    def first(self, key: str) -> tuple[Any, PolicyFile] | None:
        for f in self.files:
            value = getattr(f.rules, key)
            if value is not None:
                return value, f
        return None

    def max_cpu(self) -> int | None:
        values = [f.rules.max_cpu for f in self.files if f.rules.max_cpu is not None]
        return min(values) if values else None

    def max_memory(self) -> int | None:
        values = [f.rules.max_memory for f in self.files if f.rules.max_memory is not None]
        return min(values) if values else None

    def allows(self, key: str, value: Any) -> bool:
        return all(getattr(f.rules, key) is None or value in getattr(f.rules, key) for f in self.files)

    def image_allowed(self, image: str) -> bool:
        return all(
            f.rules.allowed_images is None or any(fnmatch.fnmatchcase(image, g) for g in f.rules.allowed_images)
            for f in self.files
        )

    def check(self, settings: dict[str, Any], sources: dict[str, str]) -> None:
        """Raise ``PolicyError`` for the first resolved value outside the bounds."""
        for f in self.files:
            r = f.rules
            backend = settings.get("backend")
            if r.allowed_backends is not None and backend not in r.allowed_backends:
                raise PolicyError(
                    f"policy {f.where}: allowed_backends is {', '.join(map(str, r.allowed_backends))}; "
                    f"backend '{backend}' ({sources.get('backend')}) is not allowed"
                )
            image = settings.get("image")
            allowed_images = r.allowed_images
            if (
                image is not None
                and allowed_images is not None
                and not any(fnmatch.fnmatchcase(image, g) for g in allowed_images)
            ):
                raise PolicyError(
                    f"policy {f.where}: allowed_images is {', '.join(allowed_images)}; "
                    f"image '{image}' ({sources.get('image')}) does not match"
                )
            pull = settings.get("pull_policy")
            if pull is not None and r.allowed_pull_policies is not None and pull not in r.allowed_pull_policies:
                raise PolicyError(
                    f"policy {f.where}: allowed_pull_policies is {', '.join(map(str, r.allowed_pull_policies))}; "
                    f"pull_policy '{pull}' ({sources.get('pull_policy')}) is not allowed"
                )
            for key in ("cpu_limit", "cpu_request"):
                value = settings.get(key)
                if r.max_cpu is not None and value is not None and value > r.max_cpu:
                    raise PolicyError(
                        f"policy {f.where}: max_cpu is {human_cpu(r.max_cpu)}; "
                        f"{key} {human_cpu(value)} ({sources.get(key)}) is above it"
                    )
            for key in ("memory_limit", "memory_request"):
                value = settings.get(key)
                if r.max_memory is not None and value is not None and value > r.max_memory:
                    raise PolicyError(
                        f"policy {f.where}: max_memory is {human_memory(r.max_memory)}; "
                        f"{key} {human_memory(value)} ({sources.get(key)}) is above it"
                    )


def load_policy() -> AdminPolicy:
    """``/etc/clauderon/policy.toml`` and ``$CLAUDERON_POLICY``; both apply when both exist."""
    files: list[PolicyFile] = []
    if SYSTEM_POLICY.exists():
        files.append(PolicyFile(SYSTEM_POLICY, load_toml(SYSTEM_POLICY, PolicyConfig)))
    env = os.environ.get("CLAUDERON_POLICY", "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"CLAUDERON_POLICY={env}: no such file")
        if not files or path.resolve() != SYSTEM_POLICY.resolve():
            files.append(PolicyFile(path, load_toml(path, PolicyConfig)))
    return AdminPolicy(tuple(files))

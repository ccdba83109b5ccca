"""How a session image is built from the repository: ``[build]`` in ``.clauderon.toml``, ``--build``,
or a devcontainer.json's ``build``. Paths are relative to the repository root."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .image import BUILD_REPOSITORY
from .redact import is_env_name, looks_secret

#: Where built images are tagged on a Docker engine (``localhost/`` marks a local build, as Podman does).
LOCAL_BUILD_PREFIX = f"localhost/{BUILD_REPOSITORY}"
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def repo_relative(value: Any, what: str) -> str:
    """A path inside the repository, normalised (``./a/../b`` -> ``b``); never absolute or outside it."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError(f"{what} {value!r}: expected a path inside the repository, such as . or docker/Dockerfile")
    text = value.strip().replace("\\", "/")
    if text.startswith("/"):
        raise ValueError(f"{what} {value!r}: must be relative to the repository root, not absolute")
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"{what} {value!r}: points outside the repository")
    return norm


class BuildConfig(BaseModel):
    """What to build: ``context`` and ``dockerfile`` relative to the repository root (the Dockerfile
    defaults to ``<context>/Dockerfile``), build ``args`` and a ``target`` stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: str = "."
    dockerfile: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    target: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``--build`` (True) builds the default; ``--build PATH`` names the Dockerfile."""
        if value is True:
            return {}
        if isinstance(value, str):
            return {"dockerfile": value}
        if not isinstance(value, (dict, BuildConfig)):
            raise ValueError(
                f"build {value!r}: expected a Dockerfile path relative to the repository, or a [build] table "
                "with context, dockerfile, args, target"
            )
        return value

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> str:
        return repo_relative(value, "build.context")

    @field_validator("dockerfile", mode="before")
    @classmethod
    def _dockerfile(cls, value: Any) -> str | None:
        return None if value is None else repo_relative(value, "build.dockerfile")

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValueError(f'build.args {value!r}: expected a table of NAME = "value"')
        out: dict[str, str] = {}
        for key, item in value.items():
            if not is_env_name(key):
                raise ValueError(f"build.args key {key!r}: expected a build argument name such as NODE_VERSION")
            if looks_secret(key):
                raise ValueError(
                    f"build.args.{key}: looks like a secret, and build arguments stay readable in the image's "
                    "history; give the build no secrets (the agent gets its credentials from pass_env)"
                )
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ValueError(f"build.args.{key}: expected text or a number")
            out[key] = str(item)
        return out

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _TARGET.fullmatch(value):
            raise ValueError(f"build.target {value!r}: expected a stage name such as dev")
        return value

    @property
    def dockerfile_path(self) -> str:
        """The Dockerfile, relative to the repository root."""
        return self.dockerfile or posixpath.normpath(posixpath.join(self.context, "Dockerfile"))

    def describe(self) -> str:
        """One line: ``Dockerfile (context ., target dev, args A, B)``."""
        extra = [f"context {self.context}"]
        if self.target:
            extra.append(f"target {self.target}")
        if self.args:
            extra.append("args " + ", ".join(sorted(self.args)))
        return f"{self.dockerfile_path} ({', '.join(extra)})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"context": self.context, "dockerfile": self.dockerfile_path}
        if self.args:
            out["args"] = dict(self.args)
        if self.target:
            out["target"] = self.target
        return out

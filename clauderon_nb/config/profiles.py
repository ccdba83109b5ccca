"""KubeSpawner-style profiles: ``[[profile_list]]`` in config.toml, written as JupyterHub admins write a
``profile_list``, become presets.

Each profile's ``kubespawner_override`` is mapped to our fields (the table is ``OVERRIDE_KEYS``); a key
we cannot honour is refused with one line naming it, never ignored. ``profile_options`` become the
preset's options: a choice per option, each with its own override, and an ``unlisted_choice`` that
takes a free value, checked by its ``validation_regex`` and then, like every value, by the field's
parser and the admin policy. ``allowed_groups`` limits a profile to members of those hub groups.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from ..model.fields import Identifier

#: KubeSpawner's override keys and the field each sets here (``extra_resource_limits``: GPUs, see below).
OVERRIDE_KEYS = {
    "image": "image",
    "image_pull_policy": "pull_policy",
    "cpu_limit": "cpu_limit",
    "cpu_guarantee": "cpu_request",
    "mem_limit": "memory_limit",
    "mem_guarantee": "memory_request",
    "node_selector": "node_selector",
    "tolerations": "tolerations",
    "extra_resource_limits": "gpus",
}


def override_values(override: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``kubespawner_override`` table as our fields; ``ValueError`` naming the first key we cannot honour.
    ``extra_resource_limits`` takes one extended resource (``{"nvidia.com/gpu": 1}``): its count is ``gpus``
    and its name ``gpu_resource``."""
    unknown = [k for k in override if k not in OVERRIDE_KEYS]
    if unknown:
        raise ValueError(
            f"{where}: kubespawner_override key {unknown[0]!r} cannot be honoured by clauderon (it is refused, "
            f"never ignored); the keys it takes: {', '.join(OVERRIDE_KEYS)}"
        )
    out: dict[str, Any] = {}
    for key, value in override.items():
        if key == "extra_resource_limits":
            if not isinstance(value, dict) or len(value) != 1:
                raise ValueError(
                    f"{where}: extra_resource_limits {value!r}: expected one extended resource and its count, "
                    'such as {"nvidia.com/gpu" = 1}'
                )
            ((resource, count),) = value.items()
            out["gpu_resource"] = resource
            out["gpus"] = int(count) if isinstance(count, str) and count.isdigit() else count
        elif key == "tolerations" and isinstance(value, list):
            out["tolerations"] = [
                {("toleration_seconds" if k == "tolerationSeconds" else k): v for k, v in t.items()}
                if isinstance(t, dict)
                else t
                for t in value
            ]
        else:
            out[OVERRIDE_KEYS[key]] = value
    return out


def _override(value: Any, info: ValidationInfo) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{info.field_name} {value!r}: expected a table of KubeSpawner settings")
    return dict(value)


Override = Annotated[dict[str, Any], BeforeValidator(_override)]


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileChoice(_Profile):
    """One choice of a profile option."""

    display_name: str
    default: bool = False
    kubespawner_override: Override = Field(default_factory=dict)


class UnlistedChoice(_Profile):
    """A profile option's free value: ``{value}`` in its override's text stands for what the user typed."""

    enabled: bool = False
    display_name: str = "Other"
    display_name_in_choices: str | None = None
    validation_regex: str | None = None
    validation_message: str | None = None
    kubespawner_override: Override = Field(default_factory=dict)

    @model_validator(mode="after")
    def _regex_compiles(self) -> UnlistedChoice:
        if self.validation_regex is not None:
            try:
                re.compile(self.validation_regex)
            except re.error as exc:
                raise ValueError(
                    f"validation_regex {self.validation_regex!r}: not a regular expression ({exc})"
                ) from None
        return self


class ProfileOption(_Profile):
    """``profile_options.NAME``: a choice in the form (and ``--option NAME=VALUE``)."""

    display_name: str
    choices: dict[str, ProfileChoice] = Field(default_factory=dict)
    unlisted_choice: UnlistedChoice | None = None

    @model_validator(mode="after")
    def _something_to_choose(self) -> ProfileOption:
        if not self.choices and not (self.unlisted_choice and self.unlisted_choice.enabled):
            raise ValueError(f"option {self.display_name!r}: give choices, or an enabled unlisted_choice")
        return self


class Profile(_Profile):
    """One entry of ``[[profile_list]]``, as KubeSpawner takes it."""

    display_name: str
    slug: Identifier | None = None
    description: str = ""
    default: bool = False
    kubespawner_override: Override = Field(default_factory=dict)
    profile_options: dict[str, ProfileOption] = Field(default_factory=dict)
    allowed_groups: list[str] | None = None

    @property
    def name(self) -> str:
        """The preset name: the slug, else the display name made into one (as KubeSpawner does)."""
        if self.slug:
            return self.slug
        return re.sub(r"[^a-z0-9]+", "-", self.display_name.lower()).strip("-")[:63] or "profile"


def profiles_from_file(path: Any) -> list[Profile]:
    """The profiles of a YAML or JSON file: a list of profiles, a table with ``profile_list``, or Zero to
    JupyterHub's Helm values (``singleuser.profileList``). ``ValueError`` (one line, naming the file)."""
    import json
    from pathlib import Path

    from pydantic import ValidationError

    from ..errors import describe_validation_error

    file = Path(path)
    text = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"profile_list_file {file}: not JSON ({exc})") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"profile_list_file {file}: reading YAML needs PyYAML (pip install pyyaml), or give a .json file"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"profile_list_file {file}: not YAML ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(data, dict):
        data = (data.get("singleuser") or {}).get("profileList") if "singleuser" in data else data.get("profile_list")
    if not isinstance(data, list):
        raise ValueError(
            f"profile_list_file {file}: expected a list of profiles, profile_list, or singleuser.profileList"
        )
    out = []
    for index, entry in enumerate(data):
        try:
            out.append(Profile.model_validate(entry))
        except ValidationError as exc:
            raise ValueError(f"profile_list_file {file}: profile {index}: {describe_validation_error(exc)}") from None
    return out

"""Named resource templates: built-ins, ``[presets.NAME]`` and ``[[profile_list]]`` profiles from config.toml."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, PolicyError, describe_validation_error, did_you_mean
from .files import PresetConfig
from .profiles import ProfileOption, override_values

BUILTIN_PRESETS: dict[str, PresetConfig] = {
    "small": PresetConfig(description="1 core, 2 GiB", cpu_limit=1, memory_limit="2g"),
    "medium": PresetConfig(description="2 cores, 4 GiB", cpu_limit=2, memory_limit="4g"),
    "large": PresetConfig(description="4 cores, 8 GiB", cpu_limit=4, memory_limit="8g"),
}


def all_presets(configured: dict[str, PresetConfig]) -> dict[str, PresetConfig]:
    """Built-ins, with config.toml entries added or replacing a built-in of the same name."""
    return {**BUILTIN_PRESETS, **configured}


def offered(presets: dict[str, PresetConfig], groups: tuple[str, ...] | None) -> dict[str, PresetConfig]:
    """The presets a user may choose: all of them, but a profile with ``allowed_groups`` only for its groups'
    members (``groups`` None: the groups are not known here, as in a laptop's kernel: no limit applies)."""
    return {k: p for k, p in presets.items() if groups is None or _for_groups(p, groups)}


def _for_groups(preset: PresetConfig, groups: tuple[str, ...]) -> bool:
    return preset.allowed_groups is None or bool(set(preset.allowed_groups) & set(groups))


def describe(preset: PresetConfig) -> str:
    """How a form lists a preset: a profile's display name and description, or the preset's description."""
    parts = [p for p in (preset.display_name, preset.description) if p]
    return " — ".join(dict.fromkeys(parts))


def options_of(preset: PresetConfig) -> dict[str, dict[str, Any]]:
    """A preset's options as a form offers them (see ``Options.preset_options``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, option in preset.profile_options.items():
        unlisted = option.unlisted_choice
        default = next((c for c, p in option.choices.items() if p.default), next(iter(option.choices), None))
        out[key] = {
            "display_name": option.display_name,
            "choices": {c: p.display_name for c, p in option.choices.items()},
            "default": default,
            "unlisted": {
                "display_name": unlisted.display_name,
                "display_name_in_choices": unlisted.display_name_in_choices,
                "validation_regex": unlisted.validation_regex,
                "validation_message": unlisted.validation_message,
            }
            if unlisted is not None and unlisted.enabled
            else None,
        }
    return out


def default_profile(presets: dict[str, PresetConfig], groups: tuple[str, ...] | None) -> str | None:
    """The profile marked ``default = true`` that this user may choose, if any."""
    return next((k for k, p in offered(presets, groups).items() if p.default), None)


def preset_values(
    name: str,
    presets: dict[str, PresetConfig],
    *,
    named_by: str,
    options: dict[str, str] | None = None,
    groups: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The values a preset sets, with its options as chosen (``options``; each not chosen takes its default
    choice); ``ConfigError`` for an unknown name or option, ``PolicyError`` for a profile of other groups."""
    preset = presets.get(name)
    if preset is None:
        raise ConfigError(
            f"preset {name!r} ({named_by}): unknown; expected one of {', '.join(sorted(presets))}"
            f"{did_you_mean(name, presets)}",
            field="preset",
        )
    if groups is not None and not _for_groups(preset, groups):
        assert preset.allowed_groups is not None
        raise PolicyError(
            f"preset {name!r} ({named_by}): only for members of the hub group(s) {', '.join(preset.allowed_groups)}",
            field="preset",
        )
    values = _settings_of(preset)
    chosen = dict(options or {})
    unknown = [k for k in chosen if k not in preset.profile_options]
    if unknown:
        has = ", ".join(preset.profile_options) or "none"
        raise ConfigError(
            f"preset_options {unknown[0]}: preset {name!r} has no such option (its options: {has})"
            f"{did_you_mean(unknown[0], preset.profile_options)}",
            field="preset_options",
        )
    for key, option in preset.profile_options.items():
        values.update(_option_values(name, key, option, chosen.get(key)))
    return values


def _option_values(preset: str, key: str, option: ProfileOption, value: str | None) -> dict[str, Any]:
    """What one option's choice sets: a listed choice's override, or the unlisted choice's with ``{value}``
    replaced by the value, once it passes the option's ``validation_regex``."""
    unlisted = option.unlisted_choice if option.unlisted_choice and option.unlisted_choice.enabled else None
    where = f"preset_options {key}={value}" if value is not None else f"preset {preset!r} option {key}"
    if value is None:
        value = next((c for c, picked in option.choices.items() if picked.default), next(iter(option.choices), None))
        if value is None:
            raise ConfigError(
                f"preset {preset!r} option {key}: give a value (--preset-option {key}=…)", field="preset_options"
            )
    if value in option.choices:
        override = option.choices[value].kubespawner_override
    elif unlisted is not None:
        regex = unlisted.validation_regex
        if regex is not None and re.fullmatch(regex, value) is None:
            said = unlisted.validation_message or f"it must match {regex}"
            raise ConfigError(f"{where}: {said}", field="preset_options")
        override = _with_value(unlisted.kubespawner_override, value)
    else:
        raise ConfigError(
            f"{where}: expected one of {', '.join(option.choices)}{did_you_mean(value, option.choices)}",
            field="preset_options",
        )
    try:
        parsed = PresetConfig.model_validate(override_values(override, where))
    except ValueError as exc:
        text = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"{where}: {text}", field="preset_options") from None
    return _settings_of(parsed)


def _settings_of(preset: PresetConfig) -> dict[str, Any]:
    """The settings a preset gives, as parsed (a pull policy stays a ``PullPolicy``; tolerations as manifests)."""
    out = {
        k: getattr(preset, k)
        for k in PresetConfig.model_fields
        if k not in PresetConfig.ABOUT and getattr(preset, k) is not None
    }
    if preset.tolerations is not None:
        out["tolerations"] = [t.manifest() for t in preset.tolerations]
    return out


def _with_value(override: Any, value: str) -> Any:
    """``{value}`` in every text of an override replaced by ``value`` (never formatted: braces stay as they are)."""
    if isinstance(override, str):
        return override.replace("{value}", value)
    if isinstance(override, dict):
        return {k: _with_value(v, value) for k, v in override.items()}
    if isinstance(override, list):
        return [_with_value(v, value) for v in override]
    return override

"""Named resource templates: built-ins plus ``[presets.NAME]`` from config.toml."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, did_you_mean
from .files import PresetConfig

BUILTIN_PRESETS: dict[str, PresetConfig] = {
    "small": PresetConfig(description="1 core, 2 GiB", cpu_limit=1, memory_limit="2g"),
    "medium": PresetConfig(description="2 cores, 4 GiB", cpu_limit=2, memory_limit="4g"),
    "large": PresetConfig(description="4 cores, 8 GiB", cpu_limit=4, memory_limit="8g"),
}


def all_presets(configured: dict[str, PresetConfig]) -> dict[str, PresetConfig]:
    """Built-ins, with config.toml entries added or replacing a built-in of the same name."""
    return {**BUILTIN_PRESETS, **configured}


def preset_values(name: str, presets: dict[str, PresetConfig], *, named_by: str) -> dict[str, Any]:
    """The resource values a preset sets; ``ConfigError`` for an unknown name."""
    preset = presets.get(name)
    if preset is None:
        raise ConfigError(
            f"preset {name!r} ({named_by}): unknown; expected one of {', '.join(sorted(presets))}"
            f"{did_you_mean(name, presets)}",
            field="preset",
        )
    values = preset.model_dump(exclude_none=True, exclude={"description", "tolerations"})
    if preset.tolerations is not None:
        values["tolerations"] = [t.manifest() for t in preset.tolerations]
    return values

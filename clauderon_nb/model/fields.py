"""Validated value types, declared once and shared by every model.

The request model and the config-file models both annotate their fields with
these types, so a CPU value in a flag, a widget, a TOML file or a Python call
goes through the same parser.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

from .build import BuildConfig
from .choices import Backend as Backend  # re-exported: the field types and their enum together
from .image import parse_image
from .naming import MAX_NAME, slugify
from .pull_policy import PullPolicy
from .units import parse_cpu, parse_gpus, parse_memory


def _field(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _cpu(value: Any, info: ValidationInfo) -> int:
    return parse_cpu(value, _field(info))


def _memory(value: Any, info: ValidationInfo) -> int:
    return parse_memory(value, _field(info))


def _image(value: Any, info: ValidationInfo) -> str:
    return str(parse_image(value, _field(info)))


def _pull_policy(value: Any, info: ValidationInfo) -> PullPolicy:
    return PullPolicy.parse(value, _field(info))


def _backend(value: Any, info: ValidationInfo) -> Backend:
    return Backend.parse(value, _field(info))


def _identifier(value: Any, info: ValidationInfo) -> str:
    """Agent and preset names: non-empty, no spaces."""
    field = _field(info)
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise ValueError(f"{field} {value!r}: expected a name such as 'claude' (no spaces)")
    return value.strip()


def _preset_options(value: Any, info: ValidationInfo) -> dict[str, str]:
    """A preset's option choices: a table, or ``NAME=VALUE`` text (several: a list, or separated by commas)."""
    field = _field(info)
    expected = f"{field} {value!r}: expected NAME=VALUE pairs, such as image=pytorch"
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):  # each item NAME=VALUE, or several separated by commas
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError(expected)
            for part in (p for p in item.split(",") if p.strip()):
                name, eq, chosen = part.partition("=")
                if not eq or not name.strip():
                    raise ValueError(expected)
                if name.strip() in pairs:
                    raise ValueError(f"{field}: {name.strip()} is given twice")
                pairs[name.strip()] = chosen.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ValueError(expected)
    out: dict[str, str] = {}
    for name, chosen in value.items():
        if not isinstance(name, str) or not name.strip() or any(c.isspace() or c in "=," for c in name.strip()):
            raise ValueError(f"{field}: option name {name!r}: expected a name such as image (no spaces)")
        if not isinstance(chosen, str) or not chosen or "\n" in chosen or "\x00" in chosen:
            raise ValueError(f"{field} {name}={chosen!r}: expected a value on one line")
        out[name.strip()] = chosen
    return out


def _session_name(value: Any, info: ValidationInfo) -> str:
    """A name is used as given or refused: it names a container, a branch and a folder, so it never changes."""
    field = _field(info)
    if not isinstance(value, str):
        raise ValueError(f"{field} of type {type(value).__name__}: expected text")
    text = value.strip()
    if not text:
        raise ValueError(f"{field} '': empty; give a name, or leave it out to make one from the prompt")
    what = f"expected lowercase letters, digits and '-' (a DNS label of at most {MAX_NAME} characters)"
    if len(text) > MAX_NAME:
        raise ValueError(f"{field} {value!r}: at most {MAX_NAME} characters; {what}")
    slug = slugify(text, limit=MAX_NAME)
    if slug != text:
        hint = f" (did you mean '{slug}'?)" if slug else ""
        raise ValueError(f"{field} {value!r}: {what}{hint}")
    return slug


def _gpus(value: Any, info: ValidationInfo) -> int:
    return parse_gpus(value, _field(info))


def _build(value: Any, info: ValidationInfo) -> Any:
    return value if isinstance(value, BuildConfig) else BuildConfig.model_validate(value)


Gpus = Annotated[int, BeforeValidator(_gpus)]
PresetOptions = Annotated[dict[str, str], BeforeValidator(_preset_options)]
"""The chosen values of a preset's options (a KubeSpawner profile's ``profile_options``)."""
"""GPU count; -1 is "all"."""
Cpu = Annotated[int, BeforeValidator(_cpu)]
"""CPU quantity, held as integer millicores."""
Memory = Annotated[int, BeforeValidator(_memory)]
"""Memory quantity, held as integer bytes."""
Image = Annotated[str, BeforeValidator(_image)]
"""Image reference, held in canonical form."""
Policy = Annotated[PullPolicy, BeforeValidator(_pull_policy), PlainSerializer(str)]
BackendName = Annotated[Backend, BeforeValidator(_backend), PlainSerializer(str)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
SessionName = Annotated[str, BeforeValidator(_session_name)]
Build = Annotated[BuildConfig, BeforeValidator(_build)]
"""How to build the session image from the repository."""

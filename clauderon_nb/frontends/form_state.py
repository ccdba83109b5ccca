"""What a create form shows, worked out once for every form: the notebook widget and the terminal UI both
render a ``FormState`` made from the values typed so far (no toolkit here, so both behave alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from ..errors import ClauderonError, describe_validation_error
from ..model.hints import HINTS

if TYPE_CHECKING:
    from ..model.answers import Options

#: The fields a repository's own file may have chosen; marked when it needs trust.
_TRUSTED_FIELDS = ("image", "agent", "backend")


@dataclass
class FormState:
    """The form's state for one set of values.

    ``errors``: a one-line message beside each field that has one; ``hints``: for each setting the plan
    shows, the value it would get and where from (``4g — from ~/.clauderon/config.toml``), for placeholders;
    ``summary``: the line under the form (``summary_is_error`` says how to show it), and ``notes`` after it;
    ``ok``: Create may be pressed; ``plan``: the dry-run plan when the values make one.
    """

    errors: dict[str, str] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    summary_is_error: bool = False
    notes: list[str] = field(default_factory=list)
    ok: bool = False
    plan: Any = None


def where_from(source: str, origin: str) -> str:
    """Where a value came from, as a form says it beside the field."""
    if origin in ("", "this request"):
        return source
    return origin if origin.startswith("built-in") else f"from {origin}"


def form_state(manager: Any, values: dict[str, str], *, prompt_touched: bool = False) -> FormState:
    """Every field through the request model, then the whole request through a dry-run plan.

    The prompt is not scolded before anyone typed in it (``prompt_touched``)."""
    from pydantic import ValidationError

    from ..model.request import CreateSessionRequest

    state = FormState()
    try:
        request = CreateSessionRequest(**values)
    except ValidationError as exc:
        general = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = err.get("loc") or ()
            name = str(loc[0]) if loc else ""
            if name == "prompt" and not prompt_touched and "prompt" not in values:
                continue
            ctx = err.get("ctx") or {}
            text = str(ctx["error"]) if "error" in ctx else describe_validation_error(exc)
            if name in HINTS:
                state.errors.setdefault(name, text)
            else:
                general.append(text)
        if general:
            state.summary, state.summary_is_error = "; ".join(general), True
        elif "prompt" not in values:
            state.summary = "Write a prompt to create a session."
        else:
            state.summary, state.summary_is_error = "Fix the fields marked above.", True
        return state
    try:
        plan = manager.plan(request)
    except ClauderonError as exc:
        target = exc.field if exc.field in HINTS else None
        if target:  # beside the field it concerns (policy, repository, prompt size …)
            state.errors[target] = str(exc)
            state.summary = f"Fix the {HINTS[target].title.lower()} field."
        else:
            state.summary = str(exc)
        state.summary_is_error = True
        return state
    state.plan = plan
    for key, value, source, origin in plan.rows():
        state.hints[key] = f"{value} — {where_from(source, origin)}"
    if plan.needs_trust:  # the repository's own file picks what would get the credentials: not until trusted
        state.summary, state.summary_is_error = plan.notes[-1], True
        origins = {key: origin for key, _, _, origin in plan.rows()}
        for key in _TRUSTED_FIELDS:
            if plan.sources.get(key) in ("repo", "devcontainer"):
                file = PurePath(origins.get(key) or ".clauderon.toml").name
                state.errors[key] = f"{key} chosen by the repository's {file}; trust it or choose here"
        return state
    state.summary = f"Ready: a {plan.backend} session {plan.name!r} on branch {plan.branch}."
    state.notes = list(plan.notes)
    state.ok = True
    return state


#: The choice that stands for "a value of my own" (a profile option's ``unlisted_choice``).
OTHER = "\u2026other"


@dataclass(frozen=True)
class OptionField:
    """One option of the chosen preset, as both forms ask for it: a choice, and a free value when the option
    takes one (shown when ``OTHER`` is chosen)."""

    key: str
    label: str
    choices: list[tuple[str, str]]  # (label, value); OTHER last when a free value is taken
    default: str
    free_label: str | None = None  # the free value's label, when the option takes one
    free_hint: str = ""  # what a free value must be (the validation message, else the regex)


def option_fields(options: Options, preset: str) -> list[OptionField]:
    """The option fields of ``preset`` (a profile's ``profile_options``), from the manager's ``Options``."""
    described = options.preset_options.get(preset) or {}
    out = []
    for key, option in described.items():
        choices = [(str(label), str(value)) for value, label in (option.get("choices") or {}).items()]
        unlisted = option.get("unlisted")
        if unlisted:
            among = unlisted.get("display_name_in_choices") or f"{unlisted.get('display_name') or 'Other'}…"
            choices.append((str(among), OTHER))
        default = option.get("default") or (choices[0][1] if choices else OTHER)
        hint = (unlisted.get("validation_message") or unlisted.get("validation_regex") or "") if unlisted else ""
        label = str(option.get("display_name") or key)
        free = f"{label}: {unlisted.get('display_name') or 'Other'}" if unlisted else None
        out.append(OptionField(key, label, choices, str(default), free, str(hint)))
    return out


def options_value(fields: list[OptionField], chosen: dict[str, tuple[str, str]]) -> str:
    """The form's ``preset_options`` value (``NAME=VALUE,…``) from what each option shows: its choice, and the
    free value typed beside it. A choice left at its default is not repeated; an empty free value is left out
    (the preset's default applies until one is typed)."""
    parts = []
    for f in fields:
        choice, free = chosen.get(f.key, (f.default, ""))
        value = free.strip() if choice == OTHER else choice
        if value and (choice == OTHER or value != f.default):
            parts.append(f"{f.key}={value}")
    return ",".join(parts)


def choice_label(options: Options | None, field_name: str, value: str) -> str:
    """How a choice reads in a form: a preset with its profile's name and description, else the value."""
    described = options.presets.get(value) if options is not None and field_name == "preset" else None
    return f"{value} — {described}" if described else value

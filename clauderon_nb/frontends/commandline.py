"""The command line a form's values stand for: shown by the form and the TUI, to copy."""

from __future__ import annotations

import shlex

from ..model.hints import flag_for


def magic_line(values: dict[str, str], prefix: str = "%clauderon") -> str:
    """The ``%clauderon create …`` (or ``clauderon-nb create …``) equivalent of a form's values.

    It round-trips exactly: ``create`` lines are not variable-expanded, values are shell-quoted and
    joined with ``=`` when they start with ``-`` (so a value is never read as a flag). A multi-line
    prompt makes the magic a ``%%`` cell.
    """
    flags = [flag_text(k, v) for k, v in values.items() if k != "prompt" and v]
    prompt = values.get("prompt", "")
    if prefix.startswith("%") and ("\n" in prompt or "\r" in prompt):
        return "%" + prefix + " create " + " ".join(flags) + "\n" + prompt
    return " ".join([f"{prefix} create", *flags, flag_text("prompt", prompt) if prompt else ""]).strip()


def flag_text(name: str, value: str) -> str:
    from ..model.hints import HINTS

    flag = HINTS[name].flag if name in HINTS else flag_for(name)
    return f"{flag}={shlex.quote(value)}" if value.startswith("-") else f"{flag} {shlex.quote(value)}"

"""How a setting's value reads to a person: one place for every front end and message."""

from __future__ import annotations

from typing import Any

from .units import human_cpu, human_memory


def escape_html(text: str) -> str:
    """``html.escape``, with ``html`` loaded only when something is rendered as HTML (not by the CLI)."""
    import html

    return html.escape(text)


def show_value(key: str, value: Any) -> str:
    """A setting as a person reads it (memory in exact binary units, CPU in cores)."""
    if value is None:
        return "none" if key.endswith(("_limit", "_request")) or key == "gpus" else "-"
    if key == "gpus":
        return "all" if value == -1 else str(value)
    if key.startswith("cpu_"):
        return human_cpu(value)
    if key.startswith("memory_") or key == "workspace_size":
        return human_memory(value)
    if isinstance(value, tuple):
        return ", ".join(value) or "-"
    if hasattr(value, "describe"):  # a build
        return str(value.describe())
    if key == "container_env" and isinstance(value, dict):
        return ", ".join(sorted(value)) or "-"  # names: values may be anything a repository wrote
    if key == "post_create_command" and isinstance(value, list):
        import shlex

        return shlex.join(value) if value else "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)

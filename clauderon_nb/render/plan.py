"""A dry run: the resolved settings, where each came from, and the backend-native spec."""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.display import show_value
from ..model.redact import redact_json
from ..model.settings_table import SHOWN

if TYPE_CHECKING:  # types only: showing a plan or a stored session needs neither the resolver nor pydantic
    from ..config.resolve import ResolvedSettings
    from .spec import SessionSpec


def settings_rows(
    settings: ResolvedSettings, sources: dict[str, str], origins: dict[str, str]
) -> list[tuple[str, str, str, str]]:
    """(setting, value, source, origin) for every setting shown for the backend."""
    return [
        (key, show_value(key, getattr(settings, key)), sources.get(key, "default"), origins.get(key, ""))
        for key in SHOWN[settings.backend.value]
    ]


def format_rows(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Aligned plain-text lines: ``key  value  (source: origin)``."""
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    out = []
    for key, value, source, origin in rows:
        where = source if origin in ("", "this request", "built-in default") else f"{source}: {origin}"
        out.append(f"  {key:<{width}}  {value:<{vwidth}}  ({where})")
    return out


def html_rows(rows: list[tuple[str, str, str, str]]) -> str:
    body = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td>"
        f"<td>{html.escape(src)}</td><td>{html.escape(o)}</td></tr>"
        for k, v, src, o in rows
    )
    return (
        "<table><thead><tr><th>setting</th><th>value</th><th>source</th><th>from</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


@dataclass(frozen=True)
class Plan:
    """What ``create`` would do. Creating nothing; secrets appear as ``***``."""

    session_spec: SessionSpec
    settings: ResolvedSettings
    sources: dict[str, str]
    origins: dict[str, str]
    spec: Any  # Docker: containers.create kwargs; Kubernetes: list of manifests; local: argv and cwd
    notes: tuple[str, ...] = ()  # what create will tell (or ask) the user
    needs_trust: bool = False  # the repository's own file picks what gets the credentials, unconfirmed

    @property
    def name(self) -> str:
        return self.session_spec.name

    @property
    def backend(self) -> str:
        return self.settings.backend.value

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(setting, value, source, origin) for every shown setting."""
        return settings_rows(self.settings, self.sources, self.origins)

    def _rendered(self) -> str:
        # The session id is assigned when the session is created; keep reprs stable.
        text = json.dumps(redact_json(self.spec), indent=2, sort_keys=False, default=str)
        return text.replace(self.session_spec.session_id, "<session-id>")

    def __repr__(self) -> str:
        s = self.session_spec
        lines = [f"Plan: {self.backend} session {s.name!r} on branch {s.branch} (dry run: nothing created)"]
        lines.extend(format_rows(self.rows()))
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"  command  {shlex.join(s.command)}")
        label = {
            "docker": "docker containers.create arguments",
            "kubernetes": "kubernetes manifests",
            "local": "local process",
        }[self.backend]
        lines.append(f"{label}:")
        lines.extend("  " + line for line in self._rendered().splitlines())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        s = self.session_spec
        return (
            f"<div><b>Plan</b>: {html.escape(self.backend)} session <code>{html.escape(s.name)}</code> "
            f"on branch <code>{html.escape(s.branch)}</code> <i>(dry run: nothing created)</i>"
            f"{html_rows(self.rows())}"
            + "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes)
            + f"<p>command: <code>{html.escape(shlex.join(s.command))}</code></p>"
            f"<details><summary>rendered {html.escape(self.backend)} spec</summary>"
            f"<pre>{html.escape(self._rendered())}</pre></details></div>"
        )

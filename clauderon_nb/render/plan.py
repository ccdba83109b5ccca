"""A dry run: the resolved settings, where each came from, and the backend-native spec."""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.display import show_value
from ..model.redact import redact_json
from ..model.settings_table import SHOWN, SHOWN_WHEN_SET

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
        if key not in SHOWN_WHEN_SET or getattr(settings, key) not in (None, {}, [])
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
    image_check: str | None = None  # what the image check found (a dry run asks the engine or registry)

    @property
    def name(self) -> str:
        return self.session_spec.name

    @property
    def backend(self) -> str:
        return self.settings.backend.value

    @property
    def branch(self) -> str:
        return self.session_spec.branch

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(setting, value, source, origin) for every shown setting."""
        return settings_rows(self.settings, self.sources, self.origins)

    def view(self) -> PlanView:
        """What is shown of the plan (and what the service sends a client)."""
        return PlanView(
            name=self.name,
            backend=self.backend,
            branch=self.branch,
            command=tuple(self.session_spec.command),
            row_values=tuple(self.rows()),
            notes=self.notes,
            needs_trust=self.needs_trust,
            image_check=self.image_check,
            settings_json=self.settings.to_json(),
            sources=dict(self.sources),
            spec=json.loads(self._rendered()),
        )

    def _rendered(self) -> str:
        # The session id is assigned when the session is created; keep reprs stable.
        text = json.dumps(redact_json(self.spec), indent=2, sort_keys=False, default=str)
        return text.replace(self.session_spec.session_id, "<session-id>")

    def to_json(self) -> dict[str, Any]:
        return self.view().to_json()

    def __repr__(self) -> str:
        return repr(self.view())

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


_SPEC_LABELS = {
    "docker": "docker containers.create arguments",
    "kubernetes": "kubernetes manifests",
    "local": "local process",
}


@dataclass(frozen=True)
class PlanView:
    """A plan as shown: the same for a plan made here and one the clauderon service made."""

    name: str
    backend: str
    branch: str
    command: tuple[str, ...]
    row_values: tuple[tuple[str, str, str, str], ...]
    notes: tuple[str, ...]
    needs_trust: bool
    image_check: str | None
    settings_json: dict[str, Any]
    sources: dict[str, str]
    spec: Any

    def rows(self) -> list[tuple[str, str, str, str]]:
        return list(self.row_values)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "branch": self.branch,
            "command": list(self.command),
            "rows": [list(r) for r in self.row_values],
            "notes": list(self.notes),
            "needs_trust": self.needs_trust,
            "image_check": self.image_check,
            "settings": self.settings_json,
            "sources": self.sources,
            "spec": self.spec,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanView:
        """From the service's JSON; ``KeyError``/``TypeError``/``ValueError`` when malformed."""
        rows = tuple((str(a), str(b), str(c), str(d)) for a, b, c, d in data["rows"])
        return cls(
            name=str(data["name"]),
            backend=str(data["backend"]),
            branch=str(data["branch"]),
            command=tuple(str(c) for c in data["command"]),
            row_values=rows,
            notes=tuple(str(n) for n in data.get("notes") or ()),
            needs_trust=bool(data.get("needs_trust")),
            image_check=str(data["image_check"]) if data.get("image_check") else None,
            settings_json=dict(data.get("settings") or {}),
            sources={str(k): str(v) for k, v in dict(data.get("sources") or {}).items()},
            spec=data.get("spec"),
        )

    def _rendered(self) -> str:
        return json.dumps(redact_json(self.spec), indent=2, sort_keys=False, default=str)

    def __repr__(self) -> str:
        lines = [f"Plan: {self.backend} session {self.name!r} on branch {self.branch} (dry run: nothing created)"]
        lines.extend(format_rows(self.rows()))
        if self.image_check:
            lines.append(f"  image: {self.image_check}")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"  command  {shlex.join(self.command)}")
        lines.append(f"{_SPEC_LABELS.get(self.backend, self.backend)}:")
        lines.extend("  " + line for line in self._rendered().splitlines())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            f"<div><b>Plan</b>: {html.escape(self.backend)} session <code>{html.escape(self.name)}</code> "
            f"on branch <code>{html.escape(self.branch)}</code> <i>(dry run: nothing created)</i>"
            f"{html_rows(self.rows())}"
            + (f"<p><b>Image:</b> {html.escape(self.image_check)}</p>" if self.image_check else "")
            + "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes)
            + f"<p>command: <code>{html.escape(shlex.join(self.command))}</code></p>"
            f"<details><summary>rendered {html.escape(self.backend)} spec</summary>"
            f"<pre>{html.escape(self._rendered())}</pre></details></div>"
        )

"""What the manager and the service answer with, the same on both ends of the wire: the form's choices
(``Options``), an image listing (``ImageListing``), a plan as shown (``PlanView``) and one action of the
culler (``CullAction``). Plain data with ``to_json``/``from_json``: no resolver, no pydantic.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from .display import escape_html
from .redact import redact_json


def fields_json(answer: Any, **renamed: str) -> dict[str, Any]:
    """A flat answer's fields as a JSON object, in declaration order (``renamed``: field -> key on the wire)."""
    return {renamed.get(f.name, f.name): getattr(answer, f.name) for f in fields(answer)}


@dataclass(frozen=True)
class Options:
    """What a form offers: every choice already filtered by the admin policy."""

    agents: list[str]
    presets: dict[str, str]
    backends: list[str]
    pull_policies: list[str]
    allowed_images: list[str]  # the policy's globs (empty: any image)
    images: list[str]  # suggestions: the policy's literal images, then recently used ones
    max_cpu: int | None
    max_memory: int | None
    #: Every bound of the admin policy that applies to this user: (key, value as read, where it is set).
    bounds: list[tuple[str, str, str]] = field(default_factory=list)
    #: Per preset (a profile), its options: ``{option: {"display_name", "choices": {key: display name},
    #: "default": key or None, "unlisted": {"display_name", "display_name_in_choices", "validation_regex",
    #: "validation_message"} or None}}``.
    preset_options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRow:
    """One image (or repository) as the browser lists it."""

    name: str  # a full reference, or a repository for a catalog
    kind: str  # tag, repository, local, policy
    digest: str | None = None
    size: int | None = None
    created: str | None = None
    allowed: bool | None = None  # by the admin policy; None: no allowed_images rule

    def to_json(self) -> dict[str, Any]:
        return fields_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRow:
        size = data.get("size")
        allowed = data.get("allowed")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            digest=str(data["digest"]) if data.get("digest") else None,
            size=int(size) if isinstance(size, int) else None,
            created=str(data["created"]) if data.get("created") else None,
            allowed=bool(allowed) if isinstance(allowed, bool) else None,
        )


@dataclass(frozen=True)
class ImageListing:
    """What ``images`` shows: a title, the rows, the policy's rule and notes (e.g. no catalog)."""

    title: str
    rows: list[ImageRow] = field(default_factory=list)
    rule: str | None = None  # "allowed_images: …  (policy file)"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "rows": [r.to_json() for r in self.rows], "rule": self.rule, "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageListing:
        return cls(
            title=str(data["title"]),
            rows=[ImageRow.from_json(r) for r in data.get("rows") or []],
            rule=str(data["rule"]) if data.get("rule") else None,
            notes=[str(n) for n in data.get("notes") or []],
        )


@dataclass(frozen=True)
class CullAction:
    """One thing a pass does (or, in a dry run, would do) to one session."""

    session_id: str
    owner: str
    name: str
    action: str  # "stop" or "delete"
    reason: str  # the policy key
    message: str  # what the user is told

    def to_json(self) -> dict[str, str]:
        return fields_json(self, session_id="id")

    def __repr__(self) -> str:
        return f"{self.action} {self.owner}/{self.name}: {self.message}"


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
        f"<tr><td><code>{escape_html(k)}</code></td><td>{escape_html(v)}</td>"
        f"<td>{escape_html(src)}</td><td>{escape_html(o)}</td></tr>"
        for k, v, src, o in rows
    )
    return (
        "<table><thead><tr><th>setting</th><th>value</th><th>source</th><th>from</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


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
            f"<div><b>Plan</b>: {escape_html(self.backend)} session <code>{escape_html(self.name)}</code> "
            f"on branch <code>{escape_html(self.branch)}</code> <i>(dry run: nothing created)</i>"
            f"{html_rows(self.rows())}"
            + (f"<p><b>Image:</b> {escape_html(self.image_check)}</p>" if self.image_check else "")
            + "".join(f"<p><b>Note:</b> {escape_html(n)}</p>" for n in self.notes)
            + f"<p>command: <code>{escape_html(shlex.join(self.command))}</code></p>"
            f"<details><summary>rendered {escape_html(self.backend)} spec</summary>"
            f"<pre>{escape_html(self._rendered())}</pre></details></div>"
        )

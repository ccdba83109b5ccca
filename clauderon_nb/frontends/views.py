"""Result objects of the commands: stable plain reprs for tests, HTML for notebooks."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..model.display import escape_html, show_value
from ..model.session import Session
from ..model.settings_table import SHOWN


def session_dict(session: Session) -> dict[str, Any]:
    """Everything about a session as JSON values (no secret is ever in a session)."""
    data = asdict(session)
    data["status"] = session.status.value
    return data


@dataclass(frozen=True)
class Text:
    """A message or log output; the magic prints it rather than returning it."""

    text: str

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SessionTable:
    """``list``: one row per session."""

    sessions: list[Session]
    owners: bool = False  # ``list --all``: an OWNER column

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (
                *((s.owner,) if self.owners else ()),
                s.name,
                s.status.value,
                s.backend,
                s.settings.get("image") or "-",
                show_value("cpu_limit", s.settings.get("cpu_limit")),
                show_value("memory_limit", s.settings.get("memory_limit")),
                s.error or "",
            )
            for s in self.sessions
        ]

    def __repr__(self) -> str:
        if not self.sessions:
            return "No sessions."
        head = (*(("OWNER",) if self.owners else ()), "NAME", "STATUS", "BACKEND", "IMAGE", "CPU", "MEMORY", "ERROR")
        return text_table([head, *self._rows()])

    def _repr_html_(self) -> str:
        if not self.sessions:
            return "<p>No sessions.</p>"
        now = time.time()
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape_html(c)}</td>" for c in row)
            + f"<td>{escape_html(age_text(now - s.created_at))}</td></tr>"
            for row, s in zip(self._rows(), self.sessions, strict=True)
        )
        names = ("name", "status", "backend", "image", "cpu", "memory", "error", "age")
        head = "".join(f"<th>{h}</th>" for h in ((("owner",) if self.owners else ()) + names))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_json(self) -> list[dict[str, Any]]:
        return [session_dict(s) for s in self.sessions]


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows (the first a header) in aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def age_text(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class SessionDetails:
    """``show``: a session with its resolved settings."""

    session: Session

    def _lines(self) -> list[tuple[str, str]]:
        s = self.session
        fields = [
            ("name", s.name),
            ("status", s.status.value),
            ("owner", s.owner),
            ("backend", s.backend),
            ("agent", s.agent),
            ("repo", s.repo),
            ("branch", s.branch),
            ("workspace", s.worktree),
            ("prompt", s.prompt),
        ]
        if s.error:
            fields.append(("error", s.error))
        note = s.runtime.get("branch_note")
        if isinstance(note, str) and note:
            fields.append(("branch", note))
        for key in SHOWN[s.backend]:
            if key in ("backend", "agent"):
                continue
            if s.settings.get(key) is not None:
                fields.append((key, show_value(key, s.settings[key])))
        history = s.runtime.get("history")
        for entry in history if isinstance(history, list) else []:
            if isinstance(entry, dict):
                when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(entry.get("at") or 0)))
                fields.append(("history", f"{when} {entry.get('action')} by {entry.get('by')} ({entry.get('reason')})"))
        return fields

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self._lines())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self._lines())

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{escape_html(k)}</th><td>{escape_html(v)}</td></tr>" for k, v in self._lines())
        return f"<table>{rows}</table>"

    def to_json(self) -> dict[str, Any]:
        return session_dict(self.session)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def owner_totals(sessions: list[Session]) -> list[tuple[str, str]]:
    """Each owner and their use, as counted for the quotas: running (and creating) of all sessions, and
    the CPU and memory limits of the running ones."""
    from ..sessions.quotas import usage

    rows = []
    for owner in sorted({s.owner for s in sessions}):
        used = usage([s for s in sessions if s.owner == owner])
        rows.append(
            (
                owner,
                f"{used['max_running_sessions']} running of {used['max_sessions']}, "
                f"cpu {show_value('cpu_limit', used['max_total_cpu'])}, "
                f"memory {show_value('memory_limit', used['max_total_memory'])}",
            )
        )
    return rows

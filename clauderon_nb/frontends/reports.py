"""What ``config``, ``cull`` and ``images`` return: plain reprs for a terminal, HTML for notebooks, JSON.

Kept apart from ``views.py`` so that ``list``, ``show`` and ``logs`` load none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.answers import format_rows, html_rows
from ..model.display import escape_html
from ..render.plan import settings_rows
from .views import text_table

if TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..model.answers import ImageListing


@dataclass(frozen=True)
class ConfigView:
    """``config``: effective settings for a backend and where each comes from."""

    resolution: Resolution
    bounds: tuple[tuple[str, str, str], ...] = ()  # the admin policy's bounds for this user (key, value, where)

    def rows(self) -> list[tuple[str, str, str, str]]:
        r = self.resolution
        return settings_rows(r.settings, r.sources, r.origins)

    def __repr__(self) -> str:
        text = f"Effective settings for the {self.resolution.settings.backend.value} backend:\n" + "\n".join(
            format_rows(self.rows())
        )
        text += "".join(f"\n  note: {note}" for note in self.resolution.notes)
        if self.bounds:
            width = max(len(k) for k, _, _ in self.bounds)
            vwidth = max(len(v) for _, v, _ in self.bounds)
            text += "\nAdmin policy bounds for you:\n" + "\n".join(
                f"  {k:<{width}}  {v:<{vwidth}}  ({where})" for k, v, where in self.bounds
            )
        return text

    def _repr_html_(self) -> str:
        bounds = "".join(
            f"<tr><td><code>{escape_html(k)}</code></td><td>{escape_html(v)}</td><td>{escape_html(w)}</td></tr>"
            for k, v, w in self.bounds
        )
        return (
            f"<div><b>Effective settings</b> for the {escape_html(self.resolution.settings.backend.value)} backend"
            f"{html_rows(self.rows())}"
            + "".join(f"<p><b>Note:</b> {escape_html(n)}</p>" for n in self.resolution.notes)
            + (f"<b>Admin policy bounds for you</b><table>{bounds}</table>" if bounds else "")
            + "</div>"
        )

    def to_json(self) -> dict[str, Any]:
        values = self.resolution.settings.to_json()
        out: dict[str, Any] = {
            key: {"value": values.get(key), "source": source, "from": origin} for key, _, source, origin in self.rows()
        }
        if self.bounds:
            out["policy_bounds"] = {k: {"value": v, "from": w} for k, v, w in self.bounds}
        return out


@dataclass(frozen=True)
class CullReport:
    """``cull``: what a pass did (or would do)."""

    actions: list[Any]  # CullAction
    dry_run: bool = False

    def __repr__(self) -> str:
        if not self.actions:
            return "Nothing to cull."
        head = "Would" if self.dry_run else "Did"
        return "\n".join(f"{head}: {a!r}" for a in self.actions)

    def to_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.actions]


_ALLOWED = {True: "allowed", False: "not allowed", None: "-"}


@dataclass(frozen=True)
class ImageTable:
    """``images``: repositories or tags of a registry, or the policy's and the engine's images."""

    listing: ImageListing

    def _rows(self) -> list[tuple[str, ...]]:
        from ..model.units import approx_size

        return [
            (
                r.name,
                r.kind,
                (r.digest or "-")[:19],
                approx_size(r.size) if r.size else "-",
                (r.created or "-")[:19].replace("T", " "),
                _ALLOWED[r.allowed],
            )
            for r in self.listing.rows
        ]

    def __repr__(self) -> str:
        lines = [self.listing.title + ":"]
        rows = self._rows()
        if rows:
            head = ("IMAGE", "KIND", "DIGEST", "SIZE", "CREATED", "POLICY")
            lines += ["  " + line for line in text_table([head, *rows]).splitlines()]
        else:
            lines.append("  (none)")
        if self.listing.rule:
            lines.append(f"  policy: {self.listing.rule}")
        lines += [f"  note: {n}" for n in self.listing.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("image", "kind", "digest", "size", "created", "policy"))
        body = "".join("<tr>" + "".join(f"<td>{escape_html(c)}</td>" for c in row) + "</tr>" for row in self._rows())
        said = [*([self.listing.rule] if self.listing.rule else []), *self.listing.notes]
        extra = "".join(f"<p>{escape_html(n)}</p>" for n in said)
        title = escape_html(self.listing.title)
        return f"<div><b>{title}</b><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{extra}</div>"

    def to_json(self) -> dict[str, Any]:
        return self.listing.to_json()

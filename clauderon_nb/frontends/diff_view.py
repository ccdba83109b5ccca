"""What ``diff`` returns: the change as ``--stat`` and a unified diff in a terminal, and in a notebook a rich
view — the files with their +/− counts, each collapsible, highlighted by Pygments (which IPython brings),
unified or side by side. Bounded by the model (``model/diff.py``): a huge change never hangs the browser."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..model.diff import Diff, FileDiff, Hunk

_STYLE = (
    "<style>.cl-diff td{font-family:monospace;font-size:12px;white-space:pre;padding:0 6px;vertical-align:top}"
    ".cl-diff .add{background:#e6ffec}.cl-diff .del{background:#ffebe9}.cl-diff .hunk{color:#0969da;"
    "background:#f6f8fa}.cl-diff .num{color:#8c959f;text-align:right;user-select:none}"
    ".cl-diff summary{cursor:pointer;font-family:monospace}.cl-diff .plus{color:#1a7f37}"
    ".cl-diff .minus{color:#cf222e}</style>"
)


@dataclass(frozen=True)
class DiffView:
    """A session's change, shown as a person reads it. ``side_by_side``: the notebook view's layout."""

    name: str
    diff: Diff
    stat_only: bool = False
    side_by_side: bool = False

    def __repr__(self) -> str:
        return self.diff.stat() if self.stat_only else self.diff.stat() + "\n\n" + self.diff.unified()

    def to_json(self) -> dict[str, Any]:
        return {"session": self.name, **self.diff.to_json()}

    def _repr_html_(self) -> str:
        d = self.diff
        head = (
            f"<div class='cl-diff'>{_STYLE}<b>Session {html.escape(self.name)}</b>: {len(d.files)} file"
            f"{'s' if len(d.files) != 1 else ''} changed, <span class='plus'>+{d.added}</span> "
            f"<span class='minus'>−{d.removed}</span>"
        )
        if not d.files:
            return head + " — no changes.</div>"
        parts = [head]
        if d.note:
            parts.append(f"<p><i>{html.escape(d.note)}</i></p>")
        for f in d.files:
            parts.append(self._file(f))
        parts.append("</div>")
        return "".join(parts)

    def _file(self, f: FileDiff) -> str:
        label = f"{f.old_path} → {f.path}" if f.old_path and f.old_path != f.path else f.path
        counts = (
            "binary" if f.binary else f"<span class='plus'>+{f.added}</span> <span class='minus'>−{f.removed}</span>"
        )
        summary = f"<summary>{html.escape(label)} <small>({html.escape(f.status)})</small> {counts}</summary>"
        if self.stat_only:
            return f"<div>{summary.replace('summary', 'span')}</div>"
        if f.binary:
            return f"<details>{summary}<p>Binary file: not shown.</p></details>"
        highlight = _highlighter(f.path)
        rows = []
        for hunk in f.hunks:
            rows += self._side_by_side(hunk, highlight) if self.side_by_side else self._unified(hunk, highlight)
        more = "<p><i>Some of its lines are not shown.</i></p>" if f.truncated else ""
        lines = sum(len(h.lines) for h in f.hunks)
        opened = " open" if len(self.diff.files) <= 20 and lines <= 200 else ""  # a long file starts folded
        return f"<details{opened}>{summary}<table>{''.join(rows)}</table>{more}</details>"

    @staticmethod
    def _unified(hunk: Hunk, highlight: Any) -> list[str]:
        heading = f"@@ -{hunk.old_start},{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@{hunk.heading}"
        rows = [f"<tr><td class='hunk' colspan='3'>{html.escape(heading)}</td></tr>"]
        old, new = hunk.old_start, hunk.new_start
        for line in hunk.lines:
            mark, text = line[:1], line[1:]
            if mark == "+":
                rows.append(
                    f"<tr class='add'><td class='num'></td><td class='num'>{new}</td><td>+{highlight(text)}</td></tr>"
                )
                new += 1
            elif mark == "-":
                rows.append(
                    f"<tr class='del'><td class='num'>{old}</td><td class='num'></td><td>-{highlight(text)}</td></tr>"
                )
                old += 1
            elif mark == "\\":
                rows.append(f"<tr><td></td><td></td><td><i>{html.escape(line)}</i></td></tr>")
            else:
                rows.append(f"<tr><td class='num'>{old}</td><td class='num'>{new}</td><td> {highlight(text)}</td></tr>")
                old, new = old + 1, new + 1
        return rows

    @staticmethod
    def _side_by_side(hunk: Hunk, highlight: Any) -> list[str]:
        heading = f"@@ -{hunk.old_start},{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@{hunk.heading}"
        rows = [f"<tr><td class='hunk' colspan='4'>{html.escape(heading)}</td></tr>"]
        old, new = hunk.old_start, hunk.new_start
        removed: list[str] = []
        added: list[str] = []

        def flush() -> None:
            nonlocal old, new
            for i in range(max(len(removed), len(added))):
                left = removed[i] if i < len(removed) else None
                right = added[i] if i < len(added) else None
                lcell = (
                    f"<td class='num'>{old}</td><td class='del'>{highlight(left)}</td>"
                    if left is not None
                    else "<td></td><td></td>"
                )
                rcell = (
                    f"<td class='num'>{new}</td><td class='add'>{highlight(right)}</td>"
                    if right is not None
                    else "<td></td><td></td>"
                )
                old += left is not None
                new += right is not None
                rows.append(f"<tr>{lcell}{rcell}</tr>")
            removed.clear()
            added.clear()

        for line in hunk.lines:
            mark, text = line[:1], line[1:]
            if mark == "-":
                removed.append(text)
            elif mark == "+":
                added.append(text)
            elif mark != "\\":
                flush()
                cell = highlight(text)
                rows.append(
                    f"<tr><td class='num'>{old}</td><td>{cell}</td><td class='num'>{new}</td><td>{cell}</td></tr>"
                )
                old, new = old + 1, new + 1
        flush()
        return rows


def _highlighter(path: str) -> Any:
    """A function that highlights one line of ``path``'s language (escaped text when none is known)."""
    from pygments import highlight  # IPython's own dependency
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return html.escape
    formatter = HtmlFormatter(nowrap=True, noclasses=True)

    def one(text: str) -> str:
        return str(highlight(text, lexer, formatter)).rstrip("\n")

    return one

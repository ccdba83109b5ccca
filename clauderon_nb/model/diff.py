"""A session's changes as data: files with their +/− counts and hunks, parsed from a unified diff
(``git diff --find-renames --binary``'s text, read from the sandbox), bounded so a huge change never hangs a
terminal or a browser, and shown as ``--stat``, as a unified diff (coloured for a terminal) or as JSON.

The text comes from the agent's workspace: it is untrusted. Parsing never fails on it (what is not a diff
line is kept as context), paths are shown as given (never opened), and every size is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: The most lines of hunks kept in all (a 10,000-line change is shown up to here, with a note).
MAX_LINES = 5000
#: The most lines of hunks kept for one file (so the files after a huge one are still shown).
MAX_FILE_LINES = 1000
#: The most files listed.
MAX_FILES = 2000
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_GIT = re.compile(r'^diff --git (?:"?a/(.*?)"?) (?:"?b/(.*?)"?)$')


@dataclass
class Hunk:
    """One hunk: where it starts on each side, its heading, and its lines (each starting ``+``, ``-`` or space)."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    heading: str
    lines: list[str] = field(default_factory=list)


@dataclass
class FileDiff:
    """One file's change: ``status`` is added, deleted, modified or renamed."""

    path: str
    old_path: str | None = None
    status: str = "modified"
    binary: bool = False
    added: int = 0
    removed: int = 0
    hunks: list[Hunk] = field(default_factory=list)
    truncated: bool = False  # some of its lines are not kept (``Diff.note`` says why)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "binary": self.binary,
            "added": self.added,
            "removed": self.removed,
            "truncated": self.truncated,
            "hunks": [
                {
                    "old_start": h.old_start,
                    "old_count": h.old_count,
                    "new_start": h.new_start,
                    "new_count": h.new_count,
                    "heading": h.heading,
                    "lines": h.lines,
                }
                for h in self.hunks
            ],
        }


@dataclass
class Diff:
    """A whole change: its files, and a note when something was left out to keep it bounded."""

    files: list[FileDiff] = field(default_factory=list)
    note: str | None = None

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [f.to_json() for f in self.files],
            "stats": {"files": len(self.files), "added": self.added, "removed": self.removed},
            "note": self.note,
        }

    def stat(self) -> str:
        """Like ``git diff --stat``: a line per file with its counts, then the totals."""
        if not self.files:
            return "No changes."
        width = min(max(len(_label(f)) for f in self.files), 60)
        lines = []
        for f in self.files:
            counts = "Bin" if f.binary else f"+{f.added} -{f.removed}"
            lines.append(f" {_label(f)[:60]:<{width}} | {counts}")
        total = len(self.files)
        lines.append(
            f" {total} file{'s' if total != 1 else ''} changed, {self.added} insertion{'s' if self.added != 1 else ''}"
            f"(+), {self.removed} deletion{'s' if self.removed != 1 else ''}(-)"
        )
        if self.note:
            lines.append(f" note: {self.note}")
        return "\n".join(lines)

    def unified(self, colour: bool = False) -> str:
        """The change as a unified diff (what was kept), coloured with ANSI codes when ``colour``."""
        out: list[str] = []
        for f in self.files:
            old = f.old_path or f.path
            out.append(_paint(f"diff --git a/{old} b/{f.path}", "1", colour))
            if f.binary:
                out.append(f"Binary file {f.path} ({f.status})")
                continue
            out.append(_paint(f"--- {'/dev/null' if f.status == 'added' else 'a/' + old}", "1", colour))
            out.append(_paint(f"+++ {'/dev/null' if f.status == 'deleted' else 'b/' + f.path}", "1", colour))
            for h in f.hunks:
                head = f"@@ -{h.old_start},{h.old_count} +{h.new_start},{h.new_count} @@{h.heading}"
                out.append(_paint(head, "36", colour))
                for line in h.lines:
                    code = "32" if line.startswith("+") else "31" if line.startswith("-") else ""
                    out.append(_paint(line, code, colour) if code else line)
        if self.note:
            out.append(f"note: {self.note}")
        return "\n".join(out)


def _label(f: FileDiff) -> str:
    return f"{f.old_path} => {f.path}" if f.old_path and f.old_path != f.path else f.path


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _clean(text: str) -> str:
    """A line as shown: control characters (an agent's escape sequences) made visible, never acted on."""
    return "".join(c if c == "\t" or (c >= " " and c != "\x7f") else f"\\x{ord(c):02x}" for c in text)


def parse_diff(text: str, max_lines: int = MAX_LINES, max_files: int = MAX_FILES) -> Diff:
    """Parse ``git diff`` output into a bounded ``Diff``; anything unexpected is kept as context, never raised."""
    diff = Diff()
    current: FileDiff | None = None
    hunk: Hunk | None = None
    kept = in_file = 0
    dropped_lines = dropped_files = 0
    for raw in text.splitlines():
        line = _clean(raw)
        match = _GIT.match(line)
        if match:
            if len(diff.files) >= max_files:
                dropped_files += 1
                current = hunk = None
                continue
            current = FileDiff(path=match.group(2), old_path=None)
            diff.files.append(current)
            hunk, in_file = None, 0
            continue
        if current is None:
            continue
        if hunk is None or line[:1] not in ("+", "-", " ", "\\"):
            if line.startswith("new file mode"):
                current.status = "added"
                continue
            if line.startswith("deleted file mode"):
                current.status = "deleted"
                continue
            if line.startswith("rename from "):
                current.old_path, current.status = line[len("rename from ") :], "renamed"
                continue
            if line.startswith("rename to "):
                current.path = line[len("rename to ") :]
                continue
            if line.startswith("Binary files ") or line.startswith("GIT binary patch"):
                current.binary = True
                continue
            hunk_match = _HUNK.match(line)
            if hunk_match:
                old_start, old_count, new_start, new_count, heading = hunk_match.groups()
                hunk = Hunk(int(old_start), int(old_count or 1), int(new_start), int(new_count or 1), heading or "")
                current.hunks.append(hunk)
                continue
            if line.startswith(("--- ", "+++ ", "index ", "old mode", "new mode", "similarity index")):
                continue
            if hunk is None:
                continue
        if line.startswith("+"):
            current.added += 1
        elif line.startswith("-"):
            current.removed += 1
        if kept >= max_lines or in_file >= MAX_FILE_LINES:
            dropped_lines += 1
            current.truncated = True
            continue
        hunk.lines.append(line)
        kept += 1
        in_file += 1
    notes = []
    if dropped_lines:
        notes.append(f"{dropped_lines} diff lines are not shown (at most {MAX_FILE_LINES} a file, {max_lines} in all)")
    if dropped_files:
        notes.append(f"{dropped_files} more files changed (the first {max_files} are listed)")
    diff.note = "; ".join(notes) or None
    return diff

"""Create progress: while it runs, then a single summary line.

In a Jupyter kernel a live line (a display updated by id) appears only when a
slow step reports detail (image layers, pod events), so the saved notebook keeps
one final line; in a terminal it is a status line on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

from ..model.progress import ProgressEvent


def _in_kernel() -> bool:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Line:
    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}
        self.pulled = False
        self.image_note = ""
        self.finished = False

    def text(self, event: ProgressEvent) -> str:
        if event.step == "note":
            return f"Note: {event.message}"
        if event.step == "pull":
            if event.layer and event.total:
                self.pulled = True
                self.layers[event.layer] = (event.current or 0, event.total)
                done = sum(c for c, _ in self.layers.values())
                total = sum(t for _, t in self.layers.values())
                return f"pulling image: {len(self.layers)} layer(s), {done / 1e6:.1f} / {total / 1e6:.1f} MB"
            if "present locally" in event.message:
                self.image_note = "image present locally"
            elif event.message.startswith("pulling"):
                self.pulled = True
        if event.step == "ready":
            note = "image pulled" if self.pulled else self.image_note
            return f"✓ {event.message}" + (f" ({note})" if note else "")
        return event.message


class KernelProgress(_Line):
    """Progress in a notebook: a live line (updated by id) only once a slow step reports detail,
    ending as one summary line; a quick create prints just the summary."""

    def __init__(self) -> None:
        super().__init__()
        self.handle: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        from IPython.display import display

        text = self.text(event)
        if event.step == "note":  # said at once and kept: the user must see it whatever follows
            print(text)
            return
        self.finished = event.step == "ready"
        bundle = {"text/plain": text}
        if self.handle is not None:
            self.handle.update(bundle, raw=True)
        elif event.detail:
            self.handle = display(bundle, raw=True, display_id=True)
        elif self.finished:
            print(text)

    def finish(self) -> None:
        """On failure, empty the live line: the error says what happened."""
        if self.handle is not None and not self.finished:
            self.handle.update({"text/plain": ""}, raw=True)


class TerminalProgress(_Line):
    """A status line on stderr rewritten in place; where stderr is not a terminal, only the final line."""

    def __init__(self) -> None:
        super().__init__()
        self.live = sys.stderr.isatty()

    def __call__(self, event: ProgressEvent) -> None:
        text = self.text(event)
        if event.step == "note":
            sys.stderr.write(("\r\x1b[2K" if self.live else "") + text + "\n")
            sys.stderr.flush()
            return
        self.finished = event.step == "ready"
        if self.live:
            sys.stderr.write(f"\r\x1b[2K{text[:150]}" + ("\n" if self.finished else ""))
        elif self.finished:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.live and not self.finished:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def progress_display() -> KernelProgress | TerminalProgress:
    return KernelProgress() if _in_kernel() else TerminalProgress()

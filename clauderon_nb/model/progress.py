"""Progress events reported while a session is created."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a create: ``step`` is check, pull, worktree (the workspace), create, start or ready.

    Pull events carry the layer id and its byte counts when the engine reports them.
    ``detail`` marks intermediate news from a slow step (a layer downloading, a pod
    event) that is worth showing live.
    """

    step: str
    message: str
    layer: str | None = None
    current: int | None = None
    total: int | None = None
    detail: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


#: How far a create is at the start of each step (a pull moves from 0.1 to 0.7 with its bytes).
STEP_FRACTION = {
    "upload": 0.02,
    "check": 0.05,
    "pull": 0.1,
    "worktree": 0.75,
    "create": 0.85,
    "start": 0.9,
    "ready": 1.0,
}


def progress_fraction(event: ProgressEvent, current: float) -> float:
    """How far a create is after ``event``, 0 to 1, never going back from ``current`` (one scale for the
    form, the terminal UI and the service's event stream)."""
    fraction = STEP_FRACTION.get(event.step, current)
    if event.step == "pull" and event.total:
        fraction = 0.1 + 0.6 * min(1.0, (event.current or 0) / event.total)
    return max(current, fraction)


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore events."""

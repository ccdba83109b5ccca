"""Progress events reported while a session is created."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a create: ``step`` is check, pull, worktree, create, start or ready.

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


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore events."""

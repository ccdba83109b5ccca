"""What every backend provides to the manager."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..model.naming import LABEL_PREFIX
from ..model.progress import ProgressCallback
from ..model.session import Session, Status

if TYPE_CHECKING:
    from ..render.spec import SessionSpec
    from .images import ImageCheck


class Follow(Iterator[str]):
    """A followed output stream (``logs --follow``). ``close`` may be called from any thread: a ``next``
    blocked waiting for output then ends soon, so a reader whose client has left frees its thread."""

    def __init__(self, chunks: Iterator[bytes | str], close: Callable[[], None]) -> None:
        self._chunks, self._close, self.closed = chunks, close, False

    def __iter__(self) -> Follow:
        return self

    def __next__(self) -> str:
        if self.closed:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            raise
        except Exception:
            if self.closed:
                raise StopIteration from None
            raise
        text = chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk
        return text.replace("\r\n", "\n")  # a TTY writes CRLF

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._close()


@dataclass(frozen=True)
class Observed:
    """What the backend reports about one session's object."""

    status: Status
    error: str | None = None


def orphan_session(
    sid: str, name: str, labels: dict[str, str], backend: str, image: str, observed: Observed, created: Any
) -> Session:
    """A session made up from an engine object's labels, for an object that has no record."""
    now = time.time()
    return Session(
        id=sid,
        name=name or sid,
        owner=labels.get(f"{LABEL_PREFIX}owner", ""),
        backend=backend,
        agent=labels.get(f"{LABEL_PREFIX}agent", ""),
        repo="-",
        worktree="-",
        branch=f"clauderon/{name}" if name else "-",
        prompt="",
        settings={"image": image} if image else {},
        backend_id=None,
        status=observed.status if observed.status is not Status.RUNNING else Status.RUNNING,
        error="orphan: no record in the session store (deleted or damaged store?); `delete` removes it",
        created_at=float(created) if isinstance(created, (int, float)) else now,
        updated_at=now,
        runtime={"orphan": True},
    )


class Workspace(Protocol):
    """A session's workspace folder on this host, being made while the backend makes its object."""

    path: Path

    def ready(self, uid: int, gid: int) -> bool:
        """Wait until it is made and give it to the agent's uid; False when this process may not chown (the
        backend must)."""
        ...


class SessionBackend(Protocol):
    name: str
    #: True when the session works in a workspace folder on this host (docker, local); False when the
    #: backend clones the repository itself (kubernetes).
    local_workspace: bool

    def preflight(self, spec: SessionSpec, progress: ProgressCallback) -> SessionSpec | None:
        """Everything that can fail before anything is created (engine, resources, image, a build).
        Returns the spec to create when it changed (an image pinned to a pushed digest), else None."""

    def check_image(self, spec: SessionSpec) -> ImageCheck:
        """Whether the session's image is there (engine or registry), as a dry run says it; raises the
        create's error when it is not."""
        ...

    def plan_runtime(self, spec: SessionSpec) -> dict[str, Any]:
        """The names of what ``create`` will make, stored before it makes them (write-ahead)."""
        ...

    def survey(
        self, sessions: list[Session], known_ids: set[str], owner: str | None, deployment: str = ""
    ) -> tuple[dict[str, Observed], list[Session]]:
        """``observe``, plus the objects carrying our labels that no record knows (``owner`` None:
        everyone's; ``deployment``: only objects of that deployment, see ``sessions/deployment.py``), in
        the same single backend call."""
        ...

    def create(
        self,
        spec: SessionSpec,
        secrets: Mapping[str, str],
        progress: ProgressCallback,
        *,
        wait: bool = True,
        workspace: Workspace | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Create and start the session's object; returns its id and runtime bookkeeping.

        ``wait``: watch the object come up and fail if it does not. ``workspace``: the folder to give the
        agent (``local_workspace`` backends), ready once ``ready`` returns.
        """
        ...

    def remove(self, session: Session) -> None:
        """Remove every object of the session, found by its labels or recorded names (idempotent)."""

    def start(self, session: Session, spec: SessionSpec | None = None) -> dict[str, Any]:
        """Start a stopped session; returns updated runtime bookkeeping. ``spec``: the session rendered again
        from its stored settings (the backends that render their object again on start need it)."""
        ...

    def stop(self, session: Session) -> None: ...

    def observe(self, sessions: list[Session]) -> dict[str, Observed]:
        """Current state of every given session, in one backend call; missing ids vanished."""
        ...

    def logs(self, session: Session, tail: int | None, follow: bool) -> str | Follow:
        """All of the agent's output, its last ``tail`` lines, or (``follow``) a stream of it."""
        ...

    def attach_command(self, session: Session) -> str: ...


def reconcile(recorded: Status, observed: Observed | None, what: str) -> tuple[Status, str | None] | None:
    """The status to store given what the backend shows, or ``None`` to keep the record as is."""
    if recorded in (Status.CREATING, Status.DELETING):
        return None
    if observed is None:
        if recorded is Status.FAILED:
            return None
        return Status.FAILED, f"{what} no longer exists (removed outside clauderon)"
    if recorded is Status.STOPPED and observed.status in (Status.STOPPED, Status.FAILED):
        return None  # stopped on purpose: the exit code of a stop is not a failure
    return observed.status, observed.error

"""The agent's branch back into a repository: ``fetch``, and keeping it when a session stops or goes.

The branch is read from the workspace as data (``sessions/harvest.py``): the host never runs git
in a folder the agent could write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClauderonError
from ..model.session import LAYOUT, SEED_PACKS, Session

if TYPE_CHECKING:
    from .harvest import Harvest
    from .manager import SessionManager


def fetch(m: SessionManager, session: Session, repo: str | os.PathLike[str] | None = None) -> str:
    """Bring the session's branch into ``repo`` (default: the one it was made from) as ``clauderon/<name>``;
    returns a one-line summary."""
    from ..repos.bundles import set_branch
    from ..repos.gitrepo import inspect_repo

    if not m.backend(session.backend).local_workspace:
        raise ClauderonError(
            f"session {session.name!r} runs in a Kubernetes pod: its work comes back by a push from the pod to "
            "the repository's remote, not by fetch"
        )
    if session.runtime.get("layout") != LAYOUT:
        return f"Session {session.name} works in your repository already: its branch is {session.branch}."
    info = inspect_repo(repo if repo is not None else session.repo)
    got = bring_back(m, session, info.root)
    if got.ahead == 0 and got.commit == session.base_commit():
        set_branch(info.root, session.branch, got.commit)
        return f"Session {session.name} has no commits yet; {session.branch} points at its base {got.commit[:12]}."
    plural = "s" if got.ahead != 1 else ""
    return f"Fetched {session.branch} ({got.commit[:12]}, {got.ahead} new commit{plural}) into {info.root}."


def origin_of(m: SessionManager, session: Session) -> Path:
    """Where a session's branch comes back to: your repository, or on the service its copy of it."""
    if not m.shared:
        return Path(session.repo)
    from ..repos.bundles import is_repo_key, service_repo

    key = session.runtime.get("repo_key")
    if not is_repo_key(key):
        raise ClauderonError(f"session {session.name!r} was not made from a sent workspace")
    return service_repo(m.home, session.owner, key)


def bring_back(
    m: SessionManager, session: Session, dest: Path | None = None, *, only_if_ahead: bool = False
) -> Harvest:
    """Bring the session's branch from its workspace into ``dest`` (default: where it came from), as data."""
    from ..config.policy import load_policy
    from .harvest import harvest

    limit = load_policy().for_user(session.owner, session.recorded_groups()).max_upload_size()
    seeds = session.runtime.get(SEED_PACKS)
    return harvest(
        m.workspace_of(session),
        session.branch,
        session.base_commit(),
        dest or origin_of(m, session),
        seed_packs=frozenset(str(p) for p in seeds) if isinstance(seeds, list) else frozenset(),
        only_if_ahead=only_if_ahead,
        **({"limit": limit} if limit else {}),
    )


def keep_branch(m: SessionManager, session: Session) -> str | None:
    """Keep the agent's branch when it has commits; a note says what happened (never what was read)."""
    from .harvest import HarvestError

    try:
        kept = bring_back(m, session, only_if_ahead=True)
    except HarvestError as exc:
        return f"its branch could not be kept: {exc}"
    if kept.ahead == 0:
        return None
    return f"branch {session.branch} kept: it has {kept.ahead} new commit{'s' if kept.ahead != 1 else ''}"

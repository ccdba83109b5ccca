"""Session git worktrees: ``git worktree add -b clauderon/<name>`` and their removal."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import BackendError
from .gitrepo import run_git


def _git(args: list[str], cwd: Path, step: str) -> str:
    for attempt in range(20):
        proc = run_git(args, cwd)
        if proc.returncode == 0:
            return proc.stdout
        err = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        if ".lock" in err and attempt < 19:  # another process holds a git lock: wait and retry
            time.sleep(0.05 * (attempt + 1))
            continue
        raise BackendError(err.removeprefix("fatal: ").removeprefix("error: "), step=step)
    raise AssertionError("unreachable")


def branch_exists(repo: Path, branch: str) -> bool:
    return run_git(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], repo).returncode == 0


def add_worktree(repo: Path, path: Path, branch: str, commit: str) -> None:
    """Create ``path`` on a new ``branch`` starting at ``commit``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _git(["worktree", "add", "--quiet", "-b", branch, str(path), commit], repo, step="create worktree")


def commits_ahead(repo: Path, branch: str, base: str) -> int:
    out = _git(["rev-list", "--count", f"{base}..{branch}"], repo, step="inspect branch")
    return int(out.strip() or 0)


def remove_worktree(repo: Path, path: Path, branch: str, *, base: str | None, keep_work: bool) -> str | None:
    """Remove the worktree and, unless it holds new commits and ``keep_work``, its branch.

    Returns a note when the branch was kept.
    """
    if not repo.exists():
        return None
    if path.exists():
        _git(["worktree", "remove", "--force", "--force", str(path)], repo, step="remove worktree")
    _git(["worktree", "prune"], repo, step="remove worktree")
    if not branch_exists(repo, branch):
        return None
    if keep_work and base:
        ahead = commits_ahead(repo, branch, base)
        if ahead:
            return f"branch {branch} kept: it has {ahead} new commit{'s' if ahead != 1 else ''}"
    _git(["branch", "-D", branch], repo, step="delete branch")
    return None

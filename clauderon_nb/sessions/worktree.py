"""Session git worktrees: ``git worktree add -b clauderon/<name>`` and their removal.

Worktree operations on one repository are serialised by a lock file in its git
directory, so many kernels creating and deleting sessions at once never race in
``.git/worktrees``. Every step is idempotent: running a removal twice is fine.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import BackendError
from ..model.redact import redact_text
from .gitrepo import run_git

LOCK_NAME = "clauderon-worktrees.lock"
LOCK_SECONDS = 120.0


def _git(args: list[str], cwd: Path, step: str) -> str:
    for attempt in range(20):
        proc = run_git(args, cwd)
        if proc.returncode == 0:
            return proc.stdout
        err = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        if ".lock" in err and attempt < 19:  # another git (not ours) holds a git lock: wait and retry
            time.sleep(0.05 * (attempt + 1))
            continue
        raise BackendError(redact_text(err.removeprefix("fatal: ").removeprefix("error: ")), step=step)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def repo_lock(common_dir: Path, step: str) -> Iterator[None]:
    """Hold the repository's clauderon lock (an ``flock`` on a file in its git directory)."""
    path = common_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BackendError(f"cannot open the lock file {path}: {exc.strerror or exc}", step=step) from None
    try:
        deadline = time.monotonic() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"another process has held {path} for over {LOCK_SECONDS:g}s", step=step
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def common_dir_of(repo: Path) -> Path:
    out = _git(["rev-parse", "--path-format=absolute", "--git-common-dir"], repo, step="find repository")
    return Path(out.strip())


def branch_exists(repo: Path, branch: str) -> bool:
    return run_git(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], repo).returncode == 0


def add_worktree(repo: Path, common_dir: Path, path: Path, branch: str, commit: str) -> None:
    """Create ``path`` on a new ``branch`` starting at ``commit``; leaves neither behind on failure."""
    step = "create worktree"
    if path.exists() or path.is_symlink():
        raise BackendError(
            f"the worktree folder {path} already exists (left from an earlier session?); "
            "delete that session, or remove the folder",
            step=step,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with repo_lock(common_dir, step):
        if branch_exists(repo, branch):
            raise BackendError(
                f"branch {branch} already exists in {repo}; delete it (git branch -D {branch}) or choose another name",
                step=step,
            )
        try:
            _git(["worktree", "add", "--quiet", "-b", branch, str(path), commit], repo, step=step)
        except BaseException:
            # git may have made the branch (or part of the folder) before failing: take back what it made.
            _remove_locked(repo, path, branch, base=None, keep_work=False)
            raise


def commits_ahead(repo: Path, branch: str, base: str) -> int:
    out = _git(["rev-list", "--count", f"{base}..refs/heads/{branch}"], repo, step="inspect branch")
    return int(out.strip() or 0)


def remove_worktree(
    repo: Path, path: Path, branch: str, *, base: str | None, keep_work: bool, common_dir: Path | None = None
) -> str | None:
    """Remove the worktree and, unless it holds new commits and ``keep_work``, its branch.

    Idempotent: whatever is already gone is skipped. Returns a note when the branch was kept.
    """
    if not repo.exists():
        return None
    try:
        common = common_dir or common_dir_of(repo)
    except BackendError:
        return None  # no longer a repository: nothing of ours is left in it
    with repo_lock(common, "remove worktree"):
        return _remove_locked(repo, path, branch, base=base, keep_work=keep_work)


def _remove_locked(repo: Path, path: Path, branch: str, *, base: str | None, keep_work: bool) -> str | None:
    if path.exists():
        proc = run_git(["worktree", "remove", "--force", "--force", str(path)], repo)
        if proc.returncode != 0 and path.exists():
            # Not a registered worktree (git failed half-way): the folder is ours alone.
            import shutil

            shutil.rmtree(path, ignore_errors=True)
    _git(["worktree", "prune"], repo, step="remove worktree")
    if not branch_exists(repo, branch):
        return None
    if keep_work and base:
        ahead = commits_ahead(repo, branch, base)
        if ahead:
            return f"branch {branch} kept: it has {ahead} new commit{'s' if ahead != 1 else ''}"
    _git(["branch", "-D", branch], repo, step="delete branch")
    return None

"""A session's workspace: a checkout with a git directory of its own, made from the user's repository.

The workspace is the only place of the host the agent can write (it is mounted at ``/workspace``).
From the moment the agent runs, everything in it is hostile input: the host never runs git in it,
never follows a link in it, and removes it with ``remove_tree``, which opens every folder itself
without following links. The agent's commits come back as data (``sessions/harvest.py``).

The user's repository (and the service's copy of it) is only read, by git running in it, while the
workspace is made; it is never mounted into a session.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from ..errors import BackendError, PolicyError
from ..model.display import show_value
from ..model.units import approx_size
from ..repos.gitrepo import run_git

STEP = "create workspace"
_FLATTEN_DEPTH = 64  # deeper folders are moved up before they are removed: no fd chain, no recursion


def make_workspace(source: Path, commit: str, path: Path, branch: str, *, remote: str | None = None) -> list[str]:
    """Make ``path``: a new repository holding ``commit`` (and its history) of ``source`` on ``branch``,
    checked out. Nothing of ``source`` is shared with it: its objects are copied as one pack.

    Returns the names of the packs it was made with. ``path`` must not exist; on failure it is removed.
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        raise BackendError(
            f"the workspace folder of session {path.name!r} already exists (left from an earlier session?); "
            "delete that session first",
            step=STEP,
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.mkdir(path, 0o755)
    try:
        _git(["init", "-q", "--template=", f"--initial-branch={branch}", str(path)], path.parent)
        ref = f"refs/heads/{branch}"
        # unpackLimit=1: the base history is always one pack, whose name is kept, so only what the agent
        # adds is read back later.
        fetch = ["fetch", "-q", "--no-tags", "--no-write-fetch-head", "--update-head-ok"]
        _git(["-c", "fetch.unpackLimit=1", *fetch, str(source), f"{commit}:{ref}"], path)
        _git(["reset", "-q", "--hard"], path)
        if remote:
            _git(["remote", "add", "origin", remote], path)
        packs = sorted(p.name for p in (path / ".git" / "objects" / "pack").glob("pack-*.pack"))
    except BaseException:
        remove_tree(path)
        raise
    return packs


def hand_over(path: Path, uid: int, gid: int) -> bool:
    """Give a fresh workspace (not yet seen by any agent) to the agent's uid. False when this process
    may not (it is neither root nor that uid): the backend must do it."""
    if os.geteuid() == uid:
        return True  # made by the agent's own uid already
    if os.geteuid() != 0:
        return False
    os.chown(path, uid, gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
    return True


def checkout_size(source: Path, commit: str) -> tuple[int, int]:
    """(bytes, files) of ``commit``'s checkout, summed from git's tree before anything is written."""
    out = run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], source)
    if out.returncode != 0:
        raise BackendError(f"cannot read the tree of commit {commit[:12]}", step=STEP)
    total = files = 0
    for entry in out.stdout.split("\0"):
        meta = entry.split("\t", 1)[0].split()
        if len(meta) == 4 and meta[1] == "blob" and meta[3].isdigit():
            total += int(meta[3])
            files += 1
    return total, files


def check_size(size: int, limit: int | None, where: str) -> None:
    """Refuse a checkout over the policy's ``max_workspace_size`` (one line naming it)."""
    if limit is not None and size > limit:
        raise PolicyError(
            f"policy {where}: max_workspace_size is {show_value('workspace_size', limit)}; this repository's "
            f"checkout would be {approx_size(size)} (the sum of its files at that commit, {size} bytes)",
            field="repo",
        )


def remove_tree(path: Path) -> None:
    """Remove ``path`` and all in it, never following a link: every folder is opened relative to its
    parent with ``O_NOFOLLOW``, so a link planted anywhere inside is removed, not followed. Folders the
    agent made unreadable are opened up first (when this process owns them, or is root)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _remove_folder(parent, path.name)
    finally:
        os.close(parent)


def _open_folder(parent: int, name: str) -> int | None:
    """An fd of the folder ``name`` in ``parent``; None when it is not a folder (a link, a file)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        if exc.errno != errno.EACCES:
            raise
    # Unreadable (mode 000): make it ours to read through an O_PATH handle, which follows nothing.
    handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    try:
        os.chmod(f"/proc/self/fd/{handle}", 0o700)
    finally:
        os.close(handle)
    return os.open(name, flags, dir_fd=parent)


def _remove_folder(top_parent: int, top_name: str) -> None:
    top = _open_folder(top_parent, top_name)
    if top is None:
        _unlink(top_parent, top_name)
        return
    moved = 0
    # (fd, name in its parent), root first. A folder deeper than _FLATTEN_DEPTH is moved up to the top
    # folder and removed from there, so neither the fds held nor the work done grows with depth.
    stack: list[tuple[int, str]] = [(top, top_name)]
    try:
        while stack:
            fd = stack[-1][0]
            _writable(fd)
            child = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = entry.name
                        break
                    _unlink(fd, entry.name)
            if child is None:  # empty now: remove it from its parent
                _, name = stack.pop()
                os.close(fd)
                os.rmdir(name, dir_fd=stack[-1][0] if stack else top_parent)
                continue
            if len(stack) >= _FLATTEN_DEPTH:
                moved += 1
                while _exists(top, f".clauderon-remove-{moved}"):
                    moved += 1
                os.rename(child, f".clauderon-remove-{moved}", src_dir_fd=fd, dst_dir_fd=top)
                continue
            sub = _open_folder(fd, child)
            if sub is None:  # replaced by a link meanwhile
                _unlink(fd, child)
                continue
            stack.append((sub, child))
    finally:
        for fd, _ in stack:
            os.close(fd)


def _exists(fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return False
    return True


def _writable(fd: int) -> None:
    """Let this process remove entries of the folder (the agent may have taken write permission away)."""
    mode = os.fstat(fd).st_mode
    if mode & 0o700 != 0o700 and os.geteuid() != 0:
        os.fchmod(fd, (mode & 0o7777) | 0o700)


def _unlink(fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)


def _git(args: list[str], cwd: Path) -> str:
    out = run_git(args, cwd)
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        detail = re.sub(r"\s+", " ", lines[-1] if lines else "git failed").removeprefix("fatal: ")
        raise BackendError(detail, step=STEP)
    return out.stdout


class WorkspaceJob:
    """Makes a session's workspace in a thread, while the backend makes the container; the backend calls
    ``ready(uid, gid)`` (the ``Workspace`` protocol of ``backends/base.py``) before the agent starts."""

    def __init__(self, source: Path, commit: str, path: Path, branch: str, remote: str | None) -> None:
        import threading

        self.path = path
        self.seed_packs: list[str] = []
        self._error: BaseException | None = None
        self._made = False

        def work() -> None:
            try:
                self.seed_packs = make_workspace(source, commit, path, branch, remote=remote)
                self._made = True
            except BaseException as exc:  # noqa: BLE001 - re-raised by ready()
                self._error = exc

        self._thread = threading.Thread(target=work, name=f"workspace {path.name}", daemon=True)
        self._thread.start()

    def ready(self, uid: int, gid: int) -> bool:
        """Wait for the workspace and give it to the agent's uid; False when the backend must do that."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return hand_over(self.path, uid, gid)

    def remove(self) -> None:
        """Undo: wait for the thread, then remove the workspace (a failed make removed its own part)."""
        self._thread.join()
        if self._made:
            remove_tree(self.path)

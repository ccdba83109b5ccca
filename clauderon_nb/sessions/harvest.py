"""The agent's commits, brought back as data.

A session's workspace is written by the agent, so the host never runs git in it. To bring its branch
back, the branch's ref and the objects the agent added are *read as files* — every folder opened
relative to its parent with ``O_NOFOLLOW``, only regular files with the names git gives them, within
a size bound — into a quarantine repository of our own (which sees the destination's objects
read-only, as git's own receive-pack quarantine does). git checks them there (``index-pack``), and
the branch is fetched from the quarantine into the destination with ``fetch.fsckObjects``, hooks and
fsmonitor off, and a refspec naming ``refs/heads/clauderon/NAME`` only. The agent's ``.git/config``,
hooks, alternates, other refs and idx files are never read. Errors never echo what was read.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ClauderonError
from ..model.git_ids import OBJECT_ID, is_commit_hash
from ..repos.gitrepo import fetch_one_ref, run_git

DEFAULT_LIMIT = 1024**3  # bytes of new objects read back at most
MAX_OBJECTS = 200_000  # loose objects and packs together
_PACK = re.compile(rf"pack-{OBJECT_ID.pattern}\.pack")
_REF_PART = re.compile(r"[A-Za-z0-9._-]{1,200}")


class HarvestError(ClauderonError):
    """The session's branch cannot be read back from its workspace (said without what was read)."""


@dataclass(frozen=True)
class Harvest:
    """The session branch as its workspace holds it."""

    commit: str
    ahead: int  # commits beyond the base (0: nothing new)


def branch_tip(workspace: Path, branch: str) -> str:
    """The commit ``refs/heads/<branch>`` of the workspace points at, read as data."""
    with _opened(workspace) as root, _folder(root, ".git", "its .git folder") as gitdir:
        return _read_ref(gitdir, branch)


def harvest(
    workspace: Path,
    branch: str,
    base: str | None,
    dest: Path,
    *,
    seed_packs: frozenset[str] = frozenset(),
    limit: int = DEFAULT_LIMIT,
    only_if_ahead: bool = False,
) -> Harvest:
    """Bring ``refs/heads/<branch>`` of the workspace into the repository ``dest`` (a git directory or a
    working tree), as the same ref. ``seed_packs``: the workspace's own base packs, not read (their
    objects are in ``dest`` already). ``only_if_ahead``: leave ``dest`` alone when the branch has no
    commits beyond ``base``. Raises ``HarvestError``."""
    dest_objects = _objects_dir(dest)
    with _opened(workspace) as root, _folder(root, ".git", "its .git folder") as gitdir:
        tip = _read_ref(gitdir, branch)
        if base is not None and tip == base:
            return Harvest(tip, 0)
        with tempfile.TemporaryDirectory(prefix="clauderon-harvest-") as tmp:
            stage = _quarantine(Path(tmp), len(tip), dest_objects)
            with _folder(gitdir, "objects", "its objects folder") as objects:
                packs = _copy_objects(objects, stage / "objects", seed_packs, limit)
            for pack in packs:
                _git(["index-pack", str(pack)], stage, "a pack of its objects is damaged")
            ref = f"refs/heads/{branch}"
            ahead = _ahead(stage, tip, base)  # fails when the tip or its history is missing
            target = stage / ref
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{tip}\n")
            if only_if_ahead and base is not None and ahead == 0:
                return Harvest(tip, 0)
            problem = fetch_one_ref(dest, stage, ref)
            if problem:
                if problem == "checked out":
                    raise HarvestError(
                        f"{branch} is checked out in your repository; switch to another branch there first, then "
                        "bring the session's branch back again"
                    )
                raise HarvestError("its commits failed git's checks (fsck); nothing was brought back")
    return Harvest(tip, ahead)


def _quarantine(folder: Path, hash_length: int, dest_objects: Path) -> Path:
    """An empty bare repository of our own (made by hand: no template, no hook) that sees ``dest_objects``."""
    stage = folder / "quarantine.git"
    for sub in ("objects/pack", "objects/info", "refs/heads"):
        (stage / sub).mkdir(parents=True)
    (stage / "HEAD").write_text("ref: refs/heads/main\n")
    version = (
        "\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = sha256\n"
        if hash_length == 64
        else ("\trepositoryformatversion = 0\n")
    )
    (stage / "config").write_text(f"[core]\n\tbare = true\n{version}")
    (stage / "objects" / "info" / "alternates").write_text(f"{dest_objects}\n")
    return stage


def _ahead(stage: Path, tip: str, base: str | None) -> int:
    """Commits of ``tip`` beyond ``base``; ``HarvestError`` when the tip is no commit it has, or its history
    is incomplete (the fetch that follows checks every tree and blob too)."""
    for exclude in ([f"^{base}"], []) if base else ([],):
        out = run_git(["rev-list", "--count", tip, *exclude], stage)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return int(out.stdout.strip())
        if run_git(["cat-file", "-e", f"{tip}^{{commit}}"], stage).returncode != 0:
            raise HarvestError("its branch points at a commit it does not have")
        # else: the base may be gone from the destination (garbage-collected); count without it
    raise HarvestError("its history is incomplete (a commit or tree is missing)")


def _objects_dir(dest: Path) -> Path:
    out = run_git(["rev-parse", "--path-format=absolute", "--git-path", "objects"], dest)
    if out.returncode != 0 or not out.stdout.strip():
        raise HarvestError("the repository to bring it into is not a git repository")
    return Path(out.stdout.strip())


# --- reading the workspace without following links ----------------------------------------------


@contextmanager
def _opened(workspace: Path) -> Iterator[int]:
    try:
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise HarvestError("its workspace is gone") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _folder(parent: int, name: str, what: str) -> Iterator[int]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise HarvestError(f"{what} in the workspace was replaced by a link or a file") from None
        raise HarvestError(f"{what} in the workspace cannot be read") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _read_file(parent: int, name: str, limit: int) -> bytes | None:
    """A regular file's bytes (None when absent); a link, a device or a file over ``limit`` is refused."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise HarvestError("a file of its git folder is a link, or cannot be read") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise HarvestError("a file of its git folder is not a regular file, or is too large")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:
                raise HarvestError("a file of its git folder is too large")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_ref(gitdir: int, branch: str) -> str:
    parts = ["refs", "heads", *branch.split("/")]
    if not all(_REF_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise HarvestError(f"branch {branch!r} is not a branch name")
    fds: list[int] = []
    try:
        current = gitdir
        loose: bytes | None = None
        for part in parts[:-1]:
            try:
                current = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    break
                raise HarvestError("the refs folder of its workspace was replaced by a link or a file") from None
            fds.append(current)
        else:
            loose = _read_file(current, parts[-1], 4096)
        if loose is not None:
            text = loose.decode("ascii", errors="replace").strip()
            if not is_commit_hash(text):
                raise HarvestError(f"its branch {branch} is not a plain commit hash (a symbolic or damaged ref)")
            return text
    finally:
        for fd in fds:
            os.close(fd)
    packed = _read_file(gitdir, "packed-refs", 64 * 1024 * 1024) or b""
    wanted = f" refs/heads/{branch}".encode()
    for line in packed.splitlines():
        if line.endswith(wanted):
            text = line[: -len(wanted)].decode("ascii", errors="replace")
            if is_commit_hash(text):
                return text
    raise HarvestError(f"its branch {branch} no longer exists in the workspace")


def _copy_objects(objects: int, dest: Path, seed_packs: frozenset[str], limit: int) -> list[Path]:
    """Copy the loose objects and the packs the agent added; returns the copied packs."""
    total = count = 0
    packs: list[Path] = []
    made: set[Path] = set()

    def take(parent: int, name: str, target: Path) -> None:
        nonlocal total, count
        count += 1
        if count > MAX_OBJECTS:
            raise HarvestError(f"its workspace holds over {MAX_OBJECTS} new git objects")
        data = _read_file(parent, name, limit - total)
        if data is None:
            return
        total += len(data)
        if target.parent not in made:
            target.parent.mkdir(exist_ok=True)
            made.add(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    with os.scandir(objects) as entries:
        names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    for name in names:
        if re.fullmatch(r"[0-9a-f]{2}", name):
            with _folder(objects, name, "an objects folder") as sub, os.scandir(sub) as files:
                loose = sorted(f.name for f in files if re.fullmatch(r"[0-9a-f]{38}(?:[0-9a-f]{24})?", f.name))
                for file in loose:
                    take(sub, file, dest / name / file)
        elif name == "pack":
            with _folder(objects, name, "its pack folder") as sub, os.scandir(sub) as files:
                found = sorted(f.name for f in files if _PACK.fullmatch(f.name) and f.name not in seed_packs)
                for file in found:
                    take(sub, file, dest / "pack" / file)
                    if (dest / "pack" / file).exists():
                        packs.append(dest / "pack" / file)
    return packs


def _git(args: list[str], cwd: Path, problem: str) -> None:
    if run_git(args, cwd).returncode != 0:
        raise HarvestError(problem)

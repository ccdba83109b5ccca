"""Read-only facts about the user's git repository.

Every git command runs with hooks and fsmonitor switched off: the repository
(and anything an agent wrote into it) is untrusted input, and git must never run
code from it on our behalf.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config.cache import remember, stat_key
from ..errors import ConfigError
from ..model.git_ids import is_commit_hash
from ..model.redact import redact_url
from .git import SAFE_GIT, run_git


@dataclass(frozen=True)
class RepoInfo:
    root: Path
    common_dir: Path  # the repository's .git directory (shared by its worktrees)
    branch: str  # current branch, or "HEAD" when detached
    commit: str  # a full commit hash, never a branch name


def fetch_one_ref(repo: Path, source: Path, ref: str) -> str | None:
    """Fetch ``ref`` of ``source`` (a repository or a bundle) into ``repo`` as the same ref, and nothing
    else: forced, every object checked with fsck, no tags, no FETCH_HEAD. None when it worked, else why
    not: ``"checked out"`` (the ref is the repository's current branch) or ``"failed"`` (git's own words
    are not returned: they may quote what an agent wrote)."""
    out = run_git(
        [
            "-c",
            "fetch.fsckObjects=true",
            "-c",
            "transfer.fsckObjects=true",
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            str(source),
            f"+{ref}:{ref}",
        ],
        repo,
    )
    if out.returncode == 0:
        return None
    return "checked out" if "checked out" in out.stderr else "failed"


def branch_exists(repo: Path, branch: str) -> bool:
    return run_git(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], repo).returncode == 0


def inspect_repo(path: str | os.PathLike[str]) -> RepoInfo:
    """Resolve ``path`` to its repository; ``ConfigError`` if it is not one (or is bare, or empty)."""
    given = Path(path).expanduser()
    if not given.exists():
        raise ConfigError(f"repo '{path}': no such directory", field="repo")
    if not given.is_dir():
        raise ConfigError(f"repo '{path}': not a directory", field="repo")
    # HEAD before --abbrev-ref, which sticks to every later argument: the commit must be a hash.
    both = run_git(
        ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", "HEAD", "--abbrev-ref", "HEAD"],
        given,
    )
    lines = [line for line in both.stdout.split("\n") if line]
    if both.returncode == 0 and len(lines) == 4 and is_commit_hash(lines[2]):  # the common case: one git call
        return RepoInfo(root=Path(lines[0]), common_dir=Path(lines[1]), branch=lines[3], commit=lines[2])
    bare = run_git(["rev-parse", "--is-bare-repository"], given)
    if bare.returncode == 0 and bare.stdout.strip() == "true":
        raise ConfigError(
            f"repo '{path}': a bare repository has no working tree to branch from; clone it first", field="repo"
        )
    top = run_git(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"], given)
    if top.returncode != 0:
        raise ConfigError(f"repo '{path}': not a git repository (run `git init` there, or pass --repo)", field="repo")
    lines = top.stdout.splitlines()
    if len(lines) < 2:
        raise ConfigError(
            f"repo '{path}': a bare repository has no working tree to branch from; clone it first", field="repo"
        )
    root, common = Path(lines[0]), Path(lines[1])
    head = run_git(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"], root)
    parts = head.stdout.split()
    if head.returncode != 0 or len(parts) < 2 or not is_commit_hash(parts[0]):
        raise ConfigError(
            f"repo '{path}': has no commits yet; a session branch needs a commit to start from", field="repo"
        )
    return RepoInfo(root=root, common_dir=common, branch=parts[1], commit=parts[0])


def _git_dir(path: Path) -> Path | None:
    """The git directory of the working tree holding ``path``, found without running git (None: unsure)."""
    for folder in (path, *path.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():
            text = dotgit.read_text(errors="replace").strip()
            return (folder / text[len("gitdir:") :].strip()).resolve() if text.startswith("gitdir:") else None
    return None


def _state_key(path: Path) -> tuple[object, ...] | None:
    """What a repository's answers depend on: HEAD, the ref it names, packed refs and the config."""
    try:
        resolved = path.expanduser().resolve()
        gitdir = _git_dir(resolved)
        if gitdir is None:
            return None
        head = (gitdir / "HEAD").read_bytes()
        common_file = gitdir / "commondir"
        common = (gitdir / common_file.read_text().strip()).resolve() if common_file.is_file() else gitdir
    except OSError:
        return None
    files = [gitdir / "HEAD", common / "packed-refs", common / "config"]
    if head.startswith(b"ref: "):
        ref = head[5:].strip().decode(errors="replace")
        files += [gitdir / ref, common / ref]
    return (str(resolved), head, *(stat_key(f) for f in files))


def inspect_repo_cached(path: str | os.PathLike[str]) -> RepoInfo:
    """``inspect_repo``, answered from memory while HEAD, its ref and the config are unchanged."""
    key = _state_key(Path(path))
    if key is None:
        return inspect_repo(path)
    return remember(("repo", key), lambda: inspect_repo(path))


def remote_url_cached(repo: RepoInfo) -> str | None:
    """``remote_url``, answered from memory while the repository's config is unchanged."""
    key = ("remote", str(repo.root), repo.branch, stat_key(repo.common_dir / "config"))
    return remember(key, lambda: remote_url(repo))


def remote_url(repo: RepoInfo) -> str | None:
    """URL of the current branch's remote (else ``origin``), or ``None``. May hold credentials."""
    remote = "origin"
    if repo.branch != "HEAD":
        configured = run_git(["config", "--get", f"branch.{repo.branch}.remote"], repo.root)
        if configured.returncode == 0 and configured.stdout.strip():
            remote = configured.stdout.strip()
    url = run_git(["config", "--get", f"remote.{remote}.url"], repo.root)
    if url.returncode != 0 or not url.stdout.strip():
        return None
    return url.stdout.strip()


def is_local_remote(url: str) -> bool:
    """True for remotes a pod cannot reach: a path or a ``file://`` URL."""
    if url.startswith("file:"):
        return True
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return False
    # scp-like "host:path" (no slash before the colon) is remote; everything else is a path.
    return not re.match(r"^[^/:]+:", url) or url.startswith(("/", "./", "../", "~"))


__all__ = [
    "SAFE_GIT",
    "RepoInfo",
    "branch_exists",
    "fetch_one_ref",
    "inspect_repo",
    "inspect_repo_cached",
    "is_local_remote",
    "redact_url",
    "remote_url",
    "remote_url_cached",
    "run_git",
]

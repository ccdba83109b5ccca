"""Read-only facts about the user's git repository.

Every git command runs with hooks and fsmonitor switched off: the repository
(and anything an agent wrote into it) is untrusted input, and git must never run
code from it on our behalf.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..model.redact import redact_url

# Options that keep git from running programs named by the repository's own files.
SAFE_GIT = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never")
_HASH = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


@dataclass(frozen=True)
class RepoInfo:
    root: Path
    common_dir: Path  # the repository's .git directory (shared by its worktrees)
    branch: str  # current branch, or "HEAD" when detached
    commit: str  # a full commit hash, never a branch name


def run_git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run git non-interactively with C-locale messages; ``ConfigError`` if git is missing."""
    try:
        return subprocess.run(
            ["git", *SAFE_GIT, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"},
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed or not on PATH; it is needed to create session worktrees") from None


def inspect_repo(path: str | os.PathLike[str]) -> RepoInfo:
    """Resolve ``path`` to its repository; ``ConfigError`` if it is not one (or is bare, or empty)."""
    given = Path(path).expanduser()
    if not given.exists():
        raise ConfigError(f"repo '{path}': no such directory")
    if not given.is_dir():
        raise ConfigError(f"repo '{path}': not a directory")
    # HEAD before --abbrev-ref, which sticks to every later argument: the commit must be a hash.
    both = run_git(
        ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", "HEAD", "--abbrev-ref", "HEAD"],
        given,
    )
    lines = [line for line in both.stdout.split("\n") if line]
    if both.returncode == 0 and len(lines) == 4 and _HASH.match(lines[2]):  # the common case: one git call
        return RepoInfo(root=Path(lines[0]), common_dir=Path(lines[1]), branch=lines[3], commit=lines[2])
    bare = run_git(["rev-parse", "--is-bare-repository"], given)
    if bare.returncode == 0 and bare.stdout.strip() == "true":
        raise ConfigError(f"repo '{path}': a bare repository has no working tree to branch from; clone it first")
    top = run_git(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"], given)
    if top.returncode != 0:
        raise ConfigError(f"repo '{path}': not a git repository (run `git init` there, or pass --repo)")
    lines = top.stdout.splitlines()
    if len(lines) < 2:
        raise ConfigError(f"repo '{path}': a bare repository has no working tree to branch from; clone it first")
    root, common = Path(lines[0]), Path(lines[1])
    head = run_git(["rev-parse", "HEAD", "--abbrev-ref", "HEAD"], root)
    parts = head.stdout.split()
    if head.returncode != 0 or len(parts) < 2 or not _HASH.match(parts[0]):
        raise ConfigError(f"repo '{path}': has no commits yet; a session branch needs a commit to start from")
    return RepoInfo(root=root, common_dir=common, branch=parts[1], commit=parts[0])


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


__all__ = ["SAFE_GIT", "RepoInfo", "inspect_repo", "is_local_remote", "redact_url", "remote_url", "run_git"]

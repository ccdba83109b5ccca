"""Read-only facts about the user's git repository."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class RepoInfo:
    root: Path
    common_dir: Path  # the repository's .git directory (shared by its worktrees)
    branch: str  # current branch, or "HEAD" when detached
    commit: str


def run_git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run git non-interactively with C-locale messages; ``ConfigError`` if git is missing."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed or not on PATH; it is needed to create session worktrees") from None


def inspect_repo(path: str | os.PathLike[str]) -> RepoInfo:
    """Resolve ``path`` to its repository; ``ConfigError`` if it is not one."""
    given = Path(path).expanduser()
    if not given.exists():
        raise ConfigError(f"repo '{path}': no such directory")
    if not given.is_dir():
        raise ConfigError(f"repo '{path}': not a directory")
    both = run_git(
        ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", "--abbrev-ref", "HEAD", "HEAD"],
        given,
    )
    lines = both.stdout.split()
    if both.returncode == 0 and len(lines) == 4:  # the common case: one git call
        return RepoInfo(root=Path(lines[0]), common_dir=Path(lines[1]), branch=lines[2], commit=lines[3])
    top = run_git(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"], given)
    if top.returncode != 0:
        raise ConfigError(f"repo '{path}': not a git repository (run `git init` there, or pass --repo)")
    lines = top.stdout.splitlines()
    if len(lines) < 2:
        raise ConfigError(f"repo '{path}': a bare repository has no working tree to branch from")
    root, common = Path(lines[0]), Path(lines[1])
    head = run_git(["rev-parse", "--abbrev-ref", "HEAD", "HEAD"], root)
    if head.returncode != 0:
        raise ConfigError(f"repo '{path}': has no commits yet; a session branch needs a commit to start from")
    branch, commit = head.stdout.split()[:2]
    return RepoInfo(root=root, common_dir=common, branch=branch, commit=commit)


def remote_url(repo: RepoInfo) -> str | None:
    """URL of the current branch's remote (else ``origin``), or ``None``."""
    remote = "origin"
    if repo.branch != "HEAD":
        configured = run_git(["config", "--get", f"branch.{repo.branch}.remote"], repo.root)
        if configured.returncode == 0 and configured.stdout.strip():
            remote = configured.stdout.strip()
    url = run_git(["config", "--get", f"remote.{remote}.url"], repo.root)
    if url.returncode != 0 or not url.stdout.strip():
        return None
    return url.stdout.strip()

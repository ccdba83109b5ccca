"""Running git on the host: always with hooks and fsmonitor off, never interactive, C-locale messages.

A repository (and anything an agent ever wrote into one) is untrusted input: git must never run a
program named by its files on our behalf. Every git command of the package goes through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import subprocess

# Options that keep git from running programs named by the repository's own files.
SAFE_GIT = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never")


def git_argv(args: list[str]) -> list[str]:
    """The argv of a git command with the safe options."""
    return ["git", *SAFE_GIT, *args]


def git_env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}


def run_git(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git non-interactively with C-locale messages; ``ConfigError`` if git is missing."""
    import subprocess  # loaded when git runs: `list` and `show` never do

    if not os.path.isdir(cwd):  # a repository not made yet (the service's copy before the first upload)
        return subprocess.CompletedProcess(git_argv(args), 128, "", f"fatal: cannot change to '{cwd}'\n")
    try:
        return subprocess.run(
            git_argv(args), cwd=cwd, input=stdin, capture_output=True, text=True, check=False, env=git_env()
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed or not on PATH; it is needed to make session workspaces") from None

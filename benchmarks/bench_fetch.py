"""Bringing an agent's branch back: ``fetch`` (read as data into a quarantine, checked, fetched with fsck)
vs ``git fetch`` straight from the workspace by hand (what the host must never do: it runs git in a
folder the agent wrote). Also ``delete`` with a branch to keep vs removing the workspace by hand.

Sessions run on the local backend (no engine needed: the harvest is the same on every backend). Each
agent made 20 commits. Prints medians and ratios.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import scratch

SESSIONS = 9
COMMITS = 20
AGENT = '[agents.idle]\ncommand = ["sh", "-c", "exit 0"]\n'


def work(workspace: Path) -> None:
    """What an agent does: commits (made here with git in the workspace, as the agent would inside)."""
    git = ["git", "-c", "user.name=agent", "-c", "user.email=agent@example.invalid", "-c", "core.hooksPath=/dev/null"]
    for i in range(COMMITS):
        (workspace / f"file-{i}.txt").write_text(f"change {i}\n" * 50)
        subprocess.run([*git, "add", "-A"], cwd=workspace, check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"step {i}"], cwd=workspace, check=True)


def main() -> None:
    from clauderon_nb import SessionManager

    with scratch() as (home, repo):
        (home / "config.toml").write_text(AGENT)
        mgr = SessionManager()
        names = [f"f{i}" for i in range(2 * SESSIONS)]
        for name in names:
            session = mgr.create(repo=str(repo), prompt="bench", backend="local", agent="idle", name=name)
            work(Path(session.worktree))
        ours, hand = [], []
        for i in range(SESSIONS):
            start = time.perf_counter()
            mgr.fetch(names[2 * i])
            ours.append(time.perf_counter() - start)
            ws, branch = home / "workspaces" / names[2 * i + 1], f"clauderon/{names[2 * i + 1]}"
            start = time.perf_counter()
            subprocess.run(["git", "fetch", "-q", str(ws), f"+{branch}:{branch}"], cwd=repo, check=True)
            hand.append(time.perf_counter() - start)
        deletes, removes = [], []
        for i in range(SESSIONS):
            start = time.perf_counter()
            mgr.delete(names[2 * i])  # the branch is brought back again, then the workspace removed
            deletes.append(time.perf_counter() - start)
            start = time.perf_counter()
            shutil.rmtree(home / "workspaces" / names[2 * i + 1])
            removes.append(time.perf_counter() - start)
            mgr.store.delete(mgr.get(names[2 * i + 1]).id)
    t_ours, t_hand = statistics.median(ours), statistics.median(hand)
    t_delete, t_remove = statistics.median(deletes), statistics.median(removes)
    print(
        f"fetch of {COMMITS} commits: clauderon-nb {t_ours * 1000:.1f} ms, git fetch from the workspace by hand "
        f"{t_hand * 1000:.1f} ms (median of {SESSIONS}); ratio {t_ours / t_hand:.2f}x"
    )
    print(
        f"delete keeping the branch: clauderon-nb {t_delete * 1000:.1f} ms, rm -r of the workspace by hand "
        f"{t_remove * 1000:.1f} ms; ratio {t_delete / t_remove:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())

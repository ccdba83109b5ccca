"""`clauderon-nb list`, `show` and `logs` vs a bare `python -c pass` (target: <= 3x).

Measured with a store holding three sessions on the local backend and, when an engine is
here, the one engine call that `list` makes. Both sides start a fresh interpreter.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = 21
CLI = [sys.executable, "-m", "clauderon_nb"]


def once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed(argv: list[str], base: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Medians of ``argv`` and of ``base``, run in turn (so a busy moment of the machine weighs on both)."""
    ours, theirs = [], []
    for _ in range(REPEAT):
        theirs.append(once(base, env))
        ours.append(once(argv, env))
    return statistics.median(ours), statistics.median(theirs)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="clauderon-bench-cli-") as tmp:
        root = Path(tmp)
        home, repo = root / "home", root / "repo"
        repo.mkdir()
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
        subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True)
        env = {**os.environ, "CLAUDERON_HOME": str(home)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as installed: with bytecode caches written
        home.mkdir()
        (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
        for i in range(3):
            subprocess.run(
                [
                    *CLI,
                    "create",
                    "--repo",
                    str(repo),
                    "--prompt",
                    "x",
                    "--backend",
                    "local",
                    "--agent",
                    "quick",
                    "--name",
                    f"b{i}",
                ],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            bare = [sys.executable, "-c", "pass"]
            once(bare, env)  # warm the file cache
            for command in (["list"], ["show", "b0"], ["logs", "b0"]):
                subprocess.run([*CLI, *command], env=env, stdout=subprocess.DEVNULL, check=True)  # write caches
                took, base = timed([*CLI, *command], bare, env)
                print(
                    f"clauderon-nb {' '.join(command)}: {took * 1000:.0f}ms vs python -c pass {base * 1000:.0f}ms; "
                    f"ratio {took / base:.2f}x (target <= 3x)"
                )
        finally:
            for i in range(3):
                subprocess.run([*CLI, "delete", f"b{i}", "-f"], env=env, stdout=subprocess.DEVNULL, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

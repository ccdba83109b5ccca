"""create() vs the same work by hand: `git worktree add` + `docker run -d` with the same flags.

Prints median seconds for each and the ratio (target: <= 1.0x).
"""

from __future__ import annotations

import os
import subprocess
import sys

from _common import busybox_image, docker_cli, median_time, scratch

REPEAT = 9


def main() -> None:
    from clauderon_nb import SessionManager

    docker = docker_cli()
    with scratch() as (home, repo), busybox_image() as image:
        mgr = SessionManager()
        counter = iter(range(1000))

        def ours() -> None:
            mgr.create(
                repo=str(repo),
                prompt="bench",
                backend="docker",
                agent="sleeper",
                image=image,
                pull_policy="if-not-present",
                cpu_limit="0.5",
                memory_limit="64m",
                name=f"o{next(counter)}",
            )

        def by_hand() -> None:
            """What create does, typed by hand: the same worktree, flags, labels and environment."""
            n = next(counter)
            name = f"h{n}"
            wt = home / "worktrees" / name
            subprocess.run(
                ["git", "worktree", "add", "-q", "-b", f"clauderon/{name}", str(wt), "HEAD"], cwd=repo, check=True
            )
            labels = [
                f"clauderon.io/{k}={v}"
                for k, v in (
                    ("managed", "true"),
                    ("session-id", name),
                    ("session-name", name),
                    ("owner", mgr.owner),
                    ("backend", "docker"),
                    ("agent", "sleeper"),
                )
            ]
            subprocess.run(
                [
                    docker,
                    "run",
                    "-d",
                    "-i",
                    "-t",
                    "--name",
                    f"clauderon-{name}",
                    "--hostname",
                    name,
                    "--init",
                    "--user",
                    f"{os.getuid()}:{os.getgid()}",
                    "--network",
                    "none",
                    "--cpus",
                    "0.5",
                    "--memory",
                    "64m",
                    *[a for label in labels for a in ("--label", label)],
                    "-v",
                    f"{wt}:/workspace:rw",
                    "-v",
                    f"{repo / '.git'}:{repo / '.git'}:rw",
                    "-w",
                    "/workspace",
                    "-e",
                    "CLAUDERON_PROMPT=bench",
                    "-e",
                    f"CLAUDERON_SESSION_ID={name}",
                    image,
                    "sleep",
                    "600",
                ],
                check=True,
                capture_output=True,
            )

        ours()  # warm up both paths once (client connection, git caches)
        by_hand()
        t_ours = median_time(ours, REPEAT)
        t_hand = median_time(by_hand, REPEAT)
        for s in mgr.list():
            mgr.delete(s.name)
        for n in range(1000):
            if not (home / "worktrees" / f"h{n}").exists():
                continue
            subprocess.run([docker, "rm", "-f", f"clauderon-h{n}"], capture_output=True, check=False)
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(home / "worktrees" / f"h{n}")], cwd=repo, check=False
            )
            subprocess.run(["git", "branch", "-D", f"clauderon/h{n}"], cwd=repo, capture_output=True, check=False)
    print(
        f"create: clauderon-nb {t_ours:.3f}s, by hand {t_hand:.3f}s (median of {REPEAT}); "
        f"ratio {t_ours / t_hand:.2f}x (target <= 1.0x)"
    )


if __name__ == "__main__":
    sys.exit(main())

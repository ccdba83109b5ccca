"""create() vs the same work by hand, and vs what a create did before workspaces were the session's own.

- by hand: the same workspace (a new repository fetching the session's commit, checked out) and
  `docker run -d` with the same flags (non-root uid, no capabilities, no-new-privileges, pids limit);
- the old way: `git worktree add` + `docker run -d` with the repository's .git mounted, which is what
  a create did when the agent shared the user's repository (target: our create within 1.1x of it).

Prints median seconds for each and the ratios. The three are measured interleaved, one round at a time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

from _common import busybox_image, docker_cli, scratch

REPEAT = 15


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

        uid = f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "1000:1000"
        hardening = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--pids-limit", "1024"]

        def by_hand() -> None:
            """What create does, typed by hand: the same workspace, flags, labels and environment."""
            n = next(counter)
            name = f"h{n}"
            ws = home / "workspaces" / name
            ws.mkdir(parents=True)
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
            subprocess.run(
                ["git", "init", "-q", "--template=", f"--initial-branch=clauderon/{name}"], cwd=ws, check=True
            )
            fetch = ["git", "-c", "fetch.unpackLimit=1", "fetch", "-q", "--no-tags", "--update-head-ok", str(repo)]
            subprocess.run([*fetch, f"{head}:refs/heads/clauderon/{name}"], cwd=ws, check=True)
            subprocess.run(["git", "reset", "-q", "--hard"], cwd=ws, check=True)
            if os.getuid() == 0:
                subprocess.run(["chown", "-R", uid, str(ws)], check=True)
            run(name, ws, [], hardening)

        def old_way() -> None:
            """What a create did before: a worktree of the repository, its .git mounted too."""
            n = next(counter)
            name = f"w{n}"
            wt = home / "worktrees" / name
            subprocess.run(
                ["git", "worktree", "add", "-q", "-b", f"clauderon/{name}", str(wt), "HEAD"], cwd=repo, check=True
            )
            git_dir = str(repo / ".git")
            run(name, wt, ["-v", f"{git_dir}:{git_dir}:rw"], [])

        made: list[str] = []

        def run(name: str, folder: object, mounts: list[str], extra: list[str]) -> None:
            made.append(name)
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
                    uid,
                    *extra,
                    "--network",
                    "none",
                    "--cpus",
                    "0.5",
                    "--memory",
                    "64m",
                    *[a for label in labels for a in ("--label", label)],
                    "-v",
                    f"{folder}:/workspace:rw",
                    *mounts,
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

        ours()  # warm up every path once (client connection, git caches)
        by_hand()
        old_way()
        samples: dict[str, list[float]] = {"ours": [], "hand": [], "old": []}
        for _ in range(REPEAT):  # interleaved: the engine's slow moments hit all three alike
            for key, fn in (("ours", ours), ("hand", by_hand), ("old", old_way)):
                start = time.perf_counter()
                fn()
                samples[key].append(time.perf_counter() - start)
        t_ours, t_hand, t_old = (statistics.median(samples[k]) for k in ("ours", "hand", "old"))
        for name in made:
            subprocess.run([docker, "rm", "-f", f"clauderon-{name}"], capture_output=True, check=False)
            if name.startswith("w"):
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(home / "worktrees" / name)], cwd=repo, check=False
                )
                subprocess.run(["git", "branch", "-D", f"clauderon/{name}"], cwd=repo, capture_output=True, check=False)
            else:
                shutil.rmtree(home / "workspaces" / name, ignore_errors=True)
        for s in mgr.list():
            mgr.delete(s.name)
    print(
        f"create: clauderon-nb {t_ours:.3f}s, the same by hand {t_hand:.3f}s, the old worktree way {t_old:.3f}s "
        f"(median of {REPEAT}); ratio {t_ours / t_hand:.2f}x by hand (target <= 1.0x), "
        f"{t_ours / t_old:.2f}x the old way (target <= 1.1x)"
    )


if __name__ == "__main__":
    sys.exit(main())

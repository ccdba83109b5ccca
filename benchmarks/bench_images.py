"""Images: the image check vs a failing ``docker pull``, and a create from an unchanged Dockerfile vs a create
from a prebuilt image.

1. A missing tag in a password-protected local registry (Debian's docker-registry): our manifest check
   (in-process, and the whole ``clauderon-nb create`` failing) vs ``docker pull`` of it failing (the
   engine's own answer). Target: faster.
2. After a first create that builds from the repository's Dockerfile, more creates of the unchanged
   repository (no rebuild: the tag is a hash) vs creates with ``--image`` of the same prebuilt image.
   Target: <= 1.1x.

Prints median seconds and the ratios, measured in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _common import ROOT, busybox_image, docker_cli, median_time, scratch

REPEAT = 9


def check_vs_pull(image: str) -> None:
    import docker

    sys.path.insert(0, str(ROOT / "notebooks"))
    from clauderon_demo import DemoRegistry

    from clauderon_nb.backends.images import in_registry
    from clauderon_nb.backends.registry import RegistryError

    engine = docker.from_env()
    registry = DemoRegistry.start()
    try:
        registry.login()
        registry.push(engine, image, "bench/tools", "1")
        missing = f"{registry.host}/bench/tools:does-not-exist"

        def ours() -> None:
            try:
                in_registry(missing)
            except RegistryError:
                return
            raise AssertionError("the tag exists?")

        cli = [sys.executable, "-m", "clauderon_nb.frontends.cli"]
        env = {**os.environ, "DOCKER_CONFIG": str(registry.workdir / "docker-config")}
        (Path(os.environ["CLAUDERON_HOME"]) / "docker-config.toml").write_text(
            'network = "none"\n[image]\nregistry_check = true\n'
        )

        from clauderon_nb import SessionManager

        mgr = SessionManager()

        def ours_create() -> None:  # as in a notebook kernel: no interpreter to start
            try:
                mgr.create(
                    repo=os.environ["BENCH_REPO"], prompt="x", agent="sleeper", image=missing, pull_policy="always"
                )
            except RegistryError:
                return
            raise AssertionError("the tag exists?")

        def ours_cli() -> None:
            args = ["create", "--repo", os.environ["BENCH_REPO"], "--prompt", "x", "--agent", "sleeper"]
            out = subprocess.run(
                [*cli, *args, "--image", missing, "--pull-policy", "always"], env=env, capture_output=True, text=True
            )
            assert out.returncode == 1, out.stderr
            assert "not found" in out.stderr, out.stderr

        def pull() -> None:
            out = subprocess.run([docker_cli(), "pull", "-q", missing], env=env, capture_output=True, text=True)
            assert out.returncode != 0, out.stdout

        ours()  # warm: the first token and connection
        check = median_time(ours, REPEAT)
        in_kernel = median_time(ours_create, REPEAT)
        whole = median_time(ours_cli, REPEAT)
        by_engine = median_time(pull, REPEAT)
        print(f"missing tag: `docker pull` failing {by_engine * 1000:.0f} ms (the baseline)")
        print(f"  our registry check:                {check * 1000:6.1f} ms  {check / by_engine:.2f}x (target: < 1)")
        print(f"  SessionManager.create failing:     {in_kernel * 1000:6.1f} ms  {in_kernel / by_engine:.2f}x")
        print(
            f"  `clauderon-nb create` failing:     {whole * 1000:6.1f} ms  {whole / by_engine:.2f}x (Python start-up)"
        )
    finally:
        registry.stop()


def build_vs_prebuilt(home: Path, repo: Path, image: str) -> None:
    from clauderon_nb import SessionManager

    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    (repo / "Dockerfile").write_text(f"FROM {image}\nRUN echo built > /built\n")
    (repo / ".clauderon.toml").write_text('[build]\ndockerfile = "Dockerfile"\n')
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "dockerfile"], cwd=repo, check=True)
    (home / "docker-config.toml").write_text('network = "none"\n')
    mgr = SessionManager()
    counter = iter(range(1000))
    first = median_time(lambda: mgr.create(repo=str(repo), prompt="b", agent="sleeper", name="first"), 1)
    built = str(mgr.get("first").settings["image"])

    def unchanged() -> None:
        mgr.create(repo=str(repo), prompt="b", agent="sleeper", name=f"u{next(counter)}")

    def prebuilt() -> None:
        mgr.create(repo=str(repo), prompt="b", agent="sleeper", image=built, name=f"p{next(counter)}")

    try:
        unchanged()
        prebuilt()  # warm both paths
        rebuilt_not = median_time(unchanged, REPEAT)
        from_image = median_time(prebuilt, REPEAT)
        print(f"first create (builds): {first:.2f} s")
        print(
            f"create, unchanged Dockerfile: {rebuilt_not * 1000:.0f} ms; create from the prebuilt image: "
            f"{from_image * 1000:.0f} ms"
        )
        print(f"  ratio: {rebuilt_not / from_image:.2f}x (target: <= 1.1)")
    finally:
        for session in mgr.list():
            mgr.delete(session.id)
        import docker

        docker.from_env().api.remove_image(built, force=True)


def main() -> None:
    with scratch() as (home, repo), busybox_image() as image:
        os.environ["BENCH_REPO"] = str(repo)
        check_vs_pull(image)
        build_vs_prebuilt(home, repo, image)


if __name__ == "__main__":
    main()

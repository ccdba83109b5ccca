"""Shared helpers: a scratch CLAUDERON_HOME, a git repo, a tiny local image, cleanup."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AGENT = '[agents.sleeper]\ncommand = ["sleep", "600"]\n'


def median_time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def median_times(ours: Callable[[], object], baseline: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Medians of ``ours`` and ``baseline`` run in turn, so a busy moment of the machine weighs on both."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        for fn, samples in ((baseline, b), (ours, a)):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


@contextmanager
def scratch() -> Iterator[tuple[Path, Path]]:
    """(CLAUDERON_HOME, repo) in a temp dir, with the sleeper agent and network none."""
    with tempfile.TemporaryDirectory(prefix="clauderon-bench-") as tmp:
        home, repo = Path(tmp) / "home", Path(tmp) / "repo"
        home.mkdir()
        (home / "config.toml").write_text(AGENT)
        (home / "docker-config.toml").write_text('network = "none"\n')
        repo.mkdir()
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True)
        old = os.environ.get("CLAUDERON_HOME")
        os.environ["CLAUDERON_HOME"] = str(home)
        try:
            yield home, repo
        finally:
            if old is None:
                os.environ.pop("CLAUDERON_HOME", None)
            else:
                os.environ["CLAUDERON_HOME"] = old


@contextmanager
def busybox_image() -> Iterator[str]:
    """A local busybox image, removed afterwards."""
    import docker

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
    from clauderon_demo import build_image

    client = docker.from_env()
    name = f"clauderon-bench-{uuid.uuid4().hex[:8]}/busybox"
    build_image(client, f"{name}:1", "bench")
    try:
        yield f"{name}:1"
    finally:
        client.api.remove_image(f"{name}:1", force=True)


def docker_cli() -> str:
    exe = shutil.which("docker")
    if exe is None:
        sys.exit("the docker CLI is needed for the by-hand baseline")
    return exe

"""Throwaway examples: a scratch CLAUDERON_HOME, a small git repository and, when a Docker
engine is reachable, a tiny local image, so the example notebooks run on any machine.

Not part of the installed package: the notebooks import it from their own folder, and the
tests and benchmarks reuse its image builder.

>>> demo = Demo.start()          # prints what it set up
>>> demo.stop()                  # removes sessions, image, repository and home
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEMO_IMAGE = "clauderon-examples/busybox:1"
DEMO_AGENT = 'command = ["sh", "-c", "echo \\"agent got: $1\\"; exec sleep 3600", "agent", "{prompt}"]'
_TOOLS = ("sh", "echo", "sleep", "cat", "ls", "id", "env", "printf", "true", "false", "test", "pwd")


def rootfs_tar(marker: str, with_git: bool = False) -> bytes:
    """A minimal root filesystem: the host's static busybox (and git with its libraries)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "tmp", "workspace", "usr/bin", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        add("bin/busybox", Path(busybox).read_bytes())
        for tool in _TOOLS:
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        add("VERSION", f"{marker}\n".encode(), 0o644)
        if with_git:
            git = shutil.which("git")
            if git is None:
                raise FileNotFoundError("git")
            add("usr/bin/git", Path(git).read_bytes())
            for helper in ("git-upload-pack", "git-receive-pack"):  # what a clone from a local path runs
                link = tarfile.TarInfo(f"usr/bin/{helper}")
                link.type, link.linkname = tarfile.SYMTYPE, "git"
                tar.addfile(link)
            ldd = subprocess.run(["ldd", git], capture_output=True, text=True, check=True).stdout
            for lib in sorted({t for t in ldd.split() if t.startswith("/")}):
                add(lib.lstrip("/"), Path(lib).resolve().read_bytes())
    return buf.getvalue()


def build_image(client: object, ref: str, marker: str = "demo", with_git: bool = False) -> str:
    """Import the busybox root filesystem as ``ref`` through the Docker SDK."""
    repository, tag = ref.rsplit(":", 1)
    client.api.import_image_from_data(  # type: ignore[attr-defined]
        rootfs_tar(marker, with_git),
        repository=repository,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/usr/bin:/bin"],
    )
    return ref


@dataclass
class Demo:
    """A scratch environment for examples; ``stop()`` removes everything it made."""

    home: Path
    repo: Path
    backend: str
    image: str | None = None
    _old_home: str | None = field(default=None, repr=False)

    @classmethod
    def start(cls, quiet: bool = False) -> Demo:
        root = Path(tempfile.mkdtemp(prefix="clauderon-demo-"))
        home, repo = root / "home", root / "repo"
        home.mkdir()
        repo.mkdir()
        git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.invalid"]
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
        (repo / "README.md").write_text("# demo\n\nA repository for the clauderon-nb examples.\n")
        subprocess.run([*git, "add", "README.md"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "Initial commit"], cwd=repo, check=True)
        subprocess.run(
            ["git", "remote", "add", "origin", "https://git.example.com/team/demo.git"], cwd=repo, check=True
        )
        image, note = None, ""
        try:
            import docker

            client = docker.from_env()
            client.ping()
            image = build_image(client, DEMO_IMAGE)
            backend = "docker"
        except Exception as exc:  # noqa: BLE001 - no engine, no SDK, or no busybox: use the local backend
            backend, note = "local", f" ({type(exc).__name__}: the local backend is used instead)"
        (home / "config.toml").write_text(
            f'default_backend = "{backend}"\ndefault_agent = "demo"\n\n[agents.demo]\n{DEMO_AGENT}\n'
        )
        (home / "docker-config.toml").write_text(
            f'network = "none"\n\n[image]\nimage = "{DEMO_IMAGE}"\npull_policy = "never"\n'
        )
        demo = cls(home=home, repo=repo, backend=backend, image=image, _old_home=os.environ.get("CLAUDERON_HOME"))
        os.environ["CLAUDERON_HOME"] = str(home)
        if not quiet:
            print(f"Example sessions run on the {backend} backend{note}.")
            print("CLAUDERON_HOME and a demo git repository are set up in a temporary folder.")
        return demo

    def write(self, name: str, text: str) -> Path:
        """Write a config file into the demo home (or repository, for .clauderon.toml) and show it."""
        path = (self.repo if name == ".clauderon.toml" else self.home) / name
        path.write_text(text)
        print(f"# {name}\n{text}", end="" if text.endswith("\n") else "\n")
        return path

    def wait_for_logs(self, name: str, timeout: float = 20) -> None:
        """Wait until a just-started agent has printed its first line (output arrives asynchronously)."""
        import time

        from clauderon_nb import SessionManager

        deadline = time.monotonic() + timeout
        while not str(SessionManager(self.home).logs(name)).strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {name!r} printed nothing within {timeout:g}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Delete every session, the image, the repository and the home."""
        from clauderon_nb import SessionManager

        mgr = SessionManager(self.home)
        for session in mgr.list(all_owners=True):
            mgr.delete(session.name)
        if self.image:
            import docker

            with contextlib.suppress(docker.errors.DockerException):
                docker.from_env().api.remove_image(self.image, force=True)
        shutil.rmtree(self.home.parent, ignore_errors=True)
        if self._old_home is None:
            os.environ.pop("CLAUDERON_HOME", None)
        else:
            os.environ["CLAUDERON_HOME"] = self._old_home
        print("Removed the demo sessions, image, repository and home.")

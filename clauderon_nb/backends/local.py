"""Local backend: the agent as a plain process in the session's workspace (no sandbox: it runs as you)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from ..model.progress import ProgressCallback, ProgressEvent
from ..model.session import Session, Status
from .base import Follow, Observed, Workspace

if TYPE_CHECKING:
    import threading

    from ..render.spec import SessionSpec
    from .images import ImageCheck


def _alive(pid: int, marker: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # guard against a reused pid
        try:
            return marker in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def _find_runner(exit_file: str) -> int | None:
    """The runner started for ``exit_file``, found by its command line (when its pid was never recorded)."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"clauderon_nb.backends._local_runner" in cmdline and exit_file.encode() in cmdline:
            return int(entry.name)
    return None


def _tail(path: Path, lines: int | None) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace")
    if lines is None:
        return text
    if lines <= 0:
        return ""
    return "".join(text.splitlines(keepends=True)[-lines:])


class LocalBackend:
    name = "local"
    local_workspace = True

    def check_image(self, spec: SessionSpec) -> ImageCheck:
        """A local process has no image."""
        from .images import ImageCheck

        return ImageCheck("", "unchecked", detail="none: the agent runs as a local process")

    def preflight(self, spec: SessionSpec, progress: ProgressCallback) -> None:
        progress(ProgressEvent("check", f"looking for {spec.command[0]}"))
        import shutil

        if shutil.which(spec.command[0]) is None:
            raise BackendError(
                f"agent command {spec.command[0]!r} is not on PATH; install it, or set "
                f"[agents.{spec.settings.agent}] command in config.toml",
                step="check agent",
            )

    def _spawn(self, argv: list[str], cwd: str, env: Mapping[str, str], log: Path, exit_file: Path) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        import subprocess

        proc = subprocess.run(
            [sys.executable, "-m", "clauderon_nb.backends._local_runner", str(log), str(exit_file), "--", *argv],
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout.strip().isdigit():
            raise BackendError(proc.stderr.strip() or "the process runner failed", step="start process")
        return int(proc.stdout.strip())

    def plan_runtime(self, spec: SessionSpec) -> dict[str, Any]:
        logs = spec.workspace.parent.parent / "logs"
        return {
            "argv": list(spec.command),
            "cwd": str(spec.workspace),
            "log": str(logs / f"{spec.name}.log"),
            "exit_file": str(logs / f"{spec.name}.exit"),
        }

    def survey(
        self, sessions: list[Session], known_ids: set[str], owner: str | None, deployment: str = ""
    ) -> tuple[dict[str, Observed], list[Session]]:
        return self.observe(sessions), []  # a local process carries no labels: its record is how it is found

    def create(
        self,
        spec: SessionSpec,
        secrets: Mapping[str, str],
        progress: ProgressCallback,
        *,
        wait: bool = True,
        workspace: Workspace | None = None,
    ) -> tuple[str, dict[str, Any]]:
        runtime = self.plan_runtime(spec)
        if workspace is not None:
            workspace.ready(os.getuid(), os.getgid())  # the agent is this process's user: nothing to hand over
        progress(ProgressEvent("start", f"starting {spec.command[0]}"))
        try:
            pid = self._spawn(
                spec.command, runtime["cwd"], {**spec.env, **secrets}, Path(runtime["log"]), Path(runtime["exit_file"])
            )
        except OSError as exc:
            raise BackendError(str(exc.strerror or exc), step="start process") from None
        runtime["pid"] = pid
        return f"pid-{pid}", runtime

    def start(self, session: Session, spec: SessionSpec | None = None) -> dict[str, Any]:
        """Run ``runtime['argv']`` again (the manager re-derives it from the agent table, not the store)."""
        rt = dict(session.runtime)
        env = {"CLAUDERON_PROMPT": session.prompt, "CLAUDERON_SESSION_ID": session.id}
        rt["pid"] = self._spawn(rt["argv"], rt["cwd"], env, Path(rt["log"]), Path(rt["exit_file"]))
        return rt

    def stop(self, session: Session) -> None:
        exit_file = session.runtime.get("exit_file")
        if not exit_file:
            return
        pid = session.runtime.get("pid") or _find_runner(str(exit_file))
        if not isinstance(pid, int) or not _alive(pid, exit_file):
            return
        import signal

        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError:
            raise BackendError(
                f"cannot stop process {pid}: it belongs to another user (stop it as that user, or as root)",
                step="stop process",
            ) from None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _alive(pid, session.runtime["exit_file"]):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def remove(self, session: Session) -> None:
        if session.runtime.get("exit_file"):
            self.stop(session)
            for key in ("log", "exit_file"):
                if session.runtime.get(key):
                    Path(session.runtime[key]).unlink(missing_ok=True)

    def observe(self, sessions: list[Session]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for s in sessions:
            pid, exit_file = s.runtime.get("pid"), s.runtime.get("exit_file")
            if not pid or not exit_file:
                continue
            if _alive(pid, exit_file):
                out[s.id] = Observed(Status.RUNNING)
                continue
            try:
                code = int(Path(exit_file).read_text().strip())
            except (OSError, ValueError):
                out[s.id] = Observed(Status.FAILED, "the agent process vanished without an exit code")
                continue
            out[s.id] = (
                Observed(Status.STOPPED) if code == 0 else Observed(Status.FAILED, f"agent exited with code {code}")
            )
        return out

    def logs(self, session: Session, tail: int | None, follow: bool) -> str | Follow:
        path = Path(session.runtime.get("log", ""))
        if follow and not path.is_file():
            raise BackendError(f"the log file {path} no longer exists", step="logs")
        if not follow:
            return _tail(path, tail)
        import threading

        stop = threading.Event()
        return Follow(self._follow(session, path, tail, stop), stop.set)

    def _follow(self, session: Session, path: Path, tail: int | None, stop: threading.Event) -> Iterator[str]:
        yield _tail(path, tail)
        with open(path, errors="replace") as fh:
            fh.seek(0, os.SEEK_END)
            while not stop.is_set():
                chunk = fh.read()
                if chunk:
                    yield chunk
                elif not _alive(session.runtime.get("pid", 0), session.runtime["exit_file"]):
                    yield fh.read()
                    return
                else:
                    stop.wait(0.2)

    def attach_command(self, session: Session) -> str:
        return f"tail -f {session.runtime.get('log')}"

"""Run one local agent process detached from the caller, and record its exit code.

Usage: python -m clauderon_nb.backends._local_runner LOG EXIT_FILE -- ARGV...

Prints the runner's pid and returns at once; the runner (a session leader, so
``killpg`` reaches the agent too) forwards stop signals to the agent, waits for
it and writes its exit code to EXIT_FILE. Being re-parented to init, it never
lingers as a zombie of the kernel that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def _run(log: Path, exit_file: Path, command: list[str]) -> int:
    exit_file.unlink(missing_ok=True)
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            out.write(f"clauderon: cannot start {command[0]}: {exc.strerror or exc}\n".encode())
            code = 127
        else:

            def forward(signum: int, _frame: FrameType | None) -> None:
                child.send_signal(signum)

            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, forward)
            code = child.wait()
    tmp = exit_file.with_suffix(".tmp")
    tmp.write_text(f"{code}\n")
    os.replace(tmp, exit_file)
    return 0


def main(argv: list[str]) -> int:
    log, exit_file, sep, *command = argv
    if sep != "--" or not command:
        print("usage: _local_runner LOG EXIT_FILE -- ARGV...", file=sys.stderr)
        return 2
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        code = _run(Path(log), Path(exit_file), command)
    finally:
        os._exit(0)
    return code  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

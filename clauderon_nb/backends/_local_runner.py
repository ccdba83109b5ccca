"""Run one local agent process, forward stop signals to it, record its exit code.

Usage: python -m clauderon_nb.backends._local_runner EXIT_FILE -- ARGV...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def main(argv: list[str]) -> int:
    exit_file = Path(argv[0])
    command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    exit_file.unlink(missing_ok=True)
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"clauderon: cannot start {command[0]}: {exc.strerror or exc}", flush=True)
        exit_file.write_text("127\n")
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    tmp = exit_file.with_suffix(".tmp")
    tmp.write_text(f"{code}\n")
    os.replace(tmp, exit_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

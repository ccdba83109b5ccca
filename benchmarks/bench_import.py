"""`import clauderon_nb` (and `%load_ext`) on top of `import IPython` vs `import IPython` alone (target: <= 1.10x)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

REPEAT = 15
BASE = "import IPython"
OURS = "import IPython, clauderon_nb"
LOAD = (
    "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance(); "
    "ip.run_line_magic('load_ext', 'clauderon_nb')"
)
LOAD_BASE = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"


def timed(code: str) -> float:
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    timed(OURS)  # warm the file cache
    base, ours = timed(BASE), timed(OURS)
    load_base, load = timed(LOAD_BASE), timed(LOAD)
    print(
        f"import: IPython {base * 1000:.0f}ms, IPython + clauderon_nb {ours * 1000:.0f}ms; "
        f"ratio {ours / base:.3f}x (target <= 1.10x)"
    )
    print(
        f"%load_ext: shell {load_base * 1000:.0f}ms, shell + %load_ext clauderon_nb {load * 1000:.0f}ms; "
        f"ratio {load / load_base:.3f}x"
    )


if __name__ == "__main__":
    sys.exit(main())

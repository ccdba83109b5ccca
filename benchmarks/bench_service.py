"""Through the clauderon service vs directly, measured in the same run on the same engine:

* create: HTTP, HubAuth, the dry run, the workspace bundle and the SSE stream included (target <= 1.2x);
* list of 100 sessions (target: within 1.2x of the direct list).

A real JupyterHub is started on 127.0.0.1 with the service registered (``DemoHub``); everything is
removed afterwards. Needs a Docker engine, jupyterhub and configurable-http-proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import AGENT, ROOT, busybox_image, median_time, scratch

MANY = 100


def main() -> None:
    sys.path.insert(0, str(ROOT / "notebooks"))
    from clauderon_demo import DemoHub

    from clauderon_nb import SessionManager
    from clauderon_nb.remote.client import RemoteManager
    from clauderon_nb.remote.wire import Endpoint

    workdir = Path(tempfile.mkdtemp(prefix="clauderon-bench-hub-"))
    with scratch() as (_home, repo), busybox_image() as image:
        hub = DemoHub.start(agents=AGENT, workdir=workdir / "hub")
        try:
            direct = SessionManager(owner="bench-direct")
            remote = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
            fields = {"prompt": "bench", "agent": "sleeper", "image": image, "pull_policy": "never"}
            # The first remote create sends the repository; later ones find its commit on the service.
            remote.create(repo=str(repo), name="warm", **fields)
            remote.delete("warm")
            counter = {"direct": 0, "remote": 0}

            def one(mgr: object, kind: str) -> None:
                counter[kind] += 1
                name = f"{kind[0]}{counter[kind]}"
                mgr.create(repo=str(repo), name=name, backend="docker", **fields)  # type: ignore[attr-defined]
                mgr.delete(name)  # type: ignore[attr-defined]

            t_direct = median_time(lambda: one(direct, "direct"), 9)
            t_remote = median_time(lambda: one(remote, "remote"), 9)

            # A fresh repository each time: the bundle upload is part of what is measured.
            def fresh_remote() -> None:
                counter["remote"] += 1
                copy = workdir / f"repo{counter['remote']}"
                shutil.copytree(repo, copy)
                subprocess.run(
                    [
                        "git",
                        "-c",
                        "user.name=b",
                        "-c",
                        "user.email=b@x",
                        "commit",
                        "-q",
                        "--allow-empty",
                        "-m",
                        str(counter["remote"]),
                    ],
                    cwd=copy,
                    check=True,
                )
                name = f"u{counter['remote']}"
                remote.create(repo=str(copy), name=name, **fields)
                remote.delete(name)

            t_upload = median_time(fresh_remote, 5)

            for i in range(MANY):
                direct.create(repo=str(repo), name=f"d{i}", backend="docker", wait=False, **fields)
                remote.create(repo=str(repo), name=f"r{i}", wait=False, **fields)
            assert len(direct.list()) == MANY
            assert len(remote.list()) == MANY
            l_direct = median_time(direct.list, 11)
            l_remote = median_time(remote.list, 11)
            for s in direct.list():
                direct.delete(s.id)
            for s in remote.list():
                remote.delete(s.id)
        finally:
            hub.stop(remove=False)
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"create: direct {t_direct * 1000:.0f}ms, through the service {t_remote * 1000:.0f}ms "
        f"(commit already there), {t_upload * 1000:.0f}ms (with a bundle upload); "
        f"ratio {t_remote / t_direct:.2f}x and {t_upload / t_direct:.2f}x (target <= 1.2x)"
    )
    print(
        f"list of {MANY}: direct {l_direct * 1000:.0f}ms, through the service {l_remote * 1000:.0f}ms; "
        f"ratio {l_remote / l_direct:.2f}x (target <= 1.2x)"
    )


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.exit(main())

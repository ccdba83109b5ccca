"""A real JupyterHub on 127.0.0.1 with the clauderon service registered, for the service tests.

The hub itself is the notebooks' ``DemoHub`` (``notebooks/clauderon_demo.py``): DummyAuthenticator,
users alice, bob and admin (a hub admin), the service started by the hub as a managed service with
its own data folder and admin policy. Here: the prerequisites, and a clean stop.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from .conftest_paths import clauderon_demo as demo
from .dockerkit import need

Hub = demo.DemoHub
USERS = demo.HUB_USERS


NOENGINE = "services/clauderon-noengine/"


def start_hub(workdir: Path, agents: str, kubeconfig: Path | None = None) -> Iterator[demo.DemoHub]:
    if shutil.which("configurable-http-proxy") is None:
        need("configurable-http-proxy is not installed (apt-get install node-configurable-http-proxy)")
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        need("jupyterhub is not installed (pip install 'clauderon-nb[service]')")
    env = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}
    env["TEST_TEAM_KEY"] = "team-secret-value"  # the admin's credential for the teamkey agent (service_env)
    hub = demo.DemoHub.start(
        agents=agents, workdir=workdir, service_env=env, workspace_url=True, broken_engine=True, cull_every=1
    )
    try:
        yield hub
    finally:
        hub.stop(remove=False)

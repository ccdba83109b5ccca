"""docs/jupyterhub.md, "An admin's first hour", followed step by step: the page's own commands and
configuration, run with this machine's paths, ports and test image, on a real JupyterHub and engine."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import git, made_by
from .conftest_paths import clauderon_demo
from .dockerkit import free_port, need

pytestmark = [pytest.mark.docker, pytest.mark.hub]

PAGE = Path(__file__).resolve().parent.parent / "docs" / "jupyterhub.md"


def step(name: str) -> str:
    """The code block the page marks ``<!-- first-hour:NAME -->``."""
    text = PAGE.read_text()
    match = re.search(rf"<!-- first-hour:{name} -->\n\s*```\w*\n(.*?)\n\s*```", text, flags=re.S)
    assert match, f"docs/jupyterhub.md has no first-hour:{name} block"
    return textwrap.dedent(match.group(1))


def test_an_admins_first_hour_as_the_page_says(
    tmp_path: Path, image: str, repo: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    if shutil.which("configurable-http-proxy") is None:
        need("configurable-http-proxy is not installed (apt-get install node-configurable-http-proxy)")
    bin_dir = Path(sys.executable).parent
    data = tmp_path / "srv-clauderon"
    canonical = f"docker.io/{image}"
    port, hub_port, proxy_port, api_port = free_port(), free_port(), free_port(), free_port()

    def local(text: str) -> str:
        """The page's text with this machine's paths, ports and image."""
        for page, here in (
            ("sudo ", ""),
            ("/opt/jupyterhub/bin/python", sys.executable),
            ("/opt/jupyterhub/bin/", f"{bin_dir}/"),
            ("/srv/clauderon", str(data)),
            ("docker.io/library/busybox:latest", canonical),
            ("http://127.0.0.1:10101", f"http://127.0.0.1:{port}"),
            ("~/project", str(repo)),
        ):
            text = text.replace(page, here)
        return re.sub(r"^clauderon-nb ", f"{bin_dir}/clauderon-nb ", text, flags=re.M)

    # Step 3: the data folder.
    (init,) = step("init").splitlines()
    out = subprocess.run(shlex.split(local(init)), capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in data.iterdir()) == ["config.toml", "docker-config.toml", "policy.toml"]
    # Steps 4 and 5: the page's configuration, on a hub of this test's own (ports, a dummy login, a token).
    admin_token = secrets.token_hex(24)
    workdir = tmp_path / "hub"
    workdir.mkdir()
    config = (
        textwrap.dedent(
            f"""
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {proxy_port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
            c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(16)!r}
            c.ConfigurableHTTPProxy.pid_file = {str(workdir / "proxy.pid")!r}
            c.JupyterHub.db_url = "sqlite:///{workdir / "hub.sqlite"}"
            c.JupyterHub.cookie_secret_file = {str(workdir / "cookie_secret")!r}
            c.JupyterHub.pid_file = {str(workdir / "hub.pid")!r}
            c.JupyterHub.authenticator_class = "dummy"
            c.Authenticator.allowed_users = {{"alice"}}
            """
        )
        + local(step("config"))
        + textwrap.dedent(
            f"""
            c.JupyterHub.services.append({{"name": "tester", "api_token": {admin_token!r}}})
            c.JupyterHub.load_roles.append({{"name": "admin", "services": ["tester"]}})
            """
        )
    )
    (workdir / "jupyterhub_config.py").write_text(config)
    node_path = os.pathsep.join(p for p in (os.environ.get("NODE_PATH", ""), "/usr/share/nodejs") if p)
    with open(workdir / "hub.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(workdir / "jupyterhub_config.py")],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "NODE_PATH": node_path},
        )
    api = f"http://127.0.0.1:{hub_port}/hub/api"
    try:
        deadline = time.monotonic() + 90
        service = f"http://127.0.0.1:{port}/services/clauderon/api/v1/"
        while not (clauderon_demo.answers(api + "/", 200) and clauderon_demo.answers(service, 401)):
            assert proc.poll() is None and time.monotonic() < deadline, (workdir / "hub.log").read_text()[-3000:]
            time.sleep(0.2)
        assert "clauderon service" in (workdir / "hub.log").read_text()  # its log line, as the page says
        # Step 6: a first session, as alice, from her terminal on the hub.
        with contextlib.suppress(urllib.error.HTTPError):
            clauderon_demo.hub_api(api, admin_token, "POST", "/users/alice")
        token = clauderon_demo.hub_api(api, admin_token, "POST", "/users/alice/tokens", {"note": "first hour"})["token"]
        monkeypatch.setenv("JUPYTERHUB_API_URL", api)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
        monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
        create, logs = (shlex.split(local(line)) for line in step("session").splitlines())
        made = subprocess.run(create, capture_output=True, text=True, check=False)
        assert made.returncode == 0, made.stderr
        deadline = time.monotonic() + 20
        while True:
            shown = subprocess.run(logs, capture_output=True, text=True, check=False)
            if "Hello from the service" in shown.stdout:
                break
            assert time.monotonic() < deadline, (shown.stdout, shown.stderr)
            time.sleep(0.2)
        listed = subprocess.run([str(bin_dir / "clauderon-nb"), "list"], capture_output=True, text=True, check=True)
        assert "hello" in listed.stdout
        gone = subprocess.run([str(bin_dir / "clauderon-nb"), "delete", "hello", "-f"], capture_output=True, text=True)
        assert gone.returncode == 0, gone.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        pidfile = workdir / "proxy.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        clauderon_demo.stop_processes_under(tmp_path)  # the service the hub started, in a session of its own
        for container in made_by(docker_client, data):
            docker_client.api.remove_container(container["Id"], force=True)
    git("status", cwd=repo)

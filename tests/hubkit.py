"""A real JupyterHub on 127.0.0.1 with the clauderon service registered, for the service tests.

DummyAuthenticator, users alice, bob and admin (a hub admin), the service started by the hub
itself (a managed service) with its own data folder and admin policy. Tokens come from the hub
API, made by a helper service that holds the admin role. Everything is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dockerkit import free_port, need

USERS = ("alice", "bob", "admin")


@dataclass
class Hub:
    url: str  # the proxy's public URL
    api: str  # the hub API
    service_url: str  # the service's own address plus its prefix
    data_dir: Path
    policy: Path
    workdir: Path
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str, scopes: list[str] | None = None) -> str:
        """A fresh API token for ``user`` (all of the user's own permissions unless ``scopes``)."""
        body: dict[str, Any] = {"note": "clauderon tests", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        data = self.call("POST", f"/users/{user}/tokens", body)
        return str(data["token"])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.api + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def service_log(self) -> str:
        path = self.workdir / "hub.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def hub_config(workdir: Path, ports: dict[str, int], admin_token: str, data_dir: Path, policy: Path) -> str:
    service_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "CLAUDERON_SERVICE_DATA": str(data_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for key in ("DOCKER_HOST", "PYTHONPATH"):
        if os.environ.get(key):
            service_env[key] = os.environ[key]
    return f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {ports["proxy"]}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {ports["hub"]}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(16)!r}
c.JupyterHub.db_url = "sqlite:///{workdir / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(workdir / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(workdir / "hub.pid")!r}
c.ConfigurableHTTPProxy.pid_file = {str(workdir / "proxy.pid")!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {set(USERS)!r}
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {{"CLAUDERON_HOME": {str(workdir / "user-homes")!r} + "/{{username}}"}}
c.JupyterHub.services = [
    {{
        "name": "clauderon",
        "url": "http://127.0.0.1:{ports["service"]}",
        "command": [{sys.executable!r}, "-m", "clauderon_nb", "serve", "--policy", {str(policy)!r}],
        "environment": {service_env!r},
        "display": False,
    }},
    {{"name": "tester", "api_token": {admin_token!r}}},
]
c.JupyterHub.custom_scopes = {{
    "custom:clauderon:admin": {{"description": "See and act on every clauderon session"}},
}}
c.JupyterHub.load_roles = [
    {{"name": "admin", "services": ["tester"]}},
    {{
        "name": "clauderon-users",
        "scopes": ["access:services!service=clauderon", "read:services!service=clauderon"],
        "users": {list(USERS)!r},
    }},
    {{
        "name": "server",
        "scopes": [
            "users:activity!user",
            "access:servers!server",
            "access:services!service=clauderon",
            "read:services!service=clauderon",
        ],
    }},
]
"""


def start_hub(workdir: Path, agents: str) -> Iterator[Hub]:
    if shutil.which("configurable-http-proxy") is None:
        need("configurable-http-proxy is not installed (apt-get install node-configurable-http-proxy)")
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        need("jupyterhub is not installed (pip install 'clauderon-nb[service]')")
    ports = {k: free_port() for k in ("proxy", "hub", "proxy_api", "service")}
    admin_token = secrets.token_hex(24)
    data_dir = workdir / "service-data"
    data_dir.mkdir(parents=True)
    (data_dir / "config.toml").write_text(agents)
    (data_dir / "docker-config.toml").write_text('network = "none"\n')
    policy = workdir / "policy.toml"
    policy.write_text("")
    (workdir / "jupyterhub_config.py").write_text(hub_config(workdir, ports, admin_token, data_dir, policy))
    log = open(workdir / "hub.log", "wb")  # noqa: SIM115 - closed below
    # Debian's configurable-http-proxy keeps its modules in /usr/share/nodejs, which a Node.js from
    # elsewhere (NodeSource) does not search by itself.
    node_path = os.pathsep.join(p for p in (os.environ.get("NODE_PATH", ""), "/usr/share/nodejs") if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(workdir / "jupyterhub_config.py")],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "NODE_PATH": node_path},
    )
    hub = Hub(
        url=f"http://127.0.0.1:{ports['proxy']}",
        api=f"http://127.0.0.1:{ports['hub']}/hub/api",
        service_url=f"http://127.0.0.1:{ports['service']}/services/clauderon/",
        data_dir=data_dir,
        policy=policy,
        workdir=workdir,
        admin_token=admin_token,
    )
    try:
        _wait(lambda: _up(hub.api + "/"), proc, hub, "the hub API")
        _wait(lambda: _up(hub.service_url + "api/v1/", want=401), proc, hub, "the clauderon service")
        for user in USERS:
            hub.tokens[user] = hub.token(user)
        yield hub
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        for pidfile in ("proxy.pid",):  # the proxy is the hub's child; make sure it is gone
            path = workdir / pidfile
            if path.exists():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(path.read_text().strip()), signal.SIGTERM)


def _up(url: str, want: int = 200) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == want)
    except urllib.error.HTTPError as exc:
        return exc.code == want
    except OSError:
        return False


def _wait(check: Any, proc: subprocess.Popen[bytes], hub: Hub, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterHub exited while waiting for {what}:\n{hub.service_log()}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in 60 s:\n{hub.service_log()}")

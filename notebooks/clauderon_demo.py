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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_IMAGE = "clauderon-examples/busybox:1"
DEMO_AGENT = 'command = ["sh", "-c", "echo \\"agent got: $1\\"; exec sleep 3600", "agent", "{prompt}"]'
_TOOLS = ("sh", "echo", "sleep", "cat", "ls", "id", "env", "printf", "true", "false", "test", "pwd", "rm", "mv", "wget")


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

    def commit(self, files: dict[str, str | None], message: str) -> None:
        """Write (or, for None, remove) files in the demo repository and commit them, showing each."""
        for name, text in files.items():
            path = self.repo / name
            if text is None:
                path.unlink(missing_ok=True)
                print(f"# removed {name}")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"# {name}\n{text}", end="" if text.endswith("\n") else "\n")
        git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.invalid"]
        subprocess.run([*git, "add", "-A"], cwd=self.repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", message], cwd=self.repo, check=True)

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

        mgr = SessionManager(self.home, admin=True)  # the demo's own records, whoever made them: by id
        built = set()
        for session in mgr.store.all():
            if session.settings.get("build"):
                built.add(str(session.settings["image"]))
            mgr.delete(session.id)
        for image in [*sorted(built), *([self.image] if self.image else [])]:
            import docker

            with contextlib.suppress(docker.errors.DockerException):
                docker.from_env().api.remove_image(image, force=True)
        shutil.rmtree(self.home.parent, ignore_errors=True)
        if self._old_home is None:
            os.environ.pop("CLAUDERON_HOME", None)
        else:
            os.environ["CLAUDERON_HOME"] = self._old_home
        print("Removed the demo sessions, images, repository and home.")


# --- a local registry with a password ------------------------------------------------------------


def docker_config_json(directory: Path, host: str, user: str, password: str) -> Path:
    """A Docker config.json holding one registry's credentials, as ``docker login`` writes it."""
    import base64
    import json

    directory.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


@dataclass
class DemoRegistry:
    """Debian's ``docker-registry`` on a free loopback port with an htpasswd login (bcrypt), and a
    ``docker login`` for it in ``$DOCKER_CONFIG`` when ``login`` is asked for. ``stop()`` removes it all."""

    host: str
    user: str
    password: str = field(repr=False)
    workdir: Path
    process: Any = field(repr=False)
    _old_docker_config: str | None = field(default=None, repr=False)
    _logged_in: bool = False

    @classmethod
    def start(cls, workdir: Path | None = None) -> DemoRegistry:
        """Start the registry; ``FileNotFoundError`` names what is not installed."""
        import secrets
        import socket
        import time

        binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
        if binary is None or htpasswd is None:
            raise FileNotFoundError("docker-registry or htpasswd (apt-get install docker-registry apache2-utils)")
        workdir = workdir or Path(tempfile.mkdtemp(prefix="clauderon-registry-"))
        user, password = "clauderon", secrets.token_urlsafe(16)
        users = workdir / "htpasswd"
        users.write_text(
            subprocess.run([htpasswd, "-Bbn", user, password], capture_output=True, text=True, check=True).stdout
        )
        port = _free_port()
        config = workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            f"auth:\n  htpasswd:\n    realm: clauderon\n    path: {users}\n"
        )
        log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - the registry writes it while it runs
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()[-300:]}")
        return cls(f"127.0.0.1:{port}", user, password, workdir, proc)

    def config_json(self, directory: Path, password: str | None = None) -> Path:
        return docker_config_json(directory, self.host, self.user, password or self.password)

    def login(self) -> None:
        """``docker login`` for this process: a config.json in a ``$DOCKER_CONFIG`` of its own."""
        self.config_json(self.workdir / "docker-config")
        self._old_docker_config, self._logged_in = os.environ.get("DOCKER_CONFIG"), True
        os.environ["DOCKER_CONFIG"] = str(self.workdir / "docker-config")

    def push(self, client: Any, local: str, repository: str, tag: str) -> str:
        """Push the local image ``local`` as ``HOST/repository:tag``; returns that reference."""
        name = f"{self.host}/{repository}"
        client.api.tag(local, name, tag)
        auth = {"username": self.user, "password": self.password}
        for event in client.api.push(name, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in event:
                raise RuntimeError(f"push {name}:{tag}: {event['error']}")
        client.api.remove_image(f"{name}:{tag}")  # the registry has it; the engine's copy is not needed
        return f"{name}:{tag}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._logged_in:
            if self._old_docker_config is None:
                os.environ.pop("DOCKER_CONFIG", None)
            else:
                os.environ["DOCKER_CONFIG"] = self._old_docker_config
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- a real JupyterHub with the clauderon service ----------------------------------------------

HUB_USERS = ("alice", "bob", "carol", "admin")  # carol holds custom:clauderon:admin; admin is a hub admin


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoHub:
    """A JupyterHub on 127.0.0.1 (DummyAuthenticator; users alice, bob and the hub admin ``admin``)
    with the clauderon service as a managed service. ``stop()`` stops the hub, the proxy and the
    service. Used by the notebooks, the tests and the benchmarks.

    >>> hub = DemoHub.start(agents=...)   # a few seconds
    >>> hub.login("alice")                # this kernel now talks to the service as alice
    """

    url: str  # the proxy's public URL
    api: str  # the hub API
    service_url: str  # the service's own address plus its prefix
    data_dir: Path
    policy: Path
    workdir: Path
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)
    noengine_url: str | None = None  # the service whose engine cannot be reached (``broken_engine``)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: io.BufferedWriter | None = field(default=None, repr=False)
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # no tokens in a repr
        return f"DemoHub({self.url!r})"

    @classmethod
    def start(
        cls,
        agents: str = "",
        workdir: Path | None = None,
        docker_config: str = 'network = "none"\n',
        service_env: dict[str, str] | None = None,
        workspace_url: bool = False,
        broken_engine: bool = False,
        cull_every: float = 60,
    ) -> DemoHub:
        """Start the hub and wait for it and the service; tokens for every user are made.

        ``service_env``: more environment for the service (e.g. ``KUBECONFIG``); ``workspace_url``:
        start it with ``--workspace-url`` (its own address), so Kubernetes sessions can fetch workspaces;
        ``broken_engine``: also a service ``clauderon-noengine`` whose Docker engine cannot be reached."""
        import secrets
        import sys
        import time

        workdir = workdir or Path(tempfile.mkdtemp(prefix="clauderon-hub-"))
        ports = {k: _free_port() for k in ("proxy", "hub", "proxy_api", "service", "noengine")}
        admin_token = secrets.token_hex(24)
        data_dir = workdir / "service-data"
        data_dir.mkdir(parents=True)
        (data_dir / "config.toml").write_text(agents)
        (data_dir / "docker-config.toml").write_text(docker_config)
        # The demo's images live on this machine only (no registry to check them in).
        (data_dir / "k8s-config.toml").write_text("registry_check = false\n")
        policy = workdir / "policy.toml"
        policy.write_text("")
        (workdir / "jupyterhub_config.py").write_text(
            _hub_config(
                workdir,
                ports,
                admin_token,
                data_dir,
                policy,
                service_env or {},
                workspace_url,
                ports["noengine"] if broken_engine else None,
                cull_every,
            )
        )
        log = open(workdir / "hub.log", "wb")  # noqa: SIM115 - closed by stop()
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
        hub = cls(
            url=f"http://127.0.0.1:{ports['proxy']}",
            api=f"http://127.0.0.1:{ports['hub']}/hub/api",
            service_url=f"http://127.0.0.1:{ports['service']}/services/clauderon/",
            data_dir=data_dir,
            policy=policy,
            workdir=workdir,
            admin_token=admin_token,
            noengine_url=f"http://127.0.0.1:{ports['noengine']}/services/clauderon-noengine/"
            if broken_engine
            else None,
            _proc=proc,
            _log=log,
        )
        try:
            deadline = time.monotonic() + 90
            waits = [("the hub API", hub.api + "/", 200), ("the clauderon service", hub.service_url + "api/v1/", 401)]
            if hub.noengine_url:
                waits.append(("the second service", hub.noengine_url + "api/v1/", 401))
            for what, url, want in waits:
                while not answers(url, want):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{what} did not come up:\n{hub.log()}")
                    time.sleep(0.1)
            for user in HUB_USERS:
                hub.tokens[user] = hub.token(user)
        except BaseException:
            hub.stop()
            raise
        return hub

    @classmethod
    def for_demo(cls, demo: Demo) -> DemoHub:
        """A hub whose service has the demo's agent, image and settings as everyone's defaults."""
        hub = cls.start(
            agents=(demo.home / "config.toml").read_text(),
            docker_config=(demo.home / "docker-config.toml").read_text(),
        )
        print(
            "A JupyterHub runs on 127.0.0.1 with the clauderon service; users: alice, bob, "
            "carol (holds custom:clauderon:admin) and admin (a hub admin)."
        )
        return hub

    def wait_for_logs(self, user: str, name: str, timeout: float = 20) -> None:
        """Wait until ``user``'s just-started session has printed its first line."""
        import time

        from clauderon_nb.remote.client import RemoteManager
        from clauderon_nb.remote.wire import Endpoint

        mgr = RemoteManager(Endpoint(self.service_url, self.tokens[user]))
        deadline = time.monotonic() + timeout
        while not str(mgr.logs(name)).strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {name!r} printed nothing within {timeout:g}s")
            time.sleep(0.05)

    def token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token for ``user`` (all of the user's permissions unless ``scopes``)."""
        body: dict[str, object] = {"note": "clauderon demo", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        return str(self.call("POST", f"/users/{user}/tokens", body)["token"])

    def call(self, method: str, path: str, body: object = None) -> Any:
        """The hub's REST API as the hub admin."""
        return hub_api(self.api, self.admin_token, method, path, body)

    def login(self, user: str) -> None:
        """Make this process look like ``user``'s single-user server: the hub API URL and a token."""
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "CLAUDERON_SERVICE_URL"):
            self._saved_env.setdefault(key, os.environ.get(key))
        os.environ.pop("CLAUDERON_SERVICE_URL", None)
        os.environ["JUPYTERHUB_API_URL"] = self.api
        os.environ["JUPYTERHUB_API_TOKEN"] = self.tokens[user]
        print(f"This kernel now talks to the hub as {user}.")

    def write_policy(self, text: str) -> None:
        """The service's admin policy (read again on every request)."""
        self.policy.write_text(text)
        print(f"# the service's policy.toml\n{text}", end="" if text.endswith("\n") else "\n")

    def log(self) -> str:
        path = self.workdir / "hub.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def creates_in_progress(self) -> float:
        """The service's ``clauderon_creates_in_progress`` gauge, read as an admin."""
        import urllib.request

        request = urllib.request.Request(
            self.service_url + "metrics", headers={"Authorization": f"token {self.tokens['admin']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("clauderon_creates_in_progress "):
                    return float(line.split()[1])
        return 0.0

    def _wait_for_creates(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.creates_in_progress() > 0 and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self, remove: bool = True) -> None:
        """Delete what is left on the service, stop the hub (it stops the proxy and the service), and
        restore the environment."""
        import signal

        if self._proc is not None and self._proc.poll() is None and self.tokens:
            with contextlib.suppress(Exception):
                from clauderon_nb.remote.client import RemoteManager
                from clauderon_nb.remote.wire import Endpoint

                self._wait_for_creates()  # a create whose client left still makes its session: let it end
                admin = RemoteManager(Endpoint(self.service_url, self.tokens["admin"]))
                for session in admin.list(all_owners=True):
                    admin.delete(session.id)

        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
            self._proc = None
        pidfile = self.workdir / "proxy.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        stop_processes_under(self.workdir)  # the managed services, if the hub left them running
        if self._log is not None:
            self._log.close()
            self._log = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


def hub_api(api: str, token: str, method: str, path: str, body: object = None) -> Any:
    """A call of a hub's REST API (``api`` ends in ``/hub/api``) with ``token``; the JSON answer, or None."""
    import json
    import urllib.request

    request = urllib.request.Request(
        api + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def stop_processes_under(folder: Path, grace: float = 5.0) -> list[str]:
    """Stop every process of this user whose command line names ``folder`` (a hub's managed services run in
    sessions of their own, so stopping the hub's process group does not reach them): TERM, then KILL after
    ``grace`` seconds. Returns their command lines. Only what names the folder is touched, nothing found by name."""
    import signal

    marker = str(folder).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if entry.stat().st_uid == os.getuid() and marker in command:
                found[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in found):
        time.sleep(0.05)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return list(found.values())


def answers(url: str, want: int) -> bool:
    """Whether ``url`` answers with status ``want`` now."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == want)
    except urllib.error.HTTPError as exc:
        return exc.code == want
    except OSError:
        return False


def _hub_config(
    workdir: Path,
    ports: dict[str, int],
    admin_token: str,
    data_dir: Path,
    policy: Path,
    extra_env: dict[str, str],
    workspace_url: bool,
    broken_engine_port: int | None = None,
    cull_every: float = 60,
) -> str:
    import secrets
    import sys

    command = [sys.executable, "-m", "clauderon_nb", "serve", "--policy", str(policy), "--cull-every", str(cull_every)]
    user_scopes = ["access:services!service=clauderon", "read:services!service=clauderon"]
    extra_services: list[dict[str, object]] = []
    if broken_engine_port:  # a second service whose engine is unreachable (for the 503 answer)
        extra_services.append(
            {
                "name": "clauderon-noengine",
                "url": f"http://127.0.0.1:{broken_engine_port}",
                "command": [
                    *(sys.executable, "-m", "clauderon_nb", "serve", "--data-dir", str(workdir / "noengine")),
                    "--no-policy",
                ],
                "environment": {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(workdir),
                    "DOCKER_HOST": f"unix://{workdir}/no-engine-here.sock",
                },
                "display": False,
            }
        )
        user_scopes.append("access:services!service=clauderon-noengine")
    if workspace_url:
        command += ["--workspace-url", f"http://127.0.0.1:{ports['service']}/services/clauderon/"]
    service_env = {
        **extra_env,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "CLAUDERON_SERVICE_DATA": str(data_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for key in ("DOCKER_HOST", "PYTHONPATH"):
        if os.environ.get(key):
            service_env[key] = os.environ[key]
    lab_state = workdir / "lab-state"
    user_env = {
        "CLAUDERON_HOME": str(workdir / "user-homes"),
        "JUPYTER_CONFIG_DIR": str(lab_state / "config"),
        "JUPYTER_DATA_DIR": str(lab_state / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(lab_state / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(lab_state / "workspaces"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (workdir / "notebooks").mkdir(exist_ok=True)
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
c.Authenticator.allowed_users = {set(HUB_USERS)!r}
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = {str(workdir / "notebooks")!r}
c.Spawner.environment = {user_env!r}
c.Spawner.http_timeout = 60
c.JupyterHub.services = [
    {{
        "name": "clauderon",
        "url": "http://127.0.0.1:{ports["service"]}",
        "command": {command!r},
        "environment": {service_env!r},
        "display": False,
    }},
    {{"name": "tester", "api_token": {admin_token!r}}},
    *{extra_services!r},
]
c.JupyterHub.custom_scopes = {{
    "custom:clauderon:admin": {{"description": "See and act on every clauderon session"}},
}}
c.JupyterHub.load_groups = {{"clauderon-users": {{"users": []}}}}  # members get the access role too
c.JupyterHub.load_roles = [
    {{"name": "admin", "services": ["tester"]}},
    {{
        "name": "clauderon-users",
        "scopes": {user_scopes!r},
        "users": {list(HUB_USERS)!r},
        "groups": ["clauderon-users"],
    }},
    {{"name": "clauderon-admins", "scopes": ["custom:clauderon:admin"], "users": ["carol"]}},
    {{"name": "clauderon-service", "scopes": ["read:users"], "services": ["clauderon"]}},
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

"""Shared fixtures: every test gets its own CLAUDERON_HOME, no admin policy, a git repo."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import clauderon_nb.config.policy

from . import dockerkit, hubkit


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After every test, no process this run started (a hub's service, a proxy, an agent) may be left: any
    whose command line names this run's temporary folder is stopped, and the run fails saying which."""
    from .conftest_paths import clauderon_demo

    yield
    left = clauderon_demo.stop_processes_under(tmp_path_factory.getbasetemp())
    assert not left, "processes left running by the tests (now stopped): " + "; ".join(c[:200] for c in left)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "clauderon-home"
    monkeypatch.setenv("CLAUDERON_HOME", str(home))
    monkeypatch.delenv("CLAUDERON_POLICY", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    # Never the host's /etc/clauderon/policy.toml, in this process or in the CLI and kernels it starts.
    monkeypatch.setenv("CLAUDERON_SYSTEM_POLICY", str(tmp_path / "etc-clauderon" / "policy.toml"))
    monkeypatch.setattr(clauderon_nb.config.policy, "SYSTEM_POLICY", tmp_path / "etc-clauderon" / "policy.toml")
    monkeypatch.setenv("CLAUDERON_SYSTEM_CONFIG", str(tmp_path / "etc-clauderon"))  # nor its system defaults
    # This machine is offline, as an air-gapped site is: its admin turns the registry check off for everyone.
    # Tests of the check turn it on in the user's own file.
    (tmp_path / "etc-clauderon").mkdir()
    (tmp_path / "etc-clauderon" / "docker-config.toml").write_text("[image]\nregistry_check = false\n")
    (tmp_path / "etc-clauderon" / "k8s-config.toml").write_text("registry_check = false\n")
    return home


@pytest.fixture
def home(isolated: Path) -> Path:
    isolated.mkdir(parents=True, exist_ok=True)
    return isolated


def obj(name: str) -> str:
    """The engine name of session ``name`` for the current owner (it carries a hash of the owner)."""
    from clauderon_nb.model.naming import current_owner, object_name

    return object_name(name, current_owner())


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "README").write_text("hello\n")
    git("add", "README", cwd=path)
    git("commit", "-q", "-m", "init", cwd=path)
    git("remote", "add", "origin", "https://git.example.invalid/team/project.git", cwd=path)
    return path


@pytest.fixture
def write(home: Path) -> Callable[[str, str], Path]:
    """write("docker-config.toml", text) into CLAUDERON_HOME (or an absolute path)."""

    def _write(name: str, text: str) -> Path:
        path = Path(name) if Path(name).is_absolute() else home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


# --- real Docker engine -------------------------------------------------------

TEST_AGENTS = r"""
[agents.echo]
command = ["sh", "-c", "printf 'argv=[%s]\n' \"$1\"; printf 'env=[%s]\n' \"$CLAUDERON_PROMPT\"; exec sleep 600", "agent", "{prompt}"]

[agents.gitcheck]
command = ["sh", "-c", "git -C /workspace rev-parse --abbrev-ref HEAD && git -C /workspace log --format=%s -1 && exec sleep 600"]

[agents.quick]
command = ["sh", "-c", "echo done"]

[agents.crash]
command = ["sh", "-c", "sleep 1; echo failing; exit 3"]

[agents.missing]
command = ["no-such-agent-binary", "{prompt}"]

[agents.committer]
command = ["sh", "-c", "cd /workspace && echo work > agent.txt && git add agent.txt && git -c user.name=agent -c user.email=agent@example.invalid commit -q -m 'agent work' && echo committed && exec sleep 600"]
"""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true, a skipped real-engine test is a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    real = "docker" in item.keywords or "hub" in item.keywords
    if report.skipped and real and os.environ.get("CI", "").lower() == "true":
        report.outcome = "failed"
        report.longrepr = f"CI=true: real-engine test was skipped: {report.longrepr}"


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return dockerkit.docker_client()


@pytest.fixture(scope="session")
def kit(docker_client: Any) -> Iterator[dockerkit.Kit]:
    k = dockerkit.Kit(docker_client)
    yield k
    k.cleanup()


@pytest.fixture(scope="session")
def image(kit: dockerkit.Kit) -> str:
    """A local busybox + git image (never in any registry)."""
    return kit.build("busybox", "1", with_git=True)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[dockerkit.Registry]:
    yield from dockerkit.start_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def dhome(home: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A CLAUDERON_HOME for real-engine tests: test agents, no network, a unique owner.

    Every container this test's store made is removed afterwards: found by the store's own deployment id,
    never by an owner name someone else may share.
    """
    owner = f"test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("JUPYTERHUB_USER", owner)
    (home / "config.toml").write_text(TEST_AGENTS)
    (home / "docker-config.toml").write_text('network = "none"\n')
    yield home
    for c in made_by(docker_client, home):
        docker_client.api.remove_container(c["Id"], force=True)


def made_by(docker_client: Any, home: Path) -> list[dict[str, Any]]:
    """The containers the store in ``home`` made (its deployment id is on each)."""
    from clauderon_nb.sessions.deployment import FILE

    ident = home / FILE
    if not ident.exists():
        return []
    label = f"clauderon.io/deployment={ident.read_text().strip()}"
    return list(docker_client.api.containers(all=True, filters={"label": label}))


# --- a real JupyterHub with the clauderon service ---------------------------------------------

SERVICE_AGENTS = (
    TEST_AGENTS
    + r"""
[agents.quiet]
command = ["sh", "-c", "printf '%s' \"$CLAUDERON_PROMPT\" > /tmp/prompt; echo started; exec sleep 600"]

[agents.chatty]
command = ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]

[agents.teamkey]
command = ["sh", "-c", "test \"$TEST_TEAM_KEY\" = team-secret-value && echo team-key-received; exec sleep 600"]
service_env = ["TEST_TEAM_KEY"]

[agents.keyed]
command = ["sh", "-c", "test -n \"$TEST_SERVICE_KEY\" && echo key-received; exec sleep 600"]
pass_env = ["TEST_SERVICE_KEY"]
"""
)


@pytest.fixture(scope="session")
def k8s_for_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The Kubernetes API stand-in the hub's service talks to (see tests/k8s_standin.py)."""
    from .k8s_standin import serve

    with serve(tmp_path_factory.mktemp("hub-k8s")) as (standin, kubeconfig):
        yield standin, kubeconfig


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, k8s_for_hub: Any) -> Iterator[hubkit.Hub]:
    for hub in hubkit.start_hub(tmp_path_factory.mktemp("hub"), SERVICE_AGENTS, kubeconfig=k8s_for_hub[1]):
        data = hub.data_dir
        yield hub
    # Nothing of this service's may outlive the tests (found by its deployment id: never anyone else's).
    leftovers = made_by(docker_client, data)
    for c in leftovers:
        docker_client.api.remove_container(c["Id"], force=True)
    assert not leftovers, f"containers left behind: {[c['Names'] for c in leftovers]}"


@pytest.fixture
def policy(hub: hubkit.Hub) -> Iterator[Path]:
    """The hub service's policy file, empty again after the test."""
    yield hub.policy
    hub.policy.write_text("")


@pytest.fixture
def clean_sessions(hub: hubkit.Hub) -> Iterator[None]:
    """After the test, every hub user's sessions on the service are deleted (``usefixtures`` it)."""
    from clauderon_nb.remote.client import RemoteManager
    from clauderon_nb.remote.wire import Endpoint

    yield
    for user in hubkit.USERS:
        mgr = RemoteManager(Endpoint(hub.service_url, hub.tokens[user]))
        for s in mgr.list():
            mgr.delete(s.id)

"""Sessions on a real Docker engine and a real password-protected registry."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import BackendError, ClauderonError, SessionManager
from clauderon_nb.model.progress import ProgressEvent
from clauderon_nb.model.session import Status

from .conftest import made_by, obj
from .dockerkit import Kit, Registry
from .waiting import logs_contain

pytestmark = pytest.mark.docker

PROMPTS = [
    "plain words",
    "double \"quotes\" and 'single'",
    "semi; colon && and || or",
    "$(touch /tmp/pwned) and ${HOME} and $1",
    "`id` backticks",
    "new\nline and\ttab",
    "glob * ? [a] ~ # comment",
]


def inspect(client: Any, name: str) -> dict[str, Any]:
    return dict(client.api.inspect_container(obj(name)))


def container_exists(client: Any, name: str) -> bool:
    return bool(client.api.containers(all=True, filters={"name": f"^/{obj(name)}$"}))


def branch_exists(repo: Path, name: str) -> bool:
    return subprocess.run(["git", "show-ref", "--quiet", f"refs/heads/clauderon/{name}"], cwd=repo).returncode == 0


def agent_ids() -> str:
    """The uid:gid a session's agent runs as on this machine: yours, or 1000 when you are root."""
    import os

    return f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "1000:1000"


def assert_nothing_left(client: Any, home: Path, repo: Path, name: str) -> None:
    assert not container_exists(client, name), "container left behind"
    assert not (home / "workspaces" / name).exists(), "workspace left behind"
    assert not branch_exists(repo, name), "branch left behind"
    mgr = SessionManager()
    assert mgr.store.find(name, mgr.owner) is None, "record left behind"
    worktrees = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True, text=True)
    assert f"worktrees/{name}\n" not in worktrees.stdout


def test_lifecycle_limits_labels_mounts(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    mgr = SessionManager()
    events: list[ProgressEvent] = []
    s = mgr.create(
        repo=str(repo),
        prompt="check git",
        backend="docker",
        agent="gitcheck",
        name="life",
        image=image,
        pull_policy="never",
        cpu_limit="500m",
        memory_limit="64m",
        memory_request="32m",
        cpu_request="250m",
        progress=events.append,
    )
    assert s.status is Status.RUNNING
    assert [e.step for e in events] == ["check", "pull", "worktree", "create", "start", "ready"]
    info = inspect(docker_client, "life")
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024**2
    assert host["MemoryReservation"] == 32 * 1024**2
    assert host["CpuShares"] == 256
    assert host["Init"] is True
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["PidsLimit"] == 1024
    assert not host.get("Privileged")
    labels = info["Config"]["Labels"]
    assert labels["clauderon.io/managed"] == "true"
    assert labels["clauderon.io/session-id"] == s.id
    assert labels["clauderon.io/session-name"] == "life"
    assert labels["clauderon.io/owner"] == mgr.owner
    assert labels["clauderon.io/backend"] == "docker"
    assert info["Config"]["User"] == agent_ids()
    # the session's own workspace is the only mount: never the repository or its .git
    mounts = {m["Destination"]: m["Source"] for m in info["Mounts"]}
    assert mounts == {"/workspace": str(dhome / "workspaces" / "life")}
    # git works inside: the workspace has a git directory of its own, on the session's branch
    logs = logs_contain(mgr, "life", "init")
    assert "clauderon/life" in logs
    # settings are persisted with the session
    stored = mgr.get("life")
    assert stored.settings["cpu_limit"] == 500 and stored.settings["memory_limit"] == 64 * 1024**2
    assert stored.settings["image"] == f"docker.io/{image}"
    assert mgr.attach_command("life") == f"docker attach {obj('life')}"
    # stop / start / list
    assert mgr.stop("life").status is Status.STOPPED
    assert inspect(docker_client, "life")["State"]["Running"] is False
    assert [x.status for x in mgr.list()] == [Status.STOPPED]
    assert mgr.start("life").status is Status.RUNNING
    assert inspect(docker_client, "life")["State"]["Running"] is True
    assert mgr.delete("life") is None
    assert_nothing_left(docker_client, dhome, repo, "life")


def test_prompt_arrives_verbatim(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    mgr = SessionManager()
    for i, prompt in enumerate(PROMPTS):
        name = f"prompt-{i}"
        mgr.create(
            repo=str(repo), prompt=prompt, backend="docker", agent="echo", name=name, image=image, pull_policy="never"
        )
        logs = logs_contain(mgr, name, "env=[")
        assert f"argv=[{prompt}]" in logs
        assert f"env=[{prompt}]" in logs
        assert inspect(docker_client, name)["Config"]["Cmd"][-1] == prompt
        mgr.delete(name)
    assert not Path("/tmp/pwned").exists()


class TestPullPolicies:
    def test_always_repulls_a_changed_tag(self, dhome: Path, repo: Path, kit: Kit, registry: Registry) -> None:
        cfg = registry.config_json(dhome / "auth")
        (dhome / "docker-config.toml").write_text(
            f'network = "none"\n[image.registry_auth]\nregistry = "{registry.host}"\nconfig_file = "{cfg}"\n'
        )
        remote = kit.push(kit.build("changing", "a"), registry, "changing", "v1", keep_local=False)
        mgr = SessionManager()
        events: list[ProgressEvent] = []
        mgr.create(
            repo=str(repo),
            prompt="x",
            backend="docker",
            agent="echo",
            name="p1",
            image=remote,
            pull_policy="always",
            progress=events.append,
        )
        first = kit.image_id(remote)
        assert first is not None
        pulls = [e for e in events if e.step == "pull"]
        assert any(e.layer for e in pulls), "pull progress names layers"
        assert any(e.total for e in pulls if e.total), "pull progress carries byte counts"
        # the tag now points at different content
        kit.push(kit.build("changing", "b"), registry, "changing", "v1", keep_local=False)
        kit.client.api.tag(first, remote.rsplit(":", 1)[0], "v1")  # the local tag still means the old content
        assert kit.image_id(remote) == first
        mgr.create(
            repo=str(repo),
            prompt="x",
            backend="docker",
            agent="echo",
            name="p2",
            image=remote,
            pull_policy="if-not-present",
        )
        assert kit.client.api.inspect_container(obj("p2"))["Image"] == first, "if-not-present must not pull"
        mgr.create(
            repo=str(repo), prompt="x", backend="docker", agent="echo", name="p3", image=remote, pull_policy="always"
        )
        assert kit.client.api.inspect_container(obj("p3"))["Image"] != first, "always must pull the changed tag"
        for name in ("p1", "p2", "p3"):
            mgr.delete(name)

    def test_never_fails_clean(self, dhome: Path, repo: Path, kit: Kit, docker_client: Any) -> None:
        mgr = SessionManager()
        missing = f"{kit.build('gone', '1')}"
        kit.forget_local(missing)
        with pytest.raises(BackendError) as exc:
            mgr.create(
                repo=str(repo),
                prompt="x",
                backend="docker",
                agent="echo",
                name="nv",
                image=missing,
                pull_policy="never",
            )
        assert str(exc.value) == (
            f"check image: image docker.io/{missing} is not present locally and the pull policy is never"
        )
        assert_nothing_left(docker_client, dhome, repo, "nv")

    def test_pull_policy_without_image_applies_to_configured_image(
        self, dhome: Path, repo: Path, kit: Kit, docker_client: Any
    ) -> None:
        missing = kit.build("configured", "1")
        kit.forget_local(missing)
        (dhome / "docker-config.toml").write_text(f'network = "none"\n[image]\nimage = "{missing}"\n')
        with pytest.raises(BackendError, match="pull policy is never"):
            SessionManager().create(
                repo=str(repo), prompt="x", backend="docker", agent="echo", name="cfg", pull_policy="never"
            )
        assert_nothing_left(docker_client, dhome, repo, "cfg")


class TestRegistryAuth:
    def test_config_file_auth_and_refusal_without_it(
        self, dhome: Path, repo: Path, kit: Kit, registry: Registry, docker_client: Any
    ) -> None:
        remote = kit.push(kit.build("private", "1"), registry, "private", "1", keep_local=False)
        mgr = SessionManager()
        with pytest.raises(BackendError) as exc:
            mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="noauth", image=remote)
        assert str(exc.value).startswith(f"pull image {remote}: ")
        assert "no basic auth credentials" in str(exc.value) or "unauthorized" in str(exc.value)
        assert_nothing_left(docker_client, dhome, repo, "noauth")

        cfg = registry.config_json(dhome / "auth")
        (dhome / "docker-config.toml").write_text(
            f'network = "none"\n[image.registry_auth]\nregistry = "{registry.host}"\nconfig_file = "{cfg}"\n'
        )
        s = SessionManager().create(
            repo=str(repo), prompt="x", backend="docker", agent="echo", name="auth", image=remote
        )
        assert s.status is Status.RUNNING
        assert registry.password not in repr(s) + s._repr_html_() + json.dumps(s.settings)
        SessionManager().delete("auth")

    def test_bad_credentials(self, dhome: Path, repo: Path, kit: Kit, registry: Registry, docker_client: Any) -> None:
        remote = kit.push(kit.build("private2", "1"), registry, "private2", "1", keep_local=False)
        cfg = registry.config_json(dhome / "auth", password="wrong-password-123")
        (dhome / "docker-config.toml").write_text(
            f'network = "none"\n[image.registry_auth]\nregistry = "{registry.host}"\nconfig_file = "{cfg}"\n'
        )
        with pytest.raises(BackendError) as exc:
            SessionManager().create(
                repo=str(repo), prompt="x", backend="docker", agent="echo", name="badcred", image=remote
            )
        message = str(exc.value)
        assert message.startswith(f"pull image {remote}: ")
        assert "wrong-password-123" not in message and registry.password not in message
        assert "\n" not in message
        assert_nothing_left(docker_client, dhome, repo, "badcred")

    def test_engine_user_docker_login(
        self, dhome: Path, repo: Path, kit: Kit, registry: Registry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        remote = kit.push(kit.build("login", "1"), registry, "login", "1", keep_local=False)
        registry.config_json(dhome / "docker-login")
        monkeypatch.setenv("DOCKER_CONFIG", str(dhome / "docker-login"))  # what `docker login` writes
        s = SessionManager().create(
            repo=str(repo), prompt="x", backend="docker", agent="echo", name="login", image=remote
        )
        assert s.status is Status.RUNNING
        SessionManager().delete("login")


class TestFaultsLeaveNothing:
    def test_cpu_above_engine_count(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        ncpu = docker_client.info()["NCPU"]
        with pytest.raises(
            BackendError,
            match=rf"check resources: cpu_limit {ncpu + 1} cores is more than the Docker engine's {ncpu} CPUs",
        ):
            SessionManager().create(
                repo=str(repo),
                prompt="x",
                backend="docker",
                agent="echo",
                name="cpu",
                image=image,
                cpu_limit=str(ncpu + 1),
            )
        assert_nothing_left(docker_client, dhome, repo, "cpu")

    def test_engine_down(
        self, dhome: Path, repo: Path, image: str, docker_client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{dhome}/no-such.sock")
        with pytest.raises(BackendError) as exc:
            SessionManager().create(
                repo=str(repo), prompt="x", backend="docker", agent="echo", name="down", image=image
            )
        assert str(exc.value).startswith("connect to Docker engine: cannot reach the Docker engine at unix://")
        assert "is dockerd running?" in str(exc.value)
        monkeypatch.delenv("DOCKER_HOST")
        assert_nothing_left(docker_client, dhome, repo, "down")

    def test_agent_missing_from_image(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        with pytest.raises(BackendError) as exc:
            SessionManager().create(
                repo=str(repo), prompt="x", backend="docker", agent="missing", name="nocmd", image=image
            )
        assert str(exc.value).startswith(
            f"check agent: agent command 'no-such-agent-binary' is not in image docker.io/{image} (looked in "
        )
        assert_nothing_left(docker_client, dhome, repo, "nocmd")

    def test_container_start_failure(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        def sabotage(event: ProgressEvent) -> None:
            if event.step == "start":  # the engine loses the container between create and start
                docker_client.api.remove_container(obj("nostart"), force=True)

        with pytest.raises(BackendError) as exc:
            SessionManager().create(
                repo=str(repo),
                prompt="x",
                backend="docker",
                agent="echo",
                name="nostart",
                image=image,
                progress=sabotage,
            )
        assert str(exc.value).startswith("start container: ")
        assert "No such container" in str(exc.value)
        assert_nothing_left(docker_client, dhome, repo, "nostart")

    @pytest.mark.parametrize("at", ["pull", "worktree", "create", "start", "ready"])
    def test_kernel_interrupted(self, dhome: Path, repo: Path, image: str, docker_client: Any, at: str) -> None:
        def interrupt(event: ProgressEvent) -> None:
            if event.step == at:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            SessionManager().create(
                repo=str(repo),
                prompt="x",
                backend="docker",
                agent="echo",
                name="intr",
                image=image,
                pull_policy="never",
                progress=interrupt,
            )
        assert_nothing_left(docker_client, dhome, repo, "intr")

    def test_name_taken(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        mgr = SessionManager()
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="taken", image=image)
        with pytest.raises(ClauderonError, match="you already have a session named 'taken'"):
            mgr.create(repo=str(repo), prompt="y", backend="docker", agent="echo", name="taken", image=image)
        assert len(mgr.list()) == 1
        mgr.delete("taken")

    def test_container_name_conflict_rolls_back(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        docker_client.api.create_container(image, name=obj("squat"), labels={"test": "squatter"})
        try:
            with pytest.raises(BackendError, match=r"create container: .*already in use"):
                SessionManager().create(
                    repo=str(repo), prompt="x", backend="docker", agent="echo", name="squat", image=image
                )
            assert not (dhome / "worktrees" / "squat").exists()
            assert not branch_exists(repo, "squat")
        finally:
            docker_client.api.remove_container(obj("squat"), force=True)


class TestOutsideChanges:
    def test_vanished_container_shows_and_delete_cleans(
        self, dhome: Path, repo: Path, image: str, docker_client: Any
    ) -> None:
        mgr = SessionManager()
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="gone", image=image)
        docker_client.api.remove_container(obj("gone"), force=True)
        (s,) = mgr.list()
        assert s.status is Status.FAILED
        assert s.error is not None and "no longer exists" in s.error
        mgr.delete("gone")
        assert_nothing_left(docker_client, dhome, repo, "gone")

    def test_exited_containers(self, dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
        mgr = SessionManager()
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="quick", name="ok", image=image)
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="crash", name="bad", image=image)
        docker_client.api.wait(obj("ok"), timeout=10)
        docker_client.api.wait(obj("bad"), timeout=10)
        states = {s.name: (s.status, s.error) for s in mgr.list()}
        assert states["ok"] == (Status.STOPPED, None)
        assert states["bad"] == (Status.FAILED, "container exited with code 3")
        assert "failing" in str(mgr.logs("bad"))
        assert str(mgr.logs("ok", tail=1)).strip() == "done"
        assert "".join(mgr.logs("ok", follow=True)).strip() == "done"  # the stream ends with the container
        mgr.delete("ok")
        mgr.delete("bad")

    def test_delete_keeps_a_branch_with_new_commits(self, dhome: Path, repo: Path, image: str) -> None:
        mgr = SessionManager()
        s = mgr.create(repo=str(repo), prompt="x", backend="docker", agent="committer", name="work", image=image)
        logs_contain(mgr, "work", "committed")
        assert not branch_exists(repo, "work")  # the agent's branch lives in its workspace until brought back
        assert mgr.delete("work") == "branch clauderon/work kept: it has 1 new commit"
        assert branch_exists(repo, "work")
        log = subprocess.run(["git", "log", "--format=%s", "clauderon/work"], cwd=repo, capture_output=True, text=True)
        assert log.stdout.split("\n")[:2] == ["agent work", "init"]
        assert not Path(s.worktree).exists()
        subprocess.run(["git", "branch", "-D", "clauderon/work"], cwd=repo, check=True, capture_output=True)


def test_owner_isolation(dhome: Path, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = SessionManager(owner="alice@example.org")
    bob = SessionManager(owner="bob")
    alice.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="alices", image=image)
    try:
        assert [s.name for s in alice.list()] == ["alices"]
        assert bob.list() == []
        assert [s.name for s in bob.list(all_owners=True)] == ["alices"]
        session_id = alice.get("alices").id
        for action in (bob.stop, bob.start, bob.delete, bob.logs, bob.get, bob.attach_command, bob.fetch):
            for ident in ("alices", session_id, "alice@example.org/alices"):
                # Not found, exactly as if it did not exist: another owner's session is not revealed.
                with pytest.raises(ClauderonError, match=rf"^no session named '{re.escape(ident)}'$"):
                    action(ident)
        assert alice.get("alices").status is Status.RUNNING
    finally:
        alice.delete("alices")


def test_list_is_one_engine_call(dhome: Path, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted through docker-py and straight to the socket alike (a unix-socket engine is asked directly)."""
    from clauderon_nb.backends import docker as docker_backend

    mgr = SessionManager()
    for i in range(3):
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name=f"l{i}", image=image)
    api = mgr.backend("docker").client.api  # type: ignore[attr-defined]
    calls: list[str] = []
    original, raw = api.send, docker_backend.get_json

    def counting(request: Any, **kwargs: Any) -> Any:
        calls.append(request.url)
        return original(request, **kwargs)

    def counting_raw(path: Any, url: str, *args: Any) -> Any:
        calls.append(url)
        return raw(path, url, *args)

    api.send = counting
    monkeypatch.setattr(docker_backend, "get_json", counting_raw)
    try:
        assert len(mgr.list()) == 3
    finally:
        api.send = original
    assert calls == ["/containers/json"], calls
    for i in range(3):
        mgr.delete(f"l{i}")


CONCURRENT = """
import sys
from clauderon_nb import SessionManager
mgr = SessionManager()
for i in range(10):
    mgr.create(repo=sys.argv[1], prompt=f"concurrent {sys.argv[2]} {i}", backend="docker", agent="echo",
               image=sys.argv[3], pull_policy="never")
"""


def test_concurrent_creates(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(repo), str(p), image], stderr=subprocess.PIPE, text=True
        )
        for p in range(4)
    ]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), errors
    mgr = SessionManager()
    sessions = mgr.list()
    assert len(sessions) == 40
    assert len({s.name for s in sessions}) == 40
    assert all(s.status is Status.RUNNING for s in sessions)
    containers = [c for c in made_by(docker_client, dhome) if c["State"] == "running"]
    assert len(containers) == 40
    for s in sessions:
        mgr.delete(s.name)
    assert mgr.list() == []
    assert made_by(docker_client, dhome) == []


def test_magic_on_the_real_engine(dhome: Path, repo: Path, image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's transcript: dry run, create, list, logs, delete, through %clauderon."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "clauderon_nb")
    line = (
        f"create --repo {repo} --backend docker --agent echo --name mg --image {image} "
        "--pull-policy if-not-present --cpu-limit 0.5 --memory-limit 128m --prompt 'hello from a magic'"
    )
    plan = ip.run_line_magic("clauderon", line + " --dry-run")
    assert '"nano_cpus": 500000000' in repr(plan)
    session = ip.run_line_magic("clauderon", line)
    assert repr(session) == (
        f"Session 'mg': running on docker (docker.io/{image}, cpu 500m, memory 128m), branch clauderon/mg"
    )
    err = capsys.readouterr().err
    assert "✓ session mg is running (image present locally)" in err  # the terminal progress line
    table = repr(ip.run_line_magic("clauderon", "list"))
    assert table.splitlines()[1].split()[:3] == ["mg", "running", "docker"]
    logs_contain(SessionManager(), "mg", "argv=[hello from a magic]")
    ip.run_line_magic("clauderon", "logs mg --tail 2")
    assert "env=[hello from a magic]" in capsys.readouterr().out
    ip.run_line_magic("clauderon", "delete mg -f")
    assert capsys.readouterr().out.strip() == "Deleted session mg."


def test_gpus_on_an_engine_without_a_gpu_runtime_is_one_line_and_nothing_made(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    runtimes = docker_client.api.info().get("Runtimes") or {}
    if "nvidia" in runtimes:
        pytest.skip("this engine has the NVIDIA runtime")
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, gpus="all")
    assert plan.spec["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    with pytest.raises(BackendError) as exc:
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="gpu", image=image, gpus="1")
    message = str(exc.value)
    assert message.startswith("check GPUs: gpus 1: this Docker engine has no GPU runtime (its runtimes: ")
    assert "\n" not in message and exc.value.field == "gpus"
    assert_nothing_left(docker_client, dhome, repo, "gpu")


def test_a_busy_service_lists_from_one_engine_answer_and_a_change_refreshes_only_its_owner(
    dhome: Path, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the service shares one backend: a listing serves ``survey_seconds``; a change of bob's makes bob's
    next list ask the engine, not alice's; an old listing answers at once while a fresh one is fetched."""
    from clauderon_nb.backends import docker as docker_backend
    from clauderon_nb.backends.docker import DockerBackend

    from .waiting import until

    backend = DockerBackend(survey_seconds=60)
    calls: list[str] = []
    raw = docker_backend.get_json

    def counting(path: Any, url: str, *args: Any) -> Any:
        if url == "/containers/json" and "session-id" not in str(args):
            calls.append(url)
        return raw(path, url, *args)

    monkeypatch.setattr(docker_backend, "get_json", counting)
    alice = SessionManager(owner="alice", backends={"docker": backend})
    bob = SessionManager(owner="bob", backends={"docker": backend})
    alice.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="a1", image=image)
    try:
        assert [s.name for s in alice.list()] == ["a1"] and len(calls) == 1  # asked: alice changed something
        assert bob.list() == [] and alice.list()[0].status is Status.RUNNING and len(calls) == 1  # kept
        bob.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="b1", image=image)
        before = len(calls)
        assert [s.name for s in alice.list()] == ["a1"] and len(calls) == before  # bob's change: not hers
        assert [(s.name, s.status) for s in bob.list()] == [("b1", Status.RUNNING)] and len(calls) == before + 1
        import time as real_time

        class TwoMinutesLater:  # the kept listing is now old (older than survey_seconds, within the limit)
            def __getattr__(self, name: str) -> Any:
                return getattr(real_time, name)

            def monotonic(self) -> float:
                return real_time.monotonic() + 120

        monkeypatch.setattr(docker_backend, "time", TwoMinutesLater())
        before = len(calls)
        assert [s.name for s in alice.list()] == ["a1"]
        until(lambda: len(calls) > before, "a listing fetched in the background")
    finally:
        alice.delete("a1")
        with contextlib.suppress(ClauderonError):
            bob.delete("b1")

"""The edges real notebooks hit: killed creates, concurrent worktrees, damaged stores, tampered records.

Everything here runs against the real Docker engine (or real processes and files);
each test cleans up what it made.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import BackendError, ClauderonError, ConfigError, PolicyError, SessionManager
from clauderon_nb.model.session import Status
from clauderon_nb.sessions.store import StoreError

from .conftest import git, made_by
from .waiting import logs_contain, until

LABEL = "clauderon.io/session-id"

# Runs one create in a process of its own and stops dead (waiting for SIGKILL) at a chosen point.
KILLABLE = """
import os, sys, time
from pathlib import Path
from clauderon_nb import SessionManager
from clauderon_nb.backends.docker import DockerBackend
from clauderon_nb.backends.local import LocalBackend

marker, at, repo, image = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
backend = sys.argv[5] if len(sys.argv) > 5 else "docker"

def pause(where):
    if where == at:
        marker.write_text(str(os.getpid()))
        time.sleep(600)

real_create, real_remove = DockerBackend.create, DockerBackend.remove

def create(self, *args, **kwargs):
    out = real_create(self, *args, **kwargs)
    pause("started")  # the container runs; the record still says creating
    return out

def remove(self, session):
    real_remove(self, session)
    pause("deleting")  # the container is gone; the worktree and record are not

real_local_create = LocalBackend.create

def local_create(self, *args, **kwargs):
    out = real_local_create(self, *args, **kwargs)
    pause("started")  # the agent process runs; the record still says creating
    return out

DockerBackend.create, DockerBackend.remove, LocalBackend.create = create, remove, local_create
mgr = SessionManager()
extra = {"image": image} if backend == "docker" else {}
if at == "deleting":
    mgr.delete("k9")
else:
    mgr.create(repo=repo, prompt="killed half-way", backend=backend, agent="echo", name="k9",
               progress=lambda event: pause(event.step), **extra)
"""


def run_until(tmp_path: Path, at: str, repo: Path, image: str, backend: str = "docker") -> None:
    """Start KILLABLE, wait until it reaches ``at``, then kill -9 it."""
    marker = tmp_path / f"reached-{at}"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(marker), at, str(repo), image, backend])

    def reached() -> bool:
        assert proc.poll() is None, f"the create ended before reaching {at!r}"
        return marker.exists()

    until(reached, f"the create to reach {at!r}", timeout=60, every=0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def containers_of(docker_client: Any, session_id: str) -> list[dict[str, Any]]:
    return list(docker_client.api.containers(all=True, filters={"label": f"{LABEL}={session_id}"}))


def raw_record(home: Path, name: str) -> tuple[str, str]:
    with sqlite3.connect(home / "sessions.sqlite") as conn:
        row = conn.execute("SELECT id, status FROM sessions WHERE name = ?", (name,)).fetchone()
    return row[0], row[1]


def branches(repo: Path) -> list[str]:
    return [b for b in git("branch", "--format=%(refname:short)", cwd=repo).splitlines() if b.startswith("clauderon/")]


# --- 2. interrupted creates leave nothing running --------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("at", ["worktree", "create", "start", "started"])
def test_kill_9_during_create_leaves_nothing(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path, at: str
) -> None:
    run_until(tmp_path, at, repo, image)
    sid, status = raw_record(dhome, "k9")
    assert status == "creating"  # written ahead: the record names what was being made
    if at == "started":
        assert [c["State"] for c in containers_of(docker_client, sid)] == ["running"]
    mgr = SessionManager()
    (session,) = mgr.list()
    assert session.status is Status.FAILED
    assert "create was interrupted" in (session.error or "")
    assert containers_of(docker_client, sid) == []  # found by its label, removed
    assert not (dhome / "worktrees" / "k9").exists()
    assert branches(repo) == []
    assert mgr.delete("k9") is None
    assert mgr.list() == []


def test_kill_9_after_a_local_agent_started_leaves_nothing_running(home: Path, repo: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text('[agents.echo]\ncommand = ["sh", "-c", "echo started; exec sleep 600"]\n')
    run_until(tmp_path, "started", repo, "-", backend="local")
    log = home / "logs" / "k9.log"
    until(lambda: log.exists() and "started" in log.read_text(), "the agent to print 'started'")
    runners = [p for p in Path("/proc").glob("[0-9]*") if b"k9.exit" in _cmdline(p)]
    assert runners, "the agent's runner should be running before the cleanup"
    (session,) = SessionManager().list()
    assert session.status is Status.FAILED and "create was interrupted" in (session.error or "")
    until(lambda: not any(p.exists() for p in runners), "the runner to be stopped (found by its command line)")
    assert branches(repo) == [] and not (home / "worktrees" / "k9").exists()
    SessionManager().delete("k9")


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.docker
def test_stop_and_delete_act_on_what_the_engine_has(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path
) -> None:
    run_until(tmp_path, "started", repo, image)
    sid, _ = raw_record(dhome, "k9")
    mgr = SessionManager()
    # get() finishes the interrupted create first: stop can never say "stopped" over a running container
    session = mgr.stop("k9")
    assert session.status is Status.STOPPED
    assert containers_of(docker_client, sid) == []
    mgr.delete("k9")
    assert mgr.list() == []


@pytest.mark.docker
def test_kill_9_during_delete_is_finished_by_the_next_command(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path
) -> None:
    mgr = SessionManager()
    session = mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="k9", image=image)
    run_until(tmp_path, "deleting", repo, image)
    assert raw_record(dhome, "k9")[1] == "deleting"
    assert mgr.list() == []  # the interrupted delete was finished
    assert containers_of(docker_client, session.id) == []
    assert not (dhome / "worktrees" / "k9").exists()
    assert branches(repo) == []


@pytest.mark.docker
def test_a_tampered_backend_id_never_removes_another_container(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    victim = docker_client.api.create_container(image, command=["sleep", "60"], name=f"victim-{os.getpid()}")
    try:
        mgr = SessionManager()
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="tb", image=image)
        mgr.store.update(mgr.get("tb").id, backend_id=victim["Id"], runtime={"container": "victim"})
        mgr.stop("tb")
        mgr.delete("tb")
        assert docker_client.api.inspect_container(victim["Id"])["Id"] == victim["Id"]  # still there
        assert mgr.list() == []
    finally:
        docker_client.api.remove_container(victim["Id"], force=True)


@pytest.mark.docker
def test_start_checks_the_policy_again(
    dhome: Path, repo: Path, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="pc", image=image, cpu_limit="1")
    mgr.stop("pc")
    policy = tmp_path / "policy.toml"
    policy.write_text('max_cpu = "500m"\n')
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    with pytest.raises(PolicyError, match="max_cpu is 500m; cpu_limit 1 core \\(stored session\\) is above it"):
        mgr.start("pc")
    assert mgr.get("pc").status is Status.STOPPED
    monkeypatch.delenv("CLAUDERON_POLICY")
    mgr.delete("pc")


def test_start_never_runs_a_command_from_the_store(home: Path, repo: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    s = mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="tamper")
    until(lambda: mgr.get("tamper").status is not Status.RUNNING, "the agent to finish")
    pwned = tmp_path / "PWNED"
    mgr.store.update(s.id, runtime={**s.runtime, "argv": ["sh", "-c", f"touch {pwned}"], "cwd": "/"})
    mgr.start("tamper")
    until(lambda: str(mgr.logs("tamper")).count("done") == 2, "the agent from the agent table to run again")
    assert not pwned.exists()
    assert str(mgr.logs("tamper")).count("done") == 2  # the agent from the agent table ran, twice
    policy = tmp_path / "policy.toml"
    policy.write_text('allowed_backends = ["docker"]\n')
    os.environ["CLAUDERON_POLICY"] = str(policy)
    try:
        with pytest.raises(PolicyError, match="backend 'local' \\(stored session\\) is not allowed"):
            mgr.start("tamper")
    finally:
        del os.environ["CLAUDERON_POLICY"]
    mgr.delete("tamper")


# --- 3. concurrent sessions on one repository --------------------------------------

SAME_PROMPT = """
import sys
from clauderon_nb import SessionManager
mgr = SessionManager()
for i in range(10):
    mgr.create(repo=sys.argv[1], prompt="the same prompt for everyone", backend="docker", agent="echo",
               image=sys.argv[2], pull_policy="never")
"""

DELETE_SOME = """
import sys
from clauderon_nb import SessionManager
mgr = SessionManager()
for name in sys.argv[1:]:
    mgr.delete(name)
"""


@pytest.mark.docker
def test_4x10_concurrent_creates_with_one_prompt_then_concurrent_deletes(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", SAME_PROMPT, str(repo), image], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [proc.communicate(timeout=400)[1] for proc in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    mgr = SessionManager()
    sessions = mgr.list()
    assert len({s.name for s in sessions}) == 40
    assert all(s.status is Status.RUNNING for s in sessions)
    assert len(list((dhome / "workspaces").iterdir())) == 40
    assert branches(repo) == []  # each branch lives in its session's workspace until it is brought back
    names = [s.name for s in sessions]
    deleters = [
        subprocess.Popen([sys.executable, "-c", DELETE_SOME, *names[i::4]], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors = [proc.communicate(timeout=400)[1] for proc in deleters]
    assert [p.returncode for p in deleters] == [0, 0, 0, 0], errors
    assert mgr.list() == []
    assert branches(repo) == []
    assert made_by(docker_client, dhome) == []
    assert list((dhome / "workspaces").iterdir()) == []
    assert git("worktree", "list", cwd=repo).count("\n") == 0


def test_a_workspace_folder_in_the_way_is_left_alone(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    (home / "workspaces" / "wf").mkdir(parents=True)
    (home / "workspaces" / "wf" / "notes.txt").write_text("mine\n")
    with pytest.raises(BackendError, match=r"create workspace: the workspace folder of session 'wf' already exists"):
        SessionManager().create(repo=str(repo), prompt="x", backend="local", agent="quick", name="wf")
    assert branches(repo) == []
    assert SessionManager().list() == []
    assert (home / "workspaces" / "wf" / "notes.txt").read_text() == "mine\n"  # not ours: never removed


def test_an_existing_branch_of_that_name_is_never_touched(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    git("branch", "clauderon/mine", cwd=repo)
    with pytest.raises(BackendError, match="branch clauderon/mine already exists"):
        SessionManager().create(repo=str(repo), prompt="x", backend="local", agent="quick", name="mine")
    assert branches(repo) == ["clauderon/mine"]


# --- 4. no half-done deletes ------------------------------------------------------


def test_failed_delete_step_is_finished_by_the_next_delete(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clauderon_nb.sessions.workspace as workspace

    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="hd")
    real = workspace.remove_tree

    def fails(path: Path) -> None:
        raise BackendError("the disk went away", step="remove workspace")

    monkeypatch.setattr(workspace, "remove_tree", fails)  # the process was stopped; removing its files fails
    with pytest.raises(BackendError, match="remove workspace: the disk went away"):
        mgr.delete("hd")
    session = mgr.get("hd")
    assert session.status is Status.FAILED  # not stuck in deleting
    assert "run delete again" in (session.error or "")
    monkeypatch.setattr(workspace, "remove_tree", real)
    assert mgr.delete("hd") is None
    assert mgr.list() == [] and branches(repo) == [] and not (home / "workspaces" / "hd").exists()


def test_base_commit_is_a_hash_and_renaming_the_branch_does_not_break_delete(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    s = mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="rn")
    base = s.runtime["base_commit"]
    assert len(base) == 40 and set(base) <= set("0123456789abcdef")
    git("branch", "-m", "main", "trunk", cwd=repo)
    git("-C", str(home / "workspaces" / "rn"), "commit", "-q", "--allow-empty", "-m", "work", cwd=repo)
    assert mgr.delete("rn") == "branch clauderon/rn kept: it has 1 new commit"
    assert git("log", "--format=%s", "-1", "clauderon/rn", cwd=repo) == "work"


def test_worktree_removed_by_hand_is_reported_and_start_refuses(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="gone")
    mgr.stop("gone")
    shutil.rmtree(home / "workspaces" / "gone")
    (session,) = mgr.list()
    assert "was removed outside clauderon" in (session.error or "")
    with pytest.raises(BackendError) as exc:
        mgr.start("gone")
    assert "delete the session" in str(exc.value) and "\n" not in str(exc.value)
    mgr.delete("gone")
    assert mgr.list() == []


# --- 5. damaged or unavailable store -------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None, user: int | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("clauderon-nb")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, user=user, check=False
    )


def one_line_error(out: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    for part in parts:
        assert part in out.stderr, out.stderr


def test_a_store_that_is_not_a_database(home: Path) -> None:
    (home / "sessions.sqlite").write_text("this is not sqlite\n" * 100)
    one_line_error(cli("list"), "sessions.sqlite", "not a clauderon session store", "move it aside")


def test_an_unknown_status_value(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    SessionManager().create(repo=str(repo), prompt="x", backend="local", agent="quick", name="st")
    with sqlite3.connect(home / "sessions.sqlite") as conn:
        conn.execute("UPDATE sessions SET status = 'zombie'")
    one_line_error(cli("list"), "sessions.sqlite", "unknown status 'zombie'")
    with pytest.raises(StoreError):
        SessionManager().list()
    with sqlite3.connect(home / "sessions.sqlite") as conn:
        conn.execute("UPDATE sessions SET status = 'running'")
    SessionManager().delete("st")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can traverse (pytest's own temp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="clauderon-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody_or_skip() -> int:
    """The uid to run as; skips where the test cannot switch user or that user cannot run this Python."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    probe = (
        subprocess.run(
            [sys.executable, "-c", "import clauderon_nb.frontends.cli"],
            user=65534,
            capture_output=True,
            check=False,
            cwd="/",
        )
        if os.access(sys.executable, os.X_OK)
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip(f"user nobody cannot run {sys.executable} with clauderon_nb (a private folder above it)")
    return 65534


def test_unreadable_places_are_one_line_as_another_user(shared_tmp: Path) -> None:
    private = shared_tmp / "someone-else"
    private.mkdir(mode=0o700)
    (private / "policy.toml").write_text('max_cpu = "1"\n')
    nobody = as_nobody_or_skip()
    base = {"HOME": str(shared_tmp), "JUPYTERHUB_USER": "nobody-test", "CLAUDERON_SYSTEM_POLICY": ""}
    # %config Clauderon.home pointing at another user's folder
    one_line_error(
        cli("list", env={**base, "CLAUDERON_HOME": str(private)}, user=nobody), "permission denied", "CLAUDERON_HOME"
    )
    # a read-only home: creating the store fails with the folder named
    readonly = shared_tmp / "readonly"
    readonly.mkdir(mode=0o555)
    one_line_error(
        cli(
            "create",
            "--repo",
            str(shared_tmp),
            "--prompt",
            "x",
            env={**base, "CLAUDERON_HOME": str(readonly / "home")},
            user=nobody,
        ),
    )
    # an unreadable admin policy is an error, never skipped
    theirs = shared_tmp / "their-repo"
    theirs.mkdir()
    git("init", "-q", cwd=theirs)
    git("commit", "-q", "--allow-empty", "-m", "init", cwd=theirs)
    subprocess.run(["chown", "-R", str(nobody), str(theirs)], check=True)
    one_line_error(
        cli(
            "config",
            "--repo",
            str(theirs),
            env={
                **base,
                "CLAUDERON_HOME": str(shared_tmp / "h"),
                "CLAUDERON_SYSTEM_POLICY": str(private / "policy.toml"),
            },
            user=nobody,
        ),
        "policy.toml",
        "permission denied",
    )
    assert not (shared_tmp / "h").exists()  # config is read-only: it made nothing


@pytest.mark.docker
def test_a_deleted_store_shows_labelled_containers_as_orphans(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    mgr = SessionManager()
    s = mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="orph", image=image)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dhome / 'sessions.sqlite'}{suffix}").unlink(missing_ok=True)
    mgr = SessionManager()
    (orphan,) = mgr.list()
    assert (orphan.name, orphan.status) == ("orph", Status.RUNNING)
    assert "orphan" in (orphan.error or "")
    assert "orph" in cli("list").stdout
    note = mgr.delete("orph")
    assert note is not None and "orphan" in note
    assert containers_of(docker_client, s.id) == []
    assert mgr.list() == []
    assert (dhome / "workspaces" / "orph" / ".git").is_dir()  # no record says whose: kept for the user to look at
    shutil.rmtree(dhome / "workspaces" / "orph")


# --- 7. input limits, checked up front -------------------------------------------------


def test_the_largest_prompt_reaches_the_agent_and_one_byte_more_is_refused(home: Path, repo: Path) -> None:
    from clauderon_nb.model.request import MAX_PROMPT_BYTES

    (home / "config.toml").write_text(
        '[agents.count]\ncommand = ["sh", "-c", "echo len=${#1} env=${#CLAUDERON_PROMPT}", "agent", "{prompt}"]\n'
    )
    mgr = SessionManager()
    prompt = "p" * MAX_PROMPT_BYTES
    mgr.create(repo=str(repo), prompt=prompt, backend="local", agent="count", name="big")
    logs_contain(mgr, "big", "len=")
    assert f"len={MAX_PROMPT_BYTES} env={MAX_PROMPT_BYTES}" in str(mgr.logs("big"))
    mgr.delete("big")
    with pytest.raises(ValueError, match=f"prompt: {MAX_PROMPT_BYTES + 1} bytes is more than"):
        mgr.create(repo=str(repo), prompt=prompt + "p", backend="local", agent="count", name="big")
    # multi-byte characters count as bytes
    with pytest.raises(ValueError, match="bytes is more than"):
        mgr.plan(repo=str(repo), prompt="é" * (MAX_PROMPT_BYTES // 2 + 1), backend="local", agent="count")
    assert mgr.list() == [] and branches(repo) == []


def test_a_command_template_that_grows_the_prompt_past_the_limit(home: Path, repo: Path) -> None:
    from clauderon_nb.model.request import MAX_PROMPT_BYTES

    (home / "config.toml").write_text('[agents.wrap]\ncommand = ["sh", "-c", "--task=please {prompt} {prompt}"]\n')
    with pytest.raises(ConfigError, match=r"argument of .* bytes, more than the 131071 Linux allows"):
        SessionManager().plan(repo=str(repo), prompt="p" * (MAX_PROMPT_BYTES // 2 + 10), backend="local", agent="wrap")


def test_bare_and_empty_repositories(home: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    with pytest.raises(ConfigError, match="a bare repository has no working tree"):
        SessionManager().plan(repo=str(bare), prompt="x", backend="local")
    empty = tmp_path / "empty"
    empty.mkdir()
    git("init", "-q", cwd=empty)
    with pytest.raises(ConfigError, match="has no commits yet"):
        SessionManager().plan(repo=str(empty), prompt="x", backend="local")


def test_nothing_is_created_by_read_only_commands(tmp_path: Path, repo: Path) -> None:
    home = tmp_path / "never-made"
    env = {"CLAUDERON_HOME": str(home)}
    assert cli("list", env=env).returncode == 0
    assert cli("list", "--all", "--json", env=env).returncode == 0
    assert cli("show", "nothing", env=env).returncode == 2
    assert cli("config", "--repo", str(repo), "--backend", "docker", env=env).returncode == 0
    assert (
        cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "local", "--dry-run", env=env).returncode == 0
    )
    assert not home.exists()


def test_the_dry_run_names_the_session_the_create_will_make(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    planned = mgr.plan(repo=str(repo), prompt="Fix the parser", backend="local", agent="quick").name
    assert planned.startswith("fix-the-parser-")
    assert mgr.plan(repo=str(repo), prompt="Fix the parser", backend="local", agent="quick").name == planned
    created = mgr.create(repo=str(repo), prompt="Fix the parser", backend="local", agent="quick")
    assert created.name == planned
    second = mgr.create(repo=str(repo), prompt="Fix the parser", backend="local", agent="quick")
    assert second.name != planned and second.name.startswith("fix-the-parser-")  # taken: a fresh suffix
    for name in (planned, second.name):
        mgr.delete(name)


# --- 8/9. the workspace the agent sees; the local fallback is said ---------------------


@pytest.mark.docker
def test_an_engine_that_does_not_see_the_worktree_fails_before_start(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path
) -> None:
    """What DockerSpawner with the socket mounted looks like: the engine's /workspace is an empty folder."""
    import dataclasses

    from clauderon_nb.backends.docker import DockerBackend
    from clauderon_nb.model.progress import no_progress

    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="echo", name="elsewhere", image=image)
    empty = tmp_path / "what-the-engine-sees"
    empty.mkdir()
    spec = dataclasses.replace(plan.session_spec, workspace=empty)
    with pytest.raises(BackendError) as exc:
        DockerBackend().create(spec, {}, no_progress)
    message = str(exc.value)
    assert message.startswith("check workspace: /workspace in the container is empty")
    assert "engine runs elsewhere" in message and "\n" not in message
    assert containers_of(docker_client, spec.session_id) == []


def test_falling_back_to_the_local_backend_is_said(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No engine configured at all (no DOCKER_HOST, no docker context, no socket): the local backend, said."""
    from clauderon_nb.config import environment
    from clauderon_nb.frontends.cli import main

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setattr(environment, "DEFAULT_SOCKET", tmp_path / "no-engine.sock")
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    assert main(["create", "--repo", str(repo), "--prompt", "x", "--agent", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "note: no Docker engine was found" in out and "runs as a local process" in out
    assert main(["create", "--repo", str(repo), "--prompt", "x", "--agent", "quick", "--name", "fb"]) == 0
    assert "Note: no Docker engine was found" in capsys.readouterr().err
    policy = tmp_path / "policy.toml"
    policy.write_text('allowed_backends = ["docker"]\n')
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    assert main(["create", "--repo", str(repo), "--prompt", "x", "--dry-run"]) == 0
    assert "backend         docker" in capsys.readouterr().out  # the policy forbids the host: no silent local run
    monkeypatch.delenv("CLAUDERON_POLICY")
    SessionManager().delete("fb")


def test_an_engine_you_chose_that_is_down_is_an_error_never_a_run_on_the_host(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    """DOCKER_HOST names an engine that does not answer: no backend given, and still no local process."""
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--agent", "quick", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert "backend         docker" in out.stdout and "a Docker engine is configured" in out.stdout
    assert "not checked: connect to Docker engine: cannot reach the Docker engine" in out.stdout
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--agent", "quick", "--name", "fb", env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "cannot reach the Docker engine at unix://" in out.stderr and "is dockerd running?" in out.stderr
    assert SessionManager().list() == [] and not (home / "workspaces" / "fb").exists()


# --- 10. trust boundaries of the workspace ----------------------------------------------


def test_a_repository_file_that_picks_the_image_needs_trust(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text(
        '[agents.cred]\ncommand = ["sh", "-c", "echo done"]\npass_env_optional = ["MY_AGENT_TOKEN"]\n'
    )
    monkeypatch.setenv("MY_AGENT_TOKEN", "tok-VERYSECRET")
    (repo / ".clauderon.toml").write_text('image = "evil.example.com/steal:1"\n')
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred")
    assert plan.needs_trust
    assert "would receive your credentials (MY_AGENT_TOKEN)" in repr(plan)
    with pytest.raises(ConfigError, match="clauderon-nb trust"):
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="cred")
    assert mgr.list() == [] and branches(repo) == []
    out = cli("trust", str(repo))
    assert out.returncode == 0 and "Trusted" in out.stdout
    assert not mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred").needs_trust
    (repo / ".clauderon.toml").write_text('image = "evil.example.com/steal:2"\n')  # changed: ask again
    assert mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred").needs_trust
    # a flag overrides the file's choice: nothing to confirm
    assert not mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred", image="busybox").needs_trust
    # a file that sends the agent to run on the host needs trust even without credentials
    monkeypatch.delenv("MY_AGENT_TOKEN")
    (repo / ".clauderon.toml").write_text('backend = "local"\n')
    host = mgr.plan(repo=str(repo), prompt="x", agent="cred")
    assert host.needs_trust and "would run the agent on this machine as you" in repr(host)
    assert "tok-VERYSECRET" not in repr(plan)


@pytest.mark.docker
def test_two_users_may_use_one_name_on_one_engine(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session names are per user: the engine's container names carry a hash of the owner."""
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    for home in (alice_home, bob_home):
        home.mkdir()
        shutil.copy(dhome / "config.toml", home / "config.toml")
        shutil.copy(dhome / "docker-config.toml", home / "docker-config.toml")
    alice = SessionManager(alice_home, owner=f"{os.environ['JUPYTERHUB_USER']}-alice")
    bob = SessionManager(bob_home, owner=f"{os.environ['JUPYTERHUB_USER']}-bob")
    a = alice.create(repo=str(repo), prompt="x", backend="docker", agent="echo", name="longrun", image=image)
    other = tmp_path / "bobs-repo"
    git("clone", "-q", str(repo), str(other), cwd=tmp_path)
    try:
        b = bob.create(repo=str(other), prompt="x", backend="docker", agent="echo", name="longrun", image=image)
        assert a.runtime["container"] != b.runtime["container"]
        assert a.runtime["container"] not in bob.attach_command("longrun")
        assert [s.status for s in bob.list()] == [Status.RUNNING]
        bob.delete("longrun")
        assert alice.get("longrun").status is Status.RUNNING  # bob's delete left alice's session alone
    finally:
        alice.delete("longrun")
        for c in docker_client.api.containers(all=True, filters={"label": "clauderon.io/session-name=longrun"}):
            docker_client.api.remove_container(c["Id"], force=True)


def test_delete_of_an_unknown_name_says_when_the_engine_could_not_be_asked(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "dead.sock"
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(dead))  # a socket file nobody listens on: the engine "is configured" but down
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    with pytest.raises(ClauderonError) as exc:
        SessionManager().delete("nothing")
    message = str(exc.value)
    assert message.startswith("no session named 'nothing'")
    assert "labelled containers could not be checked" in message and "\n" not in message


@pytest.mark.docker
def test_two_deployments_on_one_engine_never_take_each_others_containers(
    dhome: Path, repo: Path, image: str, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staging and a production store on one engine, with the same owner names: each lists, treats as
    orphans and deletes only what carries its own deployment id."""
    staging = SessionManager()
    staging.create(repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, name="same")
    other_home = tmp_path / "production"
    shutil.copytree(dhome, other_home, ignore=shutil.ignore_patterns("sessions.sqlite*", "workspaces", "deployment-id"))
    production = SessionManager(other_home)
    made = production.create(repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, name="mine")
    try:
        assert [s.name for s in staging.list()] == ["same"]  # production's container is no orphan here
        assert [s.name for s in production.list()] == ["mine"]
        with pytest.raises(ClauderonError, match="no session named 'mine'"):
            staging.delete("mine")
        assert production.get("mine").status is Status.RUNNING
        assert {c["Labels"]["clauderon.io/deployment"] for c in made_by(docker_client, other_home)} == {
            (other_home / "deployment-id").read_text().strip()
        }
    finally:
        production.delete(made.name)
        staging.delete("same")


@pytest.mark.docker
def test_delete_with_the_engine_down_leaves_the_record_as_it_was(
    dhome: Path, repo: Path, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clauderon_nb.errors import EngineUnavailable

    SessionManager().create(repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, name="kept")
    with monkeypatch.context() as down:
        down.setenv("DOCKER_HOST", f"unix://{tmp_path / 'gone.sock'}")
        with pytest.raises(EngineUnavailable, match="cannot reach the Docker engine") as exc:
            SessionManager().delete("kept")
        assert "\n" not in str(exc.value)
    session = SessionManager().get("kept")
    assert session.status is Status.RUNNING and session.error is None  # nothing was done: nothing changed
    assert "deleter" not in session.runtime
    SessionManager().delete("kept")

"""The local backend: the agent as a plain process in the session's workspace."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from clauderon_nb import BackendError, ConfigError, SessionManager
from clauderon_nb.model.session import Status

AGENTS = r"""
[agents.echo]
command = ["sh", "-c", "printf 'argv=[%s]\n' \"$1\"; printf 'cwd=%s\n' \"$PWD\"; exec sleep 600", "agent", "{prompt}"]

[agents.quick]
command = ["sh", "-c", "echo done"]

[agents.crash]
command = ["sh", "-c", "echo failing; exit 4"]

[agents.missing]
command = ["no-such-agent-binary"]

[agents.committer]
command = ["sh", "-c", "echo work > agent.txt && git add agent.txt && git -c user.name=a -c user.email=a@b.invalid commit -q -m 'agent work' && echo committed"]
"""


@pytest.fixture
def lhome(home: Path) -> Path:
    (home / "config.toml").write_text(AGENTS)
    return home


def wait(predicate, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_lifecycle(lhome: Path, repo: Path) -> None:
    mgr = SessionManager()
    prompt = 'quotes "x" ; $(id) `id` \n second line'
    s = mgr.create(repo=str(repo), prompt=prompt, backend="local", agent="echo", name="loc")
    assert s.status is Status.RUNNING
    wait(lambda: "cwd=" in str(mgr.logs("loc")))
    logs = str(mgr.logs("loc"))
    assert f"argv=[{prompt}]" in logs
    assert f"cwd={lhome / 'workspaces' / 'loc'}" in logs
    assert str(mgr.logs("loc", tail=1)).startswith("cwd=")
    pid = s.runtime["pid"]
    assert mgr.stop("loc").status is Status.STOPPED
    wait(lambda: not Path(f"/proc/{pid}").exists())
    assert [x.status for x in mgr.list()] == [Status.STOPPED]
    assert mgr.start("loc").status is Status.RUNNING
    assert mgr.get("loc").status is Status.RUNNING
    assert mgr.attach_command("loc") == f"tail -f {lhome / 'logs' / 'loc.log'}"
    new_pid = mgr.get("loc").runtime["pid"]
    mgr.delete("loc")
    wait(lambda: not Path(f"/proc/{new_pid}").exists())
    assert not (lhome / "workspaces" / "loc").exists()
    assert not (lhome / "logs" / "loc.log").exists()
    assert mgr.list() == []


def test_follow_streams_until_the_agent_ends(lhome: Path, repo: Path) -> None:
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="fol")
    text = "".join(mgr.logs("fol", follow=True))
    assert text.strip() == "done"
    Path(mgr.get("fol").runtime["log"]).unlink()
    with pytest.raises(BackendError, match=r"logs: the log file .* no longer exists"):
        mgr.logs("fol", follow=True)
    mgr.delete("fol")


def test_exit_codes_show_in_list(lhome: Path, repo: Path) -> None:
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="ok")
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="crash", name="bad")
    wait(lambda: all(s.status is not Status.RUNNING for s in mgr.list()))
    states = {s.name: (s.status, s.error) for s in mgr.list()}
    assert states == {"ok": (Status.STOPPED, None), "bad": (Status.FAILED, "agent exited with code 4")}
    assert "failing" in str(mgr.logs("bad"))
    mgr.delete("ok")
    mgr.delete("bad")


def test_killed_process_shows_as_failed(lhome: Path, repo: Path) -> None:
    mgr = SessionManager()
    s = mgr.create(repo=str(repo), prompt="x", backend="local", agent="echo", name="kill")
    os.killpg(s.runtime["pid"], 9)
    wait(lambda: mgr.get("kill").status is Status.FAILED)
    assert mgr.get("kill").error == "the agent process vanished without an exit code"
    mgr.delete("kill")


def test_agent_not_on_path(lhome: Path, repo: Path) -> None:
    with pytest.raises(BackendError, match=r"check agent: agent command 'no-such-agent-binary' is not on PATH"):
        SessionManager().create(repo=str(repo), prompt="x", backend="local", agent="missing", name="miss")
    assert SessionManager().list() == []
    assert not (lhome / "workspaces" / "miss").exists()


def test_container_settings_refused(lhome: Path, repo: Path) -> None:
    with pytest.raises(ValueError, match="cpu_limit does not apply to the local backend"):
        SessionManager().create(repo=str(repo), prompt="x", backend="local", cpu_limit="1")
    (lhome / "config.toml").write_text('default_backend = "local"\n' + AGENTS)
    with pytest.raises(ConfigError, match=r"image does not apply to the local backend \(backend from .*config.toml\)"):
        SessionManager().create(repo=str(repo), prompt="x", image="ubuntu")
    assert SessionManager().list() == []


def test_the_branch_comes_back_by_fetch_and_delete_keeps_it(lhome: Path, repo: Path) -> None:
    """The agent works in a repository of its own; its branch comes back as data, never by git run in it."""
    import subprocess

    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="committer", name="lc")
    wait(lambda: "committed" in str(mgr.logs("lc")))
    branches = subprocess.run(["git", "branch", "--list", "clauderon/*"], cwd=repo, capture_output=True, text=True)
    assert branches.stdout == ""  # nothing of the session in your repository until you bring it back
    note = mgr.fetch("lc")
    assert note.startswith("Fetched clauderon/lc (") and note.endswith(f", 1 new commit) into {repo}.")
    log = subprocess.run(["git", "log", "--format=%s", "clauderon/lc"], cwd=repo, capture_output=True, text=True)
    assert log.stdout.splitlines() == ["agent work", "init"]
    assert mgr.delete("lc") == "branch clauderon/lc kept: it has 1 new commit"
    assert not (lhome / "workspaces" / "lc").exists()

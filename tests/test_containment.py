"""Containment, tried as an attacker would: an agent script inside a real container attacks the host, the
user's repository and other users' work; then the user does the normal next steps (list, fetch, stop,
start, delete, a second create, git in their repository). Afterwards a canary outside the session is
untouched and was never printed, no command of the agent ran on the host, and the user's refs, config,
hooks and objects are as they were (plus the commits brought back on purpose)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import ClauderonError, PolicyError, SessionManager
from clauderon_nb.model.session import Status

from .conftest import git, made_by
from .waiting import logs_contain

pytestmark = pytest.mark.docker


@dataclass
class Canary:
    """Things outside every session: a folder, a secret file, and a path no agent command may create."""

    folder: Path
    file: Path
    ran: Path
    secret: str

    @classmethod
    def make(cls, root: Path) -> Canary:
        secret = f"CANARY-{uuid.uuid4().hex}"
        folder = root / "canary-folder"
        folder.mkdir()
        for name in ("a.txt", "b.txt"):
            (folder / name).write_text(secret)
        (folder / "sub").mkdir()
        (folder / "sub" / "c.txt").write_text(secret)
        file = root / "canary-secret.txt"
        file.write_text(f"root:{secret}:19000:0:99999:7:::\n")
        return cls(folder, file, root / "canary-ran", secret)

    @property
    def prompt(self) -> str:
        """What the agent is told (the strongest attack knows the host's paths)."""
        return f"{self.folder}|{self.file}|{self.ran}"

    def assert_intact(self, *texts: object) -> None:
        assert sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")) == [
            "a.txt",
            "b.txt",
            "sub",
            "sub/c.txt",
        ]
        assert all((self.folder / n).read_text() == self.secret for n in ("a.txt", "b.txt", "sub/c.txt"))
        assert self.file.read_text().startswith(f"root:{self.secret}")
        assert not self.ran.exists(), "a command planted by the agent ran on the host"
        for text in texts:
            assert self.secret not in str(text), "canary content was printed"


def repo_state(repo: Path) -> dict[str, Any]:
    """What of the user's repository no session may change (the clauderon/ branches aside)."""
    hooks = repo / ".git" / "hooks"
    refs = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).splitlines()
    return {
        "config": (repo / ".git" / "config").read_bytes(),
        "head": (repo / ".git" / "HEAD").read_bytes(),
        "hooks": {p.name: p.read_bytes() for p in hooks.iterdir()} if hooks.exists() else {},
        "refs": sorted(r for r in refs if " refs/heads/clauderon/" not in f" {r}"),
        "objects": {p.relative_to(repo / ".git" / "objects") for p in (repo / ".git" / "objects").rglob("*")},
    }


def assert_repo_kept(repo: Path, before: dict[str, Any]) -> None:
    after = repo_state(repo)
    for key in ("config", "head", "hooks", "refs"):
        assert after[key] == before[key], f"the user's repository changed: {key}"
    assert before["objects"] <= after["objects"]
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def add_agent(home: Path, name: str, script: str) -> None:
    """An agent whose command is ``sh -c SCRIPT agent PROMPT`` (the prompt is $1)."""
    with open(home / "config.toml", "a") as fh:
        fh.write(f"\n[agents.{name}]\ncommand = {json.dumps(['sh', '-c', script, 'agent', '{prompt}'])}\n")


def outcome(fn: Callable[[], Any]) -> str:
    """What a step said: its result, or its one-line error."""
    try:
        return str(fn())
    except ClauderonError as exc:
        text = str(exc)
        assert "\n" not in text and "Traceback" not in text
        return f"error: {text}"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    exe = Path(sys.executable).with_name("clauderon-nb")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)


# The agent's half of each attack, as a shell script (busybox: ln, mkdir, chmod come from `busybox X`).
PREAMBLE = 'IFS="|"; set -- $1; CDIR=$1; CFILE=$2; RAN=$3; unset IFS; G=/workspace/.git; read -r _ B < $G/HEAD; '

LINKS = PREAMBLE + (
    # Links to host paths wherever the host might later look, follow, prune or delete.
    'busybox ln -s "$CDIR" /workspace/folder-link; busybox ln -s "$CFILE" /workspace/file-link; '
    'busybox mkdir -p $G/worktrees && busybox ln -s "$CDIR" $G/worktrees/zz; '
    'busybox ln -s "$CDIR" $G/objects/pack/pack-0123456789012345678901234567890123456789.pack; '
    'busybox ln -s "$CDIR" $G/objects/ab; '
    'rm -f $G/packed-refs; busybox ln -s "$CFILE" $G/packed-refs; '
    'rm -f "$G/$B"; busybox ln -s "$CFILE" "$G/$B"; '
    'busybox ln -s "$CDIR" $G/refs/tags/zz; '
    "echo planted; exec sleep 600"
)


def test_links_to_host_paths_are_never_followed(dhome: Path, repo: Path, image: str, tmp_path: Path) -> None:
    """Attacks 1 and 2: links in the workspace and its .git to a host folder (which a prune or a delete
    would empty) and to a host file (which a reader of packed-refs or a ref would print)."""
    canary = Canary.make(tmp_path)
    add_agent(dhome, "links", LINKS)
    before = repo_state(repo)
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt=canary.prompt, backend="docker", agent="links", image=image, name="lk")
    logs_contain(mgr, "lk", "planted")
    said = [outcome(lambda: mgr.list()), outcome(lambda: mgr.fetch("lk"))]
    assert said[1].startswith("error: ") and "is a link" in said[1]
    stopped = mgr.stop("lk")
    said += [str(stopped.runtime), outcome(lambda: mgr.start("lk")), outcome(lambda: mgr.delete("lk"))]
    assert "could not be kept" in said[-1]
    said.append(cli("list").stdout)
    second = mgr.create(repo=str(repo), prompt="after", backend="docker", agent="echo", image=image, name="after")
    assert second.status is Status.RUNNING
    said.append(outcome(lambda: mgr.delete("after")))
    canary.assert_intact(*said, (dhome / "sessions.sqlite").read_bytes().decode(errors="replace"))
    assert_repo_kept(repo, before)
    assert not (dhome / "workspaces" / "lk").exists()


OTHERS = PREAMBLE + (
    # Attack 3: see another repository's objects through alternates, and name its commit as the branch.
    'echo "$CDIR" > $G/objects/info/alternates; echo "$CFILE" > "$G/$B"; echo planted; exec sleep 600'
)


def test_another_repository_is_never_read_through_the_workspace(
    dhome: Path, repo: Path, image: str, tmp_path: Path
) -> None:
    other = tmp_path / "someone-else"
    other.mkdir()
    git("init", "-q", "-b", "main", cwd=other)
    (other / "private.txt").write_text("someone else's secret\n")
    git("add", "private.txt", cwd=other)
    git("commit", "-q", "-m", "private", cwd=other)
    theirs = git("rev-parse", "HEAD", cwd=other)
    add_agent(dhome, "others", OTHERS)
    before = repo_state(repo)
    mgr = SessionManager()
    prompt = f"{other / '.git' / 'objects'}|{theirs}|{tmp_path / 'ran'}"
    mgr.create(repo=str(repo), prompt=prompt, backend="docker", agent="others", image=image, name="oth")
    logs_contain(mgr, "oth", "planted")
    said = outcome(lambda: mgr.fetch("oth"))
    assert said.startswith("error: ") and "does not have" in said
    note = outcome(lambda: mgr.delete("oth"))
    assert "could not be kept" in note
    has = subprocess.run(["git", "cat-file", "-e", f"{theirs}^{{commit}}"], cwd=repo, capture_output=True)
    assert has.returncode != 0, "another repository's commit reached the user's repository"
    assert "secret" not in said + note
    assert_repo_kept(repo, before)


HOST_CODE = PREAMBLE + (
    # Attack 4: a commit (with a .gitattributes naming a filter), then everything git runs on its own
    # pointed at a command that would leave a file on the host.
    'cd /workspace; echo "* filter=x" > .gitattributes; echo work > work.txt; git add -A; '
    "git -c user.name=agent -c user.email=agent@example.invalid commit -q -m 'agent work'; "
    'C="touch $RAN"; '
    'git config core.fsmonitor "$C"; git config core.pager "$C"; git config core.sshCommand "$C"; '
    'git config core.editor "$C"; git config diff.external "$C"; git config credential.helper "!$C"; '
    'git config filter.x.smudge "$C"; git config filter.x.clean "$C"; git config core.hooksPath $G/hooks; '
    "busybox mkdir -p $G/hooks; "
    "for h in pre-commit post-commit post-checkout post-merge post-rewrite reference-transaction "
    'pre-push pre-auto-gc fsmonitor-watchman; do printf "#!/bin/sh\\n%s\\n" "$C" > $G/hooks/$h; '
    "busybox chmod +x $G/hooks/$h; done; "
    "echo committed; exec sleep 600"
)
GITFILE = PREAMBLE + (
    # Attack 4 again, the way: /workspace/.git becomes a gitfile to a folder with an fsmonitor.
    'cd /workspace; busybox mkdir .x; busybox cp -r .git/. .x/; rm -rf .git; echo "gitdir: .x" > .git; '
    'printf "[core]\\n\\tfsmonitor = touch %s\\n" "$RAN" >> .x/config; echo replaced; exec sleep 600'
)


def test_nothing_the_agent_writes_runs_on_the_host(dhome: Path, repo: Path, image: str, tmp_path: Path) -> None:
    canary = Canary.make(tmp_path)
    add_agent(dhome, "hostcode", HOST_CODE)
    add_agent(dhome, "gitfile", GITFILE)
    before = repo_state(repo)
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt=canary.prompt, backend="docker", agent="hostcode", image=image, name="hc")
    mgr.create(repo=str(repo), prompt=canary.prompt, backend="docker", agent="gitfile", image=image, name="gf")
    logs_contain(mgr, "hc", "committed")
    logs_contain(mgr, "gf", "replaced")
    said = [outcome(lambda: mgr.fetch("hc")), outcome(lambda: mgr.fetch("gf"))]
    assert said[0].startswith("Fetched clauderon/hc") and "1 new commit" in said[0]
    assert said[1].startswith("error: ") and "replaced by a link or a file" in said[1]
    # The user looks at the agent's work with git, as anyone would.
    for args in (
        ["status"],
        ["log", "--oneline", "clauderon/hc"],
        ["diff", "main", "clauderon/hc"],
        ["checkout", "-q", "clauderon/hc"],
        ["checkout", "-q", "main"],
    ):
        subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True)
    said += [str(mgr.stop("hc").runtime), outcome(lambda: mgr.delete("hc")), outcome(lambda: mgr.delete("gf"))]
    assert said[-2] == "branch clauderon/hc kept: it has 1 new commit"
    assert "could not be kept" in said[-1]
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=True)
    canary.assert_intact(*said)
    assert_repo_kept(repo, before)
    assert git("log", "--format=%s", "-1", "clauderon/hc", cwd=repo) == "agent work"


FIGURES = (
    "echo uid=$(id -u) gid=$(id -g); "
    "while read -r k v; do case $k in CapEff:|CapPrm:|CapBnd:|NoNewPrivs:|Seccomp:) echo $k$v;; esac; "
    "done < /proc/self/status; "
    "echo pids.max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); "
    "while read -r _ _ _ root point _; do case $root in /) ;; *) echo mount=$point;; esac; done < /proc/self/mountinfo; "
    # A fork bomb in a subshell (a shell gives up when it cannot fork): it stops at the limit.
    "(n=0; while [ $n -lt 2000 ]; do sleep 120 & n=$((n+1)); done) 2>/dev/null; "
    "c=0; for p in /proc/[0-9]*; do c=$((c+1)); done; echo processes=$c; echo figures-done; exec sleep 600"
)


def test_the_container_is_unprivileged(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    """Attack 5, read from inside: a non-root uid, no capabilities, no privilege escalation, a pids limit
    that stops a fork bomb, and nothing of the host mounted but the workspace."""
    add_agent(dhome, "figures", FIGURES)
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="docker", agent="figures", image=image, name="fig")
    logs = logs_contain(mgr, "fig", "figures-done", timeout=60)
    import re

    lines = dict(re.findall(r"^([A-Za-z][\w.]*)[=:](\S*)$", logs.replace(" ", "\n"), flags=re.M))
    uid = os.getuid() if os.getuid() != 0 else 1000
    assert lines["uid"] == str(uid) and uid != 0
    assert lines["CapEff"] == lines["CapPrm"] == lines["CapBnd"] == "0000000000000000"
    assert lines["NoNewPrivs"] == "1" and lines["Seccomp"] == "2"
    assert lines["pids.max"] == "1024"
    assert int(lines["processes"]) <= 1024  # the fork bomb stopped at the limit
    mounts = {line.split("=", 1)[1] for line in logs.split() if line.startswith("mount=")}
    # Only the workspace comes from the host, besides what the engine gives every container (its own files,
    # docker-init, and /dev/null over the masked parts of /proc).
    engine = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/sbin/docker-init", "/dev/console"}
    assert "/workspace" in mounts
    assert {m for m in mounts if not m.startswith(("/proc/", "/sys/"))} - engine == {"/workspace"}
    mgr.delete("fig")


def test_a_checkout_bomb_is_refused_before_anything_is_written(
    dhome: Path, repo: Path, image: str, tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack 6: a small repository whose checkout is large (one 20 MiB blob at ten paths)."""
    blob = b"\0" * (20 * 1024 * 1024)
    for i in range(10):
        (repo / f"big-{i}.bin").write_bytes(blob)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "bomb", cwd=repo)
    policy = tmp_path / "policy.toml"
    policy.write_text('max_workspace_size = "100m"\n')
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    mgr = SessionManager()
    with pytest.raises(PolicyError) as exc:
        mgr.create(repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, name="bomb")
    message = str(exc.value)
    assert "max_workspace_size is 100m; this repository's checkout would be 200.0 MiB" in message
    assert "\n" not in message
    assert mgr.list() == []
    assert not (dhome / "workspaces" / "bomb").exists()
    assert made_by(docker_client, dhome) == []


# --- through the clauderon service, under a real JupyterHub ------------------------------------------


@pytest.fixture
def service_agents(hub: Any) -> Any:
    """The attack agents in the service's own config (the service reads it again on every create)."""
    config = hub.data_dir / "config.toml"
    before = config.read_text()
    for name, script in (("links", LINKS), ("others", OTHERS), ("hostcode", HOST_CODE), ("figures", FIGURES)):
        add_agent(hub.data_dir, name, script)
    yield hub
    config.write_text(before)
    hub.policy.write_text("")
    for user in ("alice", "bob"):
        mgr = _remote(hub, user)
        for s in mgr.list():
            mgr.delete(s.id)


def _remote(hub: Any, user: str) -> Any:
    from clauderon_nb.remote.client import RemoteManager
    from clauderon_nb.remote.wire import Endpoint

    return RemoteManager(Endpoint(hub.service_url, hub.tokens[user]))


def _repo(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    for name, data in files.items():
        (path / name).write_bytes(data)
    git("add", ".", cwd=path)
    git("commit", "-q", "-m", "start", cwd=path)
    return path


def _copy(hub: Any, user: str, repo: Path) -> Path:
    from clauderon_nb.repos.bundles import repo_key, service_repo

    return service_repo(hub.data_dir, user, repo_key(repo.resolve()))


def _raw(hub: Any, method: str, path: str, user: str, body: Any = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        hub.service_url + "api/v1" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"token {hub.tokens[user]}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.hub
def test_through_the_service_an_agent_reaches_no_copy_no_other_user_and_no_host(
    service_agents: Any, repo: Path, image: str, tmp_path: Path
) -> None:
    hub = service_agents
    canary = Canary.make(tmp_path)
    alice, bob = _remote(hub, "alice"), _remote(hub, "bob")
    bob_repo = _repo(tmp_path / "bobs", {"private.txt": b"bob's secret\n"})
    bob.create(repo=str(bob_repo), prompt="bob works", agent="quiet", image=image, name="bobs")
    bob_copy = _copy(hub, "bob", bob_repo)
    theirs = git("rev-parse", "HEAD", cwd=bob_repo)
    said: list[str] = []
    # 1-2: links to host paths in the workspace; the service's copy of the repository is not there to reach.
    alice.create(repo=str(repo), prompt=canary.prompt, agent="links", image=image, name="lk")
    logs_contain(alice, "lk", "planted")
    said += [outcome(lambda: alice.list()), outcome(lambda: alice.fetch("lk", repo))]
    assert said[-1].startswith("error: ") and "is a link" in said[-1]
    said += [outcome(lambda: alice.stop("lk")), outcome(lambda: alice.start("lk")), outcome(lambda: alice.delete("lk"))]
    # 3: alternates into bob's copy, and bob's commit named as the branch.
    prompt = f"{bob_copy / 'objects'}|{theirs}|{canary.ran}"
    alice.create(repo=str(repo), prompt=prompt, agent="others", image=image, name="oth")
    logs_contain(alice, "oth", "planted")
    said.append(outcome(lambda: alice.fetch("oth", repo)))
    assert said[-1].startswith("error: ") and "does not have" in said[-1]
    status, plan = _raw(
        hub, "POST", "/plan", "alice", {"prompt": "x", "agent": "echo", "image": image, "workspace": _workspace(repo)}
    )
    assert status == 200 and theirs not in plan
    said += [plan, outcome(lambda: alice.delete("oth"))]
    # 4: everything git runs on its own; the work itself comes back.
    before = repo_state(repo)
    alice.create(repo=str(repo), prompt=canary.prompt, agent="hostcode", image=image, name="hc")
    logs_contain(alice, "hc", "committed")
    said.append(outcome(lambda: alice.fetch("hc", repo)))
    assert said[-1].startswith("Fetched clauderon/hc")
    subprocess.run(["git", "checkout", "-q", "clauderon/hc"], cwd=repo, check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
    said.append(outcome(lambda: alice.delete("hc")))
    assert_repo_kept(repo, before)
    # The culler deletes a stopped attack session on its own (delete_stopped_after): nothing is followed.
    alice.create(repo=str(repo), prompt=canary.prompt, agent="links", image=image, name="culled")
    logs_contain(alice, "culled", "planted")
    alice.stop("culled")
    hub.policy.write_text('delete_stopped_after = "1s"\n')
    actions = _remote(hub, "admin").cull(now=time.time() + 3600)
    hub.policy.write_text("")
    assert ("culled", "delete") in [(a.name, a.action) for a in actions]
    # Both users are still served; bob's work is bob's alone.
    assert [s.name for s in bob.list()] == ["bobs"] and bob.get("bobs").status is Status.RUNNING
    status, bob_plan = _raw(
        hub, "POST", "/plan", "bob", {"prompt": "x", "agent": "echo", "image": image, "workspace": _workspace(bob_repo)}
    )
    assert status == 200 and json.loads(bob_plan)["has_commit"] is True
    for copy in (bob_copy, _copy(hub, "alice", repo)):
        assert subprocess.run(["git", "fsck", "--strict"], cwd=copy, capture_output=True).returncode == 0
        assert not (copy / "objects" / "info" / "alternates").exists()
    canary.assert_intact(*said)
    text = "\n".join(said)
    assert str(hub.data_dir) not in text and _copy(hub, "alice", repo).name.removesuffix(".git") not in text


def _workspace(repo: Path) -> dict[str, str]:
    from clauderon_nb.repos.bundles import repo_key

    return {"key": repo_key(repo.resolve()), "commit": git("rev-parse", "HEAD", cwd=repo), "branch": "main"}


@pytest.mark.hub
def test_through_the_service_sessions_run_unprivileged(service_agents: Any, repo: Path, image: str) -> None:
    hub = service_agents
    alice = _remote(hub, "alice")
    alice.create(repo=str(repo), prompt="x", agent="figures", image=image, name="fig")
    logs = logs_contain(alice, "fig", "figures-done", timeout=60)
    assert "uid=1000 gid=1000" in logs and f"uid={os.getuid()} " not in logs  # never the service's own uid
    assert "CapEff:0000000000000000" in logs and "NoNewPrivs:1" in logs and "pids.max=1024" in logs


@pytest.mark.hub
def test_a_refused_create_leaves_nothing_on_the_service(
    service_agents: Any, repo: Path, image: str, tmp_path: Path
) -> None:
    """Attack 6 through the service: a checkout bomb, a quota, a taken name, repository storage. Whatever
    refuses the create, no copy, quarantine, upload or record of it stays."""
    hub = service_agents
    alice = _remote(hub, "alice")

    def leftovers(made: Path) -> list[str]:
        found = [p.name for p in (hub.data_dir / "incoming").glob("*")] if (hub.data_dir / "incoming").exists() else []
        found += [p.name for p in (hub.data_dir / "uploads").glob("*")] if (hub.data_dir / "uploads").exists() else []
        return found + ([str(made)] if _copy(hub, "alice", made).exists() else [])

    bomb = _repo(tmp_path / "bomb", {f"big-{i}.bin": b"\0" * (20 * 1024 * 1024) for i in range(10)})
    hub.policy.write_text('max_workspace_size = "100m"\n')
    with pytest.raises(PolicyError, match=r"max_workspace_size is 100m; this repository's checkout would be 200.0"):
        alice.create(repo=str(bomb), prompt="x", agent="echo", image=image, name="bomb")
    assert leftovers(bomb) == [] and alice.list() == []

    alice.create(repo=str(repo), prompt="x", agent="echo", image=image, name="dup")
    taken = _repo(tmp_path / "taken", {"a.txt": b"a\n"})
    with pytest.raises(ClauderonError, match="already have a session named 'dup'"):
        alice.create(repo=str(taken), prompt="x", agent="echo", image=image, name="dup")
    assert leftovers(taken) == []

    hub.policy.write_text("max_sessions = 1\n")
    quota = _repo(tmp_path / "quota", {"b.txt": b"b\n"})
    with pytest.raises(PolicyError, match="quota max_sessions"):
        alice.create(repo=str(quota), prompt="x", agent="echo", image=image, name="over")
    assert leftovers(quota) == []

    hub.policy.write_text('max_repo_storage = "1k"\n')
    storage = _repo(tmp_path / "storage", {"c.txt": b"c\n"})
    with pytest.raises(PolicyError, match="quota max_repo_storage"):
        alice.create(repo=str(storage), prompt="x", agent="echo", image=image, name="big")
    assert leftovers(storage) == []
    assert [s.name for s in alice.list()] == ["dup"]


@pytest.mark.hub
def test_copies_no_session_uses_are_removed_after_the_grace_period(
    service_agents: Any, repo: Path, image: str, tmp_path: Path
) -> None:
    hub = service_agents
    alice, admin = _remote(hub, "alice"), _remote(hub, "admin")
    used = _repo(tmp_path / "used", {"u.txt": b"u\n"})
    alice.create(repo=str(used), prompt="x", agent="echo", image=image, name="keeps")
    alice.create(repo=str(repo), prompt="x", agent="echo", image=image, name="brief")
    alice.delete("brief")
    hub.policy.write_text('delete_unused_repos_after = "1h"\n')
    admin.cull(now=time.time() + 1800)
    assert _copy(hub, "alice", repo).exists()  # within the grace period
    admin.cull(now=time.time() + 2 * 3600)
    assert not _copy(hub, "alice", repo).exists()
    assert _copy(hub, "alice", used).exists()  # a session uses it


# --- removing what an agent wrote -------------------------------------------------------------------


def test_removing_a_workspace_follows_no_link_and_opens_what_was_locked(tmp_path: Path) -> None:
    """``remove_tree`` as the agent's own user would meet it: links to host paths everywhere, folders with
    no permissions, and a folder chain deeper than any fd limit would allow to hold open."""
    from clauderon_nb.sessions.workspace import remove_tree

    canary = Canary.make(tmp_path)
    ws = tmp_path / "workspace"
    (ws / ".git" / "worktrees").mkdir(parents=True)
    os.symlink(canary.folder, ws / ".git" / "worktrees" / "zz")
    os.symlink(canary.file, ws / "file-link")
    deep = ws
    for _ in range(400):
        deep = deep / "d"
    deep.mkdir(parents=True)
    os.symlink(canary.folder, deep / "link")
    (ws / "locked" / "inner").mkdir(parents=True)
    (ws / "locked" / "inner" / "f").write_text("x")
    os.chmod(ws / "locked" / "inner", 0)
    os.chmod(ws / "locked", 0)
    remove_tree(ws)
    assert not os.path.lexists(ws)
    canary.assert_intact()


@pytest.mark.docker
def test_a_service_that_is_not_root_hands_workspaces_over_in_a_container(
    docker_client: Any, image: str, tmp_path: Path
) -> None:
    """Where the service may not chown, a throwaway container of the session's image gives the workspace to
    the agent's uid, and on delete removes the agent's files (whatever their modes) inside the sandbox."""
    from clauderon_nb.backends.docker import DockerBackend
    from clauderon_nb.sessions.workspace import remove_tree

    canary = Canary.make(tmp_path)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "f.txt").write_text("x")
    os.symlink(canary.folder, ws / "link")
    backend = DockerBackend()
    backend.hand_over(ws, 1000, 1000, image)
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [ws, *ws.rglob("*")]} == {(1000, 1000)}
    (ws / "sub").chmod(0)  # the agent locks its own folder
    backend.clear_workspace(ws, 1000, image)
    assert list(ws.iterdir()) == []
    remove_tree(ws)
    canary.assert_intact()
    leftovers = docker_client.api.containers(all=True, filters={"label": "clauderon.io/managed=helper"})
    assert leftovers == []


REMOVE_AS_AGENT = """
import os, sys
from pathlib import Path
from clauderon_nb.sessions.workspace import remove_tree
ws, canary = Path(sys.argv[1]), sys.argv[2]
(ws / "locked" / "inner").mkdir(parents=True)
(ws / "locked" / "inner" / "f").write_text("x")
os.symlink(canary, ws / "locked" / "inner" / "link")
os.chmod(ws / "locked" / "inner", 0)
os.chmod(ws / "locked", 0o500)
os.symlink(canary, ws / "link")
remove_tree(ws)
print("removed" if not os.path.lexists(ws) else "left")
"""


def test_removing_a_workspace_as_its_own_user_opens_locked_folders() -> None:
    """The same as the agent's uid (not root): folders the agent locked are opened up, never a link."""
    import shutil
    import sys
    import tempfile

    from .test_hardening import as_nobody_or_skip

    nobody = as_nobody_or_skip()
    tmp_path = Path(tempfile.mkdtemp(prefix="clauderon-perm-"))
    tmp_path.chmod(0o755)
    canary = Canary.make(tmp_path)
    parent = tmp_path / "home"
    parent.mkdir()
    os.chown(parent, nobody, nobody)
    out = subprocess.run(
        [sys.executable, "-c", REMOVE_AS_AGENT, str(parent / "ws"), str(canary.folder)],
        user=nobody,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    try:
        assert out.stdout.strip() == "removed", out.stderr
        canary.assert_intact()
    finally:
        shutil.rmtree(tmp_path)

"""The clauderon service behind a real JupyterHub, on the real engine: identity, isolation,
policy enforced server-side, workspaces as bundles, and the remote backend of the front ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb.errors import ClauderonError, ConfigError, PolicyError
from clauderon_nb.remote.client import RemoteManager
from clauderon_nb.remote.wire import Endpoint

from . import hubkit
from .conftest import git
from .waiting import logs_contain, until

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.usefixtures("clean_sessions")]


def remote(hub: hubkit.Hub, user: str) -> RemoteManager:
    return RemoteManager(Endpoint(hub.service_url, hub.tokens[user]))


def raw(
    hub: hubkit.Hub,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A request as anyone could send it: no client code, no client-side checks."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"token {token}"
    request = urllib.request.Request(hub.service_url + "api/v1" + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw_body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw_body, status = exc.read(), exc.code
    try:
        return status, json.loads(raw_body) if raw_body else None
    except ValueError:
        return status, raw_body


def workspace(repo: Path) -> dict[str, str]:
    from clauderon_nb.repos.bundles import repo_key

    return {"key": repo_key(repo), "commit": git("rev-parse", "HEAD", cwd=repo), "branch": "main"}


# --- identity -------------------------------------------------------------------------------


def test_the_kernel_finds_the_service_through_the_hub(
    hub: hubkit.Hub, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a user's server: only JUPYTERHUB_API_URL and the server's token; the magics use the service."""
    from IPython.core.interactiveshell import InteractiveShell

    from clauderon_nb.frontends.connect import manager_for

    server_token = hub.token(
        "alice",
        scopes=["users:activity!user=alice", "access:services!service=clauderon", "read:services!service=clauderon"],
    )
    monkeypatch.delenv("CLAUDERON_SERVICE_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub.api)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", server_token)
    mgr = manager_for()
    assert isinstance(mgr, RemoteManager) and mgr.owner == "alice"
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "clauderon_nb")
        made = shell.run_line_magic(
            "clauderon", f"create --repo {repo} --prompt 'from a kernel' --agent echo --image {image} --name kern"
        )
        assert made.name == "kern" and made.owner == "alice"
        assert [s.name for s in shell.run_line_magic("clauderon", "list").sessions] == ["kern"]
        monkeypatch.setenv("CLAUDERON_SERVICE_URL", "none")  # the way to keep sessions on this machine
        assert not isinstance(manager_for(), RemoteManager)
    finally:
        InteractiveShell.clear_instance()


def test_no_token_or_a_bad_token_is_401(hub: hubkit.Hub) -> None:
    for token in (None, "not-a-real-token"):
        status, body = raw(hub, "GET", "/sessions", token)
        assert status == 401, body
        assert body["error"] == "Unauthorized"
        assert "\n" not in body["message"]
    status, body = raw(hub, "GET", "/sessions", None, headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert status == 401


def test_a_token_without_access_to_the_service_is_403(hub: hubkit.Hub) -> None:
    token = hub.token("alice", scopes=["read:users:name!user=alice"])
    status, body = raw(hub, "GET", "/sessions", token)
    assert status == 403, body
    assert "access:services!service=clauderon" in body["message"]


def test_identity_is_the_hub_user_whatever_the_environment_says(
    hub: hubkit.Hub, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = remote(hub, "alice").create(repo=str(repo), prompt="alice's work", agent="echo", image=image, name="mine")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")  # in bob's environment: changes nothing
    bob = remote(hub, "bob")
    assert bob.owner == "bob"
    assert [s.name for s in bob.list()] == []
    with pytest.raises(ClauderonError, match="no session named 'mine'"):
        bob.get("mine")
    status, body = raw(hub, "GET", "/sessions/mine", hub.tokens["bob"], headers={"X-Clauderon-User": "alice"})
    assert status == 404 and body["error"] == "NotFound"
    assert alice.owner == "alice"


# --- isolation ------------------------------------------------------------------------------


def test_bob_gets_404_for_alices_session_by_name_and_by_id(hub: hubkit.Hub, repo: Path, image: str) -> None:
    session = remote(hub, "alice").create(repo=str(repo), prompt="private", agent="echo", image=image, name="secret")
    bob = hub.tokens["bob"]
    for ident in (session.name, session.id, f"alice/{session.name}"):
        for method, suffix in (("GET", ""), ("GET", "/logs"), ("GET", "/bundle"), ("POST", "/stop"), ("DELETE", "")):
            status, body = raw(hub, method, f"/sessions/{ident.replace('/', '%2F')}{suffix}", bob, body=b"")
            assert status == 404, (method, ident, suffix, body)
            assert body["message"] == f"no session named {ident!r}"  # only what bob sent: nothing of alice's
    status, body = raw(hub, "GET", "/sessions?all=1", bob)
    assert status == 403 and body["error"] == "PolicyError"
    assert remote(hub, "alice").get("secret").status.value == "running"  # untouched


def test_same_name_for_two_users_never_collides(hub: hubkit.Hub, repo: Path, image: str, docker_client: Any) -> None:
    made: dict[str, Any] = {}
    errors: list[BaseException] = []

    def create(user: str) -> None:
        try:
            made[user] = remote(hub, user).create(
                repo=str(repo), prompt=f"{user} works", agent="echo", image=image, name="longrun"
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    containers = {made[u].runtime["container"] for u in ("alice", "bob")}
    assert len(containers) == 2
    for user in ("alice", "bob"):
        logs = remote(hub, user).logs("longrun")
        assert f"argv=[{user} works]" in str(logs)


def test_an_admin_sees_and_acts_on_every_session(hub: hubkit.Hub, repo: Path, image: str) -> None:
    remote(hub, "alice").create(repo=str(repo), prompt="a", agent="echo", image=image, name="one")
    remote(hub, "bob").create(repo=str(repo), prompt="b", agent="echo", image=image, name="one")
    admin = remote(hub, "admin")
    seen = {(s.owner, s.name) for s in admin.list(all_owners=True)}
    assert {("alice", "one"), ("bob", "one")} <= seen
    assert admin.stop("alice/one").status.value == "stopped"
    assert remote(hub, "alice").get("one").status.value == "stopped"
    assert remote(hub, "bob").get("one").status.value == "running"
    assert admin.get("bob/one").owner == "bob"


# --- policy, enforced by the service --------------------------------------------------------


def test_raw_requests_beyond_the_policy_get_403(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    policy.write_text(f'max_cpu = "1"\nallowed_images = ["{image}"]\n')
    token = hub.tokens["alice"]
    base = {"prompt": "x", "agent": "echo", "workspace": workspace(repo)}
    status, body = raw(hub, "POST", "/sessions", token, {**base, "image": image, "cpu_limit": "2"})
    assert status == 403, body
    assert body["error"] == "PolicyError" and body["field"] == "cpu_limit"
    assert "max_cpu is 1" in body["message"] and "cpu_limit 2" in body["message"]
    status, body = raw(hub, "POST", "/sessions", token, {**base, "container_image": "docker.io/library/evil:1"})
    assert status == 403 and body["field"] == "image", body
    # With a bundle attached: refused as soon as the JSON line arrived; nothing is kept.
    line = json.dumps({**base, "image": image, "cpu_limit": "4"}).encode() + b"\n"
    status, body = raw(
        hub, "POST", "/sessions", token, line + b"x" * 4096, {"Content-Type": "application/x-clauderon-create"}
    )
    assert status == 403 and body["error"] == "PolicyError", body
    assert not list((hub.data_dir / "uploads").glob("*")) if (hub.data_dir / "uploads").exists() else True
    status, body = raw(hub, "POST", "/plan", token, {**base, "image": image, "cpu_limit": "3"})
    assert status == 403
    # Without any workspace at all (a plain CreateSessionRequest), the policy still answers first.
    for plain in (
        {"prompt": "x", "cpu_limit": "2", "image": image},
        {"prompt": "x", "image": "ubuntu", "repo": "/home/x"},
    ):
        status, body = raw(hub, "POST", "/sessions", token, plain)
        assert status == 403 and body["error"] == "PolicyError", (plain, body)
    # The client shows the service's refusal as the same class and line.
    with pytest.raises(PolicyError, match=r"max_cpu is 1 core; cpu_limit 2 cores \(this request\) is above it"):
        remote(hub, "alice").create(repo=str(repo), prompt="x", agent="echo", image=image, cpu_limit="2")
    status, body = raw(hub, "POST", "/sessions", token, {**base, "backend": "local"})
    assert status == 403 and body["field"] == "backend"


def test_validation_errors_are_400_one_line(hub: hubkit.Hub, repo: Path) -> None:
    token = hub.tokens["alice"]
    ws = workspace(repo)
    cases = [
        ({"prompt": "x", "workspace": ws, "cpu_limit": "lots"}, "cpu_limit"),
        ({"prompt": "x", "workspace": ws, "memroy_limit": "1g"}, "memory_limit"),
        ({"prompt": "x"}, "workspace"),
        ({"prompt": "x", "workspace": {**ws, "key": "../../bob"}}, "workspace.key"),
        ({"prompt": "x", "workspace": ws, "image": "a", "container_image": "b"}, "not both"),
    ]
    for body, says in cases:
        status, answer = raw(hub, "POST", "/sessions", token, body)
        assert status == 400, (body, answer)
        assert says in answer["message"] and "\n" not in answer["message"]
    status, answer = raw(hub, "POST", "/sessions", token, b"{not json")
    assert status == 400 and answer["error"] == "ValidationError"


def test_an_oversized_upload_is_413_before_it_is_read(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    policy.write_text('max_upload_size = "1k"\n')
    (repo / "big.bin").write_bytes(os.urandom(64 * 1024))
    git("add", "big.bin", cwd=repo)
    git("commit", "-q", "-m", "big", cwd=repo)
    with pytest.raises(ConfigError, match=r"over the service's limit of 1024 bytes \(max_upload_size\)"):
        remote(hub, "alice").create(repo=str(repo), prompt="x", agent="echo", image=image)
    line = json.dumps({"prompt": "x", "agent": "echo", "image": image, "workspace": workspace(repo)}).encode() + b"\n"
    status, body = raw(
        hub,
        "POST",
        "/sessions",
        hub.tokens["alice"],
        line + b"y" * 2048,
        {"Content-Type": "application/x-clauderon-create"},
    )
    assert status == 413 and body["error"] == "TooLarge", body


# --- the remote backend: create, list, logs, stop, start, delete ----------------------------


def test_remote_lifecycle(hub: hubkit.Hub, repo: Path, image: str) -> None:
    mgr = remote(hub, "alice")
    events: list[str] = []
    session = mgr.create(
        repo=str(repo),
        prompt="do it",
        agent="echo",
        image=image,
        cpu_limit="500m",
        progress=lambda e: events.append(e.step),
    )
    assert session.status.value == "running" and session.owner == "alice"
    assert session.repo == str(repo)  # the client's path is shown; the service's own paths are not
    assert "upload" in events and "ready" in events
    assert session.settings["cpu_limit"] == 500
    assert [s.name for s in mgr.list()] == [session.name]
    assert "argv=[do it]" in str(mgr.logs(session.name))
    assert mgr.stop(session.name).status.value == "stopped"
    assert mgr.start(session.name).status.value == "running"
    plan = mgr.plan(repo=str(repo), prompt="again", agent="echo", image=image)
    assert plan.backend == "docker" and "(dry run" in repr(plan)
    assert mgr.delete(session.name) is None
    assert mgr.list() == []
    with pytest.raises(ClauderonError, match="no session named"):
        mgr.get(session.name)


def test_the_cli_works_unchanged_over_the_service(hub: hubkit.Hub, repo: Path, image: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLAUDERON_SERVICE_URL": hub.service_url,
        "JUPYTERHUB_API_TOKEN": hub.tokens["bob"],
        "JUPYTERHUB_USER": "alice",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clauderon_nb", *args], env=env, capture_output=True, text=True, cwd=repo
        )

    made = cli("create", "--prompt", "cli work", "--agent", "echo", "--image", image, "--name", "viacli")
    assert made.returncode == 0, made.stderr
    assert "viacli" in cli("list").stdout
    shown = json.loads(cli("show", "viacli", "--json").stdout)
    assert shown["owner"] == "bob"
    refused = cli("create", "--prompt", "x", "--agent", "echo", "--backend", "local")
    assert refused.returncode == 2, refused.stderr
    assert "backend 'local' is not allowed" in refused.stderr and "only in containers or pods" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    gone = cli("delete", "viacli", "-f")
    assert gone.returncode == 0 and "Deleted session viacli." in gone.stdout


def test_follow_logs_stream(hub: hubkit.Hub, repo: Path, image: str) -> None:
    mgr = remote(hub, "alice")
    mgr.create(repo=str(repo), prompt="stream me", agent="echo", image=image, name="streamed")
    stream = mgr.logs("streamed", follow=True)
    assert not isinstance(stream, str)
    seen = ""
    for chunk in stream:
        seen += chunk
        if "env=[stream me]" in seen:
            break
    assert "argv=[stream me]" in seen
    stream.close()  # type: ignore[attr-defined]


# --- credentials ----------------------------------------------------------------------------


def test_credentials_reach_the_session_and_nothing_else(
    hub: hubkit.Hub, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-" + os.urandom(8).hex()
    monkeypatch.setenv("TEST_SERVICE_KEY", secret)
    mgr = remote(hub, "alice")
    session = mgr.create(repo=str(repo), prompt="use the key", agent="keyed", image=image, name="keyed")
    assert "key-received" in str(mgr.logs("keyed"))
    status, listed = raw(hub, "GET", "/sessions", hub.tokens["alice"])
    assert secret not in json.dumps(listed) and secret not in repr(session)
    assert secret not in (hub.data_dir / "sessions.sqlite").read_bytes().decode(errors="replace")
    assert secret not in hub.log()
    # A credential the agent does not take is refused, and its value is not echoed.
    body = {"prompt": "x", "agent": "echo", "image": image, "workspace": workspace(repo), "env": {"OTHER": secret}}
    status, answer = raw(hub, "POST", "/sessions", hub.tokens["alice"], body)
    assert status == 400 and secret not in json.dumps(answer)


# --- workspaces: bundles out and back -------------------------------------------------------


def test_bundle_round_trip_and_incremental_upload(hub: hubkit.Hub, repo: Path, kit: Any) -> None:
    image = kit.build("busybox", "1", with_git=True)
    mgr = remote(hub, "alice")
    base = git("rev-parse", "HEAD", cwd=repo)
    session = mgr.create(repo=str(repo), prompt="commit something", agent="committer", image=image, name="worker")
    logs_contain(mgr, session.name, "committed")
    note = mgr.fetch("worker", repo)
    assert "Fetched clauderon/worker" in note
    assert git("log", "--format=%s", "-1", "clauderon/worker", cwd=repo) == "agent work"
    assert git("rev-parse", "clauderon/worker~1", cwd=repo) == base
    # A second session from the same repository: the service has the commit, nothing is sent.
    events: list[str] = []
    mgr.create(
        repo=str(repo),
        prompt="again",
        agent="echo",
        image=image,
        name="second",
        progress=lambda e: events.append(e.step),
    )
    assert "upload" not in events
    # After a new local commit, only that commit travels (the bundle needs the old one as a prerequisite).
    (repo / "new.txt").write_text("new\n")
    git("add", "new.txt", cwd=repo)
    git("commit", "-q", "-m", "new", cwd=repo)
    from clauderon_nb.repos.bundles import make_bundle
    from clauderon_nb.repos.gitrepo import inspect_repo

    status, answer = raw(
        hub,
        "POST",
        "/plan",
        hub.tokens["alice"],
        {"prompt": "x", "agent": "echo", "image": image, "workspace": workspace(repo)},
    )
    assert status == 200 and answer["has_commit"] is False and base in answer["have"]
    out = repo.parent / "incremental.bundle"
    assert make_bundle(inspect_repo(repo), answer["have"], out)
    verify = subprocess.run(["git", "bundle", "verify", str(out)], cwd=repo, capture_output=True, text=True)
    assert base in verify.stdout + verify.stderr  # a prerequisite, not content
    mgr.create(repo=str(repo), prompt="third", agent="echo", image=image, name="third")
    status, answer = raw(hub, "GET", "/sessions/second/bundle", hub.tokens["alice"])
    assert status == 204  # no commits of its own


def test_a_forged_bundle_is_refused(hub: hubkit.Hub, repo: Path, image: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", "-b", "main", cwd=other)
    (other / "f").write_text("x")
    git("add", "f", cwd=other)
    git("commit", "-q", "-m", "other", cwd=other)
    git("bundle", "create", "-q", str(tmp_path / "o.bundle"), "HEAD", cwd=other)
    ws = workspace(repo)  # claims repo's commit, sends other's history
    line = json.dumps({"prompt": "x", "agent": "echo", "image": image, "workspace": ws}).encode() + b"\n"
    status, body = raw(
        hub,
        "POST",
        "/sessions",
        hub.tokens["alice"],
        line + (tmp_path / "o.bundle").read_bytes(),
        {"Content-Type": "application/x-clauderon-create"},
    )
    assert status == 400 and "does not contain commit" in body["message"], body
    status, body = raw(
        hub,
        "POST",
        "/sessions",
        hub.tokens["alice"],
        line + b"not a bundle at all",
        {"Content-Type": "application/x-clauderon-create"},
    )
    assert status == 400 and "not a valid git bundle" in body["message"], body
    assert remote(hub, "alice").list() == []


# --- Kubernetes: the pod fetches the sent workspace, once -----------------------------------


def test_a_kubernetes_session_fetches_its_workspace_once(
    hub: hubkit.Hub, k8s_for_hub: Any, repo: Path, image: str, docker_client: Any, tmp_path: Path
) -> None:
    standin, _ = k8s_for_hub
    git("remote", "remove", "origin", cwd=repo)  # no remote a pod could clone: it fetches from the service
    base = git("rev-parse", "HEAD", cwd=repo)
    mgr = remote(hub, "alice")
    session = mgr.create(
        repo=str(repo), prompt="work in a pod", agent="echo", image=image, backend="kubernetes", name="podwork"
    )
    pod = next(b for b in standin.bodies("Pod") if b["metadata"]["name"] == session.runtime["pod"])
    secret = next(b for b in standin.bodies("Secret") if b["metadata"]["name"] == f"{session.runtime['pod']}-env")
    token = secret["stringData"]["CLAUDERON_WORKSPACE_TOKEN"]
    assert token not in json.dumps(pod)  # only in the Secret, read by the init container
    init = pod["spec"]["initContainers"][0]
    agent_env = {e["name"] for e in pod["spec"]["containers"][0].get("env", [])}
    assert "CLAUDERON_WORKSPACE_TOKEN" not in agent_env
    url = init["command"][4]
    assert url == f"{hub.service_url}api/v1/workspaces/{session.id}" and token not in url
    # The init container's own command, for real, in a container on the host network.
    volume = tmp_path / "volume"
    volume.mkdir()

    def init_container() -> tuple[int, str]:
        box = docker_client.containers.create(
            image,
            init["command"],
            environment={"CLAUDERON_WORKSPACE_TOKEN": token},
            network_mode="host",
            volumes={str(volume): {"bind": "/clauderon", "mode": "rw"}},
            user=f"{os.getuid()}:{os.getgid()}",
            labels={"clauderon.io/test": "init"},
        )
        try:
            box.start()
            code = box.wait(timeout=60)["StatusCode"]
            return code, box.logs().decode(errors="replace")
        finally:
            box.remove(force=True)

    code, logs = init_container()
    assert code == 0, logs
    assert git("rev-parse", "HEAD", cwd=volume / "repo") == base
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=volume / "repo") == "clauderon/podwork"
    assert not (volume / "workspace.bundle").exists()
    # The token works once: a second fetch (or anyone replaying it) is refused.
    status, body = raw(hub, "GET", f"/workspaces/{session.id}", token)
    assert status == 401 and body["error"] == "Unauthorized"
    status, body = raw(hub, "GET", f"/workspaces/{session.id}", hub.tokens["alice"])
    assert status == 401
    with pytest.raises(ClauderonError, match="runs in a Kubernetes pod"):
        mgr.fetch("podwork", repo)


# --- what other host users can see ----------------------------------------------------------


def test_an_agent_that_reads_the_prompt_from_its_environment_shows_it_to_no_other_user(
    hub: hubkit.Hub, repo: Path, image: str, docker_client: Any
) -> None:
    """``ps`` shows every process's arguments to every host user; the environment only to its owner."""
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to read /proc as another user")
    prompt = "top secret plan " + os.urandom(6).hex()
    mgr = remote(hub, "alice")
    session = mgr.create(repo=str(repo), prompt=prompt, agent="quiet", image=image, name="quiet")
    info = docker_client.api.inspect_container(session.runtime["container"])
    pid = info["State"]["Pid"]
    seen = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if prompt.encode() in (proc / "cmdline").read_bytes():
                    seen.append(proc.name)
            except OSError:
                continue
    assert seen == [], f"the prompt is in the arguments of processes {seen}"
    other = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", f"/proc/{pid}/environ"],
        capture_output=True,
    )
    assert other.returncode != 0 and prompt.encode() not in other.stdout
    assert prompt.encode() in (Path("/proc") / str(pid) / "environ").read_bytes()  # the agent has it


def test_too_many_creates_at_once_are_429(hub: hubkit.Hub, repo: Path, image: str) -> None:
    """Four creates of one user may be in flight; the fifth is told to wait (the others are unaffected)."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(hub.service_url)
    line = json.dumps({"prompt": "x", "agent": "echo", "image": image, "workspace": workspace(repo)}).encode() + b"\n"
    path = where.path + "api/v1/sessions"

    def start_upload() -> socket.socket:
        sock = socket.create_connection((where.hostname, where.port), timeout=30)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {hub.tokens['bob']}\r\n"
            f"Content-Type: application/x-clauderon-create\r\nContent-Length: {len(line) + 10**6}\r\n\r\n".encode()
            + line
        )
        return sock

    until(lambda: hub.creates_in_progress() == 0, "the creates of earlier tests to end")
    stalled = [start_upload() for _ in range(4)]
    try:
        until(
            lambda: hub.creates_in_progress() == 4,
            "the four uploads to be admitted (waiting for the rest of their bundles)",
        )
        status, body = raw(hub, "POST", "/sessions", hub.tokens["bob"], json.loads(line))
        assert status == 429 and body["error"] == "TooManyRequests", body
        status, _ = raw(hub, "POST", "/plan", hub.tokens["alice"], json.loads(line))
        assert status == 200  # another user is not affected
    finally:
        for sock in stalled:
            sock.close()
    until(lambda: hub.creates_in_progress() == 0, "the abandoned uploads to stop counting")
    status, body = raw(hub, "POST", "/sessions", hub.tokens["bob"], {**json.loads(line), "name": "after"})
    # Past the limit again: the answer is about the workspace.
    assert status == 409 and "send the workspace bundle" in body["message"], body
    assert not list((hub.data_dir / "uploads").glob("*.bundle"))  # abandoned uploads are removed


def test_a_holder_of_the_admin_scope_acts_on_every_session(hub: hubkit.Hub, repo: Path, image: str) -> None:
    remote(hub, "alice").create(repo=str(repo), prompt="a", agent="echo", image=image, name="scoped")
    carol = remote(hub, "carol")  # not a hub admin: holds custom:clauderon:admin through a role
    assert ("alice", "scoped") in {(s.owner, s.name) for s in carol.list(all_owners=True)}
    assert carol.stop("alice/scoped").status.value == "stopped"
    limited = hub.token("carol", scopes=["access:services!service=clauderon"])  # the scope left out
    status, body = raw(hub, "GET", "/sessions?all=1", limited)
    assert status == 403, body


def test_an_unreachable_engine_is_503(hub: hubkit.Hub, repo: Path, image: str) -> None:
    assert hub.noengine_url
    body = {"prompt": "x", "agent": "echo", "image": image, "workspace": workspace(repo)}
    mgr = RemoteManager(Endpoint(hub.noengine_url, hub.tokens["alice"]))
    from clauderon_nb.errors import EngineUnavailable

    with pytest.raises(EngineUnavailable, match="cannot reach the Docker engine"):
        mgr.create(repo=str(repo), prompt="x", image=image, agent="echo")
    from clauderon_nb.repos.bundles import make_bundle
    from clauderon_nb.repos.gitrepo import inspect_repo

    bundle = repo.parent / "noengine.bundle"
    assert make_bundle(inspect_repo(repo), [], bundle)  # the failed create kept nothing: send it again
    request = urllib.request.Request(
        hub.noengine_url + "api/v1/sessions",
        data=json.dumps(body).encode() + b"\n" + bundle.read_bytes(),
        method="POST",
        headers={"Authorization": f"token {hub.tokens['alice']}", "Content-Type": "application/x-clauderon-create"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    error = json.loads(answer.value.read())
    assert answer.value.code == 503 and error["error"] == "EngineUnavailable", error
    assert mgr.list() == []  # nothing half-made


# --- groups and quotas, enforced by the service ---------------------------------------------


def _join(hub: hubkit.Hub, group: str, user: str) -> str:
    """Put ``user`` in a hub group; returns a fresh token (the service caches a token's groups briefly)."""
    import contextlib

    with contextlib.suppress(urllib.error.HTTPError):  # the group exists already
        hub.call("POST", f"/groups/{group}", {})
    hub.call("POST", f"/groups/{group}/users", {"users": [user]})
    return hub.token(user)


def test_group_quotas_hold_under_concurrent_creates(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    policy.write_text('max_sessions = 10\n\n[groups.students]\nmax_sessions = 2\nmax_cpu = "1"\n')
    token = _join(hub, "students", "bob")
    bob = RemoteManager(Endpoint(hub.service_url, token))
    bob.create(repo=str(repo), prompt="warm", agent="echo", image=image, name="warm")  # the repository is there
    bob.delete("warm")
    made: list[str] = []
    refused: list[str] = []

    def create(i: int) -> None:
        try:
            mgr = RemoteManager(Endpoint(hub.service_url, token))
            made.append(mgr.create(repo=str(repo), prompt="x", agent="echo", image=image, name=f"c{i}").name)
        except PolicyError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]  # 4: the in-flight limit per user
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 2 and len(refused) == 2, (made, refused)
    assert refused[0] == (
        "quota max_sessions (~/policy.toml [groups.students]): you have 2 sessions (running and stopped), "
        "the limit is 2; delete one first"
    )
    with pytest.raises(PolicyError, match=r"\[groups.students\]: max_cpu is 1 core; cpu_limit 2 cores"):
        bob.plan(repo=str(repo), prompt="x", agent="echo", image=image, cpu_limit="2")
    alice = remote(hub, "alice")  # not a student: the top level applies
    for i in range(3):
        alice.create(repo=str(repo), prompt="x", agent="echo", image=image, name=f"a{i}", cpu_limit="2")


def test_a_group_widens_what_its_members_may_ask_for(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    policy.write_text('max_cpu = "1"\n\n[groups.research]\nmax_cpu = "3"\n')
    carol = RemoteManager(Endpoint(hub.service_url, _join(hub, "research", "carol")))
    session = carol.create(repo=str(repo), prompt="big", agent="echo", image=image, cpu_limit="2", name="wide")
    assert session.settings["cpu_limit"] == 2000
    status, body = raw(
        hub,
        "POST",
        "/plan",
        hub.tokens["alice"],
        {"prompt": "x", "agent": "echo", "image": image, "cpu_limit": "2", "workspace": workspace(repo)},
    )
    assert status == 403 and "max_cpu is 1 core" in body["message"], body


# --- lifetimes: culling on a controllable clock, and on the service's own timer ----------------


def test_culling_on_a_controllable_clock(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    import time

    policy.write_text('max_lifetime = "8h"\nidle_timeout = "1h"\ndelete_stopped_after = "7d"\n')
    alice = remote(hub, "alice")
    t0 = time.time()
    alice.create(repo=str(repo), prompt="say it once", agent="echo", image=image, name="idle")
    alice.create(repo=str(repo), prompt="keep talking", agent="chatty", image=image, name="busy")
    status, body = raw(hub, "POST", "/cull", hub.tokens["alice"], b"")
    assert status == 403 and body["error"] == "Forbidden"  # a pass is for admins
    admin = remote(hub, "admin")
    # First look: the agents' activity is recorded. The service's own timer (every second, on the real clock)
    # may have looked first; then this pass finds idle quiet for two hours already and stops it.
    first = {a.name: a for a in admin.cull(now=t0 + 2 * 3600) if a.owner == "alice"}
    ticks = str(alice.logs("busy")).count("tick")
    until(lambda: str(alice.logs("busy")).count("tick") > ticks, "busy to print again")  # idle stays quiet
    second = {a.name: a for a in admin.cull(now=t0 + 4 * 3600) if a.owner == "alice"}
    stopped = {**first, **second}
    assert sorted(stopped) == ["idle"] and len(first) + len(second) == 1, (first, second)
    assert stopped["idle"].reason == "idle_timeout" and stopped["idle"].action == "stop"
    idle = alice.get("idle")
    assert idle.status.value == "stopped" and alice.get("busy").status.value == "running"
    assert idle.error is not None
    assert idle.error.startswith(
        "stopped by the admin policy: idle_timeout 1h (~/policy.toml); no output and no CPU for"
    )
    assert [h["by"] for h in idle.runtime["history"]] == ["cull"]
    (lifetime,) = [a for a in admin.cull(now=t0 + 9 * 3600) if a.owner == "alice"]
    assert (lifetime.name, lifetime.reason) == ("busy", "max_lifetime")
    assert "created 9h" in lifetime.message
    week = t0 + 9 * 3600 + 8 * 86400
    planned = [a for a in admin.cull(now=week, dry_run=True) if a.owner == "alice"]
    assert sorted((a.name, a.action) for a in planned) == [("busy", "delete"), ("idle", "delete")]
    assert len(alice.list()) == 2  # a dry run does nothing
    admin.cull(now=week)
    assert alice.list() == []


def test_the_service_culls_on_its_own_timer(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    """The test hub's service runs a pass every second (``--cull-every 1``)."""
    alice = remote(hub, "alice")
    alice.create(repo=str(repo), prompt="short", agent="echo", image=image, name="short")
    policy.write_text('max_lifetime = "2s"\n')
    until(
        lambda: alice.get("short").status.value == "stopped",
        lambda: f"the timer to stop the session; the service said:\n{hub.log()[-3000:]}",
        timeout=60,
        every=0.2,
    )
    session = alice.get("short")
    assert session.error and "max_lifetime 2s" in session.error
    assert "cull" in str(
        subprocess.run([sys.executable, "-m", "clauderon_nb", "--help"], capture_output=True, text=True).stdout
    )


# --- metrics --------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_for_admins(hub: hubkit.Hub, policy: Path, repo: Path, image: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    remote(hub, "alice").create(repo=str(repo), prompt="m", agent="echo", image=image, name="metered")
    policy.write_text("max_sessions = 1\n")
    with pytest.raises(PolicyError, match="quota max_sessions"):
        remote(hub, "alice").create(repo=str(repo), prompt="m", agent="echo", image=image, name="over")
    url = hub.service_url + "metrics"
    for token, want in ((None, 401), (hub.tokens["alice"], 403)):
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == want
    request = urllib.request.Request(url, headers={"Authorization": f"token {hub.tokens['admin']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sessions = [s for s in families["clauderon_sessions"].samples if s.labels["status"] == "running"]
    assert sum(s.value for s in sessions) >= 1 and {s.labels["backend"] for s in sessions} == {"docker"}
    created = {
        (s.labels["result"], s.labels["reason"]): s.value
        for s in families["clauderon_creates"].samples
        if s.name == "clauderon_creates_total"
    }
    assert created[("success", "")] >= 1 and created[("failure", "QuotaError")] >= 1
    refusals = {
        s.labels["quota"]: s.value
        for s in families["clauderon_quota_refusals"].samples
        if s.name == "clauderon_quota_refusals_total"
    }
    assert refusals["max_sessions"] >= 1
    durations = [s for s in families["clauderon_create_duration_seconds"].samples if s.name.endswith("_count")]
    assert durations and durations[0].value >= 1
    assert "clauderon_image_pull_duration_seconds" in families and "clauderon_culls" in families


def _dave(hub: hubkit.Hub) -> RemoteManager:
    """A fresh hub account named dave, with access to the service."""
    import contextlib

    with contextlib.suppress(urllib.error.HTTPError):
        hub.call("POST", "/users/dave", {})
    hub.call("POST", "/groups/clauderon-users/users", {"users": ["dave"]})  # the group holds the access role
    token = hub.token("dave", scopes=["access:services!service=clauderon"])
    return RemoteManager(Endpoint(hub.service_url, token))


def _dave_folders(hub: hubkit.Hub) -> list[Path]:
    from clauderon_nb.model.naming import owner_folder

    return [p for p in (hub.data_dir / d / owner_folder("dave") for d in ("repos", "workspaces")) if p.exists()]


def test_everything_of_a_deleted_hub_account_is_removed(hub: hubkit.Hub, repo: Path, image: str) -> None:
    dave = _dave(hub)
    dave.create(repo=str(repo), prompt="mine", agent="committer", image=image, name="left")
    assert _dave_folders(hub)  # a repository copy and a workspace
    hub.call("DELETE", "/users/dave")
    admin = remote(hub, "admin")
    actions = [a for a in admin.cull() if a.owner == "dave"]
    assert [(a.name, a.action, a.reason) for a in actions] == [("left", "delete", "owner_deleted")]
    assert [s for s in admin.list(all_owners=True) if s.owner == "dave"] == []
    assert _dave_folders(hub) == []  # nothing of the account is kept for a new one of the same name
    # The name comes back as a new account: it starts empty.
    assert _dave(hub).list() == []


def test_a_name_given_to_a_new_account_never_inherits_the_old_one(hub: hubkit.Hub, repo: Path, image: str) -> None:
    """Deleted and recreated between two culler passes: the first request of the new account finds nothing."""
    old = _dave(hub)
    old.create(repo=str(repo), prompt="old account's work", agent="echo", image=image, name="heirloom")
    hub.call("DELETE", "/users/dave")
    new = _dave(hub)
    assert new.list() == []
    with pytest.raises(ClauderonError, match="no session named 'heirloom'"):
        new.get("heirloom")
    assert _dave_folders(hub) == []
    status, answer = raw(hub, "GET", "/sessions?all=1", hub.tokens["admin"])
    assert status == 200 and [s for s in answer["sessions"] if s["owner"] == "dave"] == []
    hub.call("DELETE", "/users/dave")


def test_the_admin_session_list_widget_shows_owners_filters_and_totals(hub: hubkit.Hub, repo: Path, image: str) -> None:
    from clauderon_nb.frontends.widgets import SessionList

    remote(hub, "alice").create(repo=str(repo), prompt="a", agent="echo", image=image, name="wa", cpu_limit="1")
    remote(hub, "bob").create(repo=str(repo), prompt="b", agent="echo", image=image, name="wb", memory_limit="256m")
    widget = SessionList(remote(hub, "admin"), all_owners=True)
    cells = [c.value for c in widget.table.children if hasattr(c, "value")]
    assert "<b>owner</b>" in cells and "alice" in cells and "bob" in cells
    assert [o for o, _ in widget.owner_filter.options][:1] == ["everyone"]
    assert "alice</td><td>1 running of 1, cpu 1 core, memory 0</td>" in widget.totals.value
    widget.owner_filter.value = "bob"
    names = [c.value for c in widget.table.children if hasattr(c, "value") and "<code>" in str(c.value)]
    assert names == ["<code>wb</code>"]
    stop = next(c for c in widget.table.children if "clauderon-stop-wb" in getattr(c, "_dom_classes", ()))
    stop.click()  # an admin acts on bob's session from the list
    assert remote(hub, "bob").get("wb").status.value == "stopped"
    assert [h["by"] for h in remote(hub, "bob").get("wb").runtime["history"]] == ["admin"]


def test_create_streams_server_sent_events_like_jupyterhub_spawn_progress(
    hub: hubkit.Hub, repo: Path, image: str
) -> None:
    remote(hub, "alice").plan(repo=str(repo), prompt="x", agent="echo", image=image)  # nothing sent yet
    remote(hub, "alice").create(repo=str(repo), prompt="first", agent="echo", image=image, name="sent")  # the commit
    body = {"prompt": "streamed", "agent": "echo", "image": image, "name": "sse", "workspace": workspace(repo)}
    request = urllib.request.Request(
        hub.service_url + "api/v1/sessions",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"token {hub.tokens['alice']}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        },
    )
    events: list[tuple[str, dict[str, Any]]] = []
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        kind = ""
        for raw_line in response:
            line = raw_line.decode().rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line[5:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "session" and set(kinds[:-1]) == {"progress"}
    progress = [d["progress"] for k, d in events if k == "progress"]
    assert progress == sorted(progress) and all(0 <= p <= 100 for p in progress)
    assert all(isinstance(d["message"], str) and d["message"] for k, d in events if k == "progress")
    assert events[-1][1]["ready"] is True and events[-1][1]["progress"] == 100
    assert events[-1][1]["name"] == "sse" and events[-1][1]["status"] == "running"


def test_the_admin_configures_a_credential_for_everyone_with_service_env(
    hub: hubkit.Hub, repo: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TEAM_KEY", "the-users-own-value")  # never sent: the agent takes the admin's
    mgr = remote(hub, "alice")
    session = mgr.create(repo=str(repo), prompt="team work", agent="teamkey", image=image, name="team")
    logs_contain(mgr, "team", "team-key-received")
    assert "team-secret-value" not in json.dumps(raw(hub, "GET", "/sessions/team", hub.tokens["alice"])[1])
    assert "team-secret-value" not in repr(session) and "team-secret-value" not in hub.log()
    body = {
        "prompt": "x",
        "agent": "teamkey",
        "image": image,
        "workspace": workspace(repo),
        "env": {"TEST_TEAM_KEY": "mine"},
    }
    status, answer = raw(hub, "POST", "/sessions", hub.tokens["alice"], body)
    assert status == 400 and "does not take it" in answer["message"]  # users cannot replace the admin's value


def test_finding_the_service_says_when_the_hub_cannot_be_asked(
    hub: hubkit.Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No service registered: sessions stay on this machine. A hub that cannot be asked: one line, no quiet switch."""
    from clauderon_nb.frontends.connect import manager_for
    from clauderon_nb.sessions.manager import SessionManager

    from .dockerkit import free_port

    monkeypatch.delenv("CLAUDERON_SERVICE_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.tokens["alice"])
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub.api)
    monkeypatch.setenv("CLAUDERON_SERVICE_NAME", "no-such-service")
    assert isinstance(manager_for(), SessionManager)
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{free_port()}/hub/api")
    with pytest.raises(
        ConfigError, match=r"^cannot reach the JupyterHub API at http://127\.0\.0\.1:\d+/hub/api \(.*\); set"
    ):
        manager_for()

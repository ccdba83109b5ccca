"""The shared service keeps serving everyone under hostile clients (raw sockets, as an attacker writes them)
behind a real JupyterHub: bodies are read only after the token, streams cannot starve short requests,
the in-flight count cannot be walked around, long streams keep their connection alive, and an
unexpected failure is logged with an id the answer carries."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from clauderon_nb.remote.client import RemoteManager
from clauderon_nb.remote.wire import Endpoint

from . import hubkit
from .conftest import git

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.usefixtures("clean_sessions")]


def connect(url: str) -> tuple[socket.socket, str, str]:
    """A raw connection to the host of ``url``; (socket, host header, path prefix)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock, f"{parts.hostname}:{parts.port}", parts.path.rstrip("/")


def read_answer(sock: socket.socket, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever of the body has arrived (until the connection closes or a pause)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    want = int(headers.get("content-length", "-1"))
    sock.settimeout(1)
    try:
        while want < 0 or len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except TimeoutError:
        pass
    return int(lines[0].split()[1]), headers, body[:want] if want >= 0 else body


def get(url: str, token: str, timeout: float = 20) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw


def test_an_unidentified_body_of_any_size_is_refused_at_once(hub: hubkit.Hub) -> None:
    """A POST declaring 200 MB with no token: 401 before any of it is read, on every endpoint."""
    for path in ("/api/v1/plan", "/api/v1/sessions", "/api/v1/cull", "/api/v1/sessions/x/stop", "/api/v1/nothing"):
        sock, host, prefix = connect(hub.service_url)
        with sock:
            sock.sendall(
                f"POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 200000000\r\n\r\n{".encode()
            )
            started = time.monotonic()
            status, headers, body = read_answer(sock)
            assert time.monotonic() - started < 3, path
        assert status == 401, (path, body)
        answer = json.loads(body)
        assert answer["error"] == "Unauthorized" and len(answer["request_id"]) == 12
        assert headers["x-request-id"] == answer["request_id"]
    assert get(hub.service_url + "api/v1/", hub.tokens["alice"])[0] == 200  # and it serves everyone still


def test_an_oversized_upload_through_the_hubs_proxy_is_the_services_json_413(
    hub: hubkit.Hub, policy: Path, repo: Path, image: str
) -> None:
    from clauderon_nb.repos.bundles import repo_key

    policy.write_text('max_upload_size = "1k"\n')
    proxied = hub.url + "/services/clauderon/api/v1/"
    deadline = time.monotonic() + 30
    while get(proxied, hub.tokens["alice"])[0] != 200:  # the hub adds the service's route a moment after start
        assert time.monotonic() < deadline, "the hub's proxy has no route to the service"
        time.sleep(0.2)
    commit = git("rev-parse", "HEAD", cwd=repo)
    line = json.dumps(
        {"prompt": "x", "agent": "echo", "image": image, "workspace": {"key": repo_key(repo), "commit": commit}}
    ).encode()
    request = urllib.request.Request(
        hub.url + "/services/clauderon/api/v1/sessions",  # through configurable-http-proxy, as users reach it
        data=line + b"\n" + b"y" * (256 * 1024),
        method="POST",
        headers={"Authorization": f"token {hub.tokens['alice']}", "Content-Type": "application/x-clauderon-create"},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 413
    answer = json.loads(exc.value.read())
    assert answer["error"] == "TooLarge" and "max_upload_size" in answer["message"]


def _follow(hub: hubkit.Hub, user: str, name: str) -> tuple[socket.socket, int]:
    sock, host, prefix = connect(hub.service_url)
    sock.sendall(
        f"GET {prefix}/api/v1/sessions/{name}/logs?follow=1 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: token {hub.tokens[user]}\r\n\r\n".encode()
    )
    status, _, _ = read_answer(sock, timeout=10)
    return sock, status


def test_idle_follows_are_capped_released_and_never_starve_other_users(hub: hubkit.Hub, repo: Path, image: str) -> None:
    bob = RemoteManager(Endpoint(hub.service_url, hub.tokens["bob"]))
    bob.create(repo=str(repo), prompt="quiet", agent="quiet", image=image, name="still")
    hub.wait_for_logs("bob", "still")
    follows = [_follow(hub, "bob", "still") for _ in range(8)]
    assert [status for _, status in follows] == [200] * 8
    sock, status = _follow(hub, "bob", "still")
    sock.close()
    assert status == 429  # a ninth idle follow of one user
    # Meanwhile everyone else is served, short requests included (nothing waits behind the follows).
    for _ in range(20):
        status, answer = get(hub.service_url + "api/v1/sessions", hub.tokens["alice"], timeout=10)
        assert status == 200 and answer == {"sessions": []}
    assert get(hub.service_url + "api/v1/sessions", hub.tokens["bob"], timeout=10)[0] == 200
    for sock, _ in follows:
        sock.close()
    # Their places come back within a moment of the clients leaving.
    deadline = time.monotonic() + 10
    while True:
        sock, status = _follow(hub, "bob", "still")
        sock.close()
        if status == 200:
            break
        assert time.monotonic() < deadline, "the follows of clients that left were not released"
        time.sleep(0.2)
    released = [_follow(hub, "bob", "still") for _ in range(8)]
    assert [status for _, status in released] == [200] * 8
    for sock, _ in released:
        sock.close()


@pytest.fixture
def slow_pods(hub: hubkit.Hub, k8s_for_hub: Any) -> Iterator[Any]:
    """Kubernetes sessions whose pod never starts: a create waits for it for 12 seconds, then fails."""
    standin, _ = k8s_for_hub
    config = hub.data_dir / "k8s-config.toml"
    before = config.read_text()
    config.write_text(before + "pod_start_timeout = 12\n")
    standin.scenario = "never_ready"
    yield standin
    standin.scenario = "run"
    config.write_text(before)


def _start_create(hub: hubkit.Hub, user: str, repo: Path, image: str, name: str) -> socket.socket:
    """A create through the progress stream, sent in full; its answer is left unread."""
    from clauderon_nb.repos.bundles import make_bundle, repo_key
    from clauderon_nb.repos.gitrepo import inspect_repo

    bundle = repo.parent / f"{name}.bundle"
    make_bundle(inspect_repo(repo), [], bundle)
    commit = git("rev-parse", "HEAD", cwd=repo)
    body = {
        "prompt": "x",
        "agent": "echo",
        "image": image,
        "backend": "kubernetes",
        "name": name,
        "workspace": {"key": repo_key(repo), "commit": commit},
    }
    payload = json.dumps(body).encode() + b"\n" + bundle.read_bytes()
    sock, host, prefix = connect(hub.service_url)
    sock.sendall(
        f"POST {prefix}/api/v1/sessions HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
        f"Authorization: token {hub.tokens[user]}\r\nContent-Type: application/x-clauderon-create\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def test_a_create_counts_until_it_ends_and_its_stream_keeps_the_connection_alive(
    hub: hubkit.Hub, slow_pods: Any, repo: Path, image: str
) -> None:
    git("remote", "remove", "origin", cwd=repo)  # the pod fetches its workspace from the service
    first = _start_create(hub, "alice", repo, image, "slow0")
    status, headers, body = read_answer(first, timeout=10)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    # The pod never starts: the stream stays quiet but for keepalive comments, as JupyterHub's progress does.
    first.settimeout(11)
    seen = body
    while b": keepalive" not in seen:
        seen += first.recv(65536)
    first.close()  # the client leaves; its create goes on
    others = [_start_create(hub, "alice", repo, image, f"slow{i}") for i in range(1, 4)]
    for sock in others:
        read_answer(sock, timeout=10)
        sock.close()  # these leave too
    # Four creates are in flight whatever their clients did: a fifth is refused.
    sock = _start_create(hub, "alice", repo, image, "slow4")
    status, _, body = read_answer(sock, timeout=10)
    sock.close()
    assert status == 429, body
    assert "4 creates in progress" in json.loads(body)["message"]
    # Once they have ended (the pods never started), creates are accepted again.
    deadline = time.monotonic() + 40
    while True:
        sock = _start_create(hub, "alice", repo, image, "slow5")
        status, _, _ = read_answer(sock, timeout=10)
        sock.close()
        if status == 200:
            break
        assert time.monotonic() < deadline, "creates that ended still count"
        time.sleep(1)
    alice = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
    deadline = time.monotonic() + 40
    while alice.list():  # the last one ends too (its pod never starts): nothing of them stays
        assert time.monotonic() < deadline
        time.sleep(1)


def _metric(hub: hubkit.Hub, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(
        hub.service_url.rstrip("/") + "/metrics", headers={"Authorization": f"token {hub.tokens['admin']}"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_start_uses_the_groups_a_user_has_now_and_refusals_are_counted(
    hub: hubkit.Hub, policy: Path, repo: Path, image: str
) -> None:
    """A user removed from a wider group gets the narrower bounds at her next start (the groups are asked
    of the hub, not read from the session's record); every refused create is counted by its reason."""
    import contextlib

    from clauderon_nb.errors import PolicyError

    policy.write_text("max_running_sessions = 1\n\n[groups.wide]\nmax_running_sessions = 2\n")
    with contextlib.suppress(urllib.error.HTTPError):
        hub.call("POST", "/groups/wide", {})
    hub.call("POST", "/groups/wide/users", {"users": ["bob"]})
    wide = RemoteManager(Endpoint(hub.service_url, hub.token("bob")))
    wide.create(repo=str(repo), prompt="a", agent="echo", image=image, name="one")
    wide.create(repo=str(repo), prompt="b", agent="echo", image=image, name="two")
    wide.stop("two")
    hub.call("DELETE", "/groups/wide/users", {"users": ["bob"]})
    narrow = RemoteManager(Endpoint(hub.service_url, hub.token("bob")))  # a new token: the hub's answer now
    with pytest.raises(PolicyError, match="quota max_running_sessions"):
        narrow.start("two")
    before = _metric(hub, "clauderon_creates_total", result="failure", reason="PolicyError")
    policy.write_text('allowed_images = ["ghcr.io/team/*"]\n')
    with pytest.raises(PolicyError, match="allowed_images"):
        narrow.create(repo=str(repo), prompt="c", agent="echo", image=image, name="three")
    assert _metric(hub, "clauderon_creates_total", result="failure", reason="PolicyError") == before + 1


def test_a_revoked_token_stops_working_within_the_auth_cache(hub: hubkit.Hub) -> None:
    made = hub.call("POST", "/users/alice/tokens", {"note": "revoke me", "expires_in": 600})
    url = hub.service_url + "api/v1/"
    assert get(url, made["token"])[0] == 200
    hub.call("DELETE", f"/users/alice/tokens/{made['id']}")
    started = time.monotonic()
    while get(url, made["token"])[0] != 401:
        assert time.monotonic() - started < 15, "a revoked token kept working past --auth-cache-seconds (10)"
        time.sleep(0.5)


def test_the_service_contacts_no_registry_its_policy_does_not_name(
    hub: hubkit.Hub, policy: Path, repo: Path, image: str
) -> None:
    """Image checks, pulls, the browser and suggestions: "not allowed" for any other host, never contacted
    (a closed port and an open one would otherwise answer differently)."""
    from clauderon_nb.errors import PolicyError

    alice = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
    for host in ("127.0.0.1:9", "10.0.0.1:5000"):
        elsewhere = f"{host}/team/tool:1"
        plan = alice.plan(repo=str(repo), prompt="x", agent="echo", image=elsewhere, check_image=True)
        assert plan.image_check and plan.image_check.startswith("not allowed: image ")
        with pytest.raises(PolicyError, match="pulls only from registries its policy allows"):
            alice.create(repo=str(repo), prompt="x", agent="echo", image=elsewhere)
        with pytest.raises(PolicyError, match="not allowed: the clauderon service contacts only"):
            alice.images(f"{host}/team/tool")
        assert alice.image_suggestions(f"{host}/team/tool:") == []
    policy.write_text('allowed_agents = ["echo"]\n')
    assert alice.options().agents == ["echo"]  # only what the caller's policy allows


def test_serve_refuses_to_start_without_a_policy(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("clauderon-nb")
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": "x", "CLAUDERON_SYSTEM_POLICY": str(tmp_path / "none.toml")}
    out = subprocess.run(
        [str(exe), "serve", "--data-dir", str(tmp_path / "data"), "--listen", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "no admin policy" in out.stderr and "--no-policy" in out.stderr and "serve --init" in out.stderr

"""The service under load, through the hub's proxy as users reach it: 200 simulated users (each a request
every ``THINK`` seconds on average: list, show, plan, logs of their own sessions) over 1,000 stored
sessions (100 of them running containers), alone and next to a hostile neighbour (40 idle follows, a
client that sends a body one byte a second, and creates whose clients leave at once).

Prints p50/p99 per operation, errors and throughput for each phase, the ratio of the neighbour's p99 to
the quiet one (target < 2x; list p99 alone target <= 100 ms), and the service's memory per 1,000
sessions. Needs a Docker engine, jupyterhub and configurable-http-proxy.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import ROOT, busybox_image, scratch

USERS = 200
RUNNING = 100  # sessions with a running container (5 for each of the first 20 users)
STORED = 1000  # sessions in the store altogether (5 per user)
THINK = 2.0  # seconds between one user's requests, on average
SECONDS = float(os.environ.get("BENCH_SECONDS", "40"))  # each phase
AGENT = '[agents.sleeper]\ncommand = ["sleep", "3600"]\n'


def service_rss(hub: Any) -> int:
    """Resident memory of the hub's clauderon service process, in bytes (0 when not found)."""
    marker = f"CLAUDERON_SERVICE_DATA={hub.data_dir}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"serve" not in (proc / "cmdline").read_bytes() or marker not in (proc / "environ").read_bytes():
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
    return 0


def request(url: str, token: str, body: Any = None, timeout: float = 30) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def phase(base: str, users: list[tuple[str, str, list[str]]], workspace: dict[str, str], image: str) -> dict[str, Any]:
    """One phase: every user thinks, then asks; returns latencies per operation and the errors."""
    latencies: dict[str, list[float]] = {"list": [], "show": [], "plan": [], "logs": []}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS
    plan_body = {"prompt": "x", "agent": "sleeper", "image": image, "workspace": workspace}

    def user(token: str, names: list[str], running: bool) -> None:
        rng = random.Random(token)
        time.sleep(rng.uniform(0, THINK))
        while time.monotonic() < stop:
            ops = ["list", "show", "plan", "logs"] if running else ["list", "show", "plan"]
            op = rng.choices(ops, weights=[5, 2, 1, 2][: len(ops)])[0]
            name = rng.choice(names)
            url = {
                "list": f"{base}/sessions",
                "show": f"{base}/sessions/{name}",
                "plan": f"{base}/plan",
                "logs": f"{base}/sessions/{name}/logs?tail=5",
            }[op]
            started = time.monotonic()
            try:
                status = request(url, token, plan_body if op == "plan" else None)
            except OSError as exc:
                status = 0
                with lock:
                    errors.append(f"{op}: {exc}")
            took = time.monotonic() - started
            with lock:
                latencies[op].append(took)
                if status >= 500 or status == 0 or (op == "list" and status != 200):
                    errors.append(f"{op}: HTTP {status}")
            time.sleep(max(0.0, rng.expovariate(1 / THINK) - took))

    threads = [
        threading.Thread(target=user, args=(token, names, i < RUNNING // 5), daemon=True)
        for i, (_, token, names) in enumerate(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors}


def hostile(hub: Any, victims: list[tuple[str, str, list[str]]], workspace: dict[str, str], image: str) -> Any:
    """The neighbour: 40 idle follows, a one-byte-a-second body, creates whose clients leave."""
    parts = urlsplit(hub.service_url)
    prefix = parts.path.rstrip("/")
    sockets: list[socket.socket] = []
    done = threading.Event()

    def raw(text: bytes) -> socket.socket:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.sendall(text)
        sockets.append(sock)
        return sock

    for _owner, token, names in victims[:5]:  # 8 follows each: 40 idle streams
        for _ in range(8):
            raw(
                f"GET {prefix}/api/v1/sessions/{names[0]}/logs?follow=1 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: token {token}\r\n\r\n".encode()
            )
    token = victims[5][1]
    trickle = raw(
        f"POST {prefix}/api/v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: token {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode()
    )

    def slow() -> None:
        while not done.wait(1.0):
            try:
                trickle.sendall(b" ")
            except OSError:
                return

    def leaving_creates() -> None:
        """Every 5 seconds eight creates at once whose clients leave at once (4 go ahead, 4 are refused)."""
        body = json.dumps({"prompt": "x", "agent": "sleeper", "image": image, "workspace": workspace}).encode()
        while not done.wait(5.0):
            for _ in range(8):
                try:
                    sock = raw(
                        f"POST {prefix}/api/v1/sessions HTTP/1.1\r\nHost: x\r\n"
                        f"Authorization: token {victims[6][1]}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    sock.close()
                except OSError:
                    continue

    chosen = [slow] if os.environ.get("BENCH_NO_CREATES") else [slow, leaving_creates]
    workers = [threading.Thread(target=f, daemon=True) for f in chosen]
    for w in workers:
        w.start()

    def finish() -> None:
        done.set()
        for sock in sockets:
            sock.close()

    return finish


def summary(name: str, result: dict[str, Any]) -> dict[str, float]:
    lat = result["latencies"]
    total = sum(len(v) for v in lat.values())
    out = {}
    print(f"{name}: {total} requests in {SECONDS:.0f} s ({total / SECONDS:.0f}/s), {len(result['errors'])} errors")
    for op, values in lat.items():
        if not values:
            continue
        values = sorted(values)
        p50 = statistics.median(values)
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        out[op] = p99
        print(f"  {op:<5} n={len(values):<5} p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
    for error in result["errors"][:5]:
        print(f"  error: {error}")
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT / "notebooks"))
    from clauderon_demo import DemoHub

    from clauderon_nb.model.session import Session, Status
    from clauderon_nb.repos.bundles import repo_key
    from clauderon_nb.sessions.store import Store

    workdir = Path(tempfile.mkdtemp(prefix="clauderon-bench-load-"))
    with scratch() as (_home, repo), busybox_image() as image:
        hub = DemoHub.start(agents=AGENT, workdir=workdir / "hub")
        try:
            import subprocess

            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
            workspace = {"key": repo_key(repo), "commit": commit.strip()}
            names = [f"load{i:03d}" for i in range(USERS)]
            hub.call("POST", "/users", {"usernames": names})
            hub.call("POST", "/groups/clauderon-users/users", {"users": names})
            tokens = {n: hub.token(n) for n in names}
            rss_empty = service_rss(hub)
            from clauderon_nb.remote.client import RemoteManager
            from clauderon_nb.remote.wire import Endpoint

            users: list[tuple[str, str, list[str]]] = []
            fields = {"agent": "sleeper", "image": image, "pull_policy": "never", "prompt": "load"}
            for i, owner in enumerate(names[: RUNNING // 5]):
                mgr = RemoteManager(Endpoint(hub.service_url, tokens[owner]))
                made = [mgr.create(repo=str(repo), name=f"s{j}", **fields).name for j in range(5)]
                users.append((owner, tokens[owner], made))
                print(f"\r{(i + 1) * 5} running sessions", end="", file=sys.stderr)
            store = Store(hub.data_dir / "sessions.sqlite")
            now = time.time()
            for owner in names[RUNNING // 5 :]:
                made = []
                for j in range(STORED // USERS):
                    name = f"s{j}"
                    store.insert(
                        Session(
                            id=str(uuid.uuid4()),
                            name=name,
                            owner=owner,
                            backend="docker",
                            agent="sleeper",
                            repo="-",
                            worktree="-",
                            branch=f"clauderon/{name}",
                            prompt="load",
                            settings={"image": f"docker.io/{image}"},
                            backend_id=None,
                            status=Status.STOPPED,
                            error=None,
                            created_at=now,
                            updated_at=now,
                            runtime={"container": f"gone-{uuid.uuid4().hex[:8]}", "layout": "workspace"},
                        )
                    )
                    made.append(name)
                users.append((owner, tokens[owner], made))
            print(file=sys.stderr)
            base = hub.url + "/services/clauderon/api/v1"
            for _owner, token, _names in users:  # each user's first list settles the records
                request(f"{base}/sessions", token)
            rss_full = service_rss(hub)
            quiet = summary("alone", phase(base, users, workspace, image))
            finish = hostile(hub, users, workspace, image)
            time.sleep(float(os.environ.get("BENCH_SETTLE", "5")))  # its streams opened: then idle
            try:
                noisy = summary("next to a hostile neighbour", phase(base, users, workspace, image))
            finally:
                finish()
            for op in quiet:
                if op in noisy and quiet[op]:
                    print(f"  {op}: the neighbour moves p99 by {noisy[op] / quiet[op]:.2f}x (target < 2x)")
            print(f"list p99 alone {quiet.get('list', 0) * 1000:.1f} ms (target <= 100 ms)")
            print(
                f"service memory: {rss_empty / 2**20:.0f} MiB with no sessions, {rss_full / 2**20:.0f} MiB with "
                f"{STORED} ({(rss_full - rss_empty) / 2**20:.1f} MiB per 1,000 sessions)"
            )
        finally:
            hub.stop()


if __name__ == "__main__":
    sys.exit(main())

"""A local stand-in for the Kubernetes API server, for tests (no kube-apiserver can run here).

It speaks the few core/v1 endpoints the backend uses, answers with the API's
real shapes (objects, lists, ``Status`` errors: 403, 404, 409, 422), validates
every body it is sent against the real OpenAPI schemas (kubernetes-validate,
strict, two versions) as a server with strict field validation would, records
every request, and plays scripted pod lifecycles (running, image pull failure,
unschedulable, a missing Secret, a failing init container).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate

VERSIONS = ("1.30.0", "1.37.0")
_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$")
_KINDS = {"pods": "Pod", "persistentvolumeclaims": "PersistentVolumeClaim", "secrets": "Secret", "events": "Event"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_error(code: int, reason: str, message: str, kind: str = "", name: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": code,
    }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class StandIn:
    """State and behaviour; tests change ``scenario``, ``forbidden`` and ``invalid`` between steps."""

    scenario: str = "run"  # run | image_pull | unschedulable | config_error | init_fails | never_ready
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (verb, resource) answered with 403
    terminating_reads: int = 1  # reads of a deleted pod that still show it terminating
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)
    deleting: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, kind: str) -> list[dict[str, Any]]:
        return [
            r.body
            for r in self.requests
            if r.method == "POST" and isinstance(r.body, dict) and r.body.get("kind") == kind
        ]

    # --- pod lifecycle --------------------------------------------------------

    def _event(self, ns: str, pod: str, reason: str, message: str, kind: str = "Normal") -> None:
        name = f"{pod}.{time.time_ns():x}"  # like the API: names that sort in time order
        self.objects[("events", ns, name)] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4())},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
        }

    def _advance(self, ns: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        n = self.reads[name] = self.reads.get(name, 0) + 1
        image = pod["spec"]["containers"][0]["image"]
        st = pod["status"]
        if self.scenario == "unschedulable":
            st["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                }
            ]
            return
        if n == 1:
            st["conditions"] = [{"type": "PodScheduled", "status": "True"}]
            self._event(ns, name, "Scheduled", f"Successfully assigned {ns}/{name} to node-1")
            self._event(ns, name, "Pulling", f'Pulling image "{image}"')
            return
        if self.scenario == "never_ready":
            return
        if self.scenario == "image_pull":
            st["initContainerStatuses"] = [
                {
                    "name": "workspace-init",
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "imageID": "",
                    "state": {
                        "waiting": {
                            "reason": "ErrImagePull",
                            "message": f'failed to pull and unpack image "{image}": not found',
                        }
                    },
                }
            ]
            self._event(ns, name, "Failed", f'Failed to pull image "{image}"', "Warning")
            return
        if self.scenario == "init_fails":
            st["phase"] = "Failed"
            st["initContainerStatuses"] = [
                {
                    "name": "workspace-init",
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "imageID": "",
                    "state": {
                        "terminated": {"exitCode": 128, "reason": "Error", "message": "fatal: repository not found"}
                    },
                }
            ]
            return
        self._event(ns, name, "Pulled", f'Successfully pulled image "{image}"')
        if self.scenario == "config_error":
            st["containerStatuses"] = [
                {
                    "name": "agent",
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "imageID": "",
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "claude-creds" not found',
                        }
                    },
                }
            ]
            return
        st["phase"] = "Running"
        st["initContainerStatuses"] = [
            {
                "name": "workspace-init",
                "ready": True,
                "restartCount": 0,
                "image": image,
                "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ]
        st["containerStatuses"] = [
            {
                "name": "agent",
                "ready": True,
                "restartCount": 0,
                "image": image,
                "imageID": "",
                "started": True,
                "state": {"running": {"startedAt": _now()}},
            }
        ]
        self._event(ns, name, "Started", "Started container agent")

    # --- request handling ------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Request(method, path, query, body))
            m = _PATH.match(path)
            if not m:
                return 404, status_error(404, "NotFound", f"the server could not find the requested resource {path}")
            ns, res, name, sub = m["ns"], m["res"], m["name"], m["sub"]
            verb = {"POST": "create", "DELETE": "delete"}.get(method, "get" if name else "list")
            resource = f"{res}/{sub}" if sub else res
            if (verb, resource) in self.forbidden:
                return 403, status_error(
                    403,
                    "Forbidden",
                    f'{resource} is forbidden: User "system:serviceaccount:{ns}:jupyter-alice" cannot {verb} '
                    f'resource "{resource}" in API group "" in the namespace "{ns}"',
                    kind=res,
                )
            if method == "POST":
                return self._create(ns, res, body)
            if method == "DELETE":
                return self._remove(ns, res, str(name))
            if name and sub == "log":
                pod = self.objects.get(("pods", ns, name))
                if pod is None:
                    return 404, status_error(404, "NotFound", f'pods "{name}" not found', "pods", name)
                command = pod["spec"]["containers"][0]["command"]
                lines = [f"argv=[{command[-1]}]", "working", "done"]
                tail = int(query.get("tailLines", ["0"])[0] or 0)
                return 200, "\n".join(lines[-tail:] if tail else lines) + "\n"
            if name:
                return self._read(ns, res, name)
            return 200, self._list(ns, res, query)

    def _create(self, ns: str, res: str, body: dict[str, Any]) -> tuple[int, Any]:
        kind = _KINDS.get(res, res)
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(body, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                self.schema_errors.append(f"{kind} v{version}: {exc.message}")
                return 422, status_error(422, "Invalid", f"{kind} is invalid: {exc.message}", res)
        name = body["metadata"]["name"]
        if (res, ns, name) in self.objects:
            return 409, status_error(409, "AlreadyExists", f'{res} "{name}" already exists', res, name)
        obj = json.loads(json.dumps(body))
        obj["metadata"].update(
            {"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": "1", "creationTimestamp": _now()}
        )
        if res == "pods":
            obj["status"] = {"phase": "Pending", "conditions": []}
            self.reads.pop(name, None)
        if res == "secrets":
            obj.pop("stringData", None)  # the API stores data, never echoes stringData
            obj["data"] = {k: "" for k in body.get("stringData", {})}
        if res == "persistentvolumeclaims":
            obj["status"] = {"phase": "Bound"}
        self.objects[(res, ns, name)] = obj
        return 201, obj

    def _read(self, ns: str, res: str, name: str) -> tuple[int, Any]:
        obj = self.objects.get((res, ns, name))
        if obj is None:
            return 404, status_error(404, "NotFound", f'{res} "{name}" not found', res, name)
        if res == "pods" and name in self.deleting:
            self.deleting[name] -= 1
            if self.deleting[name] < 0:
                del self.objects[(res, ns, name)]
                del self.deleting[name]
                return 404, status_error(404, "NotFound", f'{res} "{name}" not found', res, name)
            return 200, obj
        if res == "pods":
            self._advance(ns, obj)
        return 200, obj

    def _remove(self, ns: str, res: str, name: str) -> tuple[int, Any]:
        obj = self.objects.get((res, ns, name))
        if obj is None or name in self.deleting:
            return 404, status_error(404, "NotFound", f'{res} "{name}" not found', res, name)
        if res == "pods" and self.terminating_reads > 0:
            obj["metadata"]["deletionTimestamp"] = _now()
            self.deleting[name] = self.terminating_reads
        else:
            del self.objects[(res, ns, name)]
        return 200, obj

    def _list(self, ns: str, res: str, query: dict[str, list[str]]) -> dict[str, Any]:
        items = [o for (r, n, name), o in self.objects.items() if r == res and n == ns and name not in self.deleting]
        for selector in query.get("labelSelector", []):
            for term in selector.split(","):
                key, _, value = term.partition("=")
                items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        for selector in query.get("fieldSelector", []):
            key, _, value = selector.partition("=")
            if key == "involvedObject.name":
                items = [o for o in items if o.get("involvedObject", {}).get("name") == value]
        return {
            "apiVersion": "v1",
            "kind": f"{_KINDS.get(res, res)}List",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn

    def log_message(self, *_args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        code, payload = self.standin.handle(self.command, url.path, parse_qs(url.query), body)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve


@contextmanager
def serve(workdir: Path) -> Iterator[tuple[StandIn, Path]]:
    """Run the stand-in on a free loopback port; yields it and a kubeconfig that points at it."""
    standin = StandIn()
    handler = type("Handler", (_Handler,), {"standin": standin})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "standin",
                "clusters": [{"name": "standin", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [
                    {"name": "standin", "context": {"cluster": "standin", "user": "tester", "namespace": "team-a"}}
                ],
            }
        )
    )
    try:
        yield standin, kubeconfig
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""Kubernetes backend: a Pod (plus workspace PVC and credentials Secret) per session.

Uses the official ``kubernetes`` client: in-cluster service account (as in a
JupyterHub single-user pod), else ``KUBECONFIG``/``~/.kube/config``, or the
``kubeconfig``/``context`` named in k8s-config.toml.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ..errors import BackendError, ConfigError
from ..model.image import parse_image
from ..model.naming import LABEL_PREFIX, object_name, owner_label_matches
from ..model.progress import ProgressCallback, ProgressEvent
from ..model.pull_policy import PullPolicy
from ..model.redact import strip_credentials
from ..model.session import Session, Status
from ..render.kubernetes import AGENT_CONTAINER, render_kubernetes
from ..render.spec import SessionSpec
from .base import Follow, Observed, Workspace
from .images import ImageCheck, in_registry
from .registry import RegistryError

#: Waiting reasons that end a create at once: the pod will not start by itself.
FATAL_WAITING = {
    "ErrImagePull": "the image could not be pulled",
    "ImagePullBackOff": "the image could not be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container configuration is invalid (a missing Secret or ConfigMap?)",
    "CreateContainerError": "the container could not be created",
    "CrashLoopBackOff": "the container keeps crashing",
}
_PLURAL = {"Pod": "pods", "PersistentVolumeClaim": "persistentvolumeclaims", "Secret": "secrets"}
_SNAKE = {"Pod": "pod", "PersistentVolumeClaim": "persistent_volume_claim", "Secret": "secret"}


def _method(api: Any, verb: str, kind: str) -> Any:
    """The CoreV1Api call for ``verb`` on ``kind`` (``create_namespaced_pod``, ``read_namespaced_secret``…)."""
    return getattr(api, f"{verb}_namespaced_{_SNAKE[kind]}")


_EVENT_STEPS = {"Scheduled": "create", "Pulling": "pull", "Pulled": "pull", "Created": "start", "Started": "start"}


def _status_message(exc: Any) -> tuple[str, str]:
    """(reason, message) from an ApiException's Status body."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("reason") or exc.reason or ""), " ".join(str(body.get("message") or exc.reason).split())


def _api_error(exc: Any, verb: str, resource: str, namespace: str) -> str:
    reason, message = _status_message(exc)
    if exc.status == 403:
        return (
            f"missing permission: cannot {verb} {resource} in namespace {namespace!r} ({message}); "
            "grant the Role in docs/kubernetes/rbac.yaml"
        )
    if exc.status == 401:
        return f"the Kubernetes API refused the credentials ({message})"
    return f"{reason or exc.status}: {message}"


class KubernetesBackend:
    name = "kubernetes"
    local_workspace = False
    poll_interval = 1.0  # seconds between pod status checks while waiting

    def __init__(self) -> None:
        self._apis: dict[tuple[str | None, str | None], Any] = {}

    # --- client -------------------------------------------------------------

    def core(self, kubeconfig: str | None = None, context: str | None = None) -> Any:
        """A CoreV1Api for the given (or default) configuration, cached."""
        key = (kubeconfig, context)
        if key not in self._apis:
            from kubernetes import client, config

            cfg = client.Configuration()
            try:
                if kubeconfig or context:
                    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
                elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config(client_configuration=cfg)
                else:
                    config.load_kube_config(client_configuration=cfg)
            except (config.ConfigException, OSError, TypeError, ValueError) as exc:
                where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise BackendError(
                    f"no usable Kubernetes configuration ({where}: {' '.join(str(exc).split())}); "
                    "run inside the cluster, set KUBECONFIG, or set kubeconfig in k8s-config.toml",
                    step="connect to Kubernetes",
                ) from None
            self._apis[key] = client.CoreV1Api(client.ApiClient(cfg))
        return self._apis[key]

    def _call(self, step: str, verb: str, resource: str, namespace: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise BackendError(_api_error(exc, verb, resource, namespace), step=step) from None
        except (HTTPError, OSError) as exc:
            raise BackendError(
                f"cannot reach the Kubernetes API ({' '.join(str(exc).split())[:200]})", step=step
            ) from None

    @staticmethod
    def _where(s: Session) -> tuple[str | None, str | None, str]:
        rt = s.runtime
        return rt.get("kubeconfig"), rt.get("context"), str(rt.get("namespace"))

    # --- create -------------------------------------------------------------

    def preflight(self, spec: SessionSpec, progress: ProgressCallback) -> SessionSpec:
        """The API is reachable and the image is in its registry (or is built and pushed there); returns
        the spec to create, its image pinned to the pushed digest after a build."""
        progress(ProgressEvent("check", "loading the Kubernetes configuration"))
        s = spec.settings
        self.core(str(s.kubeconfig) if s.kubeconfig else None, s.context)
        if s.build is not None:
            return self._build_and_push(spec, progress)
        check = self.check_image(spec, progress)
        if check.found == "unchecked" and check.detail:
            progress(ProgressEvent("note", check.detail, detail=True))
        return spec

    def check_image(self, spec: SessionSpec, progress: ProgressCallback | None = None) -> ImageCheck:
        """The image in its registry, as the nodes will pull it (a dry run's answer too)."""
        s = spec.settings
        image = str(s.image)
        if s.build is not None:
            return self._built(spec)
        if s.pull_policy is PullPolicy.NEVER:
            return ImageCheck(image, "unchecked", detail="not checked: pull policy Never (the nodes must have it)")
        if s.registry_check is False:
            return ImageCheck(image, "unchecked", detail="not checked in its registry (registry_check = false)")
        if spec.registry_refusal:  # the cluster's nodes pull; the service itself contacts no such registry
            return ImageCheck(image, "unchecked", detail="not checked: the admin policy names no such registry")
        if progress:
            progress(ProgressEvent("check", f"checking {image} in its registry"))
        try:
            found = in_registry(image)
        except RegistryError as exc:
            if exc.kind == "denied" and s.image_pull_secrets:
                return ImageCheck(
                    image,
                    "unchecked",
                    detail=f"not checked: {exc.detail.removeprefix(f'image {image}: ')}; the pods pull with "
                    f"image_pull_secrets {', '.join(s.image_pull_secrets)}",
                )
            raise
        return ImageCheck(image, "registry", found.digest, "the pod pulls it")

    def _built(self, spec: SessionSpec) -> ImageCheck:
        s = spec.settings
        assert s.build is not None
        image = str(s.image)
        try:
            found = in_registry(image)
        except RegistryError as exc:
            if exc.kind not in ("tag", "repository"):
                raise
            return ImageCheck(
                image,
                "build",
                detail=f"create builds it from {s.build.describe()} at commit {spec.base_commit[:12]} "
                "with the Docker engine and pushes it",
            )
        return ImageCheck(image, "built", found.digest, f"pushed already (built from {s.build.describe()})")

    def _build_and_push(self, spec: SessionSpec, progress: ProgressCallback) -> SessionSpec:
        """Build with the Docker engine and push to ``build_push_registry`` (skipped when that tag is there
        already: an unchanged repository); the pod then uses the pushed digest."""
        from dataclasses import replace

        from .docker import DockerBackend

        s = spec.settings
        assert s.build is not None
        assert s.image is not None
        check = self._built(spec)
        if check.found == "built" and check.digest:
            progress(ProgressEvent("build", f"image {s.image} is pushed already (unchanged {s.build.dockerfile_path})"))
            digest = check.digest
        else:
            engine = DockerBackend()
            if not engine.image_present(s.image):
                engine.build(spec, s.build, s.image, None, progress)
            digest = engine.push(s.image, progress)
        ref = parse_image(s.image)
        pinned = f"{ref.name}:{ref.tag}@{digest}"
        return replace(spec, settings=replace(s, image=pinned))

    def plan_runtime(self, spec: SessionSpec) -> dict[str, Any]:
        """Where the objects will be and their names, recorded before any is made (write-ahead)."""
        s = spec.settings
        kinds = {m["kind"]: m["metadata"]["name"] for m in render_kubernetes(spec)}
        return {
            "namespace": str(s.namespace),
            "kubeconfig": str(s.kubeconfig) if s.kubeconfig else None,
            "context": s.context,
            "pod": spec.object_name,
            "planned": {"PersistentVolumeClaim": kinds.get("PersistentVolumeClaim"), "Secret": kinds.get("Secret")},
            # What the pod is rendered from again on start besides the settings (no secret values).
            "render": {
                "remote_url": strip_credentials(spec.remote_url or ""),
                "remote_in_secret": spec.remote_in_secret,
                "fetch": bool(spec.workspace_url),
                "base_branch": spec.base_branch,
                "secret_env": list(spec.secret_env),
                "container_env": dict(s.container_env or {}),
            },
        }

    def survey(
        self, sessions: list[Session], known_ids: set[str], owner: str | None, deployment: str = ""
    ) -> tuple[dict[str, Observed], list[Session]]:
        return self.observe(
            sessions
        ), []  # pods live in namespaces of their own; their records say where (see docs/troubleshooting.md)

    def create(
        self,
        spec: SessionSpec,
        secrets: Mapping[str, str],
        progress: ProgressCallback,
        *,
        wait: bool = True,
        workspace: Workspace | None = None,
    ) -> tuple[str, dict[str, Any]]:
        s = spec.settings
        kubeconfig = str(s.kubeconfig) if s.kubeconfig else None
        api = self.core(kubeconfig, s.context)
        namespace = str(s.namespace)
        manifests = render_kubernetes(spec, secrets)
        runtime: dict[str, Any] = {**self.plan_runtime(spec), "pvc": None, "secret": None}
        created: list[tuple[str, str]] = []
        try:
            for manifest in manifests:
                kind, name = manifest["kind"], manifest["metadata"]["name"]
                progress(ProgressEvent("create", f"creating {kind} {name}"))
                self._call(
                    f"create {kind}",
                    "create",
                    _PLURAL[kind],
                    namespace,
                    _method(api, "create", kind),
                    namespace,
                    manifest,
                )
                created.append((kind, name))
                if kind == "PersistentVolumeClaim":
                    runtime["pvc"] = name
                elif kind == "Secret":
                    runtime["secret"] = name
            if wait:
                self._wait_running(api, namespace, spec.object_name, float(s.pod_start_timeout or 300), progress)
        except BaseException:
            for kind, name in reversed(created):
                self._delete(api, kind, name, namespace)
            raise
        return spec.object_name, runtime

    def _delete(self, api: Any, kind: str, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            _method(api, "delete", kind)(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise BackendError(_api_error(exc, "delete", _PLURAL[kind], namespace), step=f"delete {kind}") from None

    def _wait_running(self, api: Any, namespace: str, pod: str, timeout: float, progress: ProgressCallback) -> None:
        """Poll until the agent container runs; fail at once on a state that will not recover."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        last = "Pending"
        while True:
            status = self._call("wait for pod", "get", "pods", namespace, api.read_namespaced_pod, pod, namespace)
            self._report_events(api, namespace, pod, seen, progress)
            done, last = _progress_of(status)
            if done:
                return
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"pod {pod} did not start within {timeout:g}s (last state: {last})", step="wait for pod"
                )
            time.sleep(self.poll_interval)

    def _report_events(self, api: Any, namespace: str, pod: str, seen: set[str], progress: ProgressCallback) -> None:
        events = self._call(
            "wait for pod",
            "list",
            "events",
            namespace,
            api.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={pod}",
        )
        # Event names are "<object>.<hex nanoseconds>": sorting by name is sorting by time.
        for event in sorted(events.items or [], key=lambda e: str(e.metadata.name)):
            key = str(event.metadata.uid or event.metadata.name)
            if key in seen:
                continue
            seen.add(key)
            step = _EVENT_STEPS.get(str(event.reason), "check")
            message = f"{event.reason}: {' '.join(str(event.message or '').split())}"[:200]
            progress(ProgressEvent(step, message, detail=True))

    # --- lifecycle ----------------------------------------------------------

    def _names(self, session: Session) -> list[tuple[str, str]]:
        """(kind, name) of everything the session may have: recorded, or planned before it was made."""
        rt = session.runtime
        planned: dict[str, Any] = rt["planned"] if isinstance(rt.get("planned"), dict) else {}
        out = [("Pod", str(rt.get("pod") or object_name(session.name, session.owner)))]
        for kind, key in (("PersistentVolumeClaim", "pvc"), ("Secret", "secret")):
            name = rt.get(key) or planned.get(kind)
            if name:
                out.append((kind, str(name)))
        return out

    def _ours(self, api: Any, kind: str, name: str, namespace: str, session: Session) -> bool:
        """Read the object and check its labels: a name from the store never deletes someone else's object."""
        from kubernetes.client.exceptions import ApiException

        try:
            obj = _method(api, "read", kind)(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise BackendError(_api_error(exc, "get", _PLURAL[kind], namespace), step=f"find {kind}") from None
        labels = (obj.metadata.labels or {}) if obj.metadata else {}
        return bool(
            labels.get(f"{LABEL_PREFIX}session-id") == session.id
            and owner_label_matches(labels.get(f"{LABEL_PREFIX}owner"), session.owner)
        )

    def remove(self, session: Session) -> None:
        kubeconfig, context, namespace = self._where(session)
        if not session.runtime.get("namespace"):
            return
        api = self.core(kubeconfig, context)
        for kind, name in self._names(session):
            if self._ours(api, kind, name, namespace, session):
                self._delete(api, kind, name, namespace)

    def stop(self, session: Session) -> None:
        """Delete the pod and wait until it is gone; the workspace PVC stays for ``start``."""
        from kubernetes.client.exceptions import ApiException

        kubeconfig, context, namespace = self._where(session)
        api = self.core(kubeconfig, context)
        pod = str(session.runtime["pod"])
        if not self._ours(api, "Pod", pod, namespace, session):
            return
        self._delete(api, "Pod", pod, namespace)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                api.read_namespaced_pod(pod, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise BackendError(_api_error(exc, "get", "pods", namespace), step="stop pod") from None
            time.sleep(self.poll_interval)
        raise BackendError(f"pod {pod} is still terminating after 120s", step="stop pod")

    def start(self, session: Session, spec: SessionSpec | None = None) -> dict[str, Any]:
        """Create the pod again on the kept PVC (and Secret) and wait for it to run. The pod is rendered
        again from ``spec`` (the stored settings, parsed and checked again): never replayed from the store."""
        if spec is None:
            raise BackendError("a Kubernetes session starts from its settings; none were given", step="start pod")
        kubeconfig, context, namespace = self._where(session)
        api = self.core(kubeconfig, context)
        (pod,) = [m for m in render_kubernetes(spec) if m["kind"] == "Pod"]
        if pod["metadata"]["name"] != session.runtime.get("pod"):
            raise BackendError(f"session {session.name!r} has a damaged record; delete it", step="start pod")
        # An ephemeral workspace starts empty again: the init container clones afresh.
        self._call("start pod", "create", "pods", namespace, api.create_namespaced_pod, namespace, pod)
        timeout = float(spec.settings.pod_start_timeout or 300)
        try:
            self._wait_running(api, namespace, str(session.runtime["pod"]), timeout, lambda _e: None)
        except BaseException:
            self._delete(api, "Pod", str(session.runtime["pod"]), namespace)
            raise
        return session.runtime

    def observe(self, sessions: list[Session]) -> dict[str, Observed]:
        """One label-selector list per (cluster, namespace)."""
        groups: dict[tuple[str | None, str | None, str], list[Session]] = {}
        for s in sessions:
            groups.setdefault(self._where(s), []).append(s)
        out: dict[str, Observed] = {}
        for (kubeconfig, context, namespace), group in groups.items():
            api = self.core(kubeconfig, context)
            pods = self._call(
                "list pods",
                "list",
                "pods",
                namespace,
                api.list_namespaced_pod,
                namespace,
                label_selector=f"{LABEL_PREFIX}managed=true",
            )
            by_id = {(p.metadata.labels or {}).get(f"{LABEL_PREFIX}session-id"): p for p in pods.items or []}
            for s in group:
                pod = by_id.get(s.id)
                if pod is not None:
                    out[s.id] = _observed(pod)
                elif s.status is Status.STOPPED:
                    out[s.id] = Observed(Status.STOPPED)  # stop deletes the pod and keeps the workspace
        return out

    def logs(self, session: Session, tail: int | None, follow: bool) -> str | Follow:
        kubeconfig, context, namespace = self._where(session)
        api = self.core(kubeconfig, context)
        pod = str(session.runtime["pod"])
        kwargs: dict[str, Any] = {"container": AGENT_CONTAINER}
        if tail is not None:
            kwargs["tail_lines"] = tail
        if follow:
            response = self._call(
                "logs",
                "get",
                "pods/log",
                namespace,
                api.read_namespaced_pod_log,
                pod,
                namespace,
                follow=True,
                _preload_content=False,
                **kwargs,
            )
            return Follow(response.stream(1024), response.shutdown)
        return str(
            self._call("logs", "get", "pods/log", namespace, api.read_namespaced_pod_log, pod, namespace, **kwargs)
        )

    def attach_command(self, session: Session) -> str:
        kubeconfig, context, namespace = self._where(session)
        parts = ["kubectl"]
        if kubeconfig:
            parts += ["--kubeconfig", kubeconfig]
        if context:
            parts += ["--context", context]
        return " ".join([*parts, "attach", "-it", "-n", namespace, str(session.runtime["pod"]), "-c", AGENT_CONTAINER])


def _container_problem(statuses: Any) -> str | None:
    for cs in statuses or []:
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason in FATAL_WAITING:
            detail = " ".join(str(waiting.message or FATAL_WAITING[waiting.reason]).split())
            return f"{waiting.reason} in container {cs.name}: {detail}"
        terminated = cs.state.terminated if cs.state else None
        if terminated and terminated.exit_code not in (0, None):
            detail = " ".join(str(terminated.message or terminated.reason or "").split())
            return f"container {cs.name} exited with code {terminated.exit_code}" + (f": {detail}" if detail else "")
    return None


def _progress_of(pod: Any) -> tuple[bool, str]:
    """(running, description); raises ``BackendError`` for states that end the create."""
    status = pod.status
    problem = _container_problem(status.init_container_statuses) or _container_problem(status.container_statuses)
    if problem:
        raise BackendError(problem, step="wait for pod")
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            raise BackendError(f"Unschedulable: {' '.join(str(cond.message).split())}", step="wait for pod")
    if status.phase in ("Failed", "Succeeded"):
        raise BackendError(
            f"pod ended ({status.phase}) before the agent ran: {status.message or status.reason}", step="wait for pod"
        )
    for cs in status.container_statuses or []:
        if cs.name == AGENT_CONTAINER and cs.state and cs.state.running:
            return True, "Running"
    return False, str(status.phase or "Pending")


def _observed(pod: Any) -> Observed:
    status = pod.status
    if status.phase == "Running":
        return Observed(Status.RUNNING)
    if status.phase == "Pending":
        problem = _container_problem(status.init_container_statuses) or _container_problem(status.container_statuses)
        return Observed(Status.FAILED, problem) if problem else Observed(Status.RUNNING)
    if status.phase == "Succeeded":
        return Observed(Status.STOPPED)
    if status.phase == "Failed":
        problem = _container_problem(status.container_statuses)
        return Observed(Status.FAILED, problem or f"pod failed: {status.message or status.reason}")
    return Observed(Status.FAILED, f"pod is in phase {status.phase or 'Unknown'}")


def check_schemas(manifests: list[dict[str, Any]], where: str) -> None:
    """The rendered objects against the Kubernetes schemas (strict: an unknown field is an error), for an
    admin's ``extra_pod_config``/``extra_container_config``; one ``ConfigError`` line naming the field."""
    try:
        import kubernetes_validate
    except ImportError:
        raise ConfigError(
            f"{where}: checking it against the Kubernetes schemas needs kubernetes-validate "
            "(pip install 'clauderon-nb[kubernetes]')",
            field="extra_pod_config",
        ) from None
    version = kubernetes_validate.latest_version()
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or manifest.get("kind", "object")
            message = " ".join(str(exc.message).split())[:300]
            raise ConfigError(
                f"{where}: not valid for Kubernetes {version}: {path}: {message}", field="extra_pod_config"
            ) from None

"""Docker backend: one container per session, via docker-py (never the docker CLI)."""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..config.cache import Memo
from ..config.environment import docker_socket
from ..errors import BackendError, EngineUnavailable, PolicyError
from ..model.display import show_value
from ..model.naming import LABEL_PREFIX, WORKSPACE, object_name, owner_labels
from ..model.progress import ProgressCallback, ProgressEvent
from ..model.pull_policy import PullPolicy
from ..model.redact import redact_url
from ..model.session import Session, Status
from ..model.units import human_cpu
from .base import Follow, Observed, Workspace, orphan_session
from .engine_socket import get_json

if TYPE_CHECKING:
    from ..model.build import BuildConfig
    from ..render.spec import SessionSpec
    from .images import ImageCheck

if TYPE_CHECKING:
    import docker

POST_CREATE_TIMEOUT = 900.0
STALE_SURVEYS = 10  # a kept listing older than survey_seconds still answers (refreshed behind) up to this many times
EARLY_SURVEY_SECONDS = 2.0  # a survey started early answers the list that started it, not one much later
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_EXIT = re.compile(r"Exited \((-?\d+)\)")


def _explain(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())


def _events(
    stream: Any, step: str, field: str | None = None, explain: Callable[[str], str] | None = None
) -> Iterator[dict[str, Any]]:
    """The decoded events of a pull, build or push stream. The engine reports failures *inside* the stream
    (``{"error": …}``), and a dropped connection ends it: both become one ``BackendError`` line."""
    try:
        for event in stream:
            if "error" in event:
                detail = " ".join(str((event.get("errorDetail") or {}).get("message") or event["error"]).split())
                raise BackendError(explain(detail) if explain else detail, step=step, field=field)
            yield event
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connection dropped while streaming
        raise BackendError(_explain(exc), step=step) from None


class DockerBackend:
    name = "docker"
    local_workspace = True

    def __init__(self, survey_seconds: float = 0.0) -> None:
        self.survey_seconds = survey_seconds
        self._surveyed = Memo(16)  # deployment -> (when the engine was asked, its managed containers)
        self._changed_at: dict[str | None, float] = {}  # owner (None: anyone's) -> when we last changed theirs
        self._refreshing: set[str] = set()  # deployments whose listing is being asked for in the background
        self._survey_lock = threading.Lock()
        self._early: dict[str, tuple[float, _Early]] = {}  # deployment -> (when, a survey started early)
        self._client: docker.DockerClient | None = None
        self._ncpu: int | None = None
        self._image_config = Memo(256)  # image -> its config (Env, User …), as inspected
        self._image_ids = Memo(256)  # image -> its id, as inspected

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                host = redact_url(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
                reason = _explain(exc)
                match = re.search(r"\(\d+, '([^']+)'\)|(Connection refused|No such file or directory)", reason)
                detail = next((g for g in match.groups() if g), reason) if match else reason
                raise EngineUnavailable(
                    f"cannot reach the Docker engine at {host} ({detail}); is dockerd running?",
                    step="connect to Docker engine",
                ) from None
        return self._client

    def _api(self, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import docker

        try:
            return fn(*args, **kwargs)
        except docker.errors.DockerException as exc:
            raise BackendError(_explain(exc), step=step) from None
        except OSError as exc:  # connection dropped mid-call
            raise EngineUnavailable(f"lost the connection to the Docker engine ({exc})", step=step) from None

    # --- create -------------------------------------------------------------

    def preflight(self, spec: SessionSpec, progress: ProgressCallback) -> None:
        s = spec.settings
        progress(ProgressEvent("check", "checking the Docker engine"))
        if s.cpu_limit is not None:
            if self._ncpu is None:
                self._ncpu = int(self._api("check resources", self.client.api.info)["NCPU"])
            if s.cpu_limit > self._ncpu * 1000:
                raise BackendError(
                    f"cpu_limit {human_cpu(s.cpu_limit)} is more than the Docker engine's {self._ncpu} CPUs",
                    step="check resources",
                )
        if s.gpus:
            info = self._api("check GPUs", self.client.api.info)
            runtimes = sorted((info.get("Runtimes") or {}).keys())
            cdi = [d for d in info.get("CDISpecDirs") or [] if d]
            if "nvidia" not in runtimes and not cdi:
                raise BackendError(
                    f"gpus {show_value('gpus', s.gpus)}: this Docker engine has no GPU runtime (its runtimes: "
                    f"{', '.join(runtimes) or 'none'}; no 'nvidia'); leave out --gpus, or ask the admin for an "
                    "engine with the NVIDIA container toolkit",
                    step="check GPUs",
                    field="gpus",
                )
        if s.image is None or s.pull_policy is None:
            raise BackendError("the image is not resolved", step="check image")
        if s.build is not None:
            self.ensure_built(spec, progress)
        else:
            self.ensure_image(s.image, s.pull_policy, spec, progress)

    def check_image(self, spec: SessionSpec) -> ImageCheck:
        """The dry run's answer to "is the image there?" (raises the create's error when it is not)."""
        from .images import STEP as CHECK_IMAGE
        from .images import ImageCheck, in_registry

        s = spec.settings
        image = str(s.image)
        if s.build is not None:
            if self.image_present(image):
                return ImageCheck(image, "built", detail=f"built already from {s.build.describe()}: create reuses it")
            return ImageCheck(
                image, "build", detail=f"create builds it from {s.build.describe()} at commit {spec.base_commit[:12]}"
            )
        if s.pull_policy is not PullPolicy.ALWAYS:
            if self.image_present(image):
                return ImageCheck(image, "local", self._image_ids.peek(image), "create uses it")
            if s.pull_policy is PullPolicy.NEVER:
                raise BackendError(
                    f"image {image} is not present locally and the pull policy is never", step=CHECK_IMAGE
                )
        if spec.registry_refusal:
            return ImageCheck(image, "unchecked", detail=f"not allowed: {spec.registry_refusal}")
        if s.registry_check is False:
            return ImageCheck(
                image,
                "unchecked",
                detail="not present locally; not checked in its registry (registry_check = false); create pulls it",
            )
        found = in_registry(image, s.registry_auth)
        return ImageCheck(image, "registry", found.digest, "create pulls it")

    def _auth_config(self, spec: SessionSpec) -> dict[str, Any] | None:
        from ..model.image import parse_image, same_registry  # list and show never parse an image

        auth = spec.settings.registry_auth
        if auth is None:
            return None  # docker-py uses the engine user's `docker login` credentials
        ref = parse_image(spec.settings.image)
        if not same_registry(auth.registry, ref.registry):
            return None  # credentials for another registry: the engine user's `docker login` applies
        from .registry import select_credentials

        creds = select_credentials(ref.registry, auth.config_file, auth.registry)
        return creds.engine_auth() if creds else None

    def image_present(self, image: str) -> bool:
        import docker

        try:
            info = self.client.api.inspect_image(image)  # type: ignore[no-untyped-call]
            self._image_config.put(image, info.get("Config") or {})
            self._image_ids.put(image, str(info.get("Id") or ""))
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as exc:
            raise BackendError(_explain(exc), step=f"inspect image {image}") from None

    def ensure_image(self, image: str, policy: PullPolicy, spec: SessionSpec, progress: ProgressCallback) -> None:
        """Apply the pull policy: always pull, pull when missing, or require it locally."""
        if policy is not PullPolicy.ALWAYS and self.image_present(image):
            progress(ProgressEvent("pull", f"image {image} is present locally"))
            return
        if policy is PullPolicy.NEVER:
            raise BackendError(f"image {image} is not present locally and the pull policy is never", step="check image")
        if spec.registry_refusal:
            raise PolicyError(spec.registry_refusal, field="image")
        if spec.settings.registry_check is not False:  # a clear line now instead of a failed pull later
            from .images import in_registry

            progress(ProgressEvent("check", f"checking {image} in its registry"))
            in_registry(image, spec.settings.registry_auth)
        self.pull(image, spec, progress)

    # --- builds -------------------------------------------------------------

    def ensure_built(self, spec: SessionSpec, progress: ProgressCallback) -> None:
        """Build the session image from the repository, unless an image of that hash exists already."""
        s = spec.settings
        assert s.build is not None
        assert s.image is not None
        if self.image_present(s.image):
            progress(ProgressEvent("build", f"image {s.image} is built already (unchanged {s.build.dockerfile_path})"))
            return
        self.build(spec, s.build, s.image, s.network, progress)

    def build(
        self, spec: SessionSpec, build: BuildConfig, tag: str, network: str | None, progress: ProgressCallback
    ) -> str:
        """``docker build`` of the committed context at the session's base commit; streams each output
        line as progress and returns the image id. A failed step is one line with the build's last output."""
        from .buildctx import context_tar, dockerfile_in_context

        step = f"build image from {build.dockerfile_path}"
        progress(ProgressEvent("build", f"building {tag} from {build.describe()}"))
        last: list[str] = []
        image_id = ""
        with context_tar(spec.repo_root, spec.base_commit, build) as context:
            stream = self._api(
                step,
                self.client.api.build,
                fileobj=context,
                custom_context=True,
                tag=tag,
                dockerfile=dockerfile_in_context(build),
                buildargs=dict(build.args) or None,
                target=build.target,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode=network,
                labels={f"{LABEL_PREFIX}build": "true"},
            )

            def with_output(detail: str) -> str:
                return detail + (f"; last output: {' | '.join(last[-3:])}" if last else "")

            for event in _events(stream, step, field="build", explain=with_output):
                aux = event.get("aux") or {}
                image_id = str(aux.get("ID") or image_id)
                for line in str(event.get("stream") or "").splitlines():
                    if line.strip():
                        last.append(line.strip())
                        progress(ProgressEvent("build", line.strip(), detail=True))
        if not self.image_present(tag):
            raise BackendError(f"the build finished without an image {tag}", step=step, field="build")
        return image_id or self._image_ids.peek(tag) or ""

    def push(self, tag: str, progress: ProgressCallback) -> str:
        """Push ``tag`` with the ``docker login`` credentials of its registry; returns its digest."""
        from ..model.image import parse_image

        ref = parse_image(tag)
        step = f"push image {tag}"
        from .registry import select_credentials

        creds = select_credentials(ref.registry)
        progress(ProgressEvent("build", f"pushing {tag}"))
        stream = self._api(
            step,
            self.client.api.push,
            ref.name,
            tag=ref.tag,
            stream=True,
            decode=True,
            auth_config=creds.engine_auth() if creds else None,
        )
        digest = None
        for event in _events(stream, step, field="build"):
            digest = (event.get("aux") or {}).get("Digest") or digest
            if event.get("status") and event.get("id"):
                progress(ProgressEvent("build", f"{event['id']}: {event['status']}", detail=True))
        if not digest:
            raise BackendError("the registry sent no digest for the pushed image", step=step)
        return str(digest)

    def pull(self, image: str, spec: SessionSpec, progress: ProgressCallback) -> None:
        from ..model.image import parse_image

        ref = parse_image(image)
        step = f"pull image {image}"
        auth = self._auth_config(spec)
        progress(ProgressEvent("pull", f"pulling {image}"))
        stream = self._api(
            step, self.client.api.pull, ref.name, tag=ref.pull_tag, stream=True, decode=True, auth_config=auth
        )
        for event in _events(stream, step):
            detail = event.get("progressDetail") or {}
            progress(
                ProgressEvent(
                    "pull",
                    str(event.get("status", "")),
                    layer=event.get("id"),
                    current=detail.get("current"),
                    total=detail.get("total"),
                    detail=True,
                )
            )

    def plan_runtime(self, spec: SessionSpec) -> dict[str, Any]:
        """What a create will make, recorded before it is made (write-ahead)."""
        return {"container": spec.object_name}

    def create(
        self,
        spec: SessionSpec,
        secrets: Mapping[str, str],
        progress: ProgressCallback,
        *,
        wait: bool = True,
        workspace: Workspace | None = None,
    ) -> tuple[str, dict[str, Any]]:
        import docker

        from ..render.docker import render_docker

        kwargs = render_docker(spec, secrets)
        progress(ProgressEvent("create", f"creating container {spec.object_name}"))
        api = self.client.api
        try:
            # What containers.create does, without its extra inspect of the new container.
            created = api.create_container(**create_container_args(api, kwargs))
        except docker.errors.DockerException as exc:
            raise BackendError(_explain(exc), step="create container") from None
        cid = str(created["Id"])
        self.changed(spec.owner)
        try:  # from here on, any failure or interrupt removes the container again
            uid, gid = self._agent_ids(cid, spec)
            in_workspace = not spec.command[0].startswith("/") and "/" in spec.command[0]
            if not in_workspace:  # while the workspace is still being made
                self._check_command(cid, spec)
            if workspace is not None and not workspace.ready(uid, gid):
                self.hand_over(workspace.path, uid, gid, str(spec.settings.image))
            self._check_workspace(cid, spec)
            if in_workspace:
                self._check_command(cid, spec)
            progress(ProgressEvent("start", f"starting container {spec.object_name}"))
            try:
                api.start(cid)
                self.changed(spec.owner)
            except docker.errors.DockerException as exc:
                raise BackendError(_explain(exc), step="start container") from None
            if spec.settings.post_create_command and wait:
                self._wait_post_create(cid, spec, progress)
        except BaseException:
            self._remove(cid, spec.owner)
            raise
        return cid, {"container": spec.object_name, "uid": uid, "gid": gid}

    def _agent_ids(self, cid: str, spec: SessionSpec) -> tuple[int, int]:
        """The uid and gid the container runs as: the spec's, or a devcontainer's named user looked up in
        the image's /etc/passwd (read as data from the created container). Root only where allowed."""
        user = spec.settings.container_user
        if not user or re.fullmatch(r"[0-9]+(:[0-9]+)?", user):
            return spec.uid, spec.gid
        name, _, group = user.partition(":")
        found = _passwd_entry(self._read_small_file(cid, "/etc/passwd", "check user"), name)
        if found is None:
            raise BackendError(
                f"containerUser {name!r} is not in image {spec.settings.image}'s /etc/passwd; use a user the "
                "image has, or a numeric uid",
                step="check user",
                field="image",
            )
        uid, gid = found
        if group.isdigit():
            gid = int(group)
        if uid == 0 and not spec.root_allowed:
            raise PolicyError(
                f"containerUser {name!r} is uid 0 (root) in image {spec.settings.image}; a session's container "
                "runs as a non-root uid unless the admin policy says allow_root = true",
                field="image",
            )
        return uid, gid

    def _read_small_file(self, cid: str, path: str, step: str) -> bytes:
        """A small regular file of the container's filesystem, read through the engine (never followed
        on this host); empty when it is missing or not a regular file."""
        import io
        import tarfile

        import docker

        try:
            stream, _ = self.client.api.get_archive(cid, path)
            data = b"".join(stream)
        except docker.errors.NotFound:
            return b""
        except docker.errors.DockerException as exc:
            raise BackendError(_explain(exc), step=step) from None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            if member is None or not member.isfile() or member.size > 1024 * 1024:
                return b""
            handle = tar.extractfile(member)
            return handle.read() if handle else b""

    def hand_over(self, path: Path, uid: int, gid: int, image: str) -> None:
        """Give a fresh workspace to the agent's uid when this process may not chown (a service that does
        not run as root): a throwaway container of the session's image, with only CHOWN, does it."""
        script = f'chown -R "$1" {WORKSPACE} 2>/dev/null || busybox chown -R "$1" {WORKSPACE}'
        command = ["sh", "-c", script, "clauderon-helper", f"{uid}:{gid}"]
        self._helper(image, path, command, "0:0", ["CHOWN"], "prepare workspace")

    def clear_workspace(self, path: Path, uid: int, image: str) -> None:
        """Empty a workspace this process may not (the agent's files, another uid's): a throwaway container
        running as the agent's uid removes them inside the sandbox."""
        script = (
            f"chmod -R u+rwX {WORKSPACE} 2>/dev/null || busybox chmod -R u+rwX {WORKSPACE} 2>/dev/null; "
            f"rm -rf {WORKSPACE}/* {WORKSPACE}/.[!.]* {WORKSPACE}/..?*"
        )
        self._helper(image, path, ["sh", "-c", script], f"{uid}:{uid}", [], "remove workspace")

    def _helper(self, image: str, path: Path, command: list[str], user: str, caps: list[str], step: str) -> None:
        api = self.client.api
        host = api.create_host_config(
            binds={str(path): {"bind": WORKSPACE, "mode": "rw"}},
            network_mode="none",
            cap_drop=["ALL"],
            cap_add=caps or None,
            security_opt=["no-new-privileges:true"],
            pids_limit=64,
        )
        created = self._api(
            step,
            api.create_container,
            image,
            command=command,
            user=user,
            host_config=host,
            labels={f"{LABEL_PREFIX}managed": "helper"},
        )
        cid = str(created["Id"])
        try:
            self._api(step, api.start, cid)
            result = self._api(step, api.wait, cid, timeout=300)
            if (result or {}).get("StatusCode") != 0:
                raise BackendError(
                    f"a helper container of image {image} failed (exit code {(result or {}).get('StatusCode')}); "
                    "the image needs sh, chown, chmod and rm",
                    step=step,
                )
        finally:
            self._remove(cid, listed=False)  # a helper: never part of a listing

    def _wait_post_create(self, cid: str, spec: SessionSpec, progress: ProgressCallback) -> None:
        """Wait for the devcontainer's postCreateCommand: done (the agent starts) or failed (the create
        fails with its output's last lines)."""

        from ..render.spec import POST_CREATE_DONE, post_create_script

        step = "postCreateCommand"
        progress(ProgressEvent("start", f"running postCreateCommand: {post_create_script(spec)}"))
        deadline = time.monotonic() + POST_CREATE_TIMEOUT
        delay = 0.05
        while time.monotonic() < deadline:
            if self._exists_in(cid, POST_CREATE_DONE, step):
                return
            state = self._api(step, self.client.api.inspect_container, cid).get("State") or {}
            if not state.get("Running"):
                logs = self._api(step, self.client.api.logs, cid, tail=6)
                lines = [ln.strip() for ln in bytes(logs or b"").decode(errors="replace").splitlines() if ln.strip()]
                lines = [ln for ln in lines if not ln.startswith("clauderon: postCreateCommand")]
                raise BackendError(
                    f"{post_create_script(spec)!r} failed (exit code {state.get('ExitCode')}); last output: "
                    + (" | ".join(lines[-3:]) or "none"),
                    step=step,
                    field="image",
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise BackendError(f"did not finish within {POST_CREATE_TIMEOUT:.0f} s", step=step)

    def _exists_in(self, cid: str, path: str, step: str) -> bool:
        """Whether ``path`` exists in the (created) container's filesystem, mounts included: the engine API's
        ``HEAD /containers/{id}/archive`` (a stat, no tar), with docker-py's public session, URL and version."""
        api = self.client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{cid}/archive"
        response = self._api(step, api.head, url, params={"path": path})
        return bool(response.status_code == 200)

    def _check_workspace(self, cid: str, spec: SessionSpec) -> None:
        """Fail before start when the engine does not see the workspace (it bind-mounts paths of its own
        host: with the socket of another machine or container, /workspace would be an empty folder)."""
        if self._exists_in(cid, f"{WORKSPACE}/.git/HEAD", "check workspace"):
            return
        raise BackendError(
            "/workspace in the container is empty: the Docker engine does not see the session's workspace folder "
            "on its own host (the engine runs elsewhere than this notebook, e.g. DockerSpawner with the socket "
            "mounted); set CLAUDERON_HOME and the repository to paths that exist alike on both sides",
            step="check workspace",
        )

    def _check_command(self, cid: str, spec: SessionSpec) -> None:
        """Fail before start when the agent's executable is not in the container's filesystem.

        With ``init=True`` a missing command would only fail inside docker-init after
        start; asking the engine for the file's stat finds it first, in a few ms.
        """
        if spec.settings.post_create_command and not self._exists_in(cid, "/bin/sh", "check agent"):
            raise BackendError(
                f"image {spec.settings.image} has no /bin/sh, which the devcontainer's postCreateCommand needs",
                step="check agent",
            )
        program = spec.command[0]
        if "/" in program:
            candidates = [program if program.startswith("/") else f"{WORKSPACE}/{program}"]
        else:
            env = dict(e.split("=", 1) for e in self._image_env(spec) if "=" in e)
            path = spec.settings.extra_env.get("PATH") or env.get("PATH") or DEFAULT_PATH
            candidates = [f"{d.rstrip('/')}/{program}" for d in path.split(":") if d.startswith("/")]
        for candidate in candidates:
            if self._exists_in(cid, candidate, "check agent"):
                return
        image = spec.settings.image
        raise BackendError(
            f"agent command {program!r} is not in image {image} (looked in {', '.join(candidates)}); "
            f"use an image that has it, or set [agents.{spec.settings.agent}] command in config.toml",
            step="check agent",
        )

    def _image_env(self, spec: SessionSpec) -> list[str]:
        image = str(spec.settings.image)
        config = self._image_config.get(
            image, lambda: self._api("inspect image", self.client.api.inspect_image, image).get("Config") or {}
        )
        return list(config.get("Env") or [])

    # --- lifecycle ----------------------------------------------------------

    def _remove(self, container_id: str, owner: str | None = None, *, listed: bool = True) -> None:
        import docker

        if listed:
            self.changed(owner)
        try:
            self.client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            if "already in progress" not in _explain(exc):
                raise BackendError(_explain(exc), step="remove container") from None

    def containers(self, session: Session) -> list[dict[str, Any]]:
        """The session's containers, found by its labels (never by a stored id alone: the store is
        untrusted, and an interrupted create may not have recorded one)."""
        rows = self._list([f"{LABEL_PREFIX}session-id={session.id}", f"{LABEL_PREFIX}managed=true"], "find container")
        mine = owner_labels(session.owner)
        return [r for r in rows if (r.get("Labels") or {}).get(f"{LABEL_PREFIX}owner") in mine]

    def remove(self, session: Session) -> None:
        for row in self.containers(session):
            self._remove(str(row["Id"]), session.owner)

    def start(self, session: Session, spec: SessionSpec | None = None) -> dict[str, Any]:
        rows = self.containers(session)
        if not rows:
            raise BackendError(
                f"container {session.runtime.get('container')} no longer exists; delete the session and create "
                "it again",
                step="start container",
            )
        self.changed(session.owner)
        self._api("start container", self.client.api.start, str(rows[0]["Id"]))
        self.changed(session.owner)
        return {**session.runtime, "container": (rows[0].get("Names") or ["/"])[0].lstrip("/")}

    def stop(self, session: Session) -> None:
        self.changed(session.owner)
        for row in self.containers(session):
            if row.get("State") in ("running", "restarting", "paused"):
                self._api("stop container", self.client.api.stop, str(row["Id"]), timeout=10)
        self.changed(session.owner)

    def _list(self, labels: list[str], step: str) -> list[dict[str, Any]]:
        """``GET /containers/json`` for containers carrying every label: straight to the engine's unix socket
        with the standard library (``list`` stays light, and it is the quickest call there is), else (a
        tcp or ssh engine) through docker-py."""
        socket = docker_socket()
        if socket is not None:
            import json

            params = {"all": "1", "filters": json.dumps({"label": labels})}
            return list(get_json(socket, "/containers/json", params, step))
        return list(self._api(step, self.client.api.containers, all=True, filters={"label": labels}))

    def _managed(self, deployment: str = "", owner: str | None = None) -> list[dict[str, Any]]:
        """Every managed container (of ``deployment``), in one engine call. On a busy service one answer
        serves every request of the next ``survey_seconds``, then a little longer while a fresh one is asked
        for in the background, so no list waits on a busy engine; but never for an ``owner`` whose sessions
        were changed here since (``owner`` None: since any change)."""
        started, early = self._early.pop(deployment, (0.0, None))
        if early is not None and time.monotonic() - started < EARLY_SURVEY_SECONDS:
            return early.result()  # asked for while the caller read its records
        if self.survey_seconds <= 0:
            return self._managed_now(deployment)
        kept = self._surveyed.peek(deployment)
        if kept is not None:
            asked, rows = kept
            every = self._changed_at.values()
            changed = self._changed_at.get(owner, 0.0) if owner is not None else max(every, default=0.0)
            changed = max(changed, self._changed_at.get(None, 0.0))
            age = time.monotonic() - asked
            if asked > changed and age < self.survey_seconds:
                return list(rows)
            if asked > changed and age < self.survey_seconds * STALE_SURVEYS:
                self._refresh(deployment)
                return list(rows)
        return self._ask(deployment)

    def _ask(self, deployment: str) -> list[dict[str, Any]]:
        asked = time.monotonic()  # before the call: a change made while it runs is newer than its answer
        rows = self._managed_now(deployment)
        with self._survey_lock:
            kept = self._surveyed.peek(deployment)
            if kept is None or kept[0] < asked:
                self._surveyed.put(deployment, (asked, rows))
        return rows

    def _refresh(self, deployment: str) -> None:
        """Ask the engine for a fresh listing in a thread of its own (one at a time per deployment)."""
        with self._survey_lock:
            if deployment in self._refreshing:
                return
            self._refreshing.add(deployment)

        def run() -> None:
            try:
                self._ask(deployment)
            except Exception:  # noqa: BLE001 - the next list asks again, and says what went wrong
                pass
            finally:
                with self._survey_lock:
                    self._refreshing.discard(deployment)

        threading.Thread(target=run, name="clauderon-survey-refresh", daemon=True).start()

    def _managed_now(self, deployment: str) -> list[dict[str, Any]]:
        labels = [f"{LABEL_PREFIX}managed=true"]
        if deployment:  # only this deployment's containers: another one's on this engine are not ours
            labels.append(f"{LABEL_PREFIX}deployment={deployment}")
        return self._list(labels, "list containers")

    def survey_early(self, deployment: str = "") -> None:
        """Start the next ``survey``'s engine call now, in a thread: the engine answers while the caller
        reads its records (the call is I/O, the reading is CPU). The next ``survey`` takes its answer."""
        if self.survey_seconds > 0:
            return  # a cached listing is quicker still
        self._early[deployment] = (time.monotonic(), _Early(lambda: self._managed_now(deployment)))

    def changed(self, owner: str | None = None) -> None:
        """Something of ``owner``'s (None: of anyone) was made, started, stopped or removed here: their next
        listing asks the engine (other owners' listings are not affected: their containers did not change)."""
        self._changed_at[owner] = time.monotonic()
        self._early.clear()

    def observe(self, sessions: list[Session]) -> dict[str, Observed]:
        """One ``GET /containers/json`` with the managed label, for every session at once."""
        return self._observe(sessions, self._managed())

    def survey(
        self, sessions: list[Session], known_ids: set[str], owner: str | None, deployment: str = ""
    ) -> tuple[dict[str, Observed], list[Session]]:
        """``observe`` and ``orphans`` from one engine call."""
        rows = self._managed(deployment, owner)
        return self._observe(sessions, rows), self._orphans(rows, known_ids, owner)

    def _observe(self, sessions: list[Session], rows: list[dict[str, Any]]) -> dict[str, Observed]:
        labels_of: dict[str, frozenset[str]] = {}
        wanted = {s.id: labels_of.setdefault(s.owner, owner_labels(s.owner)) for s in sessions}
        out: dict[str, Observed] = {}
        for row in rows:
            labels = row.get("Labels") or {}
            sid = labels.get(f"{LABEL_PREFIX}session-id")
            if sid in wanted and labels.get(f"{LABEL_PREFIX}owner") in wanted[sid]:
                out[sid] = _observed(row.get("State", ""), row.get("Status", ""))
        return out

    def _orphans(self, rows: list[dict[str, Any]], known_ids: set[str], owner: str | None) -> list[Session]:
        """Containers with our labels and no record (a store deleted or damaged): shown so they can be removed."""
        out: list[Session] = []
        mine = owner_labels(owner) if owner is not None else None
        for row in rows:
            labels = row.get("Labels") or {}
            sid = labels.get(f"{LABEL_PREFIX}session-id")
            name = labels.get(f"{LABEL_PREFIX}session-name", "")
            if not sid or sid in known_ids or labels.get(f"{LABEL_PREFIX}backend") != "docker":
                continue
            if mine is not None and labels.get(f"{LABEL_PREFIX}owner") not in mine:
                continue
            observed = _observed(row.get("State", ""), row.get("Status", ""))
            out.append(orphan_session(sid, name, labels, "docker", row.get("Image", ""), observed, row.get("Created")))
        return out

    def logs(self, session: Session, tail: int | None, follow: bool) -> str | Follow:
        import docker

        rows = self.containers(session)
        if not rows:
            raise BackendError(f"container {session.runtime.get('container')} no longer exists", step="logs")
        cid = str(rows[0]["Id"])
        lines: Literal["all"] | int = tail if tail is not None else "all"
        try:
            if follow:
                stream = self.client.api.logs(cid, stream=True, follow=True, tail=lines)
                return Follow(stream, stream.close)
            data = self.client.api.logs(cid, tail=lines)
        except docker.errors.NotFound:
            raise BackendError(f"container {session.runtime.get('container')} no longer exists", step="logs") from None
        except docker.errors.DockerException as exc:
            raise BackendError(_explain(exc), step="logs") from None
        return bytes(data).decode(errors="replace").replace("\r\n", "\n")  # a TTY writes CRLF

    def changes(self, session: Session, base: str, limit: int = 8 * 1024 * 1024) -> str:
        """The workspace against ``base`` as git's diff text — committed, uncommitted and untracked — read by
        git inside the session's running container as its agent: the host never runs git in the workspace.
        At most ``limit`` bytes are read (the parser bounds what is shown)."""
        from ..model.git_ids import is_commit_hash

        if not is_commit_hash(base):
            raise BackendError(f"session {session.name!r} has no valid base commit recorded", step="diff")
        rows = self.containers(session)
        if not rows or rows[0].get("State") != "running":
            raise BackendError(
                f"session {session.name!r} is not running: its changes are read inside its container; start it",
                step="diff",
            )
        script = (
            f'cd {WORKSPACE} && git -c core.quotePath=false diff --find-renames --binary "$1" -- . ; '
            "git ls-files -z --others --exclude-standard | "
            "xargs -0 -r -n1 git -c core.quotePath=false diff --no-index --binary -- /dev/null ; true"
        )
        uid = session.agent_uid()
        api = self.client.api
        exec_id = self._api(
            "diff", api.exec_create, rows[0]["Id"], ["sh", "-c", script, "clauderon-diff", base], user=f"{uid}:{uid}"
        )
        out = bytearray()
        for chunk in self._api("diff", api.exec_start, exec_id, stream=True):
            out += chunk
            if len(out) > limit:
                break
        return bytes(out[:limit]).decode("utf-8", errors="replace")

    def local_images(self, limit: int = 200) -> list[str]:
        """Tags of the images the engine has (suggestions for an image field)."""
        rows = self._api("list images", self.client.api.images)
        tags = [t for row in rows or [] for t in (row.get("RepoTags") or []) if t and t != "<none>:<none>"]
        return sorted(tags)[:limit]

    def activity(self, session: Session) -> str | None:
        """Changes whenever the agent uses CPU or writes output: its CPU time and its last log line's time."""
        rows = [r for r in self.containers(session) if r.get("State") == "running"]
        if not rows:
            return None
        cid = str(rows[0]["Id"])
        stats = self._api("read container stats", self.client.api.stats, cid, stream=False, one_shot=True)
        used = ((stats or {}).get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage")
        cpu = used // 100_000_000 if isinstance(used, int) else None  # tenths of a CPU second: not the noise
        last = self._api("read logs", self.client.api.logs, cid, tail=1, timestamps=True)
        stamp = bytes(last or b"").split(b" ", 1)[0].decode(errors="replace")
        return f"{cpu}:{stamp}"

    def attach_command(self, session: Session) -> str:
        host = os.environ.get("DOCKER_HOST")
        prefix = f"docker -H {shlex.quote(redact_url(host))}" if host else "docker"
        container = session.runtime.get("container") or object_name(session.name, session.owner)
        return f"{prefix} attach {shlex.quote(str(container))}"


def _passwd_entry(passwd: bytes, name: str) -> tuple[int, int] | None:
    """(uid, gid) of ``name`` in an /etc/passwd file's bytes."""
    for line in passwd.decode("utf-8", errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] == name and parts[2].isdigit() and parts[3].isdigit():
            return int(parts[2]), int(parts[3])
    return None


def _observed(state: str, status: str) -> Observed:
    if state in ("running", "restarting", "paused"):
        return Observed(Status.RUNNING)
    if state in ("exited", "dead"):
        match = _EXIT.search(status)
        code = int(match.group(1)) if match else None
        if code in (0, None) and state == "exited":
            return Observed(Status.STOPPED, None)
        return Observed(Status.FAILED, f"container exited with code {code}" if code is not None else "container died")
    if state == "created":
        return Observed(Status.STOPPED, "container was created but never started")
    return Observed(Status.FAILED, f"container is {state or 'in an unknown state'}")


def create_container_args(api: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``render_docker``'s ``containers.create`` arguments as the engine API's create call takes them
    (container fields, and a host config made by docker-py's public ``create_host_config``)."""
    from ..model.extra_config import DOCKER_CONTAINER_KEYS, DOCKER_HOST_KEYS

    unknown = set(kwargs) - DOCKER_HOST_KEYS - DOCKER_CONTAINER_KEYS
    if unknown:
        raise BackendError(f"cannot pass {', '.join(sorted(unknown))} to the Docker engine", step="create container")
    volumes: dict[str, dict[str, str]] = kwargs.get("volumes") or {}
    host = {k: v for k, v in kwargs.items() if k in DOCKER_HOST_KEYS}
    config = {k: v for k, v in kwargs.items() if k in DOCKER_CONTAINER_KEYS and k != "volumes"}
    return {
        **config,
        "volumes": [mount["bind"] for mount in volumes.values()],
        "host_config": api.create_host_config(binds=volumes, **host),
    }


class _Early:
    """A call running in a thread of its own; ``result()`` waits for it (and raises what it raised)."""

    def __init__(self, call: Callable[[], list[dict[str, Any]]]) -> None:
        import threading

        self._value: list[dict[str, Any]] = []
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as exc:  # noqa: BLE001 - raised again by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="clauderon-survey", daemon=True)
        self._thread.start()

    def result(self) -> list[dict[str, Any]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

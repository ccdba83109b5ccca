"""Planning a session: resolve a request against the config files and policy, build the spec,
render it for its backend. Creates nothing; everything ``plan``, ``create`` and ``options`` share.

The manager imports this only when a command plans, so ``list``, ``show`` and ``logs`` never load
pydantic or the resolver.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..backends.buildctx import build_tag
from ..config.agents import AgentEnv, agent_command, agent_env, all_agents, find_agent
from ..config.devcontainer import Devcontainer, load_devcontainer
from ..config.files import (
    Loaded,
    RepoConfig,
    agents_of,
    load_repo_config,
    load_system_config,
    load_user_config,
    presets_of,
)
from ..config.policy import AdminPolicy, load_policy
from ..config.presets import all_presets, describe, offered, options_of
from ..config.resolve import Resolution, ResolvedSettings, resolve
from ..config.trust import trust_refusal
from ..errors import ClauderonError, ConfigError, PolicyError
from ..model.answers import Options
from ..model.choices import Backend
from ..model.display import show_value
from ..model.git_ids import is_commit_hash
from ..model.image import is_built_image
from ..model.limits import MAX_ARG_BYTES
from ..model.naming import owner_folder, stable_name, workspace_root
from ..model.pull_policy import PullPolicy
from ..model.redact import SECRET_MASK, is_env_name, redact_url
from ..model.request import CreateSessionRequest
from ..model.session import Session
from ..render.plan import Plan
from ..render.spec import SessionSpec, build_spec
from ..repos.gitrepo import RepoInfo, inspect_repo_cached, is_local_remote, remote_url_cached
from .deployment import deployment_id

DEFAULT_AGENT_UID = 1000  # the agent's uid when none is configured and the caller is root (or the service)


@dataclass(frozen=True)
class Planner:
    """What planning needs to know about the caller: home, owner and the front end's defaults."""

    home: Path
    owner: str
    defaults: dict[str, Any]
    defaults_origin: str
    shared: bool = False  # the hub's service: per-owner folders, no local processes, no repository file
    workspace_url: str | None = None  # the service's URL as pods reach it (Kubernetes sessions fetch from it)
    groups: tuple[str, ...] = ()  # the owner's hub groups: the policy's [groups.X] sections apply

    def resolve(self, request: CreateSessionRequest, repo: RepoInfo | None = None) -> Resolution:
        """Resolved settings with sources, reading config files and policy; creates nothing."""
        repo = repo or inspect_repo_cached(request.repo)
        policy = load_policy().for_user(self.owner, self.groups)
        if self.shared and request.backend is Backend.LOCAL:
            where = policy.files[0].where if policy.files else "the clauderon service"
            raise PolicyError(
                f"backend 'local' is not allowed by {where}: the service runs agents only in containers or pods; "
                "choose --backend docker or kubernetes",
                field="backend",
            )
        return resolve(
            request,
            load_user_config(self.home),
            # On the service the client has already applied its repository's file; the bundle's copy is not read.
            Loaded(None, RepoConfig()) if self.shared else load_repo_config(repo.root),
            policy,
            engine_present=(lambda: True) if self.shared else None,
            owner=self.owner,
            frontend=self.defaults,
            frontend_origin=self.defaults_origin,
            system=load_system_config(),
            devcontainer=Devcontainer() if self.shared else load_devcontainer(repo.root),
            groups=self.groups if self.shared else None,
            # On the service a plan may come before the repository is uploaded: its build is then "pending".
            build_tag=lambda build, backend, registry: build_tag(
                repo.root,
                repo.commit,
                build,
                registry,
                pending_ok=self.shared,
                owner_part=owner_folder(self.owner) if self.shared else None,
            ),
        )

    def workspaces(self, owner: str) -> Path:
        """Where ``owner``'s session workspaces live: one folder per owner on the shared service."""
        return workspace_root(self.home, owner, self.shared)

    def plan(
        self,
        request: CreateSessionRequest,
        name: str | None = None,
        repo: RepoInfo | None = None,
        credentials: Mapping[str, str] | None = None,
        remote: str | None = None,
    ) -> Plan:
        """The dry run of ``create``; ``name`` None: the one the prompt gives (what create will use).

        ``repo``: the workspace the service made from a client's bundle (default: ``request.repo``).
        ``credentials``: on the service, the values a client sent (None: a dry run, names only).
        ``remote``: on the service, the client repository's remote (a pod clones it)."""
        repo = repo or inspect_repo_cached(request.repo)
        res = self.resolve(request, repo)
        settings = res.settings
        if name is None:
            name = request.name or stable_name(request.prompt, f"{self.owner}\0{repo.root}\0{repo.commit}")
        if self.shared:
            given = agent_env(settings.agent, res.agent_config, credentials, names_only=credentials is None)
        else:
            given = agent_env(settings.agent, res.agent_config)
        forwarded = given.required + given.optional_present  # the admin's service_env is not the user's to forward
        load_policy().for_user(self.owner, self.groups).check_pass_env(settings.agent, forwarded)
        notes = list(res.notes)
        if settings.backend is Backend.KUBERNETES and settings.gpus == -1:
            raise ConfigError(
                f"gpus 'all' ({res.origins.get('gpus')}): Kubernetes schedules a number of GPUs; ask for a number",
                field="gpus",
            )
        if self.shared and settings.build is None and is_built_image(str(settings.image)):
            raise PolicyError(
                f"image {settings.image} ({res.origins.get('image')}): images built by clauderon are used through "
                "their build (--build, or [build] in .clauderon.toml), never named: they hold their owner's "
                "repository",
                field="image",
            )
        uid, gid = self._agent_ids(res.settings, res.origins)
        url = None
        session_id = str(uuid.uuid4())
        fetch_from = None
        if settings.backend is Backend.KUBERNETES and self.shared:
            url = settings.git_remote_url or (remote if remote and not is_local_remote(remote) else None)
            if url is None:  # no remote to clone: the pod fetches the sent workspace from the service
                if not self.workspace_url:
                    raise ConfigError(
                        "backend kubernetes: the repository has no remote a pod could clone, and the service "
                        "was started without --workspace-url (its address as pods reach it); push the "
                        "repository to a git server, or ask the admin",
                        field="repo",
                    )
                fetch_from = f"{self.workspace_url.rstrip('/')}/api/v1/workspaces/{session_id}"
        elif settings.backend is Backend.KUBERNETES:
            url = settings.git_remote_url or remote_url_cached(repo)
            if not url:
                raise ConfigError(
                    f"repo '{repo.root}': the kubernetes backend clones the repository's remote, and it has none; "
                    "add a remote (git remote add origin URL) or set git_remote_url in k8s-config.toml",
                    field="repo",
                )
            if is_local_remote(url):
                raise ConfigError(
                    f"repo '{repo.root}': its remote {redact_url(url)!r} is a path on this machine, which a pod "
                    "cannot clone; push to a git server and use that remote, or set git_remote_url in k8s-config.toml",
                    field="repo",
                )
        spec = build_spec(
            session_id=session_id,
            name=name,
            owner=self.owner,
            prompt=request.prompt,
            settings=settings,
            agent_command=agent_command(res.agent_config, has_terminal=settings.backend is not Backend.LOCAL),
            credentials=given,
            env_from_secret=res.agent_config.env_from_secret,
            repo_root=repo.root,
            base_branch=repo.branch,
            base_commit=repo.commit,
            workspace=self.workspaces(self.owner) / name,
            remote_url=url,
            workspace_url=fetch_from,
            uid=uid,
            gid=gid,
            root_allowed=load_policy().for_user(self.owner, self.groups).allows_root(),
            deployment=deployment_id(self.home, create=False),
        )
        spec = self._modified(spec)
        settings = spec.settings
        if self.shared and settings.image and settings.build is None:
            spec = replace(spec, registry_refusal=registry_refusal(settings.image, self.owner, self.groups))
        check_arguments(spec)
        trust_note = trust_refusal(self.home, repo.root, res, secret_env=spec.secret_env)
        if trust_note:
            notes.append(trust_note)
        native = render_native(spec)
        if settings.backend is Backend.KUBERNETES and (settings.extra_pod_config or settings.extra_container_config):
            from ..backends.kubernetes import check_schemas

            key = "extra_pod_config" if settings.extra_pod_config else "extra_container_config"
            check_schemas(native, f"{key} ({res.origins.get(key)})")
        return Plan(
            session_spec=spec,
            settings=settings,
            sources=res.sources,
            origins=res.origins,
            spec=native,
            notes=tuple(notes),
            needs_trust=bool(trust_note),
        )

    def _modified(self, spec: SessionSpec) -> SessionSpec:
        """The spec as the admin's ``modify_spec_hook`` returns it (config.toml), checked again: the hook may
        change settings, the command and environment names, never what identifies the session or its uid,
        and its result must pass the policy (its extra configuration too)."""
        ref = (
            load_user_config(self.home).general.data.modify_spec_hook
            or load_system_config().general.data.modify_spec_hook
        )
        if not ref:
            return spec
        import importlib

        where = f"modify_spec_hook {ref}"
        module, _, function = ref.partition(":")
        try:
            hook = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{where}: cannot load it ({type(exc).__name__}: {exc})") from None
        try:
            out = hook(spec)
        except ClauderonError:
            raise
        except Exception as exc:  # noqa: BLE001 - the admin's code: its failure is one line naming it
            raise ConfigError(f"{where} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None
        if out is None:
            return spec
        if not isinstance(out, SessionSpec):
            raise ConfigError(
                f"{where} returned a {type(out).__name__}; expected the SessionSpec it was given, changed"
            )
        for field_name in _HOOK_FIXED:
            if getattr(out, field_name) != getattr(spec, field_name):
                raise PolicyError(
                    f"{where} changed {field_name}: a hook may change the settings and the command, not what "
                    "identifies the session or the uid it runs as"
                )
        changed = out.settings
        values = {k: getattr(changed, k) for k in changed.__dataclass_fields__}
        load_policy().for_user(self.owner, self.groups).check(values, {k: where for k in values})
        return out

    def _agent_ids(self, settings: ResolvedSettings, origins: Mapping[str, str]) -> tuple[int, int]:
        """The uid and gid the agent runs as in its container: a devcontainer's numeric containerUser, else
        ``run_as_user``, else (on your own machine, when you are not root) yours, else 1000. Never root
        unless the policy allows it; on the service never the service's own uid."""
        if settings.backend is Backend.LOCAL:
            return os.getuid(), os.getgid()  # a local process is you: there is no container
        user = settings.container_user
        where = origins.get("container_user") or origins.get("run_as_user") or "built-in default"
        policy = load_policy().for_user(self.owner, self.groups)
        numeric = re.fullmatch(r"([0-9]{1,10})(?::([0-9]{1,10}))?", user or "")
        if user and not numeric:
            if settings.backend is Backend.KUBERNETES:
                raise ConfigError(
                    f"container_user {user!r} ({where}): a Kubernetes pod runs as a numeric uid; use one "
                    "(e.g. 1000) in containerUser",
                    field="image",
                )
            if user.split(":")[0] == "root" and not policy.allows_root():
                raise policy.root_refusal(f"container_user 'root' ({where})")
            # A name is looked up in the image's /etc/passwd when the container is made (root is refused there).
            uid = gid = DEFAULT_AGENT_UID
        elif numeric:
            uid, gid = int(numeric[1]), int(numeric[2] or numeric[1])
        elif settings.run_as_user is not None:
            uid = gid = settings.run_as_user
            where = origins.get("run_as_user") or where
        elif settings.backend is Backend.DOCKER and not self.shared and os.getuid() != 0:
            uid, gid = os.getuid(), os.getgid()
        else:
            uid = gid = DEFAULT_AGENT_UID
        if uid == 0 and not policy.allows_root():
            raise policy.root_refusal(f"uid 0 ({where})")
        if self.shared and settings.backend is Backend.DOCKER and uid == os.getuid():
            raise PolicyError(
                f"run_as_user {uid} ({where}) is the clauderon service's own uid: an agent must never run as "
                "the service; set another run_as_user in the service's docker-config.toml or k8s-config.toml",
                field="image",
            )
        return uid, gid

    def respec(self, session: Session) -> SessionSpec:
        """A stored Kubernetes session's spec made again, to render its pod on ``start``: the settings are
        parsed again (the store is untrusted), the command comes from the agent table again, the uid is
        derived again under today's policy. Raises ``StoreError``-like ``ConfigError`` for a damaged record."""
        render = session.runtime.get("render")
        if not isinstance(render, dict):
            raise ConfigError(f"session {session.name!r} was made by an earlier version; delete it and create it again")
        given = render.get("container_env")
        env_values: dict[Any, Any] = given if isinstance(given, dict) else {}
        try:
            settings = ResolvedSettings.from_json(session.settings, {str(k): str(v) for k, v in env_values.items()})
        except ValueError as exc:
            raise ConfigError(f"session {session.name!r}: its stored settings are damaged ({exc}); delete it") from None
        agents = agents_of(load_system_config(), load_user_config(self.home))
        config = find_agent(session.agent, all_agents(agents), source="stored session")
        names = render.get("secret_env")
        secret_env = tuple(n for n in names if is_env_name(n)) if isinstance(names, list) else ()
        base = session.runtime.get("base_commit")
        branch = render.get("base_branch")
        if not is_commit_hash(base):
            raise ConfigError(f"session {session.name!r}: its stored base commit is damaged; delete it")
        if not isinstance(branch, str) or not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch):
            branch = "HEAD"
        remote = render.get("remote_url") if isinstance(render.get("remote_url"), str) else None
        fetch = bool(render.get("fetch")) and self.workspace_url
        uid, gid = self._agent_ids(settings, {"container_user": "stored session", "run_as_user": "stored session"})
        spec = build_spec(
            session_id=session.id,
            name=session.name,
            owner=session.owner,
            prompt=session.prompt,
            settings=settings,
            agent_command=agent_command(config, has_terminal=True),
            credentials=AgentEnv(required=(), optional_present=()),
            env_from_secret=config.env_from_secret,
            repo_root=Path("-"),
            base_branch=branch,
            base_commit=base,
            workspace=Path("/workspace"),
            remote_url=remote or None,
            workspace_url=f"{str(self.workspace_url).rstrip('/')}/api/v1/workspaces/{session.id}" if fetch else None,
            uid=uid,
            gid=gid,
            root_allowed=load_policy().for_user(self.owner, self.groups).allows_root(),
            remote_in_secret=bool(render.get("remote_in_secret")),
            deployment=deployment_id(self.home, create=False),
        )
        # The admin's hook runs on every render of the pod, as at create (and its result is checked again).
        return self._modified(replace(spec, secret_env=secret_env))

    def options(self, recent_sessions: list[Session]) -> Options:
        """Choices and bounds for a form: agents, presets, and what the admin policy allows."""
        user, system = load_user_config(self.home), load_system_config()
        policy = load_policy().for_user(self.owner, self.groups)
        backends = [b.value for b in Backend if policy.allows("allowed_backends", b)]
        pulls = [p.value for p in PullPolicy if policy.allows("allowed_pull_policies", p)]
        found = policy.first("allowed_images")
        globs = list(found[0]) if found else []
        presets = offered(all_presets(presets_of(system, user)), self.groups if self.shared else None)
        recent: list[str] = []
        for s in reversed(recent_sessions):
            image = s.settings.get("image")
            if isinstance(image, str) and image not in recent:
                recent.append(image)
        return Options(
            agents=sorted(a for a in all_agents(agents_of(system, user)) if policy.allows("allowed_agents", a)),
            presets={k: describe(v) for k, v in presets.items()},
            preset_options={k: options_of(v) for k, v in presets.items() if v.profile_options},
            backends=backends,
            pull_policies=pulls,
            allowed_images=globs,
            images=policy.literal_images() + recent[:10],
            max_cpu=policy.max_cpu(),
            max_memory=policy.max_memory(),
            bounds=policy_bounds(policy),
        )


#: What a modify_spec_hook may not change.
_HOOK_FIXED = (
    "session_id",
    "name",
    "owner",
    "labels",
    "repo_root",
    "base_commit",
    "branch",
    "workspace",
    "workspace_url",
    "uid",
    "gid",
    "root_allowed",
    "service_env",
)

_BOUND_SHOWN_AS = {
    "max_cpu": "cpu_limit",
    "max_total_cpu": "cpu_limit",
    "max_memory": "memory_limit",
    "max_total_memory": "memory_limit",
    "max_workspace_size": "workspace_size",
    "max_upload_size": "memory_limit",
}


def policy_bounds(policy: AdminPolicy) -> list[tuple[str, str, str]]:
    """The policy's maxima, quotas and lifetimes for one user, as (key, value, where) rows."""
    from ..config.policy import PolicyRules
    from ..model.units import human_duration

    rows = []
    for key in PolicyRules.model_fields:
        if not key.startswith("max_") and key not in ("idle_timeout", "delete_stopped_after"):
            continue
        found = policy.limit(key)
        if found is None:
            continue
        value, where = found
        if key in _BOUND_SHOWN_AS:
            shown = show_value(_BOUND_SHOWN_AS[key], value)
        elif key in ("max_lifetime", "idle_timeout", "delete_stopped_after"):
            shown = human_duration(value)
        else:
            shown = str(value)
        rows.append((key, shown, where))
    images = policy.first("allowed_images")
    if images is not None:
        rows.append(("allowed_images", ", ".join(images[0]) or "none", images[1].where_for("allowed_images")))
    return rows


def registry_refusal(image: str, owner: str, groups: tuple[str, ...]) -> str | None:
    """Why the service may not contact ``image``'s registry for this user (None: it may): it contacts only
    registries and repositories the caller's ``allowed_images`` names, never a host a user picks."""
    from ..model.image import parse_image

    ref = parse_image(image)
    policy = load_policy().for_user(owner, groups)
    if policy.names_registry(ref.registry, ref.repository):
        return None
    found = policy.first("allowed_images")
    where = f"allowed_images: {', '.join(found[0]) or 'none'}" if found else "the admin policy names no registry"
    return (
        f"image {image} is not on the service's engine, and the service pulls only from registries its policy "
        f"allows images from ({where}); ask the admin, or use an image the engine has"
    )


def check_arguments(spec: SessionSpec) -> None:
    """Every argument and environment string must fit what Linux passes to a process (measured)."""
    for part in [*spec.command, *(f"{k}={v}" for k, v in spec.env.items())]:
        size = len(part.encode("utf-8", errors="surrogatepass"))
        if size >= MAX_ARG_BYTES:
            raise ConfigError(
                f"prompt: the agent's command would carry an argument of {size} bytes, more than the "
                f"{MAX_ARG_BYTES - 1} Linux allows; shorten the prompt",
                field="prompt",
            )


def render_native(spec: SessionSpec) -> Any:
    """The backend-native form of ``spec`` with secrets masked."""
    backend = spec.settings.backend
    if backend is Backend.DOCKER:
        from ..render.docker import render_docker

        return render_docker(spec)
    if backend is Backend.KUBERNETES:
        from ..render.kubernetes import render_kubernetes

        return render_kubernetes(spec)
    return {
        "argv": list(spec.command),
        "cwd": str(spec.workspace),
        "env": {**spec.env, **{n: SECRET_MASK for n in spec.secret_env}},
    }

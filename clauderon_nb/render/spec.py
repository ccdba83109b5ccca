"""The backend-neutral description of one session, built from resolved settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.naming import LABEL_PREFIX, label_safe, object_name
from ..model.redact import has_credentials

if TYPE_CHECKING:  # the backends import this module to read a spec; only planning builds one
    from ..config.agents import AgentEnv
    from ..config.resolve import ResolvedSettings


@dataclass(frozen=True)
class SessionSpec:
    """Everything a renderer needs; secret values are not here, only their names."""

    session_id: str
    name: str
    owner: str
    prompt: str
    settings: ResolvedSettings
    command: list[str]
    env: dict[str, str]  # not secret: CLAUDERON_PROMPT and CLAUDERON_SESSION_ID
    secret_env: tuple[str, ...]  # names only: pass_env credentials and extra_env, values given at create
    labels: dict[str, str]
    repo_root: Path  # where the workspace is made from: the user's repository, or the service's copy of it
    base_branch: str
    base_commit: str
    branch: str
    workspace: Path  # the session's own checkout and git directory (Docker, local); the agent writes in it
    env_from_secret: str | None = None
    remote_url: str | None = field(default=None, repr=False)  # may carry credentials
    #: Kubernetes from the service without a remote: the init container fetches the workspace here,
    #: once, with the one-time token from the session's Secret.
    workspace_url: str | None = None
    service_env: tuple[str, ...] = ()  # the admin's credentials: from the creating process, never from a user
    uid: int = 1000  # the agent's uid and gid in the container (never 0 unless the policy allows root)
    gid: int = 1000
    root_allowed: bool = False  # the policy's allow_root (a devcontainer's named user may turn out to be root)
    remote_in_secret: bool = False  # the remote URL holds credentials: the pod reads it from the Secret
    #: On the service: why it may not contact the image's registry (its policy names no such registry), else None.
    registry_refusal: str | None = None

    @property
    def object_name(self) -> str:
        """Container or pod name (carries a hash of the owner: no collision across users)."""
        return object_name(self.name, self.owner)


#: A devcontainer's postCreateCommand runs before the agent; this file says it finished.
POST_CREATE_DONE = "/tmp/.clauderon-post-create-done"
POST_CREATE_ENV = "CLAUDERON_POST_CREATE"
# The container exits with the command's own code when it fails (the agent never starts).
_POST_CREATE_SCRIPT = (
    'echo "clauderon: postCreateCommand: $CLAUDERON_POST_CREATE"; '
    '/bin/sh -c "$CLAUDERON_POST_CREATE"; code=$?; '
    'if [ "$code" -ne 0 ]; then echo "clauderon: postCreateCommand failed"; exit "$code"; fi; '
    f': > {POST_CREATE_DONE}; exec "$@"'
)


def post_create_script(spec: SessionSpec) -> str | None:
    """The postCreateCommand as one shell command line, or None."""
    post = spec.settings.post_create_command
    if not post:
        return None
    import shlex

    return post[2] if post[:2] == ["/bin/sh", "-c"] and len(post) == 3 else shlex.join(post)


def container_command(spec: SessionSpec) -> list[str]:
    """The container's argv: the agent's command, after the postCreateCommand when there is one."""
    if not spec.settings.post_create_command:
        return list(spec.command)
    return ["/bin/sh", "-c", _POST_CREATE_SCRIPT, "clauderon-agent", *spec.command]


def container_environment(spec: SessionSpec) -> dict[str, str]:
    """Plain (not secret) variables: a devcontainer's containerEnv, then clauderon's own."""
    env = dict(spec.settings.container_env or {})
    script = post_create_script(spec)
    if script:
        env[POST_CREATE_ENV] = script
    return {**env, **spec.env}


def session_labels(
    session_id: str, name: str, owner: str, backend: str, agent: str, deployment: str = ""
) -> dict[str, str]:
    """The labels every backend object carries so it can be found again (and by whom: ``deployment``)."""
    return {
        f"{LABEL_PREFIX}managed": "true",
        **({f"{LABEL_PREFIX}deployment": deployment} if deployment else {}),
        f"{LABEL_PREFIX}session-id": session_id,
        f"{LABEL_PREFIX}session-name": name,
        f"{LABEL_PREFIX}owner": label_safe(owner),
        f"{LABEL_PREFIX}backend": backend,
        f"{LABEL_PREFIX}agent": label_safe(agent),
    }


def agent_environment(session_id: str, prompt: str) -> dict[str, str]:
    """The variables clauderon always sets; ``extra_env`` values count as secrets (``secret_names``)."""
    return {"CLAUDERON_PROMPT": prompt, "CLAUDERON_SESSION_ID": session_id}


def secret_names(settings: ResolvedSettings, credentials: AgentEnv) -> tuple[str, ...]:
    """Every variable whose value is kept out of specs, plans and the store."""
    names = [n for n in settings.extra_env if n not in agent_environment("", "")]
    return tuple(dict.fromkeys([*names, *credentials.names]))


def build_spec(
    *,
    session_id: str,
    name: str,
    owner: str,
    prompt: str,
    settings: ResolvedSettings,
    agent_command: list[str],
    credentials: AgentEnv,
    env_from_secret: str | None,
    repo_root: Path,
    base_branch: str,
    base_commit: str,
    workspace: Path,
    remote_url: str | None,
    uid: int,
    workspace_url: str | None = None,
    gid: int,
    root_allowed: bool = False,
    remote_in_secret: bool = False,
    deployment: str = "",
) -> SessionSpec:
    from ..config.agents import render_command

    return SessionSpec(
        session_id=session_id,
        name=name,
        owner=owner,
        prompt=prompt,
        settings=settings,
        command=render_command(agent_command, prompt),
        env=agent_environment(session_id, prompt),
        secret_env=secret_names(settings, credentials),
        labels=session_labels(session_id, name, owner, settings.backend.value, settings.agent, deployment),
        repo_root=repo_root,
        base_branch=base_branch,
        base_commit=base_commit,
        branch=f"clauderon/{name}",
        workspace=workspace,
        env_from_secret=env_from_secret,
        remote_url=remote_url,
        workspace_url=workspace_url,
        service_env=credentials.from_service,
        uid=uid,
        gid=gid,
        root_allowed=root_allowed,
        remote_in_secret=remote_in_secret or bool(remote_url and has_credentials(remote_url)),
    )

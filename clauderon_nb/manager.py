"""``SessionManager``: the one place every entry point calls."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from .agents import agent_env
from .config_files import clauderon_home, load_repo_config, load_user_config
from .errors import ConfigError
from .fields import Backend
from .gitrepo import inspect_repo, remote_url
from .naming import current_owner, name_from_prompt
from .plan import Plan
from .policy import load_policy
from .request import CreateSessionRequest
from .resolve import Resolution, resolve
from .spec import SessionSpec, build_spec


class SessionManager:
    """Plans and manages agent sessions under one ``CLAUDERON_HOME``."""

    def __init__(self, home: str | os.PathLike[str] | None = None, *, owner: str | None = None) -> None:
        self.home: Path = clauderon_home(home)
        self.owner: str = owner or current_owner()

    def __repr__(self) -> str:
        return f"SessionManager(home={str(self.home)!r}, owner={self.owner!r})"

    def resolve(self, request: CreateSessionRequest) -> Resolution:
        """Resolved settings with sources, reading config files and policy; creates nothing."""
        repo = inspect_repo(request.repo)
        return resolve(request, load_user_config(self.home), load_repo_config(repo.root), load_policy())

    def plan(self, request: CreateSessionRequest | None = None, **fields: Any) -> Plan:
        """A dry run of ``create``: resolved settings, their sources and the backend-native spec.

        Pass a ``CreateSessionRequest`` or its fields as keywords. Creates nothing,
        reads no secret values (they show as ``***``).
        """
        if request is None:
            request = CreateSessionRequest(**fields)
        elif fields:
            raise TypeError("pass a CreateSessionRequest or keyword fields, not both")
        repo = inspect_repo(request.repo)
        res = resolve(request, load_user_config(self.home), load_repo_config(repo.root), load_policy())
        settings = res.settings
        credentials = agent_env(settings.agent, res.agent_config)
        url = None
        if settings.backend is Backend.KUBERNETES:
            url = settings.git_remote_url or remote_url(repo)
            if not url:
                raise ConfigError(
                    f"repo '{repo.root}': the kubernetes backend clones the repository's remote, and it has none; "
                    "add a remote (git remote add origin URL) or set git_remote_url in k8s-config.toml"
                )
        name = request.name or name_from_prompt(request.prompt)
        spec = build_spec(
            session_id=str(uuid.uuid4()),
            name=name,
            owner=self.owner,
            prompt=request.prompt,
            settings=settings,
            agent_command=res.agent_config.command,
            credentials=credentials,
            env_from_secret=res.agent_config.env_from_secret,
            repo_root=repo.root,
            git_common_dir=repo.common_dir,
            base_branch=repo.branch,
            base_commit=repo.commit,
            home=self.home,
            remote_url=url,
            uid=os.getuid(),
            gid=os.getgid(),
        )
        return Plan(
            session_spec=spec, settings=settings, sources=res.sources, origins=res.origins, spec=render_native(spec)
        )


def render_native(spec: SessionSpec) -> Any:
    """The backend-native form of ``spec`` with secrets masked."""
    backend = spec.settings.backend
    if backend is Backend.DOCKER:
        from .render_docker import render_docker

        return render_docker(spec)
    if backend is Backend.KUBERNETES:
        from .render_kubernetes import render_kubernetes

        return render_kubernetes(spec)
    return {
        "argv": list(spec.command),
        "cwd": str(spec.worktree),
        "env": {**spec.env, **{n: "***" for n in spec.secret_env}},
    }

"""``clauderon-nb serve --init DIR``: a commented data folder an admin starts from, that works offline.

It holds the admin policy (``policy.toml``), the service's defaults (``config.toml``: a default backend and
agent) and the Docker defaults (``docker-config.toml``: an image the engine has, never pulled, no network).
Every file says what each key does; nothing is written over an existing file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

POLICY = """\
# The admin policy of the clauderon service: users cannot change it; the service checks every request
# against it. Every key: docs/configuration.md ("policy.toml"). Written by clauderon-nb serve --init.

allowed_backends = ["docker"]           # sessions run in containers on this host's engine
allowed_images = [{image}]              # the images users may run (full-match globs); the service pulls
                                        # and checks images only from registries named here
allowed_networks = ["none"]             # no network for sessions; add "bridge" to let agents reach APIs
max_cpu = "2"                           # per session
max_memory = "4g"
max_sessions = 5                        # per user, running and stopped
max_running_sessions = 2
max_upload_size = "512m"                # a repository sent to the service
max_workspace_size = "5g"               # a session's checkout
max_repo_storage = "10g"                # one user's repository copies, together
delete_stopped_after = "7d"             # stopped sessions are deleted after a week (a branch with commits is kept)
# allow_builds = true                   # let users build images from their repository's Dockerfile
# allowed_agents = ["echo", "claude"]
# admins = ["hub-admin"]                # see and act on every user's sessions
"""

CONFIG = """\
# The clauderon service's defaults for every user (a user's own choices come with each request).
# Every key: docs/configuration.md ("config.toml"). Written by clauderon-nb serve --init.

default_backend = "docker"
default_agent = "echo"                  # prints the prompt: works with no AI agent installed and no network

# An AI agent: its command must be in the image, and its credentials come from the users' environment
# (pass_env) or from the service's own (service_env, set in c.JupyterHub.services[...]["environment"]).
# [agents.claude]
# command = ["claude", "--dangerously-skip-permissions", "{{prompt}}"]
# service_env = ["ANTHROPIC_API_KEY"]
"""

DOCKER = """\
# Docker defaults of the clauderon service. Every key: docs/configuration.md ("docker-config.toml").
# Written by clauderon-nb serve --init.

network = "none"                        # as the policy allows
run_as_user = 1000                      # the agents' uid in their containers (never the service's own)

[image]
image = "{image}"
pull_policy = "never"                   # the engine has it: nothing is pulled (an offline hub works)
registry_check = false                  # no registry request before a create
"""


def init_data_dir(folder: Path, image: str | None) -> list[Path]:
    """Write the three files into ``folder`` (made if missing); returns what was written. ``image``: the
    sessions' default image, else one the local Docker engine has."""
    from ..model.image import parse_image

    chosen = image or _local_image()
    try:
        canonical = str(parse_image(chosen, "--image"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = {
        "policy.toml": POLICY.format(image=f'"{canonical}"'),
        "config.toml": CONFIG.format(),
        "docker-config.toml": DOCKER.format(image=canonical),
    }
    there = [name for name in files if (folder / name).exists()]
    if there:
        raise ConfigError(f"serve --init {folder}: {there[0]} exists already; nothing was written over it")
    written = []
    for name, text in files.items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


def _local_image() -> str:
    """A tag the local engine has (the first in name order), for a hub with no registry to pull from."""
    from ..backends.docker import DockerBackend

    try:
        tags = DockerBackend().local_images()
    except Exception as exc:  # noqa: BLE001 - no engine: say what to do instead
        raise ConfigError(f"serve --init: give --image IMAGE (no Docker engine to pick one from: {exc})") from None
    if not tags:
        raise ConfigError("serve --init: the Docker engine has no images; pull or build one, or give --image IMAGE")
    return tags[0]

"""Images: the fast image check, the registry browser, builds from the repository and devcontainer.json.

Against the real engine, the real local registry with htpasswd, and a bearer-token front for it
(tests/registrykit.py): the flow Docker Hub and GHCR use.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import BackendError, SessionManager
from clauderon_nb.backends import registry as registry_module
from clauderon_nb.backends.registry import Credentials, RegistryClient, RegistryError
from clauderon_nb.errors import ConfigError, PolicyError
from clauderon_nb.image import parse_image

from . import dockerkit, registrykit
from .conftest import git, made_by
from .test_cli import cli

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def pushed(kit: dockerkit.Kit, registry: dockerkit.Registry, image: str) -> dict[str, str]:
    """Two repositories with tags in the password-protected registry."""
    refs = {
        "tools:1": kit.push(image, registry, "tools", "1"),
        "tools:2": kit.push(image, registry, "tools", "2"),
        "base:latest": kit.push(image, registry, "base", "latest"),
    }
    return refs


@pytest.fixture
def token_registry(registry: dockerkit.Registry) -> Iterator[registrykit.TokenFront]:
    with registrykit.token_front(registry) as front:
        yield front


@pytest.fixture
def login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dockerkit.Registry], Path]:
    """``docker login`` for a registry: a config.json in $DOCKER_CONFIG (as the docker CLI writes it)."""

    def _login(reg: dockerkit.Registry, password: str | None = None) -> Path:
        directory = tmp_path / "docker-config"
        path = directory / "config.json"
        entries = json.loads(path.read_text())["auths"] if path.exists() else {}
        made = reg.config_json(tmp_path / "one-login", password)
        entries.update(json.loads(made.read_text())["auths"])
        directory.mkdir(exist_ok=True)
        path.write_text(json.dumps({"auths": entries}))
        monkeypatch.setenv("DOCKER_CONFIG", str(directory))
        return path

    return _login


def repository_of(ref: str) -> tuple[str, str]:
    host, rest = ref.split("/", 1)
    return host, rest.rsplit(":", 1)[0]


def leftovers(docker_client: Any, home: Path) -> list[str]:
    containers = made_by(docker_client, home)
    worktrees = list((home / "workspaces").glob("*")) if (home / "workspaces").exists() else []
    records = SessionManager().list() if (home / "sessions.sqlite").exists() else []
    return [*(c["Id"] for c in containers), *map(str, worktrees), *(s.name for s in records)]


# --- the registry client: basic auth and the bearer-token flow -------------------------------------


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_registry_client_finds_and_sorts_what_is_missing(
    auth: str, pushed: dict[str, str], registry: dockerkit.Registry
) -> None:
    _, repository = repository_of(pushed["tools:1"])
    with registrykit.token_front(registry) as front:
        reg = registry if auth == "basic" else front.registry()
        client = RegistryClient(reg.host, Credentials(reg.user, reg.password, "test"))
        found = client.manifest(repository, "1")
        assert found.digest.startswith("sha256:")
        assert sorted(client.tags(repository)) == ["1", "2"]
        assert repository in client.catalog()
        info = client.tag_info(repository, "2")
        assert info.digest == found.digest and info.size and info.size > 1000 and info.created
        kinds = {}
        for name, call in {
            "tag": lambda: client.manifest(repository, "9"),
            "repository": lambda: client.manifest("nobody/nothing", "1"),
            "denied": lambda: RegistryClient(reg.host, Credentials(reg.user, "wrong", "test")).manifest(
                repository, "1"
            ),
            "anonymous": lambda: RegistryClient(reg.host).manifest(repository, "1"),
            "unreachable": lambda: RegistryClient(f"127.0.0.1:{dockerkit.free_port()}").manifest(repository, "1"),
        }.items():
            with pytest.raises(RegistryError) as err:
                call()
            kinds[name] = err.value.kind
            assert "wrong" not in str(err.value) and reg.password not in str(err.value)
            assert "\n" not in str(err.value)
        assert kinds == {
            "tag": "tag",
            "repository": "repository",
            "denied": "denied",
            "anonymous": "denied",
            "unreachable": "unreachable",
        }
        if auth == "token":
            assert f"repository:{repository}:pull" in front.token_requests
            assert "registry:catalog:*" in front.token_requests


# --- the image check before a create -----------------------------------------------------------------


def _check_on(home: Path, extra: str = "") -> None:
    (home / "docker-config.toml").write_text(f'network = "none"\n[image]\nregistry_check = true\n{extra}')


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_four_image_errors_are_one_line_each_and_leave_nothing(
    auth: str,
    dhome: Path,
    repo: Path,
    pushed: dict[str, str],
    registry: dockerkit.Registry,
    login: Callable[..., Path],
    docker_client: Any,
) -> None:
    _check_on(dhome)
    with registrykit.token_front(registry) as front:
        reg = registry if auth == "basic" else front.registry()
        _, repository = repository_of(pushed["tools:1"])
        login(reg)
        base = ["create", "--repo", str(repo), "--prompt", "x", "--agent", "echo", "--pull-policy", "always"]
        cases = {
            "tag": (f"{reg.host}/{repository}:9", f"tag '9' not found in {reg.host}/{repository} (its tags: 1, 2)"),
            "repository": (f"{reg.host}/nobody/nothing:1", "repository 'nobody/nothing' not found"),
            "unreachable": (f"127.0.0.1:{dockerkit.free_port()}/x/y:1", "is unreachable (connection refused)"),
        }
        for kind, (image, text) in cases.items():
            out = cli(*base, "--image", image)
            assert out.returncode == 1, (kind, out.stdout)
            line = out.stderr.strip()
            assert line.startswith(f"error: check image: image {image}: ") and text in line, (kind, line)
            assert "\n" not in line
        login(reg, password="not-the-password")
        out = cli(*base, "--image", f"{reg.host}/{repository}:1")
        assert out.returncode == 1
        assert "refused the credentials of user" in out.stderr and "not-the-password" not in out.stderr
        assert f"image {reg.host}/{repository}:1" in out.stderr
    assert leftovers(docker_client, dhome) == []


def test_dry_run_reports_the_digest_and_the_check_can_be_turned_off(
    dhome: Path, repo: Path, pushed: dict[str, str], registry: dockerkit.Registry, login: Callable[..., Path]
) -> None:
    login(registry)
    _check_on(dhome)
    digest = RegistryClient(registry.host, Credentials(registry.user, registry.password, "t")).manifest(
        *repository_of(pushed["tools:2"])[1:], "2"
    )
    out = cli(
        "create",
        "--repo",
        str(repo),
        "--prompt",
        "x",
        "--image",
        pushed["tools:2"],
        "--pull-policy",
        "always",
        "--dry-run",
    )
    assert out.returncode == 0, out.stderr
    assert f"  image: found in registry, digest {digest.digest}; create pulls it" in out.stdout
    # The engine's own copy answers for if-not-present.
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--image", pushed["tools:1"], "--dry-run")
    assert "  image: present locally, image id sha256:" in out.stdout
    # Offline, with the check on: the dry run still shows the whole plan, the check's finding one line of it.
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--image", "127.0.0.1:9/x/y:1", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Plan: docker session") and "docker containers.create arguments:" in out.stdout
    assert (
        "  image: would fail: check image: image 127.0.0.1:9/x/y:1: registry 127.0.0.1:9 is unreachable" in out.stdout
    )
    # Air-gapped: the check is off, said so, and nothing is asked of the registry.
    (dhome / "docker-config.toml").write_text('network = "none"\n[image]\nregistry_check = false\n')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--image", "127.0.0.1:1/x/y:1", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "not checked in its registry (registry_check = false); create pulls it" in out.stdout
    assert re.search(r"\n  registry_check +off +\(user: ", out.stdout), out.stdout


def test_never_and_if_not_present_ask_the_engine_first(dhome: Path, repo: Path, image: str) -> None:
    _check_on(dhome)
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", image=image, pull_policy="never", check_image=True)
    assert plan.image_check and plan.image_check.startswith("present locally")
    # A dry run shows the plan whatever the check finds: the finding is a line of it; the create refuses.
    plan = mgr.plan(repo=str(repo), prompt="x", image=f"{image}-gone", pull_policy="never", check_image=True)
    assert plan.image_check == (
        f"would fail: check image: image docker.io/{image}-gone is not present locally and the pull policy is never"
    )
    with pytest.raises(BackendError, match="is not present locally and the pull policy is never"):
        mgr.create(repo=str(repo), prompt="x", image=f"{image}-gone", pull_policy="never", agent="echo")


# --- the browser ------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_images_lists_repositories_and_tags_marked_by_the_policy(
    auth: str,
    home: Path,
    pushed: dict[str, str],
    registry: dockerkit.Registry,
    login: Callable[..., Path],
    tmp_path: Path,
) -> None:
    with registrykit.token_front(registry) as front:
        reg = registry if auth == "basic" else front.registry()
        login(reg)
        _, repository = repository_of(pushed["tools:1"])
        policy = tmp_path / "policy.toml"
        policy.write_text(f'allowed_images = ["{reg.host}/{repository}:1"]\n')
        env = {"CLAUDERON_POLICY": str(policy)}
        out = cli("images", reg.host, env=env)
        assert out.returncode == 0, out.stderr
        assert f"Repositories in {reg.host}:" in out.stdout
        assert f"{reg.host}/{repository} " in out.stdout + " "
        out = cli("images", f"{reg.host}/{repository}", "--json", env=env)
        assert out.returncode == 0, out.stderr
        rows = {r["name"]: r for r in json.loads(out.stdout)["rows"]}
        assert set(rows) == {f"{reg.host}/{repository}:1", f"{reg.host}/{repository}:2"}
        one = rows[f"{reg.host}/{repository}:1"]
        assert one["digest"].startswith("sha256:") and one["size"] > 1000 and one["created"]
        assert one["allowed"] is True and rows[f"{reg.host}/{repository}:2"]["allowed"] is False
        text = cli("images", f"{reg.host}/{repository}", env=env).stdout
        assert "not allowed" in text and "allowed_images:" in text
        out = cli("images", f"{reg.host}/nobody/nothing", env=env)
        assert out.returncode == 1 and "repository 'nobody/nothing' not found" in out.stderr


def test_images_overview_and_suggestions(
    dhome: Path, pushed: dict[str, str], registry: dockerkit.Registry, login: Callable[..., Path], image: str
) -> None:
    login(registry)
    _, repository = repository_of(pushed["tools:1"])
    mgr = SessionManager()
    listing = mgr.images()
    names = [r.name for r in listing.rows if r.kind == "local"]
    assert any(n.endswith(image.split("/", 1)[1]) for n in names)
    assert all(r.allowed is None for r in listing.rows)  # no policy: nothing to mark
    found = mgr.image_suggestions(f"{registry.host}/{repository}:")
    assert f"{registry.host}/{repository}:1" in found and f"{registry.host}/{repository}:2" in found
    assert image in found  # as the engine names it, as a user types it


# --- builds -----------------------------------------------------------------------------------------


def _dockerfile_repo(repo: Path, base: str, extra: str = "") -> None:
    (repo / "docker").mkdir(exist_ok=True)
    (repo / "docker" / "Dockerfile").write_text(
        f'FROM {base} AS base\nARG GREETING=hello\nRUN echo "$GREETING" > /greeting\n{extra}'
        "FROM base AS dev\nRUN echo dev > /stage\n"
    )
    (repo / ".clauderon.toml").write_text(
        '[build]\ncontext = "."\ndockerfile = "docker/Dockerfile"\ntarget = "dev"\nargs = { GREETING = "built" }\n'
    )
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "dockerfile", cwd=repo)


def _exec(docker_client: Any, container: str, *cmd: str) -> str:
    run = docker_client.api.exec_create(container, list(cmd))
    return bytes(docker_client.api.exec_start(run["Id"])).decode().strip()


def test_build_from_the_repository_is_tagged_by_hash_and_never_rebuilt(
    dhome: Path, repo: Path, image: str, docker_client: Any, kit: dockerkit.Kit
) -> None:
    _dockerfile_repo(repo, image)
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", agent="echo", check_image=True)
    assert plan.settings.image.startswith("localhost/clauderon-build/repo:")
    assert plan.sources["build"] == "repo" and plan.sources["image"] == "repo"
    assert plan.image_check and plan.image_check.startswith("create builds it from docker/Dockerfile")
    kit.images.add(plan.settings.image)
    events: list[Any] = []
    first = mgr.create(repo=str(repo), prompt="x", agent="echo", name="b1", progress=events.append)
    try:
        assert first.settings["image"] == plan.settings.image
        built = [e.message for e in events if e.step == "build"]
        assert any("Step" in m for m in built), built  # the build's own output, streamed
        container = first.runtime["container"]
        assert _exec(docker_client, container, "cat", "/greeting") == "built"
        assert _exec(docker_client, container, "cat", "/stage") == "dev"
        events.clear()
        second = mgr.create(repo=str(repo), prompt="x", agent="echo", name="b2", progress=events.append)
        assert second.settings["image"] == first.settings["image"]
        assert [e.message for e in events if e.step == "build"] == [
            f"image {first.settings['image']} is built already (unchanged docker/Dockerfile)"
        ]
        # --image above the repository's build; a changed Dockerfile, a new tag.
        assert mgr.plan(repo=str(repo), prompt="x", image=image).settings.build is None
        (repo / "docker" / "Dockerfile").write_text((repo / "docker" / "Dockerfile").read_text() + "\n")
        git("commit", "-qam", "change", cwd=repo)
        assert mgr.plan(repo=str(repo), prompt="x").settings.image != first.settings["image"]
    finally:
        for name in ("b1", "b2"):
            mgr.delete(name)


def test_a_failed_build_is_one_line_and_leaves_nothing(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    _dockerfile_repo(repo, image, extra="RUN echo about to fail && exit 7\n")
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--agent", "echo")
    assert out.returncode == 1
    line = out.stderr.strip()
    assert "\n" not in line and line.startswith("error: build image from docker/Dockerfile: ")
    assert "returned a non-zero code: 7" in line and "about to fail" in line
    assert leftovers(docker_client, dhome) == []


def test_build_flag_and_a_dockerfile_that_is_not_committed(dhome: Path, repo: Path, image: str) -> None:
    (repo / "Dockerfile").write_text(f"FROM {image}\n")
    mgr = SessionManager()
    with pytest.raises(ConfigError, match=r"build.dockerfile 'Dockerfile': no such file in the repository at commit"):
        mgr.plan(repo=str(repo), prompt="x", build=True)
    git("add", "Dockerfile", cwd=repo)
    git("commit", "-qm", "df", cwd=repo)
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--build", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert re.search(r"\n  build +Dockerfile \(context \.\) +\(session\)", out.stdout), out.stdout
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--build", "../Dockerfile")
    assert out.returncode == 2 and "build.dockerfile '../Dockerfile': points outside the repository" in out.stderr
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--build", "--image", image)
    assert out.returncode == 2 and "give one; a build makes the session's image" in out.stderr


def test_policy_refuses_builds_unless_allowed_and_checks_built_images(
    dhome: Path, repo: Path, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dockerfile_repo(repo, image)
    policy = tmp_path / "policy.toml"
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    policy.write_text('max_cpu = "2"\n')
    mgr = SessionManager()
    with pytest.raises(PolicyError, match=r"image builds are off \(allow_builds = true turns them on\)") as err:
        mgr.plan(repo=str(repo), prompt="x")
    assert err.value.field == "build"
    policy.write_text('allow_builds = true\nallowed_images = ["ghcr.io/team/*"]\n')
    with pytest.raises(PolicyError, match=r"image 'localhost/clauderon-build/repo:[0-9a-f]{16}' \(built from docker/"):
        mgr.plan(repo=str(repo), prompt="x")
    policy.write_text('allow_builds = true\nallowed_images = ["localhost/clauderon-build/*"]\n')
    assert mgr.plan(repo=str(repo), prompt="x").settings.build is not None


# --- devcontainer.json ------------------------------------------------------------------------------

DEVCONTAINER = """// A dev container, as VS Code and Codespaces read it
{
  "name": "demo",
  "build": {
    "dockerfile": "Dockerfile",   // next to this file
    "context": "..",
    "args": { "FLAVOUR": "dev", },
  },
  "containerEnv": { "FROM_DEVCONTAINER": "yes", "EDITOR": "vi" },
  "containerUser": "4321:4321",
  /* run before the agent */
  "postCreateCommand": "echo prepared > /tmp/post-create && echo post-create-ran",
  "features": { "ghcr.io/devcontainers/features/node:1": {} },
  "mounts": ["source=x,target=/x,type=volume"],
  "runArgs": ["--privileged"],
  "customizations": { "vscode": { "extensions": ["ms-python.python"] } },
}
"""


def _devcontainer_repo(repo: Path, base: str, text: str = DEVCONTAINER) -> None:
    (repo / ".devcontainer").mkdir(exist_ok=True)
    (repo / ".devcontainer" / "Dockerfile").write_text(f"FROM {base}\nARG FLAVOUR\nRUN echo $FLAVOUR > /flavour\n")
    (repo / ".devcontainer" / "devcontainer.json").write_text(text)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "devcontainer", cwd=repo)


def test_devcontainer_build_env_user_and_post_create_reach_the_container(
    dhome: Path, repo: Path, image: str, docker_client: Any, kit: dockerkit.Kit
) -> None:
    _devcontainer_repo(repo, image)
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--agent", "echo", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "(devcontainer: .devcontainer/devcontainer.json" in out.stdout.replace(str(repo) + "/", "")
    assert "post_create_command" in out.stdout and "container_user" in out.stdout
    ignored = [ln for ln in out.stdout.splitlines() if "ignored (not supported by clauderon-nb)" in ln]
    assert len(ignored) == 1 and "features, mounts, runArgs" in ignored[0] and "customizations" not in ignored[0]
    config = cli("config", "--repo", str(repo), "--backend", "docker").stdout
    assert "devcontainer" in config
    mgr = SessionManager()
    session = mgr.create(repo=str(repo), prompt="x", agent="echo", name="dev")
    kit.images.add(session.settings["image"])
    try:
        info = docker_client.api.inspect_container(session.runtime["container"])
        assert info["Config"]["User"] == "4321:4321"
        assert "FROM_DEVCONTAINER=yes" in info["Config"]["Env"]
        assert info["Config"]["Image"].startswith("localhost/clauderon-build/repo:")
        container = session.runtime["container"]
        assert _exec(docker_client, container, "cat", "/tmp/post-create") == "prepared"
        assert _exec(docker_client, container, "cat", "/flavour") == "dev"
        assert _exec(docker_client, container, "id", "-u") == "4321"
        assert "post-create-ran" in str(mgr.logs("dev"))
    finally:
        mgr.delete("dev")


def test_a_failing_post_create_command_fails_the_create_with_its_output(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    post = ["sh", "-c", "echo installing; echo broken >&2; exit 4"]
    _devcontainer_repo(repo, image, json.dumps({"image": image, "postCreateCommand": post}))
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--agent", "echo")
    assert out.returncode == 1
    line = out.stderr.strip()
    assert line.startswith("error: postCreateCommand: ") and "(exit code 4)" in line
    assert "installing | broken" in line
    assert leftovers(docker_client, dhome) == []


def test_devcontainer_mistakes_name_the_file_and_key(home: Path, repo: Path) -> None:
    (repo / ".devcontainer.json").write_text('{"image": "Not An Image"}')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2 and ".devcontainer.json: image 'Not An Image'" in out.stderr
    (repo / ".devcontainer.json").write_text('{"image": "ubuntu", // no end')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2 and ".devcontainer.json: not valid JSON with comments" in out.stderr
    (repo / ".devcontainer.json").write_text("[" * 50000 + "]" * 50000)
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2 and ".devcontainer.json: nested too deeply" in out.stderr
    (repo / ".devcontainer.json").write_text('{"image": "ubuntu", "containerEnv": {"NPM_TOKEN": "npm_abc123"}}')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2 and "containerEnv.NPM_TOKEN: looks like a secret" in out.stderr
    assert "npm_abc123" not in out.stderr + out.stdout
    (repo / ".devcontainer.json").write_text('{"image": "ubuntu", "containerEnv": {"A": "${localEnv:HOME}"}}')
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2 and "containerEnv.A: uses a ${…} variable" in out.stderr


def test_a_devcontainer_that_picks_the_image_for_credentials_needs_trust(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('[agents.keyed]\ncommand = ["sh"]\npass_env = ["TEST_KEY"]\n')
    monkeypatch.setenv("TEST_KEY", "secret-value")
    (repo / ".devcontainer.json").write_text('{"image": "ghcr.io/stranger/agent:1"}')
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="keyed")
    assert plan.needs_trust
    assert "the repository's .devcontainer.json chooses image 'ghcr.io/stranger/agent:1'" in plan.notes[-1]
    assert "Trusted" in mgr.trust_repo(str(repo))
    assert not mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="keyed").needs_trust
    (repo / ".devcontainer.json").write_text('{"image": "ghcr.io/stranger/agent:2"}')
    assert mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="keyed").needs_trust


def test_cancel_during_a_build_leaves_nothing(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    _dockerfile_repo(repo, image, extra="RUN sleep 30\n")
    mgr = SessionManager()

    def interrupt(event: Any) -> None:
        if event.step == "build" and "sleep 30" in event.message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mgr.create(repo=str(repo), prompt="x", agent="echo", progress=interrupt)
    assert leftovers(docker_client, dhome) == []
    # The engine stops the build when the client goes away: its step's container is removed too.
    _until(lambda: not [c for c in docker_client.api.containers(all=True) if "sleep 30" in c.get("Command", "")])


# --- Kubernetes: the check in the registry, and builds pushed for the cluster ----------------------


@pytest.fixture
def k8s(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from clauderon_nb.backends.kubernetes import KubernetesBackend

    from .k8s_standin import serve

    monkeypatch.setattr(KubernetesBackend, "poll_interval", 0.01)
    with serve(tmp_path) as (standin, kubeconfig):
        (home / "config.toml").write_text('[agents.echo]\ncommand = ["sh", "-c", "echo hi; exec sleep 600"]\n')
        (home / "k8s-config.toml").write_text(f'kubeconfig = "{kubeconfig}"\nnamespace = "team-a"\n')
        yield standin
        assert standin.schema_errors == [], standin.schema_errors


def test_kubernetes_checks_the_registry_before_any_object(
    k8s: Any, home: Path, repo: Path, pushed: dict[str, str], registry: dockerkit.Registry, login: Callable[..., Path]
) -> None:
    login(registry)
    (home / "k8s-config.toml").write_text((home / "k8s-config.toml").read_text() + "registry_check = true\n")
    _, repository = repository_of(pushed["tools:1"])
    mgr = SessionManager()
    base = {"repo": str(repo), "prompt": "x", "backend": "kubernetes", "agent": "echo"}
    plan = mgr.plan(**base, image=pushed["tools:1"], check_image=True)
    assert plan.image_check and plan.image_check.startswith("found in registry, digest sha256:")
    with pytest.raises(RegistryError) as err:
        mgr.create(**base, image=f"{registry.host}/{repository}:9")
    assert err.value.kind == "tag" and str(err.value).startswith(f"check image: image {registry.host}/{repository}:9")
    assert not [o for o in k8s.objects if o[0] != "events"]
    assert mgr.list() == []
    # Nodes pull with their own Secrets: a registry that refuses this user is not checked, and says so.
    (home / "k8s-config.toml").write_text((home / "k8s-config.toml").read_text() + 'image_pull_secrets = ["regcred"]\n')
    login(registry, password="wrong")
    plan = mgr.plan(**base, image=pushed["tools:1"], check_image=True)
    assert plan.image_check and "not checked" in plan.image_check and "image_pull_secrets regcred" in plan.image_check


def test_a_kubernetes_build_is_pushed_and_the_pod_uses_its_digest(
    k8s: Any,
    home: Path,
    repo: Path,
    image: str,
    registry: dockerkit.Registry,
    login: Callable[..., Path],
    kit: dockerkit.Kit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(registry)
    config = (home / "k8s-config.toml").read_text()
    _dockerfile_repo(repo, image)
    mgr = SessionManager()
    base = {"repo": str(repo), "prompt": "x", "backend": "kubernetes", "agent": "echo"}
    with pytest.raises(ConfigError, match=r"set build_push_registry in k8s-config\.toml"):
        mgr.plan(**base)
    (home / "k8s-config.toml").write_text(config + f'build_push_registry = "{registry.host}/team"\n')
    plan = mgr.plan(**base, check_image=True)
    tag = plan.settings.image
    assert tag.startswith(f"{registry.host}/team/clauderon-build/repo:")
    assert plan.image_check and "with the Docker engine and pushes it" in plan.image_check
    kit.images.add(tag)
    events: list[Any] = []
    first = mgr.create(**base, name="k1", progress=events.append)
    digest = RegistryClient(registry.host, Credentials(registry.user, registry.password, "t")).manifest(
        tag.split("/", 1)[1].rsplit(":", 1)[0], tag.rsplit(":", 1)[1]
    )
    assert first.settings["image"] == f"{tag}@{digest.digest}"
    (pod,) = [b for b in k8s.bodies("Pod") if b["metadata"]["name"].startswith("clauderon-k1")]
    assert pod["spec"]["containers"][0]["image"] == f"{tag}@{digest.digest}"
    assert any(e.message == f"pushing {tag}" for e in events)
    events.clear()
    second = mgr.create(**base, name="k2", progress=events.append)
    assert second.settings["image"] == first.settings["image"]
    assert [e.message for e in events if e.step == "build"] == [
        f"image {tag} is pushed already (unchanged docker/Dockerfile)"
    ]
    # A start re-checks the policy: the pinned digest is clauderon's own, the policy judged the tag.
    policy = home / "policy.toml"
    policy.write_text(f'allow_builds = true\nallowed_images = ["{registry.host}/team/clauderon-build/*"]\n')
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    mgr.stop("k1")
    assert mgr.start("k1").status.value == "running"
    for name in ("k1", "k2"):
        mgr.delete(name)


# --- through the clauderon service -------------------------------------------------------------------


@pytest.mark.hub
def test_the_service_browses_checks_and_builds_under_its_policy(
    hub: Any, repo: Path, image: str, kit: dockerkit.Kit, docker_client: Any
) -> None:
    from clauderon_nb.remote.client import RemoteManager
    from clauderon_nb.remote.wire import Endpoint

    alice = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
    other = kit.build("other", "1")
    try:
        hub.policy.write_text(f'allowed_images = ["{image}"]\n')
        listing = alice.images()
        local = {r.name: r.allowed for r in listing.rows if r.kind == "local"}
        assert local == {
            str(parse_image(image)): True
        }  # the service's engine: only what alice may use, never others' images
        assert other not in str(listing.to_json())
        with pytest.raises(PolicyError, match=r"images 10\.0\.0\.1:5000/internal/app: not allowed: the clauderon"):
            alice.images("10.0.0.1:5000/internal/app")  # the service asks no host the policy does not name
        plan = alice.plan(repo=str(repo), prompt="x", agent="echo", image=image, check_image=True)
        assert plan.image_check and plan.image_check.startswith("present locally, image id sha256:")
        assert image in alice.image_suggestions("")
        # Builds: off under a policy file until it says allow_builds = true, and the result must be allowed.
        _dockerfile_repo(repo, image)
        assert "Trusted" in alice.trust_repo(str(repo))  # the repository's file picks the build
        with pytest.raises(PolicyError, match="image builds are off") as err:
            alice.create(repo=str(repo), prompt="x", agent="echo")
        assert err.value.field == "build"
        hub.policy.write_text('allow_builds = true\nallowed_images = ["localhost/clauderon-build/*"]\n')
        session = alice.create(repo=str(repo), prompt="x", agent="echo", name="built")
        kit.images.add(session.settings["image"])
        assert session.settings["image"].startswith("localhost/clauderon-build/")
        container = docker_client.api.containers(filters={"label": f"clauderon.io/session-id={session.id}"})[0]
        assert _exec(docker_client, container["Id"], "cat", "/greeting") == "built"
        # A build holds its owner's repository: nobody names it as an image, nobody sees it listed.
        assert session.settings["image"].startswith("localhost/clauderon-build/alice-")
        bob = RemoteManager(Endpoint(hub.service_url, hub.tokens["bob"]))
        with pytest.raises(PolicyError, match="images built by clauderon are used through their build"):
            bob.create(repo=str(repo), prompt="x", agent="echo", image=session.settings["image"])
        assert not [r for r in bob.images().rows if r.kind == "local" and "clauderon-build" in r.name]
        alice.delete("built")
    finally:
        hub.policy.write_text("")


# --- suggestions in the form and the terminal UI ------------------------------------------------------


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_form_suggests_engine_images_and_a_typed_repositorys_tags(
    dhome: Path,
    repo: Path,
    image: str,
    pushed: dict[str, str],
    registry: dockerkit.Registry,
    login: Callable[..., Path],
) -> None:
    from clauderon_nb.frontends.widgets import CreateSessionForm

    login(registry)
    _, repository = repository_of(pushed["tools:1"])
    form = CreateSessionForm(SessionManager())
    box = form.fields["image"]
    _until(lambda: image in box.options)  # loaded in a thread, after the form is shown
    box.value = f"{registry.host}/{repository}:"
    _until(lambda: f"{registry.host}/{repository}:2" in box.options)
    assert f"{registry.host}/{repository}:1" in box.options and image in box.options


def test_the_tui_suggests_engine_images_and_a_typed_repositorys_tags(
    dhome: Path,
    repo: Path,
    image: str,
    pushed: dict[str, str],
    registry: dockerkit.Registry,
    login: Callable[..., Path],
) -> None:
    import asyncio
    import time

    pytest.importorskip("textual")
    from textual.widgets import Input

    from clauderon_nb.frontends.tui import ClauderonTUI

    login(registry)
    _, repository = repository_of(pushed["tools:1"])

    async def scenario() -> None:
        app = ClauderonTUI(SessionManager(), interval=0)
        async with app.run_test(size=(110, 48)) as pilot:
            await pilot.press("n")
            field = app.screen.query_one("#f-image", Input)

            async def until(value: str) -> None:
                deadline = time.monotonic() + 20
                while await field.suggester.get_suggestion(value) is None if field.suggester else True:  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, f"no suggestion for {value!r}"
                    await pilot.pause(0.1)

            await until(image[:12])
            field.value = f"{registry.host}/{repository}:"
            await until(f"{registry.host}/{repository}:2")

    asyncio.run(scenario())


# --- a registry that answers oddly ------------------------------------------------------------------


def test_odd_registry_answers_are_one_line_and_credentials_stay_with_their_host() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: dict[str, list[str | None]] = {"storage": []}
    config = json.dumps({"created": "2026-01-02T03:04:05Z"}).encode()
    digest = "sha256:" + "a" * 64

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen["storage"].append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(config)))
            self.end_headers()
            self.wfile.write(config)

    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Odd(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: bytes, **headers: str) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Basic dTpw":  # u:p
                self.reply(401, b"", WWW_Authenticate='Basic realm="odd"')
            elif "/tags/list" in self.path:
                self.reply(200, b"<html>not json</html>")
            elif "/manifests/" in self.path:
                manifest = {"config": {"digest": digest, "size": 10}, "layers": [{"size": 90, "digest": digest}]}
                self.reply(200, json.dumps(manifest).encode(), Docker_Content_Digest=digest)
            elif "/blobs/" in self.path:
                self.reply(307, b"", Location=f"http://127.0.0.1:{storage.server_address[1]}/blob")
            else:
                self.reply(404, b"")

    odd = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (storage, odd)]
    for t in threads:
        t.start()
    try:
        client = RegistryClient(f"127.0.0.1:{odd.server_address[1]}", Credentials("u", "p", "test"))
        info = client.tag_info("team/app", "1")
        assert (info.digest, info.size, info.created) == (digest, 100, "2026-01-02T03:04:05Z")
        assert seen["storage"] == [None]  # the redirect to storage elsewhere carries no credentials
        with pytest.raises(RegistryError, match=r"sent a malformed tag list$"):
            client.tags("team/app")
    finally:
        for s in (storage, odd):
            s.shutdown()
            s.server_close()


def test_the_forms_dry_run_checks_the_image_as_the_flag_does(
    dhome: Path, repo: Path, pushed: dict[str, str], registry: dockerkit.Registry, login: Callable[..., Path]
) -> None:
    from clauderon_nb.frontends.widgets import CreateSessionForm

    login(registry)
    _check_on(dhome)
    _, repository = repository_of(pushed["tools:1"])
    form = CreateSessionForm(SessionManager())
    values = {"repo": str(repo), "prompt": "x", "backend": "docker", "agent": "echo", "pull_policy": "always"}
    for name, value in {**values, "image": pushed["tools:1"]}.items():
        form.fields[name].value = value
    form.dry_run.value = True
    assert form.create() is None
    assert "found in registry, digest sha256:" in form.result.value
    form.fields["image"].value = f"{registry.host}/{repository}:9"
    assert form.create() is None
    assert "tag &#x27;9&#x27; not found" in form.result.value or "tag '9' not found" in form.result.value
    assert SessionManager().list() == []


def test_registry_auth_config_file_serves_the_browser_and_a_misplaced_switch_is_pointed_to(
    home: Path, repo: Path, pushed: dict[str, str], registry: dockerkit.Registry, tmp_path: Path
) -> None:
    _, repository = repository_of(pushed["tools:1"])
    with registrykit.token_front(registry) as front:
        robot = front.registry().config_json(tmp_path / "robot")
        (home / "docker-config.toml").write_text(
            f'[image.registry_auth]\nregistry = "{front.host}"\nconfig_file = "{robot}"\n'
        )
        out = cli("images", f"{front.host}/{repository}", "--json")
        assert out.returncode == 0, out.stderr
        assert {r["name"].rsplit(":", 1)[1] for r in json.loads(out.stdout)["rows"]} == {"1", "2"}
    (home / "docker-config.toml").write_text("registry_check = false\n")
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--dry-run")
    assert out.returncode == 2
    assert "unknown key 'registry_check' (did you mean 'image.registry_check'?)" in out.stderr


def test_an_identity_token_from_docker_login_is_exchanged_for_an_access_token(
    pushed: dict[str, str], registry: dockerkit.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clauderon_nb.backends.images import in_registry

    _, repository = repository_of(pushed["tools:1"])
    with registrykit.token_front(registry) as front:
        config = tmp_path / "oauth" / "config.json"
        config.parent.mkdir()
        entry = {"auth": "PHRva2VuPjo=", "identitytoken": front.refresh_token}  # "<token>:", as docker writes it
        config.write_text(json.dumps({"auths": {front.host: entry}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))
        assert in_registry(f"{front.host}/{repository}:1").digest.startswith("sha256:")
        entry["identitytoken"] = "revoked"
        config.write_text(json.dumps({"auths": {front.host: entry}}))
        with pytest.raises(RegistryError) as err:
            in_registry(f"{front.host}/{repository}:1")
        assert err.value.kind == "denied" and "revoked" not in str(err.value)


# --- the registry client's HTTP: proxies, kept connections, certs.d ---------------------------------


class _Proxy:
    """A forward proxy for plain HTTP: it notes each request line and each client connection."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.connections = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                proxy.connections += 1

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy.lines.append(f"{self.command} {self.path}")
                import http.client
                import urllib.parse

                target = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(target.netloc, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
                upstream.request(
                    self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers
                )
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    running = _Proxy()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", running.url)
    monkeypatch.setenv("http_proxy", running.url)
    registry_module._POOLS.clear()
    try:
        yield running
    finally:
        registry_module._POOLS.clear()
        running.close()


def test_registry_calls_go_through_the_environments_proxy_on_kept_connections(
    proxy: _Proxy, registry: dockerkit.Registry, pushed: dict[str, str]
) -> None:
    client = RegistryClient(registry.host, Credentials(registry.user, registry.password, "test"))
    _, repository = repository_of(pushed["tools:1"])
    assert sorted(client.tags(repository)) == ["1", "2"]
    client.tags(repository)
    client.manifest(repository, "1")
    assert proxy.lines and all(line.split()[1].startswith(f"http://{registry.host}/v2/") for line in proxy.lines)
    assert len(proxy.lines) >= 4 and proxy.connections == 1  # one kept connection for every request


def test_no_proxy_is_honoured(
    proxy: _Proxy, registry: dockerkit.Registry, pushed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    client = RegistryClient(registry.host, Credentials(registry.user, registry.password, "test"))
    _, repository = repository_of(pushed["tools:1"])
    assert sorted(client.tags(repository)) == ["1", "2"]
    assert proxy.lines == []


def test_an_unreachable_registry_says_why_in_a_few_words(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RegistryError, match=r"is unreachable \(connection refused\)$"):
        RegistryClient(f"127.0.0.1:{dockerkit.free_port()}").tags("x/y")


def test_docker_certs_d_gives_the_ca_and_the_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "certs.d" / "registry.example:5000"
    folder.mkdir(parents=True)
    for name in ("ca", "client"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt")],
            check=True, capture_output=True,
        )  # fmt: skip
    (folder / "client.crt").rename(folder / "client.cert")
    monkeypatch.setattr(registry_module, "CERTS_D", (tmp_path / "nothing", tmp_path / "certs.d"))
    ca, client = registry_module._tls_files("registry.example:5000")
    assert ca == str(folder / "ca.crt") and client == (str(folder / "client.cert"), str(folder / "client.key"))
    pool: Any = registry_module._new_pool(None, "registry.example:5000")  # loads both, or raises
    plain: Any = registry_module._new_pool(None, "other.example")
    cas = pool.connection_pool_kw["ssl_context"].cert_store_stats()["x509_ca"]
    assert cas == plain.connection_pool_kw["ssl_context"].cert_store_stats()["x509_ca"] + 1  # ca.crt, trusted
    assert registry_module._tls_files("other.example") == (None, None)
    (tmp_path / "certs.d" / "ca.crt").write_text("not a certificate")
    for name in ("..", "../certs.d", "a/b", ""):  # not hosts: never a folder outside certs.d
        assert registry_module._tls_files(name) == (None, None)

"""Planning: exact Docker kwargs and schema-valid Kubernetes manifests, with no side effects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from clauderon_nb import ConfigError, SessionManager
from clauderon_nb.model.naming import label_safe
from clauderon_nb.model.units import parse_cpu, parse_memory

from .conftest import obj

Write = Callable[[str, str], Path]
GI = 1024**3
K8S_VERSIONS = ["1.30.0", "1.37.0"]
_QUANTITY = re.compile(r"^([0-9]+)(m|Ki|Mi|Gi|Ti)?$")


def validate_manifests(manifests: list[dict[str, Any]]) -> None:
    """Strict schema validation, plus what kubernetes-validate does not check."""
    for manifest in manifests:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)
        if manifest["kind"] == "Pod":
            spec = manifest["spec"]
            for c in spec["containers"] + spec.get("initContainers", []):
                assert c["imagePullPolicy"] in ("Always", "IfNotPresent", "Never")
                for section in c.get("resources", {}).values():
                    for key, value in section.items():
                        assert _QUANTITY.match(value), (key, value)
                        if key == "cpu":
                            parse_cpu(value)
                        elif key == "memory":
                            parse_memory(value)
                        else:  # an extended resource (nvidia.com/gpu): a whole number
                            assert value.isdigit(), (key, value)
        for value in manifest["metadata"]["labels"].values():
            assert len(value) <= 63 and re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", value)
        assert re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", manifest["metadata"]["name"])


def test_docker_kwargs_exact(repo: Path, home: Path) -> None:
    p = SessionManager().plan(
        repo=str(repo),
        prompt='say "hi"; $(rm -rf /) `id`\nnext',
        backend="docker",
        name="my-task",
        image="127.0.0.1:5000/clauderon/busybox:1",
        pull_policy="always",
        cpu_limit="500m",
        memory_limit="64m",
        memory_request="32m",
        cpu_request="250m",
    )
    sid = p.session_spec.session_id
    assert p.spec == {
        "image": "127.0.0.1:5000/clauderon/busybox:1",
        "command": ["claude", "--dangerously-skip-permissions", 'say "hi"; $(rm -rf /) `id`\nnext'],
        "name": obj("my-task"),
        "hostname": "my-task",
        "labels": {
            "clauderon.io/managed": "true",
            "clauderon.io/session-id": sid,
            "clauderon.io/session-name": "my-task",
            "clauderon.io/owner": label_safe(SessionManager().owner),
            "clauderon.io/backend": "docker",
            "clauderon.io/agent": "claude",
        },
        "environment": {"CLAUDERON_PROMPT": 'say "hi"; $(rm -rf /) `id`\nnext', "CLAUDERON_SESSION_ID": sid},
        "working_dir": "/workspace",
        # yours, or 1000 when you are root: never root in the container without the policy's allow_root
        "user": f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "1000:1000",
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "tty": True,
        "stdin_open": True,
        "network_mode": "bridge",
        # the session's own workspace, nothing else of the host: never the repository or its .git
        "volumes": {str(home / "workspaces" / "my-task"): {"bind": "/workspace", "mode": "rw"}},
        "nano_cpus": 500_000_000,
        "mem_limit": 64 * 1024**2,
        "cpu_shares": 256,
        "mem_reservation": 32 * 1024**2,
        "pids_limit": 1024,
    }
    assert p.session_spec.branch == "clauderon/my-task"
    assert not (home / "workspaces").exists()  # planning creates nothing


def test_docker_network_and_the_docker_client_accepts_the_kwargs(repo: Path, write: Write) -> None:
    """docker-py turns the kwargs into an API body without complaint (no engine needed)."""
    from docker.models.containers import _create_container_args

    write("docker-config.toml", 'network = "none"\n')
    p = SessionManager().plan(repo=str(repo), prompt="x", backend="docker", cpu_limit="1", memory_limit="1g")
    assert p.spec["network_mode"] == "none"
    args = _create_container_args({**p.spec, "version": "1.41"})
    host = args["host_config"]
    assert host["NanoCpus"] == 1_000_000_000 and host["Memory"] == GI and host["Init"] is True
    assert host["NetworkMode"] == "none"


def test_kubernetes_manifests_valid_and_exact(repo: Path, write: Write) -> None:
    write(
        "k8s-config.toml",
        'namespace = "team-a"\nimage_pull_secrets = ["regcred"]\nservice_account = "agent"\n'
        'storage_class = "fast-ssd"\nworkspace_size = "20Gi"\n',
    )
    write("config.toml", '[agents.claude]\ncommand = ["claude", "{prompt}"]\nenv_from_secret = "claude-creds"\n')
    p = SessionManager().plan(
        repo=str(repo),
        prompt="Fix it; rm -rf /",
        backend="kubernetes",
        name="fix",
        pull_policy="never",
        cpu_limit="2",
        memory_limit="4g",
        cpu_request="500m",
    )
    pvc, pod = p.spec
    validate_manifests(p.spec)
    assert pvc["metadata"]["name"] == obj("fix") + "-workspace"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast-ssd",
    }
    assert pod["metadata"]["name"] == obj("fix") and pod["metadata"]["namespace"] == "team-a"
    agent = pod["spec"]["containers"][0]
    assert agent["command"] == ["claude", "Fix it; rm -rf /"]
    assert agent["imagePullPolicy"] == "Never"
    assert agent["resources"] == {"requests": {"cpu": "500m", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert agent["envFrom"] == [{"secretRef": {"name": "claude-creds"}}]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["serviceAccountName"] == "agent"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert agent["securityContext"]["allowPrivilegeEscalation"] is False
    init = pod["spec"]["initContainers"][0]
    assert init["command"][4:] == [
        "https://git.example.invalid/team/project.git",
        "main",
        "clauderon/fix",
        p.session_spec.base_commit,
    ]
    assert "Fix it" not in init["command"][2]  # nothing user-given is in the script text
    for manifest in p.spec:
        assert manifest["metadata"]["labels"]["clauderon.io/session-name"] == "fix"
        assert manifest["metadata"]["labels"]["clauderon.io/managed"] == "true"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"preset": "small"},
        {"cpu_limit": "1500m", "memory_limit": "1.5g"},
        {"memory_limit": f"{6 * 1024**2 + 1}"},
        {"cpu_request": "1m"},
        {"pull_policy": "always", "image": "ubuntu@sha256:" + "a" * 64},
    ],
)
def test_every_kubernetes_plan_validates(repo: Path, kwargs: dict[str, str]) -> None:
    p = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", **kwargs)
    validate_manifests(p.spec)


def test_owner_labels_are_label_safe(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "Jane.Doe@example.org")
    p = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes")
    owner = p.spec[1]["metadata"]["labels"]["clauderon.io/owner"]
    assert owner.startswith("jane-doe-example-org--") and owner != label_safe("Jane.Doe-example.org")
    validate_manifests(p.spec)
    assert p.session_spec.owner == "Jane.Doe@example.org"


def test_kubernetes_needs_a_remote(repo: Path) -> None:
    subprocess.run(["git", "remote", "remove", "origin"], cwd=repo, check=True)
    with pytest.raises(ConfigError, match="has none; add a remote"):
        SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes")


def test_names(repo: Path) -> None:
    p = SessionManager().plan(repo=str(repo), prompt="Add unit tests for the parser, please!", backend="docker")
    assert re.fullmatch(r"add-unit-tests-for-the-parser-[a-z0-9]{4}", p.name)
    p = SessionManager().plan(repo=str(repo), prompt="!!!", backend="docker")
    assert re.fullmatch(r"session-[a-z0-9]{4}", p.name)


@pytest.mark.parametrize(
    ("path", "message"),
    [("/nonexistent/x", "no such directory"), ("{tmp}", "not a git repository")],
)
def test_repo_errors(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionManager().plan(repo=path.format(tmp=tmp_path), prompt="x", backend="docker")


def test_repo_without_commits(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    with pytest.raises(ConfigError, match="has no commits yet"):
        SessionManager().plan(repo=str(tmp_path / "empty"), prompt="x", backend="docker")


def test_plan_repr_is_stable_and_shows_sources(repo: Path, write: Write) -> None:
    write("docker-config.toml", '[resources]\nmemory = "2g"\n')
    p = SessionManager().plan(repo=str(repo), prompt="x", backend="docker", name="t", cpu_limit="1")
    text = repr(p)
    assert p.session_spec.session_id not in text and "<session-id>" in text
    assert re.search(r"cpu_limit\s+1 core\s+\(session\)", text)
    assert re.search(r"memory_limit\s+2g\s+\(user: .*docker-config.toml\)", text)
    assert "0x" not in text
    assert "<table>" in p._repr_html_()


def test_import_is_light() -> None:
    code = (
        "import sys, clauderon_nb; "
        "from clauderon_nb import __version__; "
        "heavy = [m for m in ('docker', 'kubernetes', 'ipywidgets', 'pydantic', 'textual', 'tornado') "
        "if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_planning_imports_no_backend_client(repo: Path) -> None:
    code = (
        "import sys; from clauderon_nb import SessionManager; "
        f"SessionManager().plan(repo={str(repo)!r}, prompt='x', backend='kubernetes'); "
        f"SessionManager().plan(repo={str(repo)!r}, prompt='x', backend='docker'); "
        "print(','.join(m for m in ('docker', 'kubernetes', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_local_backend_runs_agents_headless(repo: Path) -> None:
    """No terminal on the local backend: built-in agents use their headless form there."""
    local = SessionManager().plan(repo=str(repo), prompt="Fix it", backend="local", agent="claude")
    assert local.session_spec.command == ["claude", "--print", "--dangerously-skip-permissions", "Fix it"]
    docker = SessionManager().plan(repo=str(repo), prompt="Fix it", backend="docker", agent="claude")
    assert docker.session_spec.command == ["claude", "--dangerously-skip-permissions", "Fix it"]
    echo = SessionManager().plan(repo=str(repo), prompt="hi", backend="local", agent="echo")
    assert echo.session_spec.command == ["echo", "hi"]  # no headless form: the command itself

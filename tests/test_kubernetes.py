"""The Kubernetes backend through the real `kubernetes` client, against a local API stand-in.

Every body the backend sends is validated (strict) against two Kubernetes versions
by the stand-in. The `k8s`-marked test runs the same lifecycle on a real cluster
when KUBECONFIG points at one (skipped otherwise, including in CI).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import BackendError, ClauderonError, SessionManager
from clauderon_nb.backends.kubernetes import KubernetesBackend
from clauderon_nb.model.progress import ProgressEvent
from clauderon_nb.model.session import Status

from .conftest import obj
from .k8s_standin import StandIn, serve

AGENTS = '[agents.echo]\ncommand = ["sh", "-c", "echo \\"$1\\"; exec sleep 600", "agent", "{prompt}"]\n'


@pytest.fixture
def k8s(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    monkeypatch.setattr(KubernetesBackend, "poll_interval", 0.01)
    with serve(tmp_path) as (standin, kubeconfig):
        (home / "config.toml").write_text(AGENTS)
        (home / "k8s-config.toml").write_text(
            f'kubeconfig = "{kubeconfig}"\nnamespace = "team-a"\nimage_pull_secrets = ["regcred"]\n'
        )
        yield standin
        assert standin.schema_errors == [], standin.schema_errors


def create(**kwargs: Any) -> Any:
    args = {
        "repo": kwargs.pop("repo"),
        "prompt": "Fix it; $(rm -rf /)",
        "backend": "kubernetes",
        "agent": "echo",
        "image": "ghcr.io/team/dev:1",
        **kwargs,
    }
    return SessionManager().create(**args)


def remaining(standin: StandIn) -> set[tuple[str, str]]:
    """Objects that exist and are not being deleted (deletion of a pod completes asynchronously)."""
    return {(res, name) for (res, _ns, name) in standin.objects if res != "events" and name not in standin.deleting}


def test_lifecycle(k8s: StandIn, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-VERY-SECRET")
    events: list[ProgressEvent] = []
    s = SessionManager().create(
        repo=str(repo),
        prompt="Fix it; $(rm -rf /)",
        backend="kubernetes",
        name="kl",
        image="ghcr.io/team/dev:1",
        pull_policy="always",
        cpu_limit="2",
        memory_limit="4g",
        cpu_request="500m",
        progress=events.append,
    )
    assert s.status is Status.RUNNING
    assert [e.message.split(":")[0] for e in events if e.step in ("pull", "start")] == ["Pulling", "Pulled", "Started"]
    assert any(e.message.startswith("creating Pod clauderon-kl") for e in events)
    (secret,) = k8s.bodies("Secret")
    assert secret["stringData"] == {"ANTHROPIC_API_KEY": "sk-ant-VERY-SECRET"}  # only in the Secret
    (pod,) = k8s.bodies("Pod")
    agent = pod["spec"]["containers"][0]
    assert agent["command"] == ["claude", "--dangerously-skip-permissions", "Fix it; $(rm -rf /)"]
    assert agent["imagePullPolicy"] == "Always"
    assert agent["resources"] == {"requests": {"cpu": "500m", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert {
        "name": "ANTHROPIC_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": obj("kl") + "-env", "key": "ANTHROPIC_API_KEY"}},
    } in agent["env"]
    assert "sk-ant-VERY-SECRET" not in str(pod)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["labels"]["clauderon.io/session-id"] == s.id
    assert remaining(k8s) == {
        ("secrets", obj("kl") + "-env"),
        ("persistentvolumeclaims", obj("kl") + "-workspace"),
        ("pods", obj("kl")),
    }
    mgr = SessionManager()
    stored = mgr.get("kl")
    assert "sk-ant-VERY-SECRET" not in str(stored.runtime) + str(stored.settings) + repr(stored)
    assert str(mgr.logs("kl", tail=1)).strip() == "done"
    assert "argv=[Fix it; $(rm -rf /)]" in str(mgr.logs("kl"))
    assert "".join(mgr.logs("kl", follow=True)).endswith("working\ndone\n")  # a stream, to its end
    assert mgr.attach_command("kl").endswith(f"attach -it -n team-a {obj('kl')} -c agent")

    k8s.requests.clear()
    assert [x.status for x in mgr.list()] == [Status.RUNNING]
    assert [r.path for r in k8s.requests] == ["/api/v1/namespaces/team-a/pods"]  # one label-selector call
    assert k8s.requests[0].query["labelSelector"] == ["clauderon.io/managed=true"]

    assert mgr.stop("kl").status is Status.STOPPED
    assert ("pods", obj("kl")) not in remaining(k8s)
    assert ("persistentvolumeclaims", obj("kl") + "-workspace") in remaining(k8s)  # the workspace is kept
    assert [x.status for x in mgr.list()] == [Status.STOPPED]
    assert mgr.start("kl").status is Status.RUNNING
    assert k8s.bodies("Pod") == [pod]  # the same pod, recreated on the kept workspace
    assert mgr.delete("kl") is None
    assert remaining(k8s) == set()
    assert mgr.list() == []


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("image_pull", "wait for pod: ErrImagePull in container workspace-init: failed to pull and unpack image"),
        ("unschedulable", "wait for pod: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."),
        (
            "config_error",
            'wait for pod: CreateContainerConfigError in container agent: secret "claude-creds" not found',
        ),
        ("init_fails", "wait for pod: container workspace-init exited with code 128: fatal: repository not found"),
    ],
)
def test_failures_roll_back(k8s: StandIn, repo: Path, scenario: str, message: str) -> None:
    k8s.scenario = scenario
    with pytest.raises(BackendError) as exc:
        create(repo=str(repo), name="bad")
    assert str(exc.value).startswith(message), str(exc.value)
    assert "\n" not in str(exc.value)
    assert remaining(k8s) == set()
    assert SessionManager().list() == []


def test_timeout(k8s: StandIn, repo: Path, home: Path) -> None:
    k8s.scenario = "never_ready"
    with (home / "k8s-config.toml").open("a") as f:
        f.write("pod_start_timeout = 0.2\n")
    with pytest.raises(
        BackendError, match=rf"wait for pod: pod {obj('slow')} did not start within 0.2s \(last state: Pending\)"
    ):
        create(repo=str(repo), name="slow")
    assert remaining(k8s) == set()


def test_forbidden_names_the_permission(k8s: StandIn, repo: Path) -> None:
    k8s.forbidden = {("create", "pods")}
    with pytest.raises(BackendError) as exc:
        create(repo=str(repo), name="rbac")
    assert str(exc.value).startswith(
        "create Pod: missing permission: cannot create pods in namespace 'team-a' (pods is forbidden: User "
    )
    assert "docs/kubernetes/rbac.yaml" in str(exc.value)
    assert remaining(k8s) == set()  # the PVC made before the refusal is gone again


def test_already_exists(k8s: StandIn, repo: Path) -> None:
    k8s.objects[("pods", "team-a", obj("dup"))] = {
        "metadata": {"name": obj("dup"), "labels": {}},
        "status": {"phase": "Running"},
        "spec": {},
    }
    with pytest.raises(BackendError, match=rf'create Pod: AlreadyExists: pods "{obj("dup")}" already exists'):
        create(repo=str(repo), name="dup")
    assert remaining(k8s) == {("pods", obj("dup"))}  # somebody else's pod is left alone


def test_ephemeral_workspace(k8s: StandIn, repo: Path, home: Path) -> None:
    with (home / "k8s-config.toml").open("a") as f:
        f.write('workspace = "ephemeral"\nworkspace_size = "2Gi"\n')
    create(repo=str(repo), name="eph")
    assert k8s.bodies("PersistentVolumeClaim") == []
    (pod,) = k8s.bodies("Pod")
    assert pod["spec"]["volumes"] == [{"name": "workspace", "emptyDir": {"sizeLimit": "2Gi"}}]
    SessionManager().delete("eph")
    assert remaining(k8s) == set()


def test_namespace_per_user(k8s: StandIn, repo: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (home / "k8s-config.toml").read_text().replace('namespace = "team-a"\n', "")
    (home / "k8s-config.toml").write_text(text + 'namespace_template = "clauderon-{owner}"\n')
    monkeypatch.setenv("JUPYTERHUB_USER", "Alice.Smith@example.org")
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", name="ns")
    namespace = plan.settings.namespace
    assert namespace is not None and re.fullmatch(
        r"clauderon-alice-smith--[0-9a-f]{8}", namespace
    )  # + a hash of the owner
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace) and len(namespace) <= 63
    create(repo=str(repo), name="ns2")
    assert k8s.bodies("Pod")[0]["metadata"]["namespace"] == namespace
    assert all(r.path.startswith(f"/api/v1/namespaces/{namespace}/") for r in k8s.requests)
    SessionManager().delete("ns2")


def test_no_configuration(home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    (home / "config.toml").write_text(AGENTS)
    with pytest.raises(BackendError, match=r"^connect to Kubernetes: no usable Kubernetes configuration"):
        create(repo=str(repo), name="nocfg")
    assert SessionManager().list() == []


def test_unreachable_api(home: Path, repo: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "kc"
    cfg.write_text(
        '{"apiVersion": "v1", "kind": "Config", "current-context": "c", "clusters": [{"name": "c", "cluster": '
        f'{{"server": "http://127.0.0.1:{port}"}}}}], "users": [{{"name": "u", "user": {{}}}}], '
        '"contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}'
    )
    (home / "config.toml").write_text(AGENTS)
    (home / "k8s-config.toml").write_text(f'kubeconfig = "{cfg}"\n')
    with pytest.raises(BackendError, match=r"^create PersistentVolumeClaim: cannot reach the Kubernetes API"):
        create(repo=str(repo), name="down")


def test_dry_run_magic_shows_the_manifests(k8s: StandIn, repo: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "clauderon_nb")
    plan = ip.run_line_magic(
        "clauderon", f"create --repo {repo} --backend kubernetes --name dry --prompt hi --cpu-limit 1 --dry-run"
    )
    text = repr(plan)
    assert "kubernetes manifests:" in text
    assert '"kind": "PersistentVolumeClaim"' in text and '"kind": "Pod"' in text
    assert '"imagePullPolicy": "IfNotPresent"' in text
    assert k8s.requests == []  # a dry run talks to nobody


@pytest.mark.k8s
def test_real_cluster_lifecycle(home: Path, repo: Path) -> None:
    """Same lifecycle on a real cluster: KUBECONFIG and CLAUDERON_K8S_TEST_IMAGE (with git and sh) must be set."""
    image = os.environ.get("CLAUDERON_K8S_TEST_IMAGE")
    if not os.environ.get("KUBECONFIG") or not image:
        pytest.skip("no real cluster: set KUBECONFIG and CLAUDERON_K8S_TEST_IMAGE")
    (home / "config.toml").write_text(AGENTS)
    remote = os.environ.get("CLAUDERON_K8S_TEST_REMOTE", "https://github.com/octocat/Hello-World.git")
    (home / "k8s-config.toml").write_text(f'git_remote_url = "{remote}"\nworkspace = "ephemeral"\n')
    mgr = SessionManager()
    s = mgr.create(repo=str(repo), prompt="hello", backend="kubernetes", agent="echo", image=image, name="real")
    try:
        assert s.status is Status.RUNNING
        assert [x.name for x in mgr.list()] == ["real"]
        assert mgr.stop("real").status is Status.STOPPED
        assert mgr.start("real").status is Status.RUNNING
    finally:
        mgr.delete("real")


def test_rbac_manifest_grants_exactly_what_is_used(k8s: StandIn, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes_validate
    import yaml

    docs = list(yaml.safe_load_all((Path(__file__).parent.parent / "docs/kubernetes/rbac.yaml").read_text()))
    for doc in docs:
        for version in ("1.30.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(verb, res) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}

    monkeypatch.setenv("ANTHROPIC_API_KEY", "x" * 12)
    mgr = SessionManager()
    create(repo=str(repo), name="rb", agent="claude")  # claude passes ANTHROPIC_API_KEY: a Secret
    mgr.list()
    mgr.logs("rb")
    mgr.stop("rb")
    mgr.start("rb")
    mgr.delete("rb")
    used = set()
    for r in k8s.requests:
        parts = r.path.split("/")[5:]
        resource = "/".join([parts[0], *parts[2:3]])
        verb = {"POST": "create", "DELETE": "delete"}.get(r.method, "get" if len(parts) > 1 else "list")
        used.add((verb, resource))
    assert used <= granted, used - granted
    assert granted - used == {("create", "pods/attach"), ("get", "pods/attach")}  # what `kubectl attach` needs


# --- hardening ------------------------------------------------------------------------


def test_credentials_in_the_remote_url_go_only_into_the_secret(
    k8s: StandIn, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import subprocess

    from .conftest import git

    token = "ghp_VERYSECRETTOKEN"
    git("remote", "set-url", "origin", f"https://ci-bot:{token}@git.example.invalid/team/project.git", cwd=repo)
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", agent="echo", name="cred")
    assert token not in repr(plan) and token not in plan._repr_html_()
    assert token not in json.dumps(plan.spec)
    exe = Path(os.sys.executable).with_name("clauderon-nb")  # type: ignore[attr-defined]
    out = subprocess.run(
        [str(exe), "create", "--repo", str(repo), "--prompt", "x", "--backend", "kubernetes", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and token not in out.stdout + out.stderr
    session = create(repo=repo, name="cred")
    (pod,) = k8s.bodies("Pod")
    assert token not in json.dumps(pod)
    init = pod["spec"]["initContainers"][0]
    assert init["env"] == [
        {
            "name": "CLAUDERON_GIT_REMOTE",
            "valueFrom": {"secretKeyRef": {"name": obj("cred") + "-env", "key": "CLAUDERON_GIT_REMOTE"}},
        }
    ]
    assert "https://git.example.invalid/team/project.git" in init["command"]  # the URL without its credentials
    (secret,) = k8s.bodies("Secret")
    assert secret["stringData"]["CLAUDERON_GIT_REMOTE"].startswith(f"https://ci-bot:{token}@")
    assert token not in json.dumps(session.runtime) + json.dumps(session.settings)
    SessionManager().delete("cred")
    assert remaining(k8s) == set()


def test_a_remote_that_is_a_local_path_is_refused_at_plan_time(k8s: StandIn, repo: Path, tmp_path: Path) -> None:
    from clauderon_nb import ConfigError

    from .conftest import git

    for url in (str(tmp_path / "elsewhere.git"), "../sibling.git", "file:///srv/git/x.git"):
        git("remote", "set-url", "origin", url, cwd=repo)
        with pytest.raises(ConfigError, match="is a path on this machine, which a pod cannot clone"):
            SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", agent="echo")
    git("remote", "set-url", "origin", "git@github.com:team/project.git", cwd=repo)
    SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", agent="echo")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("jane.doe", "jane-doe"),
        ("JaneDoe", "janedoe"),
        ("a" * 30 + "x", "a" * 30 + "y"),
        ("bob", "Bob"),
        # a plain name shaped like another's hashed one
        ("Jane.Doe", "jane-doe-" + hashlib.sha256(b"Jane.Doe").hexdigest()[:6]),
        ("Jane.Doe", "jane-doe--" + hashlib.sha256(b"Jane.Doe").hexdigest()[:6]),
    ],
)
def test_namespace_template_never_maps_two_owners_to_one_namespace(a: str, b: str) -> None:
    from clauderon_nb.config.resolve import owner_namespace_part

    first, second = owner_namespace_part(a), owner_namespace_part(b)
    assert first != second
    for part in (first, second):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", part) and len(part) <= 22


def test_start_renders_the_pod_again_and_a_forged_record_cannot_shape_it(k8s: StandIn, repo: Path) -> None:
    """The store is untrusted: start renders the pod from the stored settings, parsed and checked again,
    never from a stored manifest. A forged manifest is ignored; forged settings are refused."""
    mgr = SessionManager()
    session = create(repo=repo, name="tm")
    (pod,) = k8s.bodies("Pod")
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True and pod["spec"]["securityContext"]["runAsUser"] > 0
    for container in pod["spec"]["containers"] + pod["spec"]["initContainers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        }
    mgr.stop("tm")
    forged = {
        **pod,
        "spec": {**pod["spec"], "hostNetwork": True, "volumes": [{"name": "r", "hostPath": {"path": "/"}}]},
    }
    mgr.store.update(session.id, runtime={**session.runtime, "pod_manifest": forged})
    assert mgr.start("tm").status is Status.RUNNING
    assert k8s.bodies("Pod")[-1] == pod  # rendered again: the forged manifest played no part
    mgr.stop("tm")
    for settings, message in (
        ({**session.settings, "run_as_user": 0}, "runs as a non-root uid"),
        ({**session.settings, "image": "not an image!"}, "stored settings are damaged"),
        ({**session.settings, "tolerations": [{"operator": "Sometimes"}]}, "stored settings are damaged"),
    ):
        mgr.store.update(session.id, settings=settings)
        with pytest.raises(ClauderonError, match=message):
            mgr.start("tm")
    assert len(k8s.bodies("Pod")) == 2  # nothing more was submitted
    mgr.store.update(session.id, settings=session.settings)
    mgr.delete("tm")


@pytest.mark.docker
def test_init_script_is_idempotent_and_clones_into_a_subdirectory(
    repo: Path, image: str, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The init container's real script, run twice in a real container on one volume (as start after stop does),
    with lost+found already in the fresh volume."""
    from clauderon_nb.render.kubernetes import REPO_SUBPATH, VOLUME_ROOT

    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text(AGENTS)
    monkeypatch.setenv("CLAUDERON_HOME", str(home))
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", agent="echo", name="init")
    pod = next(m for m in plan.spec if m["kind"] == "Pod")
    (init,) = pod["spec"]["initContainers"]
    command = list(init["command"])
    command[4] = "https://git.example.invalid/team/project.git"
    volume = tmp_path / "volume"
    (volume / "lost+found").mkdir(parents=True)

    def run() -> str:
        out = docker_client.containers.run(
            image,
            command,
            environment={"CLAUDERON_GIT_REMOTE": "/src", "HOME": "/tmp"},
            volumes={str(volume): {"bind": VOLUME_ROOT, "mode": "rw"}, str(repo): {"bind": "/src", "mode": "ro"}},
            network_mode="none",
            remove=True,
            labels={"clauderon.io/test": "init"},
        )
        return bytes(out).decode()

    run()
    clone = volume / REPO_SUBPATH
    assert (clone / "README").read_text() == "hello\n"
    from .conftest import git

    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=clone) == "clauderon/init"
    assert git("remote", "get-url", "origin", cwd=clone) == "https://git.example.invalid/team/project.git"
    (clone / "work.txt").write_text("kept\n")
    assert "not cloning again" in run()
    assert (clone / "work.txt").read_text() == "kept\n"
    agent = pod["spec"]["containers"][0]
    assert agent["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace", "subPath": REPO_SUBPATH}]
    import shutil

    shutil.rmtree(volume)


def test_an_interrupted_create_is_cleaned_up_by_its_planned_names(k8s: StandIn, repo: Path) -> None:
    """A create killed after the pod was made but before its names were recorded: the write-ahead record
    still names the namespace and the objects, and their labels prove they are this session's."""
    import subprocess
    import sys

    mgr = SessionManager()
    session = create(repo=repo, name="wal")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runtime = {k: v for k, v in session.runtime.items() if k not in ("pvc", "secret", "pod_manifest")}
    runtime["creator"] = {"host": os.uname().nodename, "pid": int(dead.stdout), "start": "1"}
    mgr.store.update(session.id, status=Status.CREATING, backend_id=None, runtime=runtime)
    (row,) = mgr.list()
    assert row.status is Status.FAILED and "create was interrupted" in (row.error or "")
    assert remaining(k8s) == set()
    mgr.delete("wal")
    assert mgr.list() == []


def test_the_service_deployment_manifests_are_valid() -> None:
    """docs/kubernetes/service.yaml: the service's Deployment, ServiceAccount, RoleBinding, PVC and Service."""
    import kubernetes_validate
    import yaml

    docs = list(yaml.safe_load_all((Path(__file__).parent.parent / "docs/kubernetes/service.yaml").read_text()))
    assert {d["kind"] for d in docs} == {
        "ServiceAccount",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    }
    for doc in docs:
        for version in ("1.30.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    from clauderon_nb.frontends.parser import build_parser

    args = build_parser().parse_args(command[1:])  # the documented command line is one the CLI accepts
    assert args.command == "serve" and args.workspace_url.endswith("/services/clauderon/")


def test_gpus_and_placement_are_rendered_and_valid(k8s: StandIn, repo: Path, home: Path) -> None:
    """GPUs as an extended-resource limit, nodeSelector, tolerations and priorityClassName: sent to the
    stand-in, which validates every body against the real schemas."""
    with open(home / "k8s-config.toml", "a") as fh:
        fh.write(
            'gpu_resource = "amd.com/gpu"\npriority_class_name = "batch-low"\n'
            '[node_selector]\n"cloud.google.com/gke-accelerator" = "nvidia-l4"\n'
            '[[tolerations]]\nkey = "amd.com/gpu"\noperator = "Exists"\neffect = "NoSchedule"\n'
        )
    create(repo=str(repo), name="gpu", gpus="2", cpu_limit="1")
    (pod,) = [b for b in k8s.bodies("Pod") if b["metadata"]["name"].startswith("clauderon-gpu-")]
    spec = pod["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "1", "amd.com/gpu": "2"}
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert spec["tolerations"] == [{"operator": "Exists", "key": "amd.com/gpu", "effect": "NoSchedule"}]
    assert spec["priorityClassName"] == "batch-low"
    with pytest.raises(ClauderonError, match=r"gpus 'all' \(this request\): Kubernetes schedules a number of GPUs"):
        create(repo=str(repo), name="gpuall", gpus="all")
    SessionManager().delete("gpu")


def test_a_preset_carries_gpus_and_placement(k8s: StandIn, repo: Path, home: Path) -> None:
    with open(home / "config.toml", "a") as fh:
        fh.write(
            '\n[presets.gpu-node]\ndescription = "one GPU on the GPU pool"\ngpus = 1\ncpu_limit = "4"\n'
            'node_selector = { pool = "gpu" }\n'
            'tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]\n'
        )
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", preset="gpu-node")
    assert plan.settings.gpus == 1 and plan.sources["gpus"] == "preset"
    pod = next(m for m in plan.spec if m["kind"] == "Pod")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}


def test_a_policy_group_places_its_members_pods(
    k8s: StandIn, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[groups.research]\nmax_gpus = 2\npriority_class_name = "research"\nnode_selector = { pool = "gpu" }\n'
        'tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]\n'
    )
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    member = SessionManager(groups=("research",)).plan(repo=str(repo), prompt="x", backend="kubernetes", gpus="2")
    pod = next(m for m in member.spec if m["kind"] == "Pod")["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["priorityClassName"] == "research"
    assert member.sources["node_selector"] == "policy"
    other = SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes")
    assert "nodeSelector" not in next(m for m in other.spec if m["kind"] == "Pod")["spec"]


def test_start_checks_every_stored_setting_against_todays_policy(
    k8s: StandIn, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPUs (and their total), the agent: a stopped session is held to the policy as it is now."""
    from clauderon_nb.errors import PolicyError

    create(repo=str(repo), name="g1", gpus="1")
    mgr = SessionManager()
    mgr.stop("g1")
    create(repo=str(repo), name="g2", gpus="1")
    policy = tmp_path / "policy.toml"
    policy.write_text("max_total_gpus = 1\n")
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    with pytest.raises(PolicyError, match="quota max_total_gpus"):
        mgr.start("g1")  # one GPU is in use already
    policy.write_text("max_gpus = 0\n")
    with pytest.raises(PolicyError, match="max_gpus is 0; gpus 1 \\(stored session\\) is above it"):
        mgr.start("g1")
    policy.write_text('allowed_agents = ["claude"]\n')
    with pytest.raises(PolicyError, match="allowed_agents is claude; agent 'echo' \\(stored session\\) is not allowed"):
        mgr.start("g1")
    assert mgr.get("g1").status.value == "stopped"
    monkeypatch.delenv("CLAUDERON_POLICY")
    mgr.delete("g1")
    mgr.delete("g2")


def test_the_spec_hook_runs_on_every_render_of_the_pod(
    k8s: StandIn, repo: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """modify_spec_hook changes the pod at create, and again when start renders it from the stored session."""
    (tmp_path / "k8s_hooks.py").write_text(
        "from dataclasses import replace\n\n\n"
        "def reviewed(spec):\n"
        "    return replace(spec, command=[*spec.command[:-1], spec.command[-1] + ' (reviewed)'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = home / "config.toml"
    config.write_text('modify_spec_hook = "k8s_hooks:reviewed"\n' + config.read_text())
    create(repo=str(repo), name="hooked")

    def command() -> list[str]:
        pod = k8s.objects[("pods", "team-a", obj("hooked"))]
        return list(pod["spec"]["containers"][0]["command"])

    assert command()[-1].endswith("(reviewed)")
    mgr = SessionManager()
    mgr.stop("hooked")
    mgr.start("hooked")
    assert command()[-1].endswith("(reviewed)") and not command()[-1].endswith("(reviewed) (reviewed)")
    mgr.delete("hooked")

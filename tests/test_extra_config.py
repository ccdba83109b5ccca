"""Extra engine configuration without forking: ``extra_container_config`` for Docker, ``extra_pod_config`` and
``extra_container_config`` for Kubernetes, and the service's ``modify_spec_hook``. Merged where they are
safe, validated (the engine's known keys; the Kubernetes schemas), and never able to loosen containment
unless the admin policy names the gate."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clauderon_nb import ConfigError, SessionManager
from clauderon_nb.errors import PolicyError
from clauderon_nb.frontends.commands import describe

from .test_plan import validate_manifests


def _plan(repo: Path, backend: str, **fields: object) -> object:
    return SessionManager().plan(repo=str(repo), prompt="x", backend=backend, **fields)


def test_docker_extra_config_is_merged_into_the_create_arguments(home: Path, repo: Path) -> None:
    (home / "docker-config.toml").write_text(
        textwrap.dedent(
            """
            [extra_container_config]
            shm_size = "256m"
            dns = ["10.0.0.2"]
            extra_hosts = { "pypi.internal" = "10.0.0.3" }
            read_only = true
            ulimits = [{ name = "nofile", soft = 1024, hard = 2048 }]
            """
        )
    )
    plan = _plan(repo, "docker")
    spec = plan.spec  # type: ignore[attr-defined]
    assert spec["shm_size"] == "256m" and spec["dns"] == ["10.0.0.2"] and spec["read_only"] is True
    assert spec["extra_hosts"] == {"pypi.internal": "10.0.0.3"}
    assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges:true"]  # kept


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "privileged = true",
            "extra_container_config privileged | loosens containment (privileged); refused unless the admin "
            "policy lists 'privileged' in allow_extra_config",
        ),
        ('cap_add = ["SYS_ADMIN"]', "extra_container_config cap_add | loosens containment (capabilities)"),
        ('pid_mode = "host"', "extra_container_config pid_mode | loosens containment (host_namespaces)"),
        ('security_opt = ["seccomp=unconfined"]', "extra_container_config security_opt | loosens containment"),
        ('devices = ["/dev/kvm:/dev/kvm"]', "extra_container_config devices | loosens containment (devices)"),
        ('network_mode = "host"', "extra_container_config: network_mode is clauderon's to set; use network"),
        ('volumes = { "/" = { bind = "/host" } }', "extra_container_config: volumes is clauderon's to set"),
        ('environment = { A = "b" }', "extra_container_config: environment is clauderon's to set; use extra_env"),
        ("no_such_key = 1", "extra_container_config: 'no_such_key' is not a key the Docker engine's create call"),
    ],
)
def test_docker_extra_config_never_loosens_containment_by_itself(
    home: Path, repo: Path, extra: str, message: str
) -> None:
    (home / "docker-config.toml").write_text(f"[extra_container_config]\n{extra}\n")
    with pytest.raises((ConfigError, PolicyError)) as caught:
        _plan(repo, "docker")
    line, code = describe(caught.value)
    assert all(part in line for part in message.split(" | ")) and "\n" not in line and code == 2, line


def test_the_policy_may_name_a_gate_explicitly(home: Path, repo: Path) -> None:
    (home / "docker-config.toml").write_text('[extra_container_config]\ncap_add = ["NET_ADMIN"]\n')
    policy = home / "policy.toml"
    policy.write_text('allow_extra_config = ["capabilities"]\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAUDERON_POLICY", str(policy))
        assert _plan(repo, "docker").spec["cap_add"] == ["NET_ADMIN"]  # type: ignore[attr-defined]
    policy.write_text('allow_extra_config = ["host_mounts"]\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAUDERON_POLICY", str(policy))
        with pytest.raises(PolicyError, match="lists 'capabilities' in allow_extra_config"):
            _plan(repo, "docker")


def test_kubernetes_extra_config_is_merged_and_schema_valid(home: Path, repo: Path) -> None:
    (home / "k8s-config.toml").write_text(
        textwrap.dedent(
            """
            git_remote_url = "https://example.org/org/app.git"
            [extra_pod_config]
            runtimeClassName = "gvisor"
            terminationGracePeriodSeconds = 5
            volumes = [{ name = "cache", emptyDir = { medium = "Memory" } }]
            [extra_pod_config.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution]
            nodeSelectorTerms = [{ matchExpressions = [{ key = "pool", operator = "In", values = ["agents"] }] }]
            [extra_container_config]
            volumeMounts = [{ name = "cache", mountPath = "/cache" }]
            lifecycle = { preStop = { exec = { command = ["sh", "-c", "sleep 1"] } } }
            """
        )
    )
    plan = _plan(repo, "kubernetes")
    manifests = plan.spec  # type: ignore[attr-defined]
    validate_manifests(manifests)
    pod = manifests[-1]["spec"]
    assert pod["runtimeClassName"] == "gvisor" and pod["terminationGracePeriodSeconds"] == 5
    assert [v["name"] for v in pod["volumes"]][-1] == "cache"  # added to clauderon's own volumes
    agent = pod["containers"][0]
    assert agent["volumeMounts"][-1] == {"name": "cache", "mountPath": "/cache"}
    assert agent["securityContext"]["allowPrivilegeEscalation"] is False  # containment kept


@pytest.mark.parametrize(
    ("section", "extra", "message"),
    [
        ("extra_pod_config", "hostNetwork = true", "extra_pod_config hostNetwork | loosens containment (host_network)"),
        ("extra_pod_config", "hostPID = true", "extra_pod_config hostPID | loosens containment (host_namespaces)"),
        (
            "extra_pod_config",
            'volumes = [{ name = "root", hostPath = { path = "/" } }]',
            "extra_pod_config volumes[].hostPath | loosens containment (host_mounts)",
        ),
        (
            "extra_container_config",
            "securityContext = { privileged = true }",
            "extra_container_config securityContext.privileged | loosens containment (privileged)",
        ),
        (
            "extra_container_config",
            'securityContext = { capabilities = { add = ["SYS_ADMIN"] } }',
            "extra_container_config securityContext.capabilities | loosens containment (capabilities)",
        ),
        (
            "extra_pod_config",
            "securityContext = { runAsUser = 0 }",
            "extra_pod_config securityContext.runAsUser | loosens containment (root)",
        ),
        ("extra_pod_config", 'nodeName = "n1"', "extra_pod_config: nodeName is clauderon's to set; use node_selector"),
        ("extra_container_config", 'env = [{ name = "A", value = "b" }]', "env is clauderon's to set; use extra_env"),
        (
            "extra_pod_config",
            "terminationGracePeriodSeconds = 'soon'",
            "extra_pod_config | not valid for Kubernetes | spec.terminationGracePeriodSeconds: 'soon' is not of type",
        ),
    ],
)
def test_a_refused_extra_pod_config_is_one_line(home: Path, repo: Path, section: str, extra: str, message: str) -> None:
    (home / "k8s-config.toml").write_text(f'git_remote_url = "https://example.org/org/app.git"\n[{section}]\n{extra}\n')
    with pytest.raises((ConfigError, PolicyError)) as caught:
        _plan(repo, "kubernetes")
    line, code = describe(caught.value)
    assert all(part in line for part in message.split(" | ")) and "\n" not in line and code == 2, line


HOOKS = """
from dataclasses import replace


def bigger(spec):
    return replace(spec, settings=replace(spec.settings, cpu_limit=4000, memory_limit=512 * 1024**2))


def tagged(spec):
    return replace(spec, command=[*spec.command[:-1], spec.command[-1] + " (reviewed)"])


def as_root(spec):
    return replace(spec, uid=0)


def privileged(spec):
    return replace(spec, settings=replace(spec.settings, extra_container_config={"privileged": True}))


def broken(spec):
    raise RuntimeError("no such team")


def wrong(spec):
    return "a pod"
"""


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site_hooks.py").write_text(HOOKS)
    monkeypatch.syspath_prepend(str(tmp_path))


def _hooked(home: Path, name: str) -> None:
    (home / "config.toml").write_text(f'modify_spec_hook = "site_hooks:{name}"\n')


def test_the_hook_changes_the_spec_and_its_result_is_checked_again(home: Path, repo: Path, hooks: None) -> None:
    _hooked(home, "bigger")
    plan = _plan(repo, "docker")
    assert (plan.spec["nano_cpus"], plan.spec["mem_limit"]) == (4 * 10**9, 512 * 1024**2)  # type: ignore[attr-defined]
    _hooked(home, "tagged")
    assert _plan(repo, "docker").session_spec.command[-1].endswith("(reviewed)")  # type: ignore[attr-defined]
    policy = home / "policy.toml"
    policy.write_text("max_cpu = 2\n")
    _hooked(home, "bigger")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAUDERON_POLICY", str(policy))
        with pytest.raises(PolicyError, match="max_cpu"):
            _plan(repo, "docker")


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("as_root", "modify_spec_hook site_hooks:as_root changed uid: a hook may change the settings and the command"),
        ("privileged", "extra_container_config privileged (modify_spec_hook site_hooks:privileged): loosens"),
        ("broken", "modify_spec_hook site_hooks:broken failed: RuntimeError: no such team"),
        ("wrong", "modify_spec_hook site_hooks:wrong returned a str; expected the SessionSpec it was given"),
        ("missing", "modify_spec_hook site_hooks:missing: cannot load it (AttributeError"),
    ],
)
def test_a_hook_that_loosens_or_fails_is_one_line(home: Path, repo: Path, hooks: None, hook: str, message: str) -> None:
    _hooked(home, hook)
    with pytest.raises((ConfigError, PolicyError)) as caught:
        _plan(repo, "docker")
    line, code = describe(caught.value)
    assert line.startswith(message) and "\n" not in line and code == 2, line


def test_the_engine_gets_the_extra_configuration_and_start_checks_it_again(
    dhome: Path, repo: Path, image: str, docker_client: object
) -> None:
    (dhome / "docker-config.toml").write_text(
        'network = "none"\n[extra_container_config]\nshm_size = "96m"\nread_only = true\n'
        'tmpfs = { "/tmp" = "size=8m" }\ndns = ["10.0.0.2"]\n'
    )
    mgr = SessionManager()
    session = mgr.create(
        repo=str(repo), prompt="x", backend="docker", agent="echo", image=image, pull_policy="never", name="extra"
    )
    try:
        info = docker_client.api.inspect_container(session.runtime["container"])  # type: ignore[attr-defined]
        host = info["HostConfig"]
        assert (host["ShmSize"], host["ReadonlyRootfs"], host["Dns"]) == (96 * 1024**2, True, ["10.0.0.2"])
        assert host["Tmpfs"] == {"/tmp": "size=8m"}
        assert host["CapDrop"] == ["ALL"] and not host.get("Privileged")  # containment kept
        assert mgr.get("extra").settings["extra_container_config"]["shm_size"] == "96m"
        # The record is untrusted: a forged loosening extra is refused by start, as the policy says.
        mgr.stop("extra")
        settings = {**session.settings, "extra_container_config": {"privileged": True}}
        mgr.store.update(session.id, settings=settings)
        with pytest.raises(PolicyError, match="extra_container_config privileged"):
            mgr.start("extra")
    finally:
        mgr.delete("extra")

"""SPEC 4: the admin policy bounds everything and cannot be overridden."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import clauderon_nb.config.policy
from clauderon_nb import ConfigError, PolicyError, SessionManager

Write = Callable[[str, str], Path]
GI = 1024**3


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    def _policy(text: str) -> Path:
        path = tmp_path / "policy.toml"
        path.write_text(text)
        monkeypatch.setenv("CLAUDERON_POLICY", str(path))
        return path

    return _policy


def plan(repo: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return SessionManager().plan(repo=str(repo), prompt="Add tests", **kwargs)


def test_allowed_images_full_match_glob_on_canonical(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('allowed_images = ["ghcr.io/team/*", "docker.io/library/python:3.*"]\n')
    assert plan(repo, backend="docker", image="ghcr.io/team/dev:1").settings.image == "ghcr.io/team/dev:1"
    assert plan(repo, backend="docker", image="python:3.12").settings.image == "docker.io/library/python:3.12"
    with pytest.raises(PolicyError) as exc:
        plan(repo, backend="docker", image="ubuntu")
    assert "allowed_images" in str(exc.value)
    assert "image 'docker.io/library/ubuntu:latest' (this request) does not match" in str(exc.value)
    with pytest.raises(PolicyError, match="allowed_images"):  # full match: a prefix is not enough
        plan(repo, backend="docker", image="evil.io/ghcr.io/team/x")


def test_default_image_replaced_by_a_literal_allowed_image(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('allowed_images = ["ghcr.io/team/base:2", "ghcr.io/team/*"]\n')
    p = plan(repo, backend="docker")
    assert p.settings.image == "ghcr.io/team/base:2"
    assert p.sources["image"] == "policy"


def test_max_cpu_and_memory_bound_every_layer(repo: Path, write: Write, policy: Callable[[str], Path]) -> None:
    policy('max_cpu = "2"\nmax_memory = "4g"\n')
    with pytest.raises(PolicyError, match=r"max_cpu is 2 cores; cpu_limit 4 cores \(preset large\) is above it"):
        plan(repo, backend="docker", preset="large")
    write("docker-config.toml", '[resources]\nmemory = "6g"\n')
    with pytest.raises(PolicyError, match=r"max_memory is 4g; memory_limit 6g \(.*docker-config.toml\) is above it"):
        plan(repo, backend="docker")
    with pytest.raises(PolicyError, match="cpu_request 3 cores"):
        plan(repo, backend="kubernetes", cpu_request="3")


def test_maximums_become_default_limits(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('max_cpu = "2"\nmax_memory = "4g"\n')
    p = plan(repo, backend="docker")
    assert (p.settings.cpu_limit, p.settings.memory_limit) == (2000, 4 * GI)
    assert p.sources["cpu_limit"] == p.sources["memory_limit"] == "policy"
    p = plan(repo, backend="docker", cpu_limit="1")
    assert (p.settings.cpu_limit, p.sources["cpu_limit"]) == (1000, "session")


def test_allowed_backends(
    repo: Path, write: Write, policy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import clauderon_nb.config.resolve as r

    policy('allowed_backends = ["kubernetes"]\n')
    with pytest.raises(
        PolicyError, match=r"allowed_backends is kubernetes; backend 'docker' \(this request\) is not allowed"
    ):
        plan(repo, backend="docker")
    with pytest.raises(PolicyError, match="backend 'local'"):
        plan(repo, backend="local")
    monkeypatch.setattr(r, "docker_engine_present", lambda: True)
    p = plan(repo)  # the built-in default is not allowed: the policy's first allowed backend is used
    assert p.backend == "kubernetes" and p.sources["backend"] == "policy"


def test_allowed_pull_policies(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('allowed_pull_policies = ["Always"]\n')
    p = plan(repo, backend="docker")
    assert str(p.settings.pull_policy) == "always" and p.sources["pull_policy"] == "policy"
    with pytest.raises(PolicyError, match="pull_policy 'never'"):
        plan(repo, backend="docker", pull_policy="never")


def test_default_preset(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('default_preset = "small"\nmax_cpu = "2"\n')
    p = plan(repo, backend="kubernetes")
    assert (p.settings.cpu_limit, p.settings.memory_limit) == (1000, 2 * GI)
    assert p.settings.preset == "small" and p.sources["preset"] == "policy"
    p = plan(repo, backend="kubernetes", preset="medium")
    assert p.settings.cpu_limit == 2000 and p.sources["cpu_limit"] == "preset"


def test_policy_file_errors(repo: Path, policy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    policy('max_cpus = "2"\n')
    with pytest.raises(ConfigError, match=r"policy.toml: unknown key 'max_cpus' \(did you mean 'max_cpu'\?\)"):
        plan(repo, backend="docker")
    policy('allowed_backends = ["dockr"]\n')
    with pytest.raises(ConfigError, match="did you mean 'docker'"):
        plan(repo, backend="docker")
    monkeypatch.setenv("CLAUDERON_POLICY", "/nonexistent/policy.toml")
    with pytest.raises(ConfigError, match=r"CLAUDERON_POLICY=/nonexistent/policy\.toml: no such file"):
        plan(repo, backend="docker")


def test_system_and_env_policies_both_apply(repo: Path, tmp_path: Path, policy: Callable[[str], Path]) -> None:
    system = clauderon_nb.config.policy.SYSTEM_POLICY
    system.parent.mkdir(parents=True)
    system.write_text('max_cpu = "1"\n')
    policy('max_cpu = "8"\n')  # a user's own policy file cannot loosen the system one
    with pytest.raises(PolicyError, match="max_cpu is 1 core"):
        plan(repo, backend="docker", cpu_limit="2")


def test_default_preset_above_the_policy_maximum_is_a_policy_file_error(
    repo: Path, policy: Callable[[str], Path]
) -> None:
    policy('default_preset = "small"\nmax_memory = "1g"\n')
    with pytest.raises(
        ConfigError, match=r"policy\.toml: default_preset 'small' sets memory_limit 2g, above max_memory 1g"
    ):
        plan(repo, backend="docker")
    assert plan(repo, backend="docker", preset="small", memory_limit="1g").settings.memory_limit == GI

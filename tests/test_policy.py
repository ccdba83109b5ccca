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
    system.parent.mkdir(parents=True, exist_ok=True)
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


# --- groups, users and quotas -----------------------------------------------------------

GROUPS = """
max_cpu = "1"
max_memory = "2g"
allowed_images = ["docker.io/library/python:*"]

[groups.students]
max_cpu = "500m"
max_running_sessions = 1

[groups.research]
max_cpu = "8"
allowed_images = ["ghcr.io/lab/*"]
max_running_sessions = 3

[groups.viewers]
max_sessions = 9

[users.alice]
max_cpu = "2"
"""


def test_groups_narrow_and_widen_and_a_user_section_beats_them(repo: Path, policy: Callable[[str], Path]) -> None:
    from clauderon_nb.config.policy import load_policy

    policy(GROUPS)
    base = load_policy()
    assert base.for_user("nobody").max_cpu() == 1000
    assert base.for_user("bob", ("students",)).max_cpu() == 500
    both = base.for_user("carol", ("students", "research", "unknown-group"))
    assert both.max_cpu() == 8000  # the most permissive of the groups
    assert both.limit("max_running_sessions") == (3, f"{both.files[0].where} [groups.research, groups.students]")
    assert both.image_allowed("ghcr.io/lab/x:1")
    # students leave allowed_images to the top level, so carol may use its images too: the union
    assert both.image_allowed("docker.io/library/python:3.12")
    assert not base.for_user("dan", ("research",)).image_allowed("docker.io/library/python:3.12")  # replaced
    # A group that leaves max_cpu alone gives the top level's: narrowed by one group, not by the other
    assert base.for_user("erin", ("students", "viewers")).max_cpu() == 1000
    assert base.for_user("alice", ("students",)).max_cpu() == 2000  # [users.alice] beats her group
    with pytest.raises(PolicyError, match=r"\[groups.students\]: max_cpu is 500m; cpu_limit 1 core"):
        SessionManager(owner="bob", groups=("students",)).plan(
            repo=str(repo), prompt="x", backend="docker", cpu_limit="1", image="python:3.12"
        )
    allowed = SessionManager(owner="carol", groups=("research",)).plan(
        repo=str(repo), prompt="x", backend="docker", cpu_limit="6", image="ghcr.io/lab/tool:2"
    )
    assert allowed.settings.cpu_limit == 6000


def test_a_bad_section_is_one_line_about_the_file(repo: Path, policy: Callable[[str], Path]) -> None:
    policy('[groups.students]\nmax_cpuu = "1"\n')
    with pytest.raises(ConfigError, match=r"groups\.students\.max_cpuu") as exc:
        plan(repo, backend="docker")
    assert "\n" not in str(exc.value)
    policy("max_sessions = -1\n")
    with pytest.raises(ConfigError, match=r"max_sessions -1: expected a whole number"):
        plan(repo, backend="docker")
    policy('max_lifetime = "forever"\n')
    with pytest.raises(ConfigError, match=r"max_lifetime 'forever': expected a duration"):
        plan(repo, backend="docker")


def test_quotas_count_sessions_and_running_ones_under_concurrency(
    repo: Path, write: Write, policy: Callable[[str], Path]
) -> None:
    """Eight threads at once against max_sessions = 3: exactly three records, whatever the timing."""
    import threading

    from clauderon_nb.sessions.quotas import QuotaError

    write("config.toml", '[agents.nap]\ncommand = ["sleep", "600"]\n')
    policy("max_sessions = 3\n")
    made: list[str] = []
    refused: list[str] = []
    failed: list[str] = []

    def create(i: int) -> None:
        try:
            made.append(
                SessionManager().create(repo=str(repo), prompt="x", backend="local", agent="nap", name=f"q{i}").name
            )
        except QuotaError as exc:
            refused.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - any other failure is the test's to report
            failed.append(repr(exc))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mgr = SessionManager()
    try:
        assert failed == []
        assert len(made) == 3 and len(refused) == 5, (made, refused)
        assert refused[0].startswith("quota max_sessions (")
        assert "you have 3 sessions (running and stopped), the limit is 3; delete one first" in refused[0]
        policy("max_running_sessions = 2\n")
        mgr.stop(made[0])
        with pytest.raises(QuotaError, match="you have 2 running sessions, the limit is 2; stop one first"):
            mgr.start(made[0])
        assert mgr.get(made[0]).status.value == "stopped"  # refused before anything ran
        mgr.stop(made[1])
        assert mgr.start(made[0]).status.value == "running"
    finally:
        for name in made:
            mgr.delete(name)


def test_total_cpu_and_memory_quotas(repo: Path, policy: Callable[[str], Path]) -> None:
    from clauderon_nb.config.policy import load_policy
    from clauderon_nb.model.session import Session, Status
    from clauderon_nb.sessions.quotas import QuotaError, check_quotas, usage

    policy('max_total_cpu = "2"\nmax_total_memory = "4g"\n')
    rules = load_policy()

    def s(status: Status, cpu: int | None, mem: int | None) -> Session:
        return Session(
            id=str(cpu),
            name="n",
            owner="o",
            backend="docker",
            agent="a",
            repo="-",
            worktree="-",
            branch="b",
            prompt="p",
            settings={"cpu_limit": cpu, "memory_limit": mem},
            backend_id=None,
            status=status,
            error=None,
            created_at=0,
            updated_at=0,
        )

    have = [s(Status.RUNNING, 1500, GI), s(Status.STOPPED, 4000, 8 * GI)]
    assert usage(have)["max_total_cpu"] == 1500  # stopped sessions hold no CPU
    check_quotas(rules, have, {"cpu_limit": 500, "memory_limit": GI}, new=True)
    with pytest.raises(
        QuotaError, match=r"your running sessions use 1500m and this one asks for 1 core, the limit is 2 cores"
    ):
        check_quotas(rules, have, {"cpu_limit": 1000, "memory_limit": GI}, new=True)
    with pytest.raises(QuotaError, match=r"quota max_total_memory .*: a session needs a memory_limit"):
        check_quotas(rules, have, {"cpu_limit": 100, "memory_limit": None}, new=True)


def test_allowed_agents_and_pass_env(
    repo: Path, write: Write, policy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write("config.toml", '[agents.leaky]\ncommand = ["sh"]\npass_env = ["AWS_SECRET_ACCESS_KEY"]\n')
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-agents")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    policy('allowed_agents = ["claude", "leaky"]\nallowed_pass_env = ["ANTHROPIC_API_KEY"]\n')
    with pytest.raises(
        PolicyError, match=r"allowed_agents is claude, leaky; agent 'codex' \(this request\) is not allowed"
    ):
        plan(repo, backend="docker", agent="codex")
    with pytest.raises(PolicyError, match=r"agent 'leaky' would forward AWS_SECRET_ACCESS_KEY") as exc:
        plan(repo, backend="docker", agent="leaky")
    assert "not-for-agents" not in str(exc.value)
    assert plan(repo, backend="docker", agent="claude").settings.agent == "claude"
    with pytest.raises(PolicyError, match="allowed_agents"):
        plan(repo, backend="local", agent="codex")


def test_gpu_bounds_and_quota(repo: Path, policy: Callable[[str], Path]) -> None:
    from clauderon_nb.config.policy import load_policy
    from clauderon_nb.model.session import Session, Status
    from clauderon_nb.sessions.quotas import QuotaError, check_quotas

    policy("max_gpus = 2\nmax_total_gpus = 3\n")
    with pytest.raises(PolicyError, match=r"max_gpus is 2; gpus 4 \(this request\) is above it"):
        plan(repo, backend="docker", gpus="4")
    with pytest.raises(PolicyError, match=r"max_gpus is 2; gpus all \(this request\) could be more"):
        plan(repo, backend="docker", gpus="all")
    running = Session(
        id="g",
        name="g",
        owner="o",
        backend="docker",
        agent="a",
        repo="-",
        worktree="-",
        branch="b",
        prompt="p",
        settings={"gpus": 2},
        backend_id=None,
        status=Status.RUNNING,
        error=None,
        created_at=0,
        updated_at=0,
    )
    check_quotas(load_policy(), [running], {"gpus": 1}, new=True)
    with pytest.raises(QuotaError, match=r"your running sessions use 2 and this one asks for 2, the limit is 3"):
        check_quotas(load_policy(), [running], {"gpus": 2}, new=True)


def test_placement_comes_whole_from_the_first_group_and_uploads_follow_sections(
    policy: Callable[[str], Path],
) -> None:
    from clauderon_nb.config.policy import load_policy

    policy(
        'max_upload_size = "10m"\n\n[groups.a-gpu]\nnode_selector = { pool = "gpu", zone = "1" }\nmax_upload_size = "1g"\n'
        '\n[groups.b-cpu]\nnode_selector = { pool = "cpu" }\n'
    )
    both = load_policy().for_user("x", ("b-cpu", "a-gpu"))
    assert both.first("node_selector")[0] == {"pool": "gpu", "zone": "1"}  # never a mix of the two pools
    assert both.max_upload_size() == 1024**3  # a group's section counts for uploads too
    assert load_policy().for_user("y", ()).max_upload_size() == 10 * 1024**2

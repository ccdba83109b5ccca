"""SPEC 4: config files, field-by-field hierarchy with provenance, loud errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clauderon_nb import ConfigError, CreateSessionRequest, SessionManager
from clauderon_nb.config.files import Loaded, RepoConfig, UserConfig, load_user_config
from clauderon_nb.config.policy import AdminPolicy
from clauderon_nb.config.resolve import DEFAULT_IMAGE, resolve

from .conftest import obj

Write = Callable[[str, str], Path]
GI, MI = 1024**3, 1024**2


def plan(repo: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return SessionManager().plan(repo=str(repo), prompt="Add tests", **kwargs)


def test_built_in_defaults(repo: Path) -> None:
    p = plan(repo, backend="docker")
    assert p.settings.image == DEFAULT_IMAGE
    assert str(p.settings.pull_policy) == "if-not-present"
    assert p.settings.cpu_limit is None and p.settings.memory_limit is None  # no limits on Docker by default
    assert p.settings.network == "bridge"
    assert p.sources["image"] == p.sources["pull_policy"] == p.sources["memory_limit"] == "default"
    assert p.sources["backend"] == "session"


def test_default_backend_follows_the_engine(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clauderon_nb.config.resolve as r

    monkeypatch.setattr(r, "docker_engine_present", lambda: False)
    p = plan(repo)
    assert p.backend == "local"
    assert p.origins["backend"] == "built-in default (no Docker engine found)"
    monkeypatch.setattr(r, "docker_engine_present", lambda: True)
    assert plan(repo).backend == "docker"


def test_a_docker_config_that_cannot_be_read_is_never_taken_for_no_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chosen context may hide in a config.json we cannot parse: that counts as an engine configured (its
    failure is then an error), never as "no engine" and a run on the host."""
    from clauderon_nb.config import environment

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setattr(environment, "DEFAULT_SOCKET", tmp_path / "no.sock")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert not environment.docker_engine_present()  # no config.json, no socket: no engine
    (tmp_path / "config.json").write_text('{"currentContext": "default"}')
    assert not environment.docker_engine_present()
    (tmp_path / "config.json").write_text('{"currentContext": "remote"')  # cut short
    assert environment.docker_engine_present()
    (tmp_path / "config.json").write_text('{"currentContext": "remote"}')
    assert environment.docker_engine_present()


def test_field_by_field(repo: Path, write: Write) -> None:
    write(
        "docker-config.toml",
        '[image]\nimage = "ghcr.io/team/dev:2"\npull_policy = "always"\n[resources]\ncpu = "4.0"\nmemory = "8g"\n',
    )
    p = plan(repo, backend="docker", cpu_limit="1")
    assert p.settings.cpu_limit == 1000 and p.sources["cpu_limit"] == "session"
    assert p.settings.memory_limit == 8 * GI and p.sources["memory_limit"] == "user"  # memory kept
    assert p.settings.image == "ghcr.io/team/dev:2" and p.sources["image"] == "user"
    assert p.origins["image"].endswith("docker-config.toml")
    assert p.spec["nano_cpus"] == 1_000_000_000 and p.spec["mem_limit"] == 8 * GI


def test_pull_policy_without_image_applies_to_configured_image(repo: Path, write: Write) -> None:
    write("docker-config.toml", '[image]\nimage = "ghcr.io/team/dev:2"\n')
    p = plan(repo, backend="docker", pull_policy="never")
    assert p.settings.image == "ghcr.io/team/dev:2"
    assert str(p.settings.pull_policy) == "never" and p.sources["pull_policy"] == "session"


def test_repo_file_between_session_and_user(repo: Path, write: Write) -> None:
    write("docker-config.toml", '[resources]\ncpu = "4"\nmemory = "8g"\n')
    (repo / ".clauderon.toml").write_text('image = "ghcr.io/team/project:1"\nmemory_limit = "2g"\n')
    p = plan(repo, backend="docker")
    assert (p.settings.memory_limit, p.sources["memory_limit"]) == (2 * GI, "repo")
    assert (p.settings.cpu_limit, p.sources["cpu_limit"]) == (4000, "user")
    assert (p.settings.image, p.sources["image"]) == ("ghcr.io/team/project:1", "repo")
    assert p.origins["image"].endswith(".clauderon.toml")


def test_presets_builtin_configured_and_overridden(repo: Path, write: Write) -> None:
    p = plan(repo, backend="docker", preset="large")
    assert (p.settings.cpu_limit, p.settings.memory_limit) == (4000, 8 * GI)
    assert p.sources["cpu_limit"] == "preset" and p.origins["cpu_limit"] == "preset large"
    p = plan(repo, backend="docker", preset="large", memory_limit="6g")
    assert (p.settings.memory_limit, p.sources["memory_limit"]) == (6 * GI, "session")
    write("config.toml", '[presets.gpu-box]\ncpu_limit = "1500m"\nmemory_limit = "12Gi"\n')
    p = plan(repo, backend="docker", preset="gpu-box")
    assert (p.settings.cpu_limit, p.settings.memory_limit) == (1500, 12 * GI)
    with pytest.raises(ConfigError, match=r"preset 'lareg' \(session\): unknown; .*did you mean 'large'"):
        plan(repo, backend="docker", preset="lareg")


def test_preset_named_by_repo_ranks_below_repo_values(repo: Path, write: Write) -> None:
    write("docker-config.toml", '[resources]\ncpu = "3"\n')
    (repo / ".clauderon.toml").write_text('preset = "small"\ncpu_limit = "500m"\n')
    p = plan(repo, backend="docker")
    assert (p.settings.cpu_limit, p.sources["cpu_limit"]) == (500, "repo")
    assert (p.settings.memory_limit, p.sources["memory_limit"]) == (2 * GI, "preset")
    assert p.settings.preset == "small" and p.sources["preset"] == "repo"


def test_kubernetes_file_and_request_equals_limit(repo: Path, write: Write) -> None:
    write(
        "k8s-config.toml",
        'namespace = "team-a"\nimage_pull_policy = "IfNotPresent"\ncpu_request = "1000m"\n'
        'cpu_limit = "4000m"\nmemory_limit = "8Gi"\nimage_pull_secrets = ["regcred"]\n'
        'service_account = "agent"\nstorage_class = "fast"\nworkspace_size = "20Gi"\n',
    )
    p = plan(repo, backend="kubernetes")
    s = p.settings
    assert (s.namespace, s.cpu_request, s.cpu_limit) == ("team-a", 1000, 4000)
    assert s.memory_request == s.memory_limit == 8 * GI  # a limit without a request: request = limit
    assert p.sources["memory_request"] == "user"
    assert s.image_pull_secrets == ("regcred",) and s.workspace_size == 20 * GI


def test_request_above_limit_across_layers(repo: Path, write: Write) -> None:
    write("k8s-config.toml", 'cpu_limit = "2"\n')
    with pytest.raises(
        ConfigError, match=r"cpu_request 3 cores \(this request\) is above cpu_limit 2 cores \(.*k8s-config.toml\)"
    ):
        plan(repo, backend="kubernetes", cpu_request="3")


def test_general_config_defaults(repo: Path, write: Write) -> None:
    write(
        "config.toml",
        'default_backend = "kubernetes"\ndefault_agent = "my-agent"\n'
        '[agents.my-agent]\ncommand = ["my-agent", "--task", "{prompt}"]\n',
    )
    p = plan(repo)
    assert p.backend == "kubernetes" and p.sources["backend"] == "user"
    assert p.settings.agent == "my-agent"
    assert p.session_spec.command == ["my-agent", "--task", "Add tests"]


def test_container_values_refused_when_backend_resolves_to_local(repo: Path, write: Write) -> None:
    write("config.toml", 'default_backend = "local"\n')
    with pytest.raises(ConfigError, match=r"image does not apply to the local backend \(backend from .*config.toml\)"):
        plan(repo, image="ubuntu")


# --- loud file errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("docker-config.toml", "[image\n", "docker-config.toml: invalid TOML:"),
        ("docker-config.toml", "[resources]\nmem = '2g'\n", "unknown key 'resources.mem' (did you mean 'memory'?)"),
        ("docker-config.toml", "[resource]\ncpu = '2'\n", "unknown key 'resource' (did you mean 'resources'?)"),
        ("docker-config.toml", "[resources]\nmemory = '2x'\n", "[resources] memory '2x': unknown unit 'x'"),
        (
            "docker-config.toml",
            "[image]\nimage = 'Bad/Image'\n",
            "[image] image 'Bad/Image': repository path must be lowercase",
        ),
        ("docker-config.toml", "[image]\npull_policy = 'sometimes'\n", "[image] pull_policy 'sometimes'"),
        ("docker-config.toml", "network = 'mynet'\n", "network 'mynet': expected one of bridge, none, host"),
        (
            "docker-config.toml",
            "[image.registry_auth]\nregistry = 'ghcr.io'\nconfig_file = '/nonexistent/c.json'\n",
            "[image.registry_auth] config_file '/nonexistent/c.json': no such file",
        ),
        ("k8s-config.toml", "namespce = 'a'\n", "unknown key 'namespce' (did you mean 'namespace'?)"),
        ("k8s-config.toml", "namespace = 'Team_A'\n", "namespace 'Team_A': expected a DNS label"),
        ("k8s-config.toml", "cpu_limit = '0'\n", "cpu_limit '0': must be greater than zero"),
        (
            "config.toml",
            "default_backend = 'dokcer'\n",
            "default_backend 'dokcer': expected one of docker, kubernetes, local (did you mean 'docker'?)",
        ),
        ("config.toml", "[presets.x]\ncpu = '1'\n", "unknown key 'presets.x.cpu' (did you mean 'cpu_limit'?)"),
        (
            "config.toml",
            "[agents.x]\ncommand = 'x {prompt}'\n",
            "[agents.x] command 'x {prompt}': expected a non-empty list",
        ),
        ("config.toml", "[agents.x]\ncommand = ['x']\npass_env = ['BAD-NAME']\n", "pass_env 'BAD-NAME'"),
    ],
)
def test_file_errors_name_file_key_and_reason(repo: Path, write: Write, file: str, text: str, expected: str) -> None:
    write(file, text)
    backend = "kubernetes" if file.startswith("k8s") else "docker"
    with pytest.raises(ConfigError) as exc:
        plan(repo, backend=backend)
    message = str(exc.value)
    assert message.startswith("~/") or message.startswith("/"), message
    assert file in message
    assert expected in message
    assert "\n" not in message


def test_repo_file_errors(repo: Path) -> None:
    (repo / ".clauderon.toml").write_text("memory_limt = '2g'\n")
    with pytest.raises(
        ConfigError, match=r"\.clauderon\.toml: unknown key 'memory_limt' \(did you mean 'memory_limit'\?\)"
    ):
        plan(repo, backend="docker")


@pytest.mark.parametrize(
    ("file", "text", "key"),
    [
        (
            "docker-config.toml",
            "[image.registry_auth]\nregistry = 'ghcr.io'\npassword = 'hunter2-SECRET'\n",
            "image.registry_auth.password",
        ),
        (
            "docker-config.toml",
            "[image.registry_auth]\nregistry = 'ghcr.io'\nauth = 'aHVudGVyMi1TRUNSRVQ='\n",
            "image.registry_auth.auth",
        ),
        ("docker-config.toml", "[image]\ntoken = 'hunter2-SECRET'\n", "image.token"),
        ("docker-config.toml", "[extra_env]\nGITHUB_TOKEN = 'hunter2-SECRET'\n", "extra_env.GITHUB_TOKEN"),
        ("docker-config.toml", "[extra_env]\nANTHROPIC_API_KEY = 'hunter2-SECRET'\n", "extra_env.ANTHROPIC_API_KEY"),
        ("k8s-config.toml", "token = 'hunter2-SECRET'\n", "token"),
        ("config.toml", "[agents.x]\ncommand=['x']\npassword = 'hunter2-SECRET'\n", "agents.x.password"),
    ],
)
def test_inline_secrets_refused_without_echo(repo: Path, write: Write, file: str, text: str, key: str) -> None:
    write(file, text)
    (repo / ".clauderon.toml").write_text("")
    with pytest.raises(ConfigError) as exc:
        plan(repo, backend="kubernetes" if file.startswith("k8s") else "docker")
    message = str(exc.value)
    assert f"key '{key}' would hold an inline secret" in message
    assert "SECRET" not in message and "aHVudGVy" not in message
    if key.startswith("image"):
        assert "docker login" in message


def test_registry_auth_section_is_allowed(repo: Path, write: Write, tmp_path: Path) -> None:
    cfg = tmp_path / "docker-auth.json"
    cfg.write_text("{}")
    write("docker-config.toml", f"[image.registry_auth]\nregistry = '127.0.0.1:5000'\nconfig_file = '{cfg}'\n")
    p = plan(repo, backend="docker")
    assert p.settings.registry_auth is not None
    assert p.settings.registry_auth.config_file == cfg


def test_env_extra_and_masked_credentials(repo: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("docker-config.toml", "[extra_env]\nTZ = 'UTC'\n")
    write("config.toml", "[agents.x]\ncommand = ['x', '{prompt}']\npass_env = ['MY_AGENT_KEY']\n")
    with pytest.raises(ConfigError, match="agent 'x': pass_env variable MY_AGENT_KEY is not set"):
        plan(repo, backend="docker", agent="x")
    monkeypatch.setenv("MY_AGENT_KEY", "sk-live-VERYSECRET")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-VERYSECRET")
    p = plan(repo, backend="docker", agent="x")
    assert p.spec["environment"]["MY_AGENT_KEY"] == "***"
    assert p.spec["environment"]["TZ"] == "***"  # extra_env values count as possibly secret
    assert "VERYSECRET" not in repr(p) + p._repr_html_()
    p = plan(repo, backend="kubernetes")  # built-in claude passes ANTHROPIC_API_KEY when it is set
    secret, _pvc, pod = p.spec
    assert secret["kind"] == "Secret" and secret["stringData"] == {"ANTHROPIC_API_KEY": "***"}
    ref = {"secretKeyRef": {"name": obj(p.name) + "-env", "key": "ANTHROPIC_API_KEY"}}
    assert {"name": "ANTHROPIC_API_KEY", "valueFrom": ref} in pod["spec"]["containers"][0]["env"]
    assert "VERYSECRET" not in repr(p)


def test_unknown_agent_did_you_mean(repo: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"agent 'claud' \(session\): unknown; expected one of claude, codex, echo, gemini \(did you mean 'claude'\?\)",
    ):
        plan(repo, backend="docker", agent="claud")


# --- merge order holds for any subset of layers ------------------------------


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    present=st.sets(st.sampled_from(["session", "preset", "repo", "kernel", "user", "policy"])),
    field=st.sampled_from(["cpu_limit", "memory_limit"]),
)
def test_merge_order_for_any_subset(tmp_path: Path, present: set[str], field: str) -> None:
    """The highest present layer wins, and the source says which one it was."""
    order = ["session", "preset", "repo", "kernel", "user", "policy", "default"]
    # The policy maximum is above every other layer, so it only shows when nothing else sets a value.
    values = {"session": 1100, "preset": 1200, "repo": 1300, "kernel": 1350, "user": 1400, "policy": 2000}
    unit = 1 if field == "cpu_limit" else 10 * MI
    home = tmp_path / f"h{abs(hash(frozenset(present)))}"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f"[presets.p]\n{field} = {values['preset'] * unit}\n"
        if field == "memory_limit"
        else f'[presets.p]\n{field} = "{values["preset"]}m"\n'
    )

    def as_text(v: int) -> str:
        return f'"{v}m"' if field == "cpu_limit" else str(v * unit)

    key = "cpu" if field == "cpu_limit" else "memory"
    (home / "k8s-config.toml").write_text(f"{field} = {as_text(values['user'])}\n" if "user" in present else "")
    repo_cfg = RepoConfig.model_validate({field: as_text(values["repo"]).strip('"')} if "repo" in present else {})
    session: dict[str, object] = {"prompt": "x", "backend": "kubernetes"}
    if "session" in present:
        session[field] = as_text(values["session"]).strip('"')
    if "preset" in present:
        session["preset"] = "p"
    request = CreateSessionRequest(**session)  # type: ignore[arg-type]
    user: UserConfig = load_user_config(home)
    from clauderon_nb.config.policy import PolicyConfig, PolicyFile

    pol = AdminPolicy(())
    if "policy" in present:
        rules = PolicyConfig.model_validate({f"max_{key}": as_text(values["policy"]).strip('"')})
        pol = AdminPolicy((PolicyFile(tmp_path / "policy.toml", rules),))
    kernel = {field: as_text(values["kernel"]).strip('"')} if "kernel" in present else {}
    res = resolve(request, user, Loaded(tmp_path / ".clauderon.toml", repo_cfg), pol, frontend=kernel)
    winner = next(layer for layer in order if layer in present or layer == "default")
    assert res.sources[field] == winner
    if winner != "default":
        assert getattr(res.settings, field) == values[winner] * unit
    else:
        assert getattr(res.settings, field) is None


def test_system_defaults_are_a_layer_of_their_own(repo: Path, write: Write, tmp_path: Path) -> None:
    """/etc/clauderon (here $CLAUDERON_SYSTEM_CONFIG): below the user's files, above the built-in defaults."""
    import os

    system = Path(os.environ["CLAUDERON_SYSTEM_CONFIG"])
    system.mkdir(parents=True, exist_ok=True)
    (system / "config.toml").write_text(
        'default_agent = "team"\n[agents.team]\ncommand = ["team-agent", "{prompt}"]\n'
        '[presets.team-size]\ndescription = "the team size"\ncpu_limit = "3"\n'
    )
    (system / "docker-config.toml").write_text('network = "none"\n[image]\nimage = "ghcr.io/team/dev:1"\n')
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="docker")
    assert (plan.settings.agent, plan.sources["agent"]) == ("team", "system")
    assert (plan.settings.image, plan.sources["image"]) == ("ghcr.io/team/dev:1", "system")
    assert plan.sources["network"] == "system" and plan.origins["network"].endswith("docker-config.toml")
    write("docker-config.toml", '[image]\nimage = "ghcr.io/me/mine:2"\n')
    mine = SessionManager().plan(repo=str(repo), prompt="x", backend="docker", preset="team-size")
    assert (mine.sources["image"], mine.sources["network"]) == ("user", "system")  # the user's file wins
    assert mine.settings.cpu_limit == 3000 and mine.sources["cpu_limit"] == "preset"
    assert "team" in SessionManager().options().agents and "team-size" in SessionManager().options().presets

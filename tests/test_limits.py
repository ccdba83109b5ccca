"""Input limits checked up front, secrets kept out of output, and the policy's exact meaning."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clauderon_nb import ConfigError, CreateSessionRequest, PolicyError, SessionManager, parse_cpu, parse_image
from clauderon_nb.config.policy import canonical_pattern
from clauderon_nb.errors import describe_validation_error
from clauderon_nb.frontends.parser import build_parser, request_fields
from clauderon_nb.frontends.widgets import magic_line
from clauderon_nb.model.units import docker_cpu_shares, parse_memory


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("clauderon-nb")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def error_line(**kwargs: Any) -> str:
    with pytest.raises(ValidationError) as exc:
        CreateSessionRequest(**kwargs)
    line = describe_validation_error(exc.value)
    assert "\n" not in line
    return line


# --- names, prompts, images ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [("../../x", "'x'"), ("ñandú", "'and'"), ("My Task", "'my-task'"), ("a/b", "'a-b'"), ("-x-", "'x'")],
)
def test_a_name_that_would_change_is_refused_with_the_valid_one(name: str, hint: str) -> None:
    line = error_line(prompt="x", name=name)
    assert line.startswith(f"name {name!r}: expected lowercase letters, digits and '-'")
    assert f"did you mean {hint}" in line


def test_names_that_are_valid_are_kept_as_given() -> None:
    assert CreateSessionRequest(prompt="x", name="fix-parser-2").name == "fix-parser-2"
    assert "at most 40 characters" in error_line(prompt="x", name="a" * 41)


def test_prompt_with_nul_is_refused() -> None:
    assert error_line(prompt="a\x00b") == (
        "prompt: contains a NUL character, which no process argument can carry; remove it"
    )


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("127.0.0.1:65536/app:1", "registry port 65536 is not between 1 and 65535"),
        ("ghcr.io:0/app", "registry port 0 is not between 1 and 65535"),
        ("a" * 240, "longer than 255 characters in its full form docker.io/library/"),
        ("ghcr.io/" + "/".join(["abcdefghij"] * 23) + "x" * 10, "longer than 255"),
    ],
)
def test_image_limits(image: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_image(image)
    assert str(parse_image("127.0.0.1:65535/app:1")) == "127.0.0.1:65535/app:1"


@pytest.mark.parametrize("text", ["２", "١٢", "1٥00m", "٢g", "5\u0660m"])
def test_non_ascii_digits_are_refused_in_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_cpu(text)
    with pytest.raises(ValueError, match="expected"):
        parse_memory(text)


def test_docker_cpu_shares_are_bounded_like_the_kubelets() -> None:
    assert docker_cpu_shares(1) == 2
    assert docker_cpu_shares(1000) == 1024
    assert docker_cpu_shares(10**9) == 262144


def test_tail_takes_ascii_digits_only(home: Path) -> None:
    out = cli("logs", "x", "--tail", "٣")
    assert out.returncode == 2 and "expected a whole number of lines" in out.stderr and "Traceback" not in out.stderr


# --- config values out of range -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("run_as_user = 2147483648", "run_as_user 2147483648: expected a uid, a whole number from 0 to 2147483647"),
        ("run_as_user = -5", "run_as_user -5"),
        ("run_as_user = 99999999999", "run_as_user 99999999999"),
        ("run_as_user = true", "run_as_user True"),
        ("pod_start_timeout = inf", "pod_start_timeout inf: expected a number of seconds above 0 and at most 86400"),
        ("pod_start_timeout = nan", "pod_start_timeout nan"),
        ("pod_start_timeout = 0", "pod_start_timeout 0"),
        ("pod_start_timeout = 1e9", "pod_start_timeout 1000000000.0"),
        ('workspace_size = "0"', "workspace_size '0': must be greater than zero"),
        ('git_remote_url = "https://u:tok@h/x.git"', "holds credentials"),
    ],
)
def test_k8s_config_values_out_of_range(home: Path, repo: Path, line: str, reason: str) -> None:
    (home / "k8s-config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError) as exc:
        SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes")
    message = str(exc.value)
    assert "k8s-config.toml" in message and reason in message and "\n" not in message
    assert "tok" not in message


# --- the policy's globs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("python:3.*", "docker.io/library/python:3.*"),
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ghcr.io/team/*", "ghcr.io/team/*"),
        ("docker.io/*", "docker.io/*"),
        ("*", "*"),
        ("[::1]:5000/app:1", "[::1]:5000/app:1"),
        ("index.docker.io/org/app:?", "docker.io/org/app:?"),
        ("ubuntu@sha256:" + "a" * 64, "docker.io/library/ubuntu@sha256:" + "a" * 64),
    ],
)
def test_allowed_images_entries_are_canonicalised_when_the_policy_loads(entry: str, canonical: str) -> None:
    assert canonical_pattern(entry) == canonical


def write_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    monkeypatch.setenv("CLAUDERON_POLICY", str(path))


def test_a_tag_glob_admits_no_digest_unless_the_policy_says(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = "sha256:" + "0" * 64
    write_policy(tmp_path, monkeypatch, 'allowed_images = ["python:3.*"]\n')
    mgr = SessionManager()
    mgr.plan(repo=str(repo), prompt="x", backend="docker", image="python:3.12")
    with pytest.raises(PolicyError, match="digests need allow_digests = true"):
        mgr.plan(repo=str(repo), prompt="x", backend="docker", image=f"python:3.12@{digest}")
    with pytest.raises(PolicyError, match="does not match"):
        mgr.plan(repo=str(repo), prompt="x", backend="docker", image="python:2.7")
    write_policy(tmp_path, monkeypatch, 'allowed_images = ["python:3.*"]\nallow_digests = true\n')
    mgr.plan(repo=str(repo), prompt="x", backend="docker", image=f"python:3.12@{digest}")


def test_brackets_in_a_host_are_literal(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(tmp_path, monkeypatch, 'allowed_images = ["[::1]:5000/*"]\n')
    mgr = SessionManager()
    mgr.plan(repo=str(repo), prompt="x", backend="docker", image="[::1]:5000/team/app:1")
    with pytest.raises(PolicyError):
        mgr.plan(repo=str(repo), prompt="x", backend="docker", image="1:5000/team/app:1")


def test_an_invalid_allowed_images_entry_is_a_policy_file_error(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(tmp_path, monkeypatch, 'allowed_images = ["Ghcr.io/Team/App:1"]\n')
    with pytest.raises(ConfigError, match=r"policy.toml: \[allowed_images\]|policy.toml: .*lowercase"):
        SessionManager().plan(repo=str(repo), prompt="x", backend="docker")


def test_policy_bounds_workspace_size_and_host_network(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(tmp_path, monkeypatch, 'max_workspace_size = "5g"\nallowed_networks = ["none"]\n')
    mgr = SessionManager()
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker")
    assert (plan.settings.network, plan.sources["network"]) == ("none", "policy")
    (home / "docker-config.toml").write_text('network = "host"\n')
    with pytest.raises(PolicyError, match="allowed_networks is none; network 'host'"):
        mgr.plan(repo=str(repo), prompt="x", backend="docker")
    k8s = mgr.plan(repo=str(repo), prompt="x", backend="kubernetes")
    assert k8s.settings.workspace_size == 5 * 1024**3
    (home / "k8s-config.toml").write_text('workspace_size = "50g"\n')
    with pytest.raises(PolicyError, match="max_workspace_size is 5g; workspace_size 50g"):
        mgr.plan(repo=str(repo), prompt="x", backend="kubernetes")


def test_tests_never_read_the_hosts_system_policy(tmp_path: Path) -> None:
    from clauderon_nb.config.policy import system_policy_path

    assert system_policy_path() == tmp_path / "etc-clauderon" / "policy.toml"
    out = cli("config", "--json", env={"CLAUDERON_SYSTEM_POLICY": str(tmp_path / "missing.toml")})
    assert "policy" not in out.stderr


# --- secrets ----------------------------------------------------------------------------


def test_extra_env_values_are_never_stored_or_shown(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('[agents.env]\ncommand = ["sh", "-c", "echo pw=$DB_PASSWORD"]\n')
    (home / "docker-config.toml").write_text('[extra_env]\nDATABASE_URL = "postgres://app:hunter2@db/x"\n')
    dry = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--agent", "env", "--dry-run")
    assert dry.returncode == 0 and "hunter2" not in dry.stdout
    dry_json = cli(
        "create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--agent", "env", "--dry-run", "--json"
    )
    assert json.loads(dry_json.stdout)["spec"]["environment"]["DATABASE_URL"] == "***"
    assert "hunter2" not in cli("config", "--repo", str(repo), "--backend", "docker", "--json").stdout


@pytest.mark.docker
def test_extra_env_reaches_the_container_but_not_the_store(dhome: Path, repo: Path, image: str) -> None:
    with open(dhome / "docker-config.toml", "a") as fh:
        fh.write('[extra_env]\nDATABASE_URL = "hunter2-VERYSECRET"\n')
    with open(dhome / "config.toml", "a") as fh:
        fh.write('\n[agents.env]\ncommand = ["sh", "-c", "echo pw=$DATABASE_URL; exec sleep 600"]\n')
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="docker", agent="env", name="xenv", image=image)
    import time

    deadline = time.monotonic() + 10
    while "pw=" not in str(mgr.logs("xenv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "pw=hunter2-VERYSECRET" in str(mgr.logs("xenv"))  # the agent got it
    for name in os.listdir(dhome):
        if name.startswith("sessions.sqlite"):
            assert b"hunter2" not in (dhome / name).read_bytes(), name
    for args in (("show", "xenv"), ("show", "xenv", "--json"), ("list", "--json")):
        assert "hunter2" not in cli(*args).stdout
    mgr.delete("xenv")


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASSWORD",
        "SMTP_PASS",
        "MYSQL_PWD",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "SSH_PRIVATE_KEY_PEM",
        "API_KEY",
    ],
)
def test_secret_looking_env_names(name: str, home: Path, repo: Path) -> None:
    from clauderon_nb.model.redact import looks_secret

    assert looks_secret(name)
    assert not looks_secret("TZ") and not looks_secret("LANG")
    # such a value in extra_env is an inline secret: refused, naming the key
    (home / "docker-config.toml").write_text(f'[extra_env]\n{name} = "x"\n')
    with pytest.raises(ConfigError, match=f"key 'extra_env.{name}' would hold an inline secret"):
        SessionManager().plan(repo=str(repo), prompt="x", backend="docker")


def test_list_all_hides_other_owners_prompts_unless_admin(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    alice = SessionManager(owner="alice")
    alice.create(repo=str(repo), prompt="alice's private plan", backend="local", agent="quick", name="al")
    bob = SessionManager(owner="bob")
    # (containers of other homes on a shared engine show as orphans in --all: not this test's business)
    (row,) = [r for r in bob.list(all_owners=True) if not r.runtime.get("orphan")]
    assert (row.name, row.owner) == ("al", "alice")
    assert "private" not in row.prompt and row.settings == {} and row.backend_id is None and row.runtime == {}
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    out = cli("list", "--all", "--json")
    assert "private plan" not in out.stdout and '"owner": "alice"' in out.stdout
    write_policy(tmp_path, monkeypatch, 'admins = ["bob"]\n')
    assert [r.prompt for r in bob.list(all_owners=True) if r.owner == "alice"] == ["alice's private plan"]
    alice.delete("al")


def test_a_kernel_default_is_a_layer_of_its_own(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text('default_backend = "local"\n')
    (repo / ".clauderon.toml").write_text('memory_limit = "1g"\n')
    mgr = SessionManager(defaults={"backend": "docker", "memory_limit": "2g"})
    plan = mgr.plan(repo=str(repo), prompt="x")
    assert (plan.settings.backend.value, plan.sources["backend"]) == ("docker", "kernel")
    assert (plan.settings.memory_limit, plan.sources["memory_limit"]) == (1024**3, "repo")  # repo file is above
    assert "kernel defaults (%config Clauderon)" in plan.origins["backend"]
    with pytest.raises(ConfigError, match=r"kernel defaults \(%config Clauderon\): backend 'dockr'"):
        SessionManager(defaults={"backend": "dockr"}).plan(repo=str(repo), prompt="x")


# --- the command line and the magic line ----------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["create", "--help"], ["list", "--help"]])
def test_help_is_printed_once(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 0
    assert out.stdout.count("usage:") == 1, out.stdout


_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    prompt=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=80),
    image=st.one_of(st.none(), _value),
    cpu=st.one_of(st.none(), _value),
    repo=st.one_of(st.none(), _value),
)
def test_copy_as_magic_round_trips_exactly(prompt: str, image: str | None, cpu: str | None, repo: str | None) -> None:
    values = {k: v for k, v in {"repo": repo, "image": image, "cpu_limit": cpu}.items() if v and v.strip()}
    line = magic_line({**values, "prompt": prompt})
    if line.startswith("%%"):
        first, _, body = line.partition("\n")
        args = build_parser("%%clauderon").parse_args(shlex.split(first.removeprefix("%%clauderon ")))
        parsed = {**request_fields(args), "prompt": body}
    else:
        args = build_parser("%clauderon").parse_args(shlex.split(line.removeprefix("%clauderon ")))
        parsed = request_fields(args)
    assert parsed == {**values, "prompt": prompt}


def test_store_holds_no_credentials_from_urls(home: Path, repo: Path) -> None:
    from .conftest import git

    git("remote", "set-url", "origin", "https://bot:tok-VERYSECRET@git.example.invalid/x.git", cwd=repo)
    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="u")
    with sqlite3.connect(home / "sessions.sqlite") as conn:
        dump = "\n".join(conn.iterdump())
    assert "VERYSECRET" not in dump
    mgr.delete("u")


def test_reprs_hold_no_secret_values(home: Path, repo: Path) -> None:
    from .conftest import git

    git("remote", "set-url", "origin", "https://bot:tok-VERYSECRET@git.example.invalid/x.git", cwd=repo)
    (home / "docker-config.toml").write_text('[extra_env]\nDATABASE_URL = "postgres://a:pw-VERYSECRET@db/x"\n')
    for backend in ("docker", "kubernetes"):
        plan = SessionManager().plan(repo=str(repo), prompt="x", backend=backend)
        for text in (repr(plan), repr(plan.settings), repr(plan.session_spec), plan._repr_html_()):
            assert "VERYSECRET" not in text


@pytest.mark.parametrize("host", ["registry-1.docker.io", "index.docker.io", "docker.io", "Docker.IO"])
def test_a_registry_auth_for_any_spelling_of_docker_hub_applies(home: Path, repo: Path, host: str) -> None:
    import base64

    from clauderon_nb.backends.docker import DockerBackend
    from clauderon_nb.model.image import normalize_registry

    assert normalize_registry(host) == "docker.io"
    token = base64.b64encode(b"me:pw-VERYSECRET").decode()
    (home / "hub.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token}}}))
    (home / "docker-config.toml").write_text(
        f'[image.registry_auth]\nregistry = "{host}"\nconfig_file = "{home / "hub.json"}"\n'
    )
    plan = SessionManager().plan(repo=str(repo), prompt="x", backend="docker", image="team/app:1")
    auth = DockerBackend()._auth_config(plan.session_spec)
    assert auth is not None and auth["username"] == "me"
    other = SessionManager().plan(repo=str(repo), prompt="x", backend="docker", image="ghcr.io/team/app:1")
    assert DockerBackend()._auth_config(other.session_spec) is None  # another registry: docker login applies


def test_an_empty_name_is_refused_not_made_up() -> None:
    assert error_line(prompt="x", name="  ").startswith("name '': empty")


def test_an_empty_allowed_list_says_nothing_is_allowed(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(tmp_path, monkeypatch, "allowed_images = []\n")
    with pytest.raises(PolicyError, match=r"allowed_images is empty \(nothing is allowed\)"):
        SessionManager().plan(repo=str(repo), prompt="x", backend="docker", image="busybox")


def test_credentials_in_docker_host_are_never_printed(home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clauderon_nb.backends.docker import DockerBackend
    from clauderon_nb.model.session import Session, Status

    monkeypatch.setenv("DOCKER_HOST", "tcp://ops:pw-VERYSECRET@127.0.0.1:1")
    session = Session(
        id="i", name="n", owner="o", backend="docker", agent="a", repo="-", worktree="-", branch="-", prompt="-",
        settings={}, backend_id=None, status=Status.RUNNING, error=None, created_at=0, updated_at=0,
    )  # fmt: skip
    assert "VERYSECRET" not in DockerBackend().attach_command(session)
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--image", "busybox")
    assert out.returncode == 1 and "VERYSECRET" not in out.stderr and out.stderr[-1] == "\n"

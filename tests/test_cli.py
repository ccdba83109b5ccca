"""The clauderon-nb command, through a real subprocess: same parser and messages as the magic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

AGENTS = r"""
[agents.echo]
command = ["sh", "-c", "printf 'argv=[%s]\n' \"$1\"; exec sleep 600", "agent", "{prompt}"]
"""


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("clauderon-nb")
    command = [exe] if exe else [sys.executable, "-m", "clauderon_nb.frontends.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_console_script_is_installed() -> None:
    assert shutil.which("clauderon-nb"), "pip install -e . installs the clauderon-nb command"


def test_dry_run_json(home: Path, repo: Path) -> None:
    out = cli(
        "create",
        "--repo",
        str(repo),
        "--prompt",
        "Add tests",
        "--backend",
        "kubernetes",
        "--name",
        "j",
        "--cpu-limit",
        "500m",
        "--memory-limit",
        "1g",
        "--dry-run",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["settings"]["cpu_limit"] == 500
    assert data["sources"]["memory_limit"] == "session"
    pod = data["spec"][1]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}


def test_same_text_as_the_magic(home: Path, repo: Path) -> None:
    out = cli("create", "--repo", str(repo), "--prompt", "x", "--backend", "docker", "--name", "same", "--dry-run")
    from clauderon_nb import SessionManager

    expected = repr(SessionManager().plan(repo=str(repo), prompt="x", backend="docker", name="same", check_image=True))
    assert out.stdout.rstrip("\n") == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crate"], "clauderon-nb: unknown command 'crate' (did you mean 'create'?)"),
        (["create", "--prompt", "x", "--memory-limit", "2x"], "error: memory_limit '2x': unknown unit 'x'"),
        (
            ["create", "--prompt", "x", "--memroy-limit", "2g"],
            "clauderon-nb: unknown option --memroy-limit (did you mean '--memory-limit'?)",
        ),
        (["show", "nope"], "error: no session named 'nope'"),
        (
            ["create", "--prompt", "x", "--backend", "docker", "--preset", "huge"],
            "error: preset 'huge' (session): unknown",
        ),
    ],
)
def test_usage_errors_exit_2(home: Path, repo: Path, args: list[str], message: str) -> None:
    out = cli(*args, cwd=repo)
    assert out.returncode == 2
    assert out.stderr.startswith(message), out.stderr
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr


def test_backend_failure_exits_1(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text(AGENTS)
    out = cli(
        "create",
        "--repo",
        str(repo),
        "--prompt",
        "x",
        "--backend",
        "docker",
        "--agent",
        "echo",
        env={"DOCKER_HOST": f"unix://{home}/nothing.sock"},
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: connect to Docker engine: cannot reach the Docker engine")
    assert out.stderr.count("\n") == 1


def test_help_exits_0() -> None:
    out = cli("create", "--help")
    assert out.returncode == 0
    assert "--memory-limit MEM" in out.stdout


def test_local_lifecycle_and_json(home: Path, repo: Path) -> None:
    (home / "config.toml").write_text(AGENTS)
    out = cli(
        "create", "--repo", str(repo), "--prompt", "hi; there", "--backend", "local", "--agent", "echo", "--name", "c1"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Session 'c1': running on local (local process), branch clauderon/c1"
    listed = json.loads(cli("list", "--json").stdout)
    assert [(s["name"], s["status"]) for s in listed] == [("c1", "running")]
    shown = json.loads(cli("show", "c1", "--json").stdout)
    assert shown["prompt"] == "hi; there" and shown["backend"] == "local"
    for _ in range(100):
        if "argv=[hi; there]" in cli("logs", "c1", "--tail", "5").stdout:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no output")
    config = json.loads(cli("config", "--backend", "local", "--json").stdout)
    assert config["backend"] == {"value": "local", "source": "session", "from": "this request"}
    refused = cli("delete", "c1")
    assert refused.returncode == 2 and "run `clauderon-nb delete c1 -f`" in refused.stderr
    done = cli("delete", "c1", "-f")
    assert done.returncode == 0 and done.stdout.strip() == "Deleted session c1."
    assert cli("list").stdout.strip() == "No sessions."


def test_cull_from_cron_without_a_service(home: Path, repo: Path, tmp_path: Path) -> None:
    """`clauderon-nb cull`: the policy's lifetimes where there is no service (local backend here)."""
    import time as clock

    (home / "config.toml").write_text('[agents.nap]\ncommand = ["sleep", "600"]\n')
    policy = tmp_path / "policy.toml"
    policy.write_text('max_lifetime = "8h"\ndelete_stopped_after = "1d"\n')
    env = {**os.environ, "CLAUDERON_HOME": str(home), "CLAUDERON_POLICY": str(policy)}
    made = cli(
        "create", "--repo", str(repo), "--prompt", "x", "--backend", "local", "--agent", "nap", "--name", "old", env=env
    )
    assert made.returncode == 0, made.stderr
    assert cli("cull", env=env).stdout.strip() == "Nothing to cull."
    later = str(clock.time() + 9 * 3600)
    dry = cli("cull", "--dry-run", "--now", later, env=env)
    assert dry.stdout.startswith("Would: stop ") and "old: stopped by the admin policy: max_lifetime 8h" in dry.stdout
    assert "running" in cli("list", env=env).stdout  # a dry run changes nothing
    done = cli("cull", "--now", later, "--json", env=env)
    assert json.loads(done.stdout)[0]["reason"] == "max_lifetime"
    shown = cli("show", "old", env=env).stdout
    assert "stopped by the admin policy: max_lifetime 8h" in shown and "stop by cull (max_lifetime)" in shown
    gone = cli("cull", "--now", str(clock.time() + 9 * 3600 + 2 * 86400), env=env)
    assert gone.stdout.startswith("Did: delete ") and cli("list", env=env).stdout.strip() == "No sessions."
    bad = cli("cull", "--now", "yesterday", env=env)
    assert bad.returncode == 2 and "expected epoch seconds or an ISO 8601 time" in bad.stderr


def test_one_command_line_builds_only_its_own_parser_and_every_command_is_listed() -> None:
    """The CLI builds the parser of the command it was given (quicker); the list of commands is the full parser's."""
    import argparse

    from clauderon_nb.frontends.parser import SUBCOMMANDS, build_parser

    full = build_parser()
    (choices,) = [a.choices for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    assert tuple(choices) == SUBCOMMANDS
    for command in SUBCOMMANDS:
        only = build_parser(only=command)
        (one,) = [a.choices for a in only._actions if isinstance(a, argparse._SubParsersAction)]
        assert list(one) == [command]
        sub = one[command]
        assert sub.format_help() == choices[command].format_help()  # the same flags and help either way

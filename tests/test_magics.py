"""The %clauderon magics in a real IPython shell, and one path through a real kernel."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.interactiveshell import InteractiveShell

from clauderon_nb import Plan, Session
from clauderon_nb.model.session import Status

LOCAL_AGENTS = r"""
[agents.echo]
command = ["sh", "-c", "printf 'argv=[%s]\n' \"$1\"; exec sleep 600", "agent", "{prompt}"]
"""


@pytest.fixture
def ip(home: Path) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "clauderon_nb")
    magics = next(c for c in shell.configurables if type(c).__name__ == "Clauderon")
    saved = {
        k: getattr(magics, k)
        for k in ("default_backend", "default_agent", "home", "confirm_delete", "show_progress", "debug")
    }
    (home / "config.toml").write_text(LOCAL_AGENTS)
    yield shell
    for key, value in saved.items():
        setattr(magics, key, value)


def magic(ip: InteractiveShell, line: str, cell: str | None = None) -> Any:
    if cell is None:
        return ip.run_line_magic("clauderon", line)
    return ip.run_cell_magic("clauderon", line, cell)


def usage_error(ip: InteractiveShell, line: str, cell: str | None = None) -> str:
    with pytest.raises(UsageError) as exc:
        magic(ip, line, cell)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_load_is_light() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'clauderon_nb')\n"
        "assert 'clauderon' in ip.magics_manager.magics['line']\n"
        "assert 'clauderon' in ip.magics_manager.magics['cell']\n"
        "print(','.join(m for m in ('docker', 'kubernetes', 'ipywidgets', 'pydantic') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_loadable_from_config(tmp_path: Path) -> None:
    (tmp_path / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['clauderon_nb']\nc.Clauderon.default_backend = 'local'\n"
    )
    code = "get_ipython().run_line_magic('config', 'Clauderon.default_backend')"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            f"--ipython-dir={tmp_path}",
            "--profile-dir",
            str(tmp_path),
            "--no-banner",
            "--colors=NoColor",
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'local'" in out.stdout


def test_dry_run_uses_traits_and_is_stable(ip: InteractiveShell, repo: Path) -> None:
    ip.run_line_magic("config", 'Clauderon.default_backend = "docker"')
    plan = magic(
        ip,
        f"create --repo {repo} --prompt 'Add tests' --name t1 --image ubuntu:24.04 "
        "--pull-policy Always --cpu-limit 1.5 --memory-limit 2g --dry-run",
    )
    assert isinstance(plan, Plan)
    text = repr(plan)
    assert text.startswith("Plan: docker session 't1' on branch clauderon/t1 (dry run: nothing created)")
    assert "image           docker.io/library/ubuntu:24.04  (session)" in text
    assert '"nano_cpus": 1500000000' in text and '"mem_limit": 2147483648' in text
    assert (
        repr(
            magic(
                ip,
                f"create --repo {repo} --prompt 'Add tests' --name t1 --image ubuntu:24.04 "
                "--pull-policy Always --cpu-limit 1.5 --memory-limit 2g --dry-run",
            )
        )
        == text
    )


def test_cell_magic_body_is_the_prompt(ip: InteractiveShell, repo: Path) -> None:
    plan = magic(ip, f"create --repo {repo} --backend docker --name cell --dry-run", "Fix the bug\nin parser.py\n")
    assert plan.session_spec.prompt == "Fix the bug\nin parser.py"
    assert "--prompt" in usage_error(ip, f"create --repo {repo} --prompt x --dry-run", "body")
    assert "only `create` takes a cell body" in usage_error(ip, "list", "body")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("crate --prompt x", "%clauderon: unknown command 'crate' (did you mean 'create'?)"),
        ("create --prompt x --cpu-limt 2", "unknown option --cpu-limt (did you mean '--cpu-limit'?)"),
        ("create --prompt x --memory-limit 2x", "memory_limit '2x': unknown unit 'x'"),
        ("create --prompt x --image MyOrg/app", "image 'MyOrg/app': repository path must be lowercase"),
        ("create --prompt x --pull-policy sometimes", "pull_policy 'sometimes': expected one of always"),
        ("create --prompt x --backend dockr", "did you mean 'docker'?"),
        ("create --repo /nonexistent --prompt x", "repo '/nonexistent': no such directory"),
        ("create --repo .", "--prompt is required"),
        ("show nope", "no session named 'nope'"),
        ("logs x --tail -1", "expected a whole number of lines"),
        ("create --prompt 'unterminated", "cannot split the line"),
        ("create --prompt x --preset lareg --backend docker", "did you mean 'large'"),
    ],
)
def test_errors_are_one_line_usage_errors(
    ip: InteractiveShell, repo: Path, line: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    assert expected in usage_error(ip, line)


def test_usage_error_shows_no_traceback(ip: InteractiveShell, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = ip.run_cell(f"%clauderon create --repo {repo} --prompt x --memory-limit 2x")
    assert result.error_in_exec is not None
    err = capsys.readouterr()
    shown = err.out + err.err
    assert "UsageError: memory_limit '2x'" in shown
    assert "Traceback" not in shown


def test_debug_shows_the_chain(ip: InteractiveShell, repo: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        magic(ip, f"--debug create --repo {repo} --prompt x --memory-limit 2x")
    ip.run_line_magic("config", "Clauderon.debug = True")
    with pytest.raises(ValidationError):
        magic(ip, f"create --repo {repo} --prompt x --memory-limit 2x")


def test_trait_validation(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", 'Clauderon.default_backend = "K8s"')
    magics = next(c for c in ip.configurables if type(c).__name__ == "Clauderon")
    assert magics.default_backend == "kubernetes"
    from traitlets import TraitError

    with pytest.raises(TraitError, match="did you mean 'docker'"):
        magics.default_backend = "dockr"
    for trait in ("default_backend", "default_agent", "home", "confirm_delete", "show_progress", "debug"):
        assert magics.trait_metadata(trait, "config") is True


def test_help(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    magic(ip, "create --help")
    out = capsys.readouterr().out
    for flag in (
        "--image",
        "--pull-policy",
        "--cpu-limit",
        "--memory-limit",
        "--cpu-request",
        "--memory-request",
        "--preset",
        "--dry-run",
        "--no-wait",
        "advanced container settings",
        "1024-based",
    ):
        assert flag in out
    for sub in ("list", "show", "logs", "stop", "start", "delete", "attach", "config", "form", "sessions"):
        magic(ip, f"{sub} --help")
        assert "usage: %clauderon" in capsys.readouterr().out


def test_config_shows_sources(ip: InteractiveShell, repo: Path, home: Path) -> None:
    (home / "docker-config.toml").write_text('[resources]\nmemory = "4g"\n')
    view = magic(ip, f"config --backend docker --repo {repo}")
    text = repr(view)
    assert text.startswith("Effective settings for the docker backend:")
    assert "memory_limit    4g" in text and "docker-config.toml" in text
    assert "image           ghcr.io/shepherdjerred/dotfiles:latest  (default)" in text


def test_local_lifecycle(ip: InteractiveShell, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", 'Clauderon.default_backend = "local"')
    ip.run_line_magic("config", "Clauderon.show_progress = False")
    s = magic(ip, f"create --repo {repo} --agent echo --name loc --prompt 'hello there'")
    assert isinstance(s, Session) and s.status is Status.RUNNING
    assert repr(s) == "Session 'loc': running on local (local process), branch clauderon/loc"
    import time

    for _ in range(100):
        magic(ip, "logs loc")
        if "argv=[hello there]" in capsys.readouterr().out:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no output")
    table = magic(ip, "list")
    assert repr(table).splitlines()[1].split()[:3] == ["loc", "running", "local"]
    assert "status     running" in repr(magic(ip, "show loc"))
    magic(ip, "attach loc")
    assert capsys.readouterr().out.startswith("tail -f ")
    assert magic(ip, "stop loc").status is Status.STOPPED
    assert magic(ip, "start loc").status is Status.RUNNING

    # delete asks; a kernel that cannot read input gets a hint instead
    def no_stdin(*_a: Any, **_k: Any) -> bool:
        raise StdinNotImplementedError

    ip.ask_yes_no = no_stdin  # type: ignore[method-assign]
    try:
        assert "use %clauderon delete NAME -f" in usage_error(ip, "delete loc")
        ip.ask_yes_no = lambda *_a, **_k: False  # type: ignore[method-assign]
        magic(ip, "delete loc")
        assert "Kept session loc." in capsys.readouterr().out
    finally:
        del ip.ask_yes_no
    magic(ip, "delete loc -f")
    assert "Deleted session loc." in capsys.readouterr().out
    assert repr(magic(ip, "list")) == "No sessions."


def test_real_kernel(home: Path, repo: Path) -> None:
    """The extension in a real ipykernel: load, dry run, a one-line error."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env={**__import__("os").environ})
    try:
        replies: list[dict[str, Any]] = []

        def run(code: str) -> list[dict[str, Any]]:
            outputs: list[dict[str, Any]] = []
            replies.append(kc.execute_interactive(code, output_hook=outputs.append, timeout=60))
            return outputs

        run("%load_ext clauderon_nb")
        out = run(f"%clauderon create --repo {repo} --backend docker --name k1 --prompt hi --dry-run")
        texts = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
        assert texts and texts[0].startswith("Plan: docker session 'k1'")
        assert any("text/html" in m["content"]["data"] for m in out if m["msg_type"] == "execute_result")
        out = run(f"%clauderon create --repo {repo} --backend docker --prompt hi --cpu-limit 0")
        reply = replies[-1]["content"]
        assert reply["status"] == "error"
        assert reply["ename"] == "UsageError"
        stderr = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        assert stderr.strip().startswith("UsageError: cpu_limit '0': must be greater than zero")
        assert "Traceback" not in stderr
        # A refusal of the admin policy is a PolicyError (code can catch it), shown in one line too.
        policy = home / "policy.toml"
        policy.write_text('max_cpu = "1"\n')
        run(f"import os; os.environ['CLAUDERON_POLICY'] = {str(policy)!r}")
        out = run(
            f"from clauderon_nb import PolicyError\ntry:\n    %clauderon create --repo {repo} --backend docker "
            "--prompt hi --cpu-limit 2 --dry-run\nexcept PolicyError as e:\n    print('caught', type(e).__name__)"
        )
        assert any("caught PolicyError" in m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        out = run(f"%clauderon create --repo {repo} --backend docker --prompt hi --cpu-limit 2 --dry-run")
        reply = replies[-1]["content"]
        assert reply["status"] == "error" and reply["ename"] == "PolicyError"
        errors = [m["content"] for m in out if m["msg_type"] == "error"]
        assert [e["traceback"] for e in errors] == [[f"PolicyError: {reply['evalue']}"]]
        assert "max_cpu is 1 core; cpu_limit 2 cores (this request) is above it" in reply["evalue"]
        run("del os.environ['CLAUDERON_POLICY']")
        # A quick create leaves a single summary line: no live display, nothing to clean from saved output.
        out = run(f"%clauderon create --repo {repo} --backend local --agent echo --name k2 --prompt hi")
        kinds = [m["msg_type"] for m in out if m["msg_type"] not in ("status", "execute_input")]
        assert kinds == ["stream", "execute_result"], kinds
        assert out[[m["msg_type"] for m in out].index("stream")]["content"]["text"] == "✓ session k2 is running\n"
        run("%clauderon delete k2 -f")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_create_lines_are_not_variable_expanded(ip: InteractiveShell, repo: Path) -> None:
    ip.user_ns.update(secret="LEAKED", n="nothing", where=str(repo))
    plan = magic(ip, "create --repo {where} --backend local --prompt 'use {secret} and $secret' --dry-run")
    assert plan.session_spec.prompt == "use {secret} and $secret"
    assert plan.session_spec.repo_root == repo  # other values expand as usual
    plan = magic(ip, "create --repo $where --backend local --prompt='{secret}' --dry-run")
    assert plan.session_spec.prompt == "{secret}"
    cell = magic(ip, f"create --repo {repo} --backend local --dry-run", "cell {secret} $secret\n")
    assert cell.session_spec.prompt == "cell {secret} $secret"
    # other commands still expand, as IPython users expect
    assert "no session named 'nothing'" in usage_error(ip, "show {n}")
    assert "no session named 'nothing'" in usage_error(ip, "show $n")


def test_magic_help_is_printed_once(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    magic(ip, "--help")
    magic(ip, "create --help")
    assert capsys.readouterr().out.count("usage:") == 2


def test_form_copy_as_magic_line_runs_as_typed(ip: InteractiveShell, repo: Path) -> None:
    from clauderon_nb.frontends.widgets import magic_line

    prompt = "quote ' and \" and {braces} and $dollar; $(id) --flag"
    line = magic_line({"repo": str(repo), "backend": "local", "prompt": prompt})
    plan = magic(ip, line.removeprefix("%clauderon ") + " --dry-run")
    assert plan.session_spec.prompt == prompt

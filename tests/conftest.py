"""Shared fixtures: every test gets its own CLAUDERON_HOME, no admin policy, a git repo."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import clauderon_nb.policy


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "clauderon-home"
    monkeypatch.setenv("CLAUDERON_HOME", str(home))
    monkeypatch.delenv("CLAUDERON_POLICY", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    for var in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(clauderon_nb.policy, "SYSTEM_POLICY", tmp_path / "etc-clauderon" / "policy.toml")
    return home


@pytest.fixture
def home(isolated: Path) -> Path:
    isolated.mkdir(parents=True, exist_ok=True)
    return isolated


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "README").write_text("hello\n")
    git("add", "README", cwd=path)
    git("commit", "-q", "-m", "init", cwd=path)
    git("remote", "add", "origin", "https://git.example.invalid/team/project.git", cwd=path)
    return path


@pytest.fixture
def write(home: Path) -> Callable[[str, str], Path]:
    """write("docker-config.toml", text) into CLAUDERON_HOME (or an absolute path)."""

    def _write(name: str, text: str) -> Path:
        path = Path(name) if Path(name).is_absolute() else home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write

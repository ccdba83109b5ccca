"""The configuration reference documents every key, and the example files load."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from clauderon_nb.config.files import DockerConfig, GeneralConfig, KubernetesConfig, RepoConfig
from clauderon_nb.config.policy import PolicyConfig
from clauderon_nb.config.tomlfile import load_toml

DOCS = Path(__file__).resolve().parent.parent / "docs"
FILES = {
    "config.toml": GeneralConfig,
    "docker-config.toml": DockerConfig,
    "k8s-config.toml": KubernetesConfig,
    ".clauderon.toml": RepoConfig,
    "policy.toml": PolicyConfig,
}


def keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a file may hold, dotted; ``NAME`` stands for a table name the user picks."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        inner = field.annotation
        if typing.get_origin(inner) in (typing.Union, types.UnionType):  # X | None
            inner = next(a for a in typing.get_args(inner) if a is not type(None))
        if typing.get_origin(inner) is typing.Annotated:
            inner = typing.get_args(inner)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out |= keys(inner, f"{prefix}{name}.")
        elif (
            typing.get_origin(inner) is dict
            and isinstance(typing.get_args(inner)[1], type)
            and issubclass(typing.get_args(inner)[1], BaseModel)
        ):
            section = typing.get_args(inner)[1]
            if set(section.model_fields) <= set(model.model_fields):  # a section of the file's own keys
                out.add(f"{prefix}{name}.NAME")
            else:
                out |= keys(section, f"{prefix}{name}.NAME.")
        else:
            out.add(prefix + name)
    return out


def documented(file: str) -> set[str]:
    text = (DOCS / "configuration.md").read_text()
    section = text.split(f"## `{file}`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


@pytest.mark.parametrize("file", FILES)
def test_every_key_is_documented(file: str) -> None:
    assert documented(file) == keys(FILES[file])


@pytest.mark.parametrize("file", FILES)
def test_example_files_load(file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the docker example names ~/.docker/config.json
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text("{}")
    example = DOCS / "examples" / file.lstrip(".")
    loaded = load_toml(example, FILES[file])
    assert loaded.model_dump(exclude_defaults=True), f"{example} sets nothing"


def test_examples_resolve_together(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples as one user's setup: a dry run works and shows each file as a source."""
    import shutil

    from clauderon_nb import SessionManager

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text("{}")
    for name in ("config.toml", "docker-config.toml", "k8s-config.toml"):
        shutil.copy(DOCS / "examples" / name, home / name)
    shutil.copy(DOCS / "examples" / "clauderon.toml", repo / ".clauderon.toml")
    monkeypatch.setenv("CLAUDERON_POLICY", str(DOCS / "examples" / "policy.toml"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "placeholder-for-a-dry-run")
    plan = SessionManager(home).plan(repo=str(repo), prompt="x", name="ex")
    assert plan.backend == "docker"
    assert plan.sources["image"] == "repo" and plan.settings.image == "ghcr.io/team/project-dev:3"
    assert plan.sources["memory_limit"] == "repo" and plan.sources["cpu_limit"] == "preset"
    assert plan.sources["network"] == "user"
    k8s = SessionManager(home).plan(repo=str(repo), prompt="x", name="ex", backend="kubernetes", cpu_limit="3")
    assert k8s.settings.namespace.startswith("clauderon-")
    assert k8s.sources["cpu_request"] == "user"


def test_rbac_and_docs_links_exist() -> None:
    for md in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)\)", md.read_text()):
            if target.startswith("http"):
                continue
            assert (md.parent / target).exists(), f"{md.name} links to missing {target}"


def test_the_example_policy_sets_every_key() -> None:
    """docs/examples/policy.toml is the reference admins copy from: it shows every key once."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    from clauderon_nb.config.policy import PolicyConfig

    data = tomllib.loads((DOCS / "examples" / "policy.toml").read_text())
    assert set(PolicyConfig.model_fields) - set(data) == set()

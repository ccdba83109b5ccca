"""The form and the session list, kernel side: values in, errors, disabled state and requests out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import CreateSessionForm, CreateSessionRequest, SessionList, SessionManager
from clauderon_nb.frontends.widgets import ADVANCED_TITLE, magic_line
from clauderon_nb.model.hints import HINTS
from clauderon_nb.model.session import Status


def form_for(repo: Path, **defaults: str) -> CreateSessionForm:
    form = CreateSessionForm(SessionManager(), defaults)
    form.fields["repo"].value = str(repo)
    return form


def test_built_from_the_request_model(home: Path, repo: Path) -> None:
    form = form_for(repo)
    assert list(form.fields) == [n for n in CreateSessionRequest.model_fields if HINTS[n].in_form]
    assert form.advanced.get_title(0) == ADVANCED_TITLE
    assert form.advanced.selected_index is None  # collapsed
    advanced_box = form.advanced.children[0]
    inside = {w.children[0].description for w in advanced_box.children[1:] if w.children}
    assert inside == {
        "Image",
        "Dockerfile",
        "Pull policy",
        "CPU limit",
        "Memory limit",
        "CPU request",
        "Memory request",
        "GPUs",
        "Preset",
    }
    assert [o[1] for o in form.fields["pull_policy"].options] == ["", "always", "if-not-present", "never"]
    assert form.create_button.disabled
    assert "Write a prompt" in form.summary.value
    assert form.errors["prompt"].value == ""  # no scolding before typing


def test_validates_as_you_type(home: Path, repo: Path) -> None:
    form = form_for(repo)
    form.fields["backend"].value = "docker"
    form.fields["prompt"].value = "Add tests"
    assert not form.create_button.disabled
    form.fields["memory_limit"].value = "2x"
    assert "memory_limit '2x': unknown unit 'x'" in form.errors["memory_limit"].value
    assert "color:#cf222e" in form.errors["memory_limit"].value
    assert form.create_button.disabled
    form.fields["memory_limit"].value = "2g"
    assert form.errors["memory_limit"].value == ""
    assert not form.create_button.disabled
    form.fields["cpu_limit"].value = "1"
    form.fields["cpu_request"].value = "2"
    assert "cpu_request 2 cores is above cpu_limit 1 core" in form.summary.value
    assert form.create_button.disabled
    form.fields["cpu_request"].value = ""
    form.fields["image"].value = "Bad/Image"
    assert "must be lowercase" in form.errors["image"].value
    form.fields["image"].value = "ghcr.io/team/dev:1"
    request = form.request()
    assert request.image == "ghcr.io/team/dev:1"
    assert request.memory_limit == 2 * 1024**3 and request.cpu_limit == 1000
    assert form.magic.value == (
        f"%clauderon create --repo {repo} --backend docker --image ghcr.io/team/dev:1 --cpu-limit 1 "
        "--memory-limit 2g --prompt 'Add tests'"
    )


def test_repo_errors_show_beside_the_repo(home: Path, tmp_path: Path) -> None:
    form = form_for(tmp_path)
    form.fields["prompt"].value = "x"
    form.fields["backend"].value = "docker"
    assert "not a git repository" in form.errors["repo"].value
    assert form.create_button.disabled


def test_placeholders_show_effective_default_and_source(home: Path, repo: Path) -> None:
    (home / "docker-config.toml").write_text('[resources]\nmemory = "4g"\n')
    form = form_for(repo, backend="docker")
    form.fields["prompt"].value = "x"
    assert form.fields["memory_limit"].placeholder.startswith("4g — from ")
    assert form.fields["memory_limit"].placeholder.endswith("docker-config.toml")
    assert form.fields["image"].placeholder == "ghcr.io/shepherdjerred/dotfiles:latest — built-in default"
    assert "if-not-present — built-in default" in form.errors["pull_policy"].value  # beside the dropdown
    form.fields["memory_limit"].value = "1g"
    assert form.request().memory_limit == 1024**3


def test_policy_shows_as_choices_and_bounds(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'allowed_backends = ["docker"]\nallowed_pull_policies = ["always", "if-not-present"]\n'
        'max_cpu = "2"\nmax_memory = "4g"\nallowed_images = ["ghcr.io/team/base:1", "ghcr.io/team/*"]\n'
    )
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    form = form_for(repo)
    assert [o[1] for o in form.fields["backend"].options] == ["", "docker"]
    assert [o[1] for o in form.fields["pull_policy"].options] == ["", "always", "if-not-present"]
    assert form.fields["image"].options == ("ghcr.io/team/base:1",)
    assert "CPU at most 2 cores; memory at most 4g; images matching ghcr.io/team/base:1, ghcr.io/team/*" in (
        form.policy_hint.value
    )
    form.fields["prompt"].value = "x"
    assert not form.create_button.disabled
    form.fields["cpu_limit"].value = "3"
    # a policy error stands beside the field it concerns, not in the summary
    assert "max_cpu is 2 cores; cpu_limit 3 cores (this request) is above it" in form.errors["cpu_limit"].value
    assert "Fix the cpu limit field" in form.summary.value
    assert form.create_button.disabled
    form.fields["cpu_limit"].value = ""
    assert form.errors["cpu_limit"].value == ""
    form.fields["image"].value = "ubuntu"
    assert "does not match" in form.errors["image"].value


def test_local_backend_disables_container_settings(home: Path, repo: Path) -> None:
    form = form_for(repo)
    form.fields["backend"].value = "local"
    form.fields["prompt"].value = "x"
    assert form.fields["image"].disabled and form.fields["cpu_limit"].disabled
    assert "Container settings do not apply" in form.summary.value


def test_dry_run_shows_the_plan(home: Path, repo: Path) -> None:
    form = form_for(repo, backend="docker")
    form.fields["prompt"].value = "x"
    form.fields["name"].value = "dry"
    form.dry_run.value = True
    assert form.create() is None
    assert "<b>Plan</b>: docker session <code>dry</code>" in form.result.value
    assert "dry run: nothing created" in form.result.value
    assert SessionManager().list() == []


def test_magic_line_for_multiline_prompt() -> None:
    assert magic_line({"repo": ".", "prompt": "a\nb"}) == "%%clauderon create --repo .\na\nb"
    assert magic_line({"prompt": "it's"}) == "%clauderon create --prompt 'it'\"'\"'s'"
    assert magic_line({"prompt": "--force"}) == "%clauderon create --prompt=--force"


def test_plain_text_fallbacks(home: Path, repo: Path) -> None:
    assert repr(form_for(repo)).startswith("CreateSessionForm: needs a Jupyter frontend")
    bundle = form_for(repo)._repr_mimebundle_()
    assert "VBox" not in bundle["text/plain"]
    assert repr(SessionList(SessionManager())) == "No sessions."


@pytest.mark.docker
def test_create_and_manage_on_the_real_engine(dhome: Path, repo: Path, image: str) -> None:
    form = form_for(repo, backend="docker")
    form.fields["agent"].value = "echo"
    form.fields["prompt"].value = "from the form"
    form.fields["name"].value = "wf"
    form.fields["image"].value = image
    form.fields["memory_limit"].value = "96m"
    seen: list[float] = []
    form.progress.observe(lambda change: seen.append(change["new"]), names="value")
    session = form.create()
    assert session is not None and session.status is Status.RUNNING
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert form.progress.layout.visibility == "hidden"
    assert "running" in form.result.value
    # done: the prompt and name are cleared, so a second click cannot make a second session
    assert form.fields["prompt"].value == "" and form.fields["name"].value == ""
    assert form.create_button.disabled
    assert form.create() is None
    assert [s.name for s in SessionManager().list()] == ["wf"]
    assert form.fields["memory_limit"].value == "96m"  # the settings stay for the next session
    # asking for the same name again is refused with one line, and nothing typed is lost
    form.fields["prompt"].value = "from the form"
    form.fields["name"].value = "wf"
    again = form.create()
    assert again is None and "you already have a session named 'wf'" in form.result.value
    assert form.fields["prompt"].value == "from the form"

    sessions = SessionList(SessionManager())
    assert [s.name for s in sessions.sessions] == ["wf"]
    assert repr(sessions).splitlines()[1].split()[:2] == ["wf", "running"]
    buttons = {b.description: b for b in sessions.table.children if hasattr(b, "on_click") and "wf" in b.tooltip}
    deadline = time.monotonic() + 10
    while "argv=[from the form]" not in sessions.detail.value and time.monotonic() < deadline:
        buttons["Logs"].click()
        time.sleep(0.1)
    assert "argv=[from the form]" in sessions.detail.value
    buttons["Stop"].click()
    assert SessionManager().get("wf").status is Status.STOPPED
    find = lambda label: next(  # noqa: E731
        b for b in sessions.table.children if getattr(b, "description", "") == label and "wf" in b.tooltip
    )
    find("Start").click()
    assert SessionManager().get("wf").status is Status.RUNNING
    find("Delete").click()
    assert "Confirm delete" in sessions.detail.value
    assert SessionManager().list()  # not yet
    find("Confirm delete").click()
    assert SessionManager().list() == []
    assert "Deleted wf." in sessions.detail.value
    assert repr(sessions) == "No sessions."


def test_keystrokes_read_from_memory_but_see_changed_files(home: Path, repo: Path) -> None:
    import os
    import subprocess

    from .conftest import git

    (home / "docker-config.toml").write_text('[resources]\nmemory = "1g"\n')
    form = form_for(repo, backend="docker")
    form.fields["prompt"].value = "x"
    assert form.plan is not None and form.plan.settings.memory_limit == 1024**3
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting(args: Any, *a: Any, **k: Any) -> Any:
        calls.append(list(args))
        return real_run(args, *a, **k)

    subprocess.run = counting  # type: ignore[assignment]
    try:
        form.fields["cpu_limit"].value = "1"
        assert calls == []  # nothing re-read, no git: served from memory
        (home / "docker-config.toml").write_text('[resources]\nmemory = "2g"\n')
        st = os.stat(home / "docker-config.toml")
        os.utime(home / "docker-config.toml", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        form.fields["cpu_limit"].value = "2"
        assert form.plan is not None and form.plan.settings.memory_limit == 2 * 1024**3  # the change is seen
        before = form.plan.session_spec.base_commit
    finally:
        subprocess.run = real_run  # type: ignore[assignment]
    git("commit", "-q", "--allow-empty", "-m", "moved on", cwd=repo)
    form.fields["cpu_limit"].value = "1"
    assert form.plan is not None and form.plan.session_spec.base_commit != before  # a new HEAD is seen too


def test_the_form_says_what_a_repository_file_would_do_with_credentials(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('[agents.cred]\ncommand = ["x"]\npass_env_optional = ["MY_AGENT_TOKEN"]\n')
    monkeypatch.setenv("MY_AGENT_TOKEN", "tok")
    (repo / ".clauderon.toml").write_text('image = "evil.example.com/steal:1"\n')
    form = form_for(repo, backend="docker", agent="cred")
    form.fields["prompt"].value = "x"
    assert "would receive your credentials" in form.summary.value
    assert "chosen by the repository's .clauderon.toml" in form.errors["image"].value
    assert form.create_button.disabled
    form.fields["image"].value = "busybox"  # choosing the image yourself needs no trust
    assert not form.create_button.disabled


def test_the_form_says_when_the_agent_would_run_on_the_host(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from clauderon_nb.config import environment

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setattr(environment, "DEFAULT_SOCKET", tmp_path / "none.sock")
    form = form_for(repo)
    form.fields["prompt"].value = "x"
    assert "runs as a local process on this machine" in form.summary.value


def test_the_form_never_offers_the_host_for_an_engine_you_chose(
    home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DOCKER_HOST names an engine that is down: the form plans docker (create then says the engine is down)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    form = form_for(repo)
    form.fields["prompt"].value = "x"
    assert "a docker session" in form.summary.value
    assert "local process" not in form.summary.value

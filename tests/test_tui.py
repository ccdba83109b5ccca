"""The terminal UI: Textual's pilot against the real engine, SVG snapshots, and a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual", reason="the terminal UI needs textual: pip install -e '.[test]'")

from textual.widgets import Button, Input, Static, TextArea

from clauderon_nb import SessionManager
from clauderon_nb.frontends.tui import ClauderonTUI, ConfirmDelete, CreateScreen, SessionsScreen

from .dockerkit import need
from .waiting import until

SIZE = (110, 48)


def shots() -> Path | None:
    where = os.environ.get("CLAUDERON_SCREENSHOTS")
    return Path(where) if where else None


async def wait_for(condition: Any, pilot: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.1)


def fill(screen: CreateScreen, **values: str) -> None:
    for name, value in values.items():
        widget = screen.query_one(f"#f-{name}")
        if isinstance(widget, TextArea):
            widget.load_text(value)
        else:
            assert isinstance(widget, Input)
            widget.value = value


@pytest.mark.docker
def test_create_with_advanced_settings_then_delete_on_the_real_engine(
    dhome: Path, repo: Path, image: str, docker_client: Any
) -> None:
    async def scenario() -> None:
        app = ClauderonTUI(SessionManager(), interval=0)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, SessionsScreen)
            await pilot.press("n")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            await pilot.press("f2")  # the advanced section opens with a key (and its title is clickable)
            assert app.focused is screen.query_one("#f-image")  # and its first field has the keys
            for _ in range(4):  # build, pull policy, CPU, memory
                await pilot.press("tab")
            assert app.focused is screen.query_one("#f-memory_limit")
            await pilot.press("f2")
            assert app.focused is screen.query_one("#f-repo")  # closed: back to the form's first field
            await pilot.press("f2")
            fill(screen, repo=str(repo), prompt="Write a haiku", agent="echo", name="tui", image=image)
            fill(screen, memory_limit="2x")
            await pilot.pause()
            error = str(screen.query_one("#e-memory_limit", Static).render())
            assert "memory_limit '2x': unknown unit 'x'" in error
            assert screen.query_one("#create", Button).disabled
            fill(screen, memory_limit="128m", cpu_limit="0.5")
            await pilot.pause()
            assert not screen.query_one("#create", Button).disabled, screen.query_one("#summary", Static).render()
            assert "clauderon-nb create" in str(screen.query_one("#command", Static).render())
            await pilot.press("ctrl+s")  # the Create key (the button may be scrolled out of view)
            await wait_for(lambda: isinstance(app.screen, SessionsScreen), pilot)
            session = SessionManager().get("tui")
            info = docker_client.api.inspect_container(session.runtime["container"])
            assert info["HostConfig"]["NanoCpus"] == 500_000_000
            assert info["HostConfig"]["Memory"] == 128 * 1024**2
            sessions = app.screen
            assert isinstance(sessions, SessionsScreen)
            sessions.refresh_sessions()
            await pilot.pause()
            assert "tui" in str(sessions.query_one("DataTable").get_row_at(0))
            out = shots()
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                app.save_screenshot(str(out / "tui-sessions.svg"))
            out = shots()
            await pilot.press("l")  # logs: the last lines, then follow
            await wait_for(
                lambda: "Write a haiku" in "".join(line.text for line in app.screen.query_one("RichLog").lines), pilot
            )
            if out is not None:
                app.save_screenshot(str(out / "tui-logs.svg"))
            await pilot.press("escape")
            await pilot.press("a")  # headless: the attach command is shown (a terminal suspends into it)
            assert "Attach with: docker attach clauderon-tui-" in str(sessions.query_one("#status-line").render())
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmDelete)
            if out is not None:
                app.save_screenshot(str(out / "tui-delete.svg"))
            assert "the branch clauderon/tui is kept if the agent committed on it" in str(
                app.screen.query_one("Label").render()
            )
            await pilot.click("#yes")
            await wait_for(lambda: SessionManager().list() == [], pilot)

    asyncio.run(scenario())


@pytest.mark.docker
def test_cancel_during_a_create_leaves_nothing(dhome: Path, repo: Path, image: str, docker_client: Any) -> None:
    from clauderon_nb.frontends import tui

    async def scenario() -> None:
        app = ClauderonTUI(SessionManager(), interval=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            fill(screen, repo=str(repo), prompt="x", agent="echo", name="gone", image=image)
            await pilot.pause()
            screen._cancel = True  # as if Escape was pressed while it runs: the next progress event cancels
            screen._creating = True
            screen._run_create(__import__("clauderon_nb").CreateSessionRequest(**screen.values()))
            await wait_for(lambda: "Cancelled" in str(screen.query_one("#progress-label", Static).render()), pilot)

    asyncio.run(scenario())
    assert SessionManager().list() == []
    assert not docker_client.api.containers(all=True, filters={"label": "clauderon.io/session-name=gone"})
    assert tui.Cancelled.__mro__[1] is BaseException  # a cancel rolls back like an interrupt


def test_a_terminal_narrower_than_80_columns_is_still_usable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")

    async def scenario() -> None:
        app = ClauderonTUI(SessionManager(owner="narrow"), interval=0)
        async with app.run_test(size=(64, 24)) as pilot:
            await pilot.press("n")
            await pilot.press("f2")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            fill(screen, memory_limit="2x")
            await pilot.pause()
            assert "unknown unit 'x'" in str(screen.query_one("#e-memory_limit", Static).render())
            screen.query_one("#e-memory_limit").scroll_visible()
            await pilot.pause()
            assert screen.query_one("#e-memory_limit").region.width <= 64  # wrapped, not cut off
            await pilot.press("escape")
            assert isinstance(app.screen, SessionsScreen)

    asyncio.run(scenario())


def test_snapshot_of_the_empty_session_list(home: Path, snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDERON_SERVICE_URL", "none")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent-for-the-snapshot.sock")
    app = ClauderonTUI(SessionManager(owner="snap"), interval=0)
    assert snap_compare(app, terminal_size=SIZE)


def test_snapshot_of_the_create_dialog_with_an_inline_error(
    home: Path, snap_compare: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent-for-the-snapshot.sock")
    app = ClauderonTUI(SessionManager(owner="snap"), interval=0)

    async def open_dialog(pilot: Any) -> None:
        await pilot.press("n")
        await pilot.press("f2")
        fill(app.screen, memory_limit="2x")  # type: ignore[arg-type]
        await pilot.pause()
        out = shots()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(str(out / "tui-create.svg"))
            await pilot.press("f1")
            app.save_screenshot(str(out / "tui-image-help.svg"))
            await pilot.press("escape")

    assert snap_compare(app, terminal_size=SIZE, run_before=open_dialog)


def test_it_starts_and_renders_in_a_real_terminal(home: Path, tmp_path: Path) -> None:
    """``clauderon-nb tui`` in tmux: the list, then the create dialog with its advanced section open."""
    if shutil.which("tmux") is None:
        need("tmux is not installed (apt-get install tmux)")
    session = f"clauderon-tui-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CLAUDERON_HOME": str(home),
        "CLAUDERON_SERVICE_URL": "none",
        "DOCKER_HOST": "unix:///nonexistent.sock",
        "TERM": "xterm-256color",
    }
    command = f"{sys.executable} -m clauderon_nb tui"
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command], env=env, check=True)

    def pane() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
        ).stdout

    def wait(text: str) -> str:
        shown = [""]

        def showing() -> str | None:
            shown[0] = pane()
            return shown[0] if text in shown[0] else None

        return until(showing, lambda: f"{text!r} to be shown:\n{shown[0]}", every=0.1)

    try:
        wait("clauderon sessions")
        wait("No sessions. Press n for a new one.")
        subprocess.run([*tmux, "send-keys", "-t", session, "n"], check=True)
        wait("New session")
        subprocess.run([*tmux, "send-keys", "-t", session, "F2"], check=True)
        screen = wait("Memory limit")  # the section has opened, its first field (the image) has the keys
        assert "Advanced Container Settings" in screen
        # (Moving on with Tab is the Pilot tests' job: a terminal delivers keys sent at once as one paste.)
        subprocess.run([*tmux, "send-keys", "-t", session, "Bad Image"], check=True)
        screen = wait("image 'Bad Image': character ' ' is not allowed in an image reference")
        assert "Container image" not in screen  # the field holds the text, not its placeholder
        out = shots()
        (out or tmp_path).mkdir(parents=True, exist_ok=True)
        ((out or tmp_path) / "tui-tmux-create.txt").write_text(screen)
        subprocess.run([*tmux, "send-keys", "-t", session, "Escape"], check=True)
        wait("clauderon sessions")
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
        until(
            lambda: subprocess.run([*tmux, "has-session", "-t", session], capture_output=True).returncode != 0,
            "the TUI to quit on q",
            timeout=10,
        )
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_an_admin_sees_every_owner_with_totals(
    home: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('[agents.nap]\ncommand = ["sleep", "600"]\n')
    policy = tmp_path / "policy.toml"
    policy.write_text('admins = ["root-admin"]\n')
    monkeypatch.setenv("CLAUDERON_POLICY", str(policy))
    for owner in ("ann", "ben"):
        SessionManager(owner=owner).create(repo=str(repo), prompt="x", backend="local", agent="nap", name=f"s-{owner}")

    async def scenario() -> None:
        app = ClauderonTUI(SessionManager(owner="root-admin"), all_owners=True, interval=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SessionsScreen)
            table = screen.query_one("DataTable")
            owners = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
            assert owners == {"ann", "ben"}
            totals = str(screen.query_one("#totals", Static).render())
            assert "ann: 1 running of 1" in totals and "ben: 1 running of 1" in totals

    try:
        asyncio.run(scenario())
    finally:
        for owner in ("ann", "ben"):
            SessionManager(owner=owner).delete(f"s-{owner}")

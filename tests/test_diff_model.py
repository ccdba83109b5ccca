"""A session's diff as data (issue 23's first part): parsed from git's text, bounded, shown three ways."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from clauderon_nb.model.diff import parse_diff


def _sample(tmp_path: Path) -> str:
    repo = tmp_path / "r"
    git = ["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("one\ntwo\nthree\n")
    (repo / "gone.txt").write_text("keep\n")
    (repo / "old.txt").write_text("rename me\nplease\nthanks\n")
    (repo / "bin.dat").write_bytes(b"\x00\x01\x02")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    (repo / "a.txt").write_text("one\n2\nthree\nfour\n")
    (repo / "gone.txt").unlink()
    (repo / "old.txt").rename(repo / "new.txt")
    (repo / "added.txt").write_text("new\n")
    (repo / "bin.dat").write_bytes(b"\x00\x03")
    (repo / "big.txt").write_text("".join(f"{i}\n" for i in range(10_000)))
    (repo / "esc.txt").write_text("esc \x1b[31mred\n")
    subprocess.run([*git, "add", "-A"], check=True)
    out = subprocess.run([*git, "diff", "--cached", "--find-renames", "--binary"], capture_output=True, text=True)
    return out.stdout


def test_a_change_of_every_kind_is_parsed_and_bounded(tmp_path: Path) -> None:
    diff = parse_diff(_sample(tmp_path))
    got = [(f.path, f.old_path, f.status, f.binary, f.added, f.removed, f.truncated) for f in diff.files]
    assert got == [
        ("a.txt", None, "modified", False, 2, 1, False),
        ("added.txt", None, "added", False, 1, 0, False),
        ("big.txt", None, "added", False, 10_000, 0, True),
        ("bin.dat", None, "modified", True, 0, 0, False),
        ("esc.txt", None, "added", False, 1, 0, False),
        ("gone.txt", None, "deleted", False, 0, 1, False),
        ("new.txt", "old.txt", "renamed", False, 0, 0, False),
    ]
    assert diff.note == "9000 diff lines are not shown (at most 1000 a file, 5000 in all)"
    assert diff.files[4].hunks[0].lines == ["+esc \\x1b[31mred"]  # an agent's escape sequence is shown, not run
    assert diff.stat().splitlines()[-2] == " 7 files changed, 10004 insertions(+), 2 deletions(-)"
    assert " old.txt => new.txt | +0 -0" in diff.stat()
    data = json.loads(json.dumps(diff.to_json()))
    assert data["stats"] == {"files": 7, "added": 10004, "removed": 2}
    assert data["files"][0]["hunks"][0]["lines"] == [" one", "-two", "+2", " three", "+four"]
    text = diff.unified()
    assert "diff --git a/added.txt b/added.txt\n--- /dev/null\n+++ b/added.txt\n@@ -0,0 +1,1 @@\n+new\n" in text
    assert "\x1b[32m+2\x1b[0m" in diff.unified(colour=True) and "\x1b[" not in text


def test_text_that_is_no_diff_never_fails() -> None:
    assert parse_diff("").files == []
    assert parse_diff("hello\n@@ nonsense\n+++\n").files == []
    odd = parse_diff("diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\nplain line\n")
    assert (odd.files[0].added, odd.files[0].removed) == (1, 1)


def test_a_docker_sessions_diff_is_read_inside_its_container(
    dhome: Path, repo: Path, image: str, docker_client: object
) -> None:
    """The agent commits agent.txt; then, inside the container, changes a tracked file and leaves a new one
    uncommitted: the diff against the base shows all three, read by git in the sandbox."""
    import time

    from clauderon_nb import SessionManager

    (repo / "tracked.txt").write_text("before\n")
    subprocess.run(["git", "-C", str(repo), "add", "tracked.txt"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@example.invalid", "commit", "-qm", "t"],
        check=True,
    )
    mgr = SessionManager()
    session = mgr.create(
        repo=str(repo), prompt="x", backend="docker", agent="committer", image=image, pull_policy="never", name="dif"
    )
    try:
        deadline = time.monotonic() + 60
        while "committed" not in str(mgr.logs("dif")):
            assert time.monotonic() < deadline, mgr.logs("dif")
            time.sleep(0.2)
        cid = session.runtime["container"]
        api = docker_client.api  # type: ignore[attr-defined]
        run = api.exec_create(cid, ["sh", "-c", "echo after > /workspace/tracked.txt; echo new > /workspace/loose.txt"])
        api.exec_start(run)
        diff = mgr.diff("dif")
        assert [(f.path, f.status, f.added, f.removed) for f in diff.files] == [
            ("agent.txt", "added", 1, 0),
            ("tracked.txt", "modified", 1, 1),
            ("loose.txt", "added", 1, 0),
        ]
    finally:
        mgr.delete("dif")


def test_the_notebook_view_folds_highlights_and_bounds(tmp_path: Path) -> None:
    from clauderon_nb.frontends.diff_view import DiffView

    text = _sample(tmp_path) + (
        "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1,1 +1,1 @@\n-import os\n+import sys\n"
    )
    view = DiffView("s", parse_diff(text))
    page = view._repr_html_()
    assert page.count("<details") == 8  # every file collapsible
    assert "<details open><summary>a.txt" in page and "<details><summary>big.txt" in page  # a long one folded
    assert "Binary file: not shown." in page and "9000 diff lines are not shown" in page
    assert "\x1b" not in page and "esc \\x1b[31mred" in page
    assert 'style="color: #008000; font-weight: bold">import</span>' in page  # Pygments, by file name
    side = DiffView("s", parse_diff(text), side_by_side=True)._repr_html_()
    assert side.count("<tr>") > 0 and "colspan='4'" in side
    assert repr(DiffView("s", parse_diff(text), stat_only=True)).endswith("(at most 1000 a file, 5000 in all)")


def test_a_session_without_a_container_is_refused_in_one_line(home: Path, repo: Path) -> None:
    """A local session has no sandbox to read uncommitted changes in: diff says so (git never runs there)."""
    import pytest

    from clauderon_nb import ClauderonError, SessionManager

    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    mgr = SessionManager()
    mgr.create(repo=str(repo), prompt="x", backend="local", agent="quick", name="here")
    try:
        with pytest.raises(
            ClauderonError, match="runs on the local backend: its changes are read only inside a Docker"
        ):
            mgr.diff("here")
    finally:
        mgr.delete("here")

"""End to end in real JupyterLab and headless Chromium: the form, an inline error, a real create, the list."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import SessionManager

from .jupyterkit import CHROMIUM_ARGS, chromium, jupyter_lab, notebook, run_all

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def screenshots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("CLAUDERON_SCREENSHOTS", tmp_path / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def widget_input(form: Any, label: str, tag: str = "input") -> Any:
    return form.locator(f".widget-inline-hbox:has(> label:text-is('{label}')) {tag}").first


def test_form_and_session_list_in_jupyterlab(dhome: Path, repo: Path, image: str, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        from .dockerkit import need

        need("playwright is not installed (pip install -e '.[test]')")
    shots = screenshots_dir(tmp_path)
    root = tmp_path / "lab"
    root.mkdir()
    notebook(root / "e2e.ipynb", ["%load_ext clauderon_nb\n%clauderon form", "%clauderon sessions"])
    env = {"CLAUDERON_HOME": str(dhome), "JUPYTERHUB_USER": os.environ["JUPYTERHUB_USER"]}
    with jupyter_lab(root, env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/lab/tree/e2e.ipynb")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.get_by_role("tab", name=re.compile("File Browser")).click()  # collapse the sidebar: more room
            run_all(page, cells=2)
            form = page.locator(".clauderon-form")
            expect(form).to_be_visible(timeout=30_000)

            widget_input(form, "Repository").fill(str(repo))
            widget_input(form, "Prompt", "textarea").fill("Write a haiku about containers")
            form.locator(".widget-inline-hbox:has(> label:text-is('Backend')) select").select_option("docker")
            widget_input(form, "Agent").fill("echo")
            widget_input(form, "Name").fill("e2e")
            page.get_by_text("Advanced Container Settings").click()
            widget_input(form, "Image").fill(image)
            widget_input(form, "Memory limit").fill("2x")
            create = form.locator("button:has-text('Create')")
            expect(form.get_by_text(re.compile(r"memory_limit '2x': unknown unit 'x'"))).to_be_visible()
            expect(create).to_be_disabled()
            form.scroll_into_view_if_needed()
            form.screenshot(path=str(shots / "form-advanced-error.png"))

            widget_input(form, "Memory limit").fill("128m")
            widget_input(form, "CPU limit").fill("0.5")
            expect(create).to_be_enabled()
            create.click()
            expect(form.get_by_text("Session")).to_be_visible(timeout=60_000)
            expect(form.locator(".widget-html").get_by_text("running", exact=True)).to_be_visible()
            assert [s.name for s in SessionManager().list()] == ["e2e"]
            session = SessionManager().get("e2e")
            assert session.settings["memory_limit"] == 128 * 1024**2 and session.settings["cpu_limit"] == 500

            sessions = page.locator(".clauderon-sessions")
            sessions.locator("button:has-text('Refresh')").click()
            expect(sessions.get_by_text("e2e", exact=True)).to_be_visible(timeout=30_000)
            sessions.locator(".clauderon-logs-e2e").click()
            expect(sessions.get_by_text(re.compile("Write a haiku about containers"))).to_be_visible(timeout=20_000)
            sessions.scroll_into_view_if_needed()
            sessions.screenshot(path=str(shots / "session-list.png"))
            sessions.locator(".clauderon-delete-e2e").click()
            sessions.locator(".clauderon-delete-e2e").click()  # now "Confirm delete"
            expect(sessions.get_by_text("Deleted e2e.")).to_be_visible(timeout=30_000)
            assert SessionManager().list() == []
        finally:
            browser.close()
    assert (shots / "form-advanced-error.png").stat().st_size > 10_000
    assert (shots / "session-list.png").stat().st_size > 5_000

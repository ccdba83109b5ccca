"""A hub user's JupyterLab, served through the hub's proxy, creates a session from the form; the
kernel finds the clauderon service from the hub and the session is made by the service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from clauderon_nb.remote.client import RemoteManager
from clauderon_nb.remote.wire import Endpoint

from . import hubkit
from .jupyterkit import CHROMIUM_ARGS, chromium, notebook, run_all
from .test_browser import screenshots_dir, widget_input

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.browser]


def test_a_hub_user_creates_a_session_from_the_form_via_the_service(
    hub: hubkit.Hub, repo: Path, image: str, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        from .dockerkit import need

        need("playwright is not installed (pip install -e '.[test]')")
    shots = screenshots_dir(tmp_path)
    notebook(hub.workdir / "notebooks" / "hub-form.ipynb", ["%load_ext clauderon_nb\n%clauderon form"])
    settings = hub.workdir / "lab-state" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false"})
    )
    alice = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"{hub.url}/hub/login")
                page.fill("input[name=username]", "alice")
                page.fill("input[name=password]", "any password: DummyAuthenticator")
                page.locator("#login_submit").click()
                page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=120_000)
                page.goto(f"{hub.url}/user/alice/lab/tree/hub-form.ipynb")
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
                run_all(page, cells=1)
                form = page.locator(".clauderon-form")
                expect(form).to_be_visible(timeout=30_000)
                widget_input(form, "Repository").fill(str(repo))
                widget_input(form, "Prompt", "textarea").fill("Made from the form through the hub")
                widget_input(form, "Agent").fill("echo")
                widget_input(form, "Name").fill("fromform")
                page.get_by_text("Advanced Container Settings").click()
                widget_input(form, "Image").fill(image)
                widget_input(form, "CPU limit").fill("0.5")
                create = form.locator("button:has-text('Create')")
                expect(create).to_be_enabled(timeout=30_000)
                create.click()
                expect(form.locator(".widget-html").get_by_text("running", exact=True)).to_be_visible(timeout=90_000)
                form.scroll_into_view_if_needed()
                form.screenshot(path=str(shots / "hub-form-created.png"))
            finally:
                browser.close()
        session = alice.get("fromform")
        assert session.owner == "alice" and session.status.value == "running"
        assert session.settings["cpu_limit"] == 500
        assert "argv=[Made from the form through the hub]" in str(alice.logs("fromform"))
    finally:
        _stop_server(hub, "alice")
        for s in alice.list():
            alice.delete(s.id)


def _stop_server(hub: Any, user: str) -> None:
    import contextlib
    import urllib.error

    with contextlib.suppress(urllib.error.HTTPError):
        hub.call("DELETE", f"/users/{user}/server")

"""JupyterLab in a real browser: a lab server in temp dirs, and headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .dockerkit import need

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium() -> str:
    for path in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if path and Path(path).exists():
            return path
    need("chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str]) -> Iterator[str]:
    """A JupyterLab server on a free loopback port; yields its base URL. Stopped and cleaned afterwards."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        need("jupyterlab is not installed (pip install -e '.[test]')")
    state = root / ".jupyter-state"
    dirs = {name: state / name for name in ("config", "data", "runtime", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    settings = state / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "news" toast over the screenshots.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false"})
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(state / "lab.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip",
            "127.0.0.1",
            f"--port={port}",
            "--allow-root",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.port_retries=0",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTERLAB_SETTINGS_DIR": str(state / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state),
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "jupyter lab did not start:\n" + (state / "lab.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def dismiss_dialogs(page: Any) -> None:
    """Accept whatever dialog JupyterLab opened (a kernel choice, a news opt-in), so clicks reach the page."""
    dialogs = page.locator(".jp-Dialog")
    for _ in range(5):
        if not dialogs.count() or not dialogs.first.is_visible():
            return
        accept = dialogs.first.locator(".jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(200)


def run_all(page: Any, cells: int, timeout: float = 90) -> None:
    """Run every cell through the Run menu, retrying until each shows an execution count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            dismiss_dialogs(page)
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=10_000)
            page.wait_for_function(
                f"document.querySelectorAll('.jp-InputPrompt').length >= {cells} && "
                "[...document.querySelectorAll('.jp-Cell .jp-InputPrompt')].every(p => /\\[\\d+\\]/.test(p.textContent))",
                timeout=20_000,
            )
            return
        except Exception:
            if time.monotonic() > deadline:
                raise


def notebook(path: Path, cells: list[str]) -> None:
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells
                ],
                "metadata": {
                    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )

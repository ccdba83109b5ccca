"""The example notebooks run under nbval; their committed outputs were made with a Docker engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clauderon_demo, the notebooks' set-up helper


def _engine() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        return f"{type(exc).__name__}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    notebooks = [i for i in items if str(i.fspath).endswith(".ipynb")]
    if not notebooks:
        return
    problem = _engine()
    if problem is not None:
        _skip(notebooks, f"no Docker engine reachable ({problem}): the notebooks' saved outputs come from one")
        return
    hub = _hub()
    if hub is not None:
        _skip([i for i in notebooks if "jupyterhub-service" in str(i.fspath)], hub)


def _hub() -> str | None:
    """Why the JupyterHub notebook cannot run here, if it cannot."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("jupyterhub") is None:
        return "jupyterhub is not installed (pip install -e '.[test]')"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is not installed (apt-get install node-configurable-http-proxy)"
    return None


def _skip(items: list[pytest.Item], reason: str) -> None:
    if not items:
        return
    if os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(f"CI=true and {reason}")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


_DEMO_GLOB = "clauderon-demo-*"
_BEFORE = pytest.StashKey[set[str]]()


def _demo_dirs() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(f"{tempfile.gettempdir()}/{_DEMO_GLOB}"))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _demo_dirs()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A notebook that failed half-way never reached ``demo.stop()``: clean up after it."""
    import shutil
    from pathlib import Path

    before = session.config.stash.get(_BEFORE, set())
    for folder in sorted(_demo_dirs() - before):
        home = Path(folder) / "home"
        if (home / "sessions.sqlite").exists():
            from clauderon_nb import SessionManager

            mgr = SessionManager(home)
            for s in mgr.list(all_owners=True):
                mgr.delete(s.name)
        shutil.rmtree(folder, ignore_errors=True)
    try:
        import docker
        from clauderon_demo import DEMO_IMAGE

        docker.from_env().api.remove_image(DEMO_IMAGE, force=True)
    except Exception:  # noqa: BLE001 - no engine, or the image is already gone
        pass

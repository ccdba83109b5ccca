"""The example notebooks run under nbval; their committed outputs were made with a Docker engine."""

from __future__ import annotations

import os

import pytest


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
    if problem is None:
        return
    reason = f"no Docker engine reachable ({problem}): the notebooks' saved outputs come from one"
    if os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(f"CI=true and {reason}")
    for item in notebooks:
        item.add_marker(pytest.mark.skip(reason=reason))

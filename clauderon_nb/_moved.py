"""Old import paths keep working: ``clauderon_nb.manager`` is ``clauderon_nb.sessions.manager``, and so on.

The modules were laid out by layer (docs/architecture.md); code written against the flat
layout of earlier versions imports the same module objects through these aliases.
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

#: Where each module of the flat layout lives now (``units`` and ``image`` are real files: public paths).
MOVED = {
    "pull_policy": "model.pull_policy",
    "naming": "model.naming",
    "redact": "model.redact",
    "fields": "model.fields",
    "request": "model.request",
    "session": "model.session",
    "progress": "model.progress",
    "tomlfile": "config.tomlfile",
    "config_files": "config.files",
    "policy": "config.policy",
    "presets": "config.presets",
    "agents": "config.agents",
    "resolve": "config.resolve",
    "spec": "render.spec",
    "render_docker": "render.docker",
    "render_kubernetes": "render.kubernetes",
    "plan": "render.plan",
    "store": "sessions.store",
    "gitrepo": "sessions.gitrepo",
    "manager": "sessions.manager",
    "cli_parser": "frontends.parser",
    "commands": "frontends.commands",
    "cli": "frontends.cli",
    "magics": "frontends.magics",
    "widgets": "frontends.widgets",
    "views": "frontends.views",
    "progress_display": "frontends.progress_display",
}
_PREFIX = "clauderon_nb."


class _Alias:
    """A loader whose module is the module at the new path."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its own name."""


class MovedFinder:
    """Finds ``clauderon_nb.<old name>`` and hands out the module at its new path."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX) or fullname[len(_PREFIX) :] not in MOVED:
            return None
        return ModuleSpec(fullname, _Alias(_PREFIX + MOVED[fullname[len(_PREFIX) :]]))  # type: ignore[arg-type]


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())

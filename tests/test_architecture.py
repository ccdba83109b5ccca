"""The layers import only downwards, and the light paths stay light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "clauderon_nb"
#: Lowest first. A module may import from its own layer and the ones before it.
LAYERS = ("model", "config", "repos", "render", "backends", "sessions", "remote", "service", "frontends")
ROOT_MODULES = {"errors": -1, "_version": -1, "units": 0, "image": 0}  # public shims sit on model


def layer_of(module: str) -> int | None:
    """Rank of ``clauderon_nb.X.…``; None for the package facade (``__init__``, ``__main__``)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    if parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return ROOT_MODULES.get(parts[1])


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every clauderon_nb module ``path`` imports (at any depth of the code), with its line."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])  # for a module and for a package's __init__ alike
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
                names = [f"{target}.{a.name}" for a in node.names]
                out += [(n if layer_of(n) is not None else target, node.lineno) for n in names]
            elif node.module and node.module.startswith("clauderon_nb"):
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("clauderon_nb")]
    return out


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if p.name not in ("__main__.py",) and p != PKG / "__init__.py")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_down_the_layers(path: Path) -> None:
    module = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
    own = layer_of(module)
    assert own is not None, f"{module}: not in a layer folder (add it to one, or to ROOT_MODULES)"
    for target, line in imports_of(path):
        rank = layer_of(target)
        if rank is None:  # the facade's lazy names are for users, not for the package itself
            pytest.fail(f"{module}:{line} imports the package facade ({target}); import the module itself")
        assert rank <= own, f"{module}:{line} imports {target}, a higher layer ({LAYERS[rank]} above {LAYERS[own]})"


def test_the_service_client_needs_only_the_model_config_and_git() -> None:
    """``remote`` talks HTTP and runs git on the user's repository: nothing of sessions, backends or render."""
    for path in sorted((PKG / "remote").glob("*.py")):
        for target, line in imports_of(path):
            part = target.split(".")[1]
            allowed = ("remote", "repos", "config", "model", "errors", "_version")
            assert part in allowed, f"remote/{path.name}:{line} imports {target}"


#: The third-party packages each layer may import (the standard library is free everywhere).
THIRD_PARTY = {
    "model": {"pydantic"},
    "config": {"pydantic", "tomli", "json5", "yaml"},
    "repos": set(),
    "render": set(),
    "backends": {"docker", "kubernetes", "kubernetes_validate", "urllib3"},
    "sessions": set(),
    "remote": {"pydantic"},
    "service": {"tornado", "jupyterhub", "prometheus_client"},
    "frontends": {"IPython", "ipywidgets", "pydantic", "pygments", "textual", "traitlets"},
}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_each_layer_imports_only_its_own_third_party_packages(path: Path) -> None:
    rel = path.relative_to(PKG).parts
    allowed = THIRD_PARTY.get(rel[0], set()) if len(rel) > 1 else set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("__future__", "clauderon_nb"):
                continue
            assert top in allowed, (
                f"{path.relative_to(PKG)}:{node.lineno} imports {name} ({rel[0]} may import {allowed})"
            )


#: Private names of other code that are the only way to do something, each with its reason.
PRIVATE_ALLOWED = {
    "os._exit": "leaving a forked child without running the parent's exit handlers",
    "parser._actions": "argparse has no public list of a parser's options (for 'did you mean')",
    "argparse._SubParsersAction": "the same: telling subcommands apart",
    "shell._showtraceback": "IPython's documented way for a custom exception handler to show its lines",
}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_reaches_into_another_objects_private_attributes(path: Path) -> None:
    """``x._name`` only on ``self``/``cls``, for a name this module defines, or IPython's ``_repr_*_`` protocol."""
    tree = ast.parse(path.read_text())
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    own |= {
        t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", "")
        for n in ast.walk(tree)
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            assert not private, f"{path.relative_to(PKG)}:{node.lineno} imports {private} from {node.module}"
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        text = ast.unparse(node)
        if node.attr in own or (node.attr.startswith("_repr_") and node.attr.endswith("_")) or text in PRIVATE_ALLOWED:
            continue
        pytest.fail(f"{path.relative_to(PKG)}:{node.lineno} reaches into {text}")


def test_every_layer_says_what_it_holds_and_may_import() -> None:
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PKG / layer / "__init__.py").read_text()))
        assert doc and "May import" in doc, layer


def test_the_store_needs_neither_the_resolver_nor_pydantic() -> None:
    store = PKG / "sessions" / "store.py"
    targets = {t for t, _ in imports_of(store)}
    assert targets <= {
        "clauderon_nb.errors.ClauderonError",
        "clauderon_nb.model.session.Session",
        "clauderon_nb.model.session.Status",
    }, targets
    code = "import sys, clauderon_nb.sessions.store; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module",
    ["clauderon_nb.frontends.cli", "clauderon_nb.sessions.manager", "clauderon_nb.frontends.views"],
)
def test_read_only_paths_import_no_pydantic_docker_or_kubernetes(module: str) -> None:
    """``list``, ``show`` and ``logs`` never build pydantic models: importing what they use must not load them."""
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('pydantic', 'docker', 'kubernetes', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_show_and_logs_run_without_the_planning_side(tmp_path: Path) -> None:
    """What ``list``, ``show`` and ``logs`` load (their speed is most of their cost): no planning side, no
    field table, no image parsing, no pydantic. Run as the command, on a home with a local session."""
    heavy = (
        "pydantic",
        "docker",
        "clauderon_nb.model.answers",
        "clauderon_nb.render.plan",
        "clauderon_nb.render.spec",
        "clauderon_nb.model.hints",
        "clauderon_nb.model.image",
        "clauderon_nb.config.resolve",
        "decimal",
        "html",
    )
    code = (
        "import sys, runpy\n"
        "sys.argv = ['clauderon-nb'] + sys.argv[1:]\n"
        "from clauderon_nb.frontends.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "CLAUDERON_HOME": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    for command in (["list"], ["show", "nope"], ["logs", "nope"]):
        out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, env=env)
        assert out.stdout.strip().splitlines()[-1] == "LOADED []", (command, out.stdout, out.stderr)


def test_the_field_hints_and_the_request_model_declare_the_same_fields() -> None:
    from clauderon_nb.model.hints import FIELDS
    from clauderon_nb.model.request import CreateSessionRequest

    assert [h.name for h in FIELDS] == list(CreateSessionRequest.model_fields)
    for hint in FIELDS:
        assert CreateSessionRequest.model_fields[hint.name].description == hint.help


def test_no_import_hook_and_old_paths_fail_plainly() -> None:
    """The flat layout never shipped: no meta-path hook, and an old path is a plain ImportError."""
    import importlib
    import sys

    assert not [f for f in sys.meta_path if type(f).__module__.startswith("clauderon_nb")]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("clauderon_nb.manager")
    out = subprocess.run([sys.executable, "-m", "clauderon_nb.cli"], capture_output=True, text=True, check=False)
    assert "No module named clauderon_nb.cli" in out.stderr and "_Alias" not in out.stderr


def test_list_show_and_logs_with_sessions_load_no_pydantic(repo: Path, home: Path) -> None:
    """The read-only commands on a store that has sessions (each reconciled with its worktree)."""
    import os

    (home / "config.toml").write_text('[agents.quick]\ncommand = ["sh", "-c", "echo done"]\n')
    env = {**os.environ, "CLAUDERON_HOME": str(home)}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "clauderon_nb",
            "create",
            "--repo",
            str(repo),
            "--prompt",
            "x",
            "--backend",
            "local",
            "--agent",
            "quick",
            "--name",
            "light",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    for command in (["list"], ["show", "light"], ["logs", "light"]):
        code = (
            "import sys; from clauderon_nb.frontends.cli import main; "
            f"main({command!r}); "
            "print('HEAVY', ','.join(m for m in ('pydantic', 'docker', 'kubernetes', 'ipywidgets') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == "HEAVY", (command, out.stdout)

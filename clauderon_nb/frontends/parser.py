"""The one argument parser for the ``clauderon-nb`` command and the ``%clauderon`` magic.

``create``'s flags come from the typed field hints (``model.hints``); the values
stay strings here and are validated by the request model, nowhere else.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from ..errors import did_you_mean

#: Every subcommand, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "create",
    "list",
    "show",
    "logs",
    "stop",
    "start",
    "delete",
    "attach",
    "config",
    "trust",
    "fetch",
    "images",
    "cull",
    "serve",
    "form",
    "tui",
    "sessions",
)


class UsageProblem(Exception):
    """A command-line mistake: one line, exit code 2."""


_WIDTH: list[int] = []


def _terminal_width() -> int:
    """The terminal's width, read once per process (as ``shutil.get_terminal_size``, without its imports)."""
    if not _WIDTH:
        import os
        import sys

        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
            except (OSError, ValueError):
                columns = 0
        _WIDTH.append(columns or 80)
    return _WIDTH[0]


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout; the width is read once (argparse makes a formatter for every argument added)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, width or _terminal_width() - 2)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Flags are spelled in full (no "--prom" for "--prompt"): the magic keeps the prompt verbatim by its flag.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageProblem(_explain(self, message))

    def print_help(self, file: Any = None) -> None:
        """``--help``: hand the text to the caller, which prints it once."""
        raise HelpShown(self.format_help())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageProblem((message or "").strip())
        raise HelpShown(self.format_help() if message is None else message)


class HelpShown(Exception):
    """``--help`` was asked for; the text is the argument."""


def _known_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Long options of the parser and of every subcommand."""
    flags: list[str] = []
    for action in parser._actions:
        flags += [s for s in action.option_strings if s.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags += [f for f in _known_flags(sub) if f not in flags]
    return flags


def _explain(parser: argparse.ArgumentParser, message: str) -> str:
    prog = parser.prog
    invalid = re.match(r"argument (\S+): invalid choice: '([^']*)'", message)
    if invalid:
        return f"{prog}: unknown command '{invalid.group(2)}'{did_you_mean(invalid.group(2), SUBCOMMANDS)}"
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        first = unknown.group(1).split()[0]
        flag = first.split("=", 1)[0]
        if flag.startswith("-"):
            return f"{prog}: unknown option {flag}{did_you_mean(flag, _known_flags(parser))}"
        return f"{prog}: unexpected argument {first!r}"
    return f"{prog}: {message}"


def _add_request_flags(parser: argparse.ArgumentParser) -> None:
    if isinstance(parser, _Nothing):
        return  # another command's line: the field table is not loaded
    from ..model.hints import FIELDS

    basic = parser.add_argument_group("session")
    advanced = parser.add_argument_group(
        "advanced container settings", "memory units are 1024-based for both backends: 512m = 512 MiB, 4g = 4 GiB"
    )
    for hint in FIELDS:
        group = advanced if hint.advanced else basic
        if hint.const is not None:
            group.add_argument(
                hint.flag,
                dest=hint.name,
                metavar=hint.metavar,
                default=None,
                help=hint.help,
                nargs="?",
                const=hint.const,
            )
        elif hint.repeat:
            group.add_argument(
                hint.flag, dest=hint.name, metavar=hint.metavar, default=None, help=hint.help, action="append"
            )
        else:
            group.add_argument(hint.flag, dest=hint.name, metavar=hint.metavar, default=None, help=hint.help)


class _Nothing:
    """Stands in for the parsers of subcommands not asked for: every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _Only:
    """``add_subparsers``' result that makes the parser of one subcommand only (a command line holds one)."""

    def __init__(self, sub: Any, name: str) -> None:
        self._sub, self._name = sub, name

    def add_parser(self, command: str, **kwargs: Any) -> Any:
        return self._sub.add_parser(command, **kwargs) if command == self._name else _Nothing()


def build_parser(prog: str = "clauderon-nb", only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; ``only``: just that subcommand's (what one command line needs, quicker)."""
    parser = _Parser(prog=prog, description="AI coding-agent sessions in Docker, Kubernetes or local processes.")
    parser.add_argument("--debug", action="store_true", help="show the full error chain instead of one line")
    every = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    every.required = True
    sub: Any = every if only is None else _Only(every, only)

    create = sub.add_parser("create", help="create and start a session", description="Create and start a session.")
    _add_request_flags(create)
    create.add_argument("--dry-run", action="store_true", help="show the resolved settings and rendered spec only")
    create.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the container or pod is submitted, without waiting for it to run",
    )
    create.add_argument("--json", action="store_true", help="print JSON")

    lst = sub.add_parser("list", help="list your sessions", description="List sessions (yours unless --all).")
    lst.add_argument("--all", action="store_true", help="every owner's sessions")
    lst.add_argument("--json", action="store_true", help="print JSON")

    def named(cmd: str, text: str) -> Any:
        p = sub.add_parser(cmd, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("name", metavar="NAME", help="session name or id")
        return p

    named("show", "show one session").add_argument("--json", action="store_true", help="print JSON")
    logs = named("logs", "print a session's output")
    logs.add_argument("--tail", type=_non_negative, metavar="N", help="only the last N lines")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new output")
    named("stop", "stop a session (its workspace is kept; a branch with commits is brought back)")
    named("start", "start a stopped session")
    named("delete", "delete a session: container or pod, workspace, record (a branch with commits stays)").add_argument(
        "-f", "--force", action="store_true", help="do not ask for confirmation"
    )
    named("attach", "print the terminal command that attaches to a session")

    config = sub.add_parser(
        "config",
        help="show effective settings and where each comes from",
        description="Show the effective settings and where each comes from.",
    )
    config.add_argument("--backend", metavar="B", default=None, help="docker, kubernetes or local")
    config.add_argument("--repo", metavar="PATH", default=".", help="repository whose .clauderon.toml applies")
    config.add_argument("--json", action="store_true", help="print JSON")
    trust = sub.add_parser(
        "trust",
        help="trust a repository's .clauderon.toml and devcontainer.json (needed when they pick the image or agent)",
        description="Trust the current content of a repository's .clauderon.toml and devcontainer.json. They are "
        "untrusted input: when they choose the image, build, agent, environment, user or post-create command of a "
        "session that would receive your credentials, create asks for this first; any change to them asks again.",
    )
    trust.add_argument("repo", metavar="PATH", nargs="?", default=".", help="the repository (default: .)")
    fetch = named("fetch", "bring a session's branch into your repository as clauderon/NAME")
    fetch.add_argument(
        "--repo",
        metavar="PATH",
        default=None,
        help="your repository (default: the one the session was made from; through the service: .)",
    )
    images = sub.add_parser(
        "images",
        help="browse images: a registry's repositories and tags, the engine's images, what the policy allows",
        description="Browse images with the Registry HTTP API v2 (credentials of docker login, or "
        "[image.registry_auth] config_file). No argument: the admin policy's allowed images and the engine's "
        "images. REGISTRY: its repositories (where it lists them). [REGISTRY/]REPOSITORY: its tags, with "
        "digest, size and created time. Every image is marked allowed or not by the admin policy.",
    )
    images.add_argument("target", metavar="REGISTRY[/REPOSITORY]", nargs="?", default=None, help="what to list")
    images.add_argument("--json", action="store_true", help="print JSON")
    cull = sub.add_parser(
        "cull",
        help="apply the policy's lifetimes now: stop long-running and idle sessions, delete long-stopped ones",
        description="One pass of the admin policy's max_lifetime, idle_timeout and delete_stopped_after over "
        "every owner's sessions (cron-friendly). The clauderon service does this on a timer by itself; with "
        "it, this asks the service (hub admins only).",
    )
    cull.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    cull.add_argument(
        "--now", metavar="TIME", type=_when, default=None, help="the pass's clock: epoch seconds or ISO 8601"
    )
    cull.add_argument("--json", action="store_true", help="print JSON")
    serve = sub.add_parser(
        "serve",
        help="run the clauderon service for a JupyterHub (holds the engine, enforces the policy)",
        description="Run the clauderon service: a JupyterHub service that alone holds the Docker engine or "
        "Kubernetes credentials, identifies every caller by their hub token and enforces the admin policy.",
    )
    if only in (None, "serve"):
        from ..service.main import add_arguments

        add_arguments(serve)
    sub.add_parser("form", help="show the create form (in a notebook)", description="Show the create form.")
    tui = sub.add_parser(
        "tui",
        help="the terminal UI: session list, logs, and the create dialog (pip install 'clauderon-nb[tui]')",
        description="A terminal UI over the same sessions: the list (live), logs, stop/start/delete, and a create "
        "dialog with Advanced Container Settings validated as you type.",
    )
    tui.add_argument("--all", action="store_true", help="every owner's sessions (admins)")
    sessions = sub.add_parser(
        "sessions", help="show the session list widget (in a notebook)", description="Show the session list widget."
    )
    sessions.add_argument("--all", action="store_true", help="every owner's sessions, with totals (admins)")
    return parser


def _when(text: str) -> float:
    import datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _non_negative(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise argparse.ArgumentTypeError(f"expected a whole number of lines, got {text!r}")
    return int(text)


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``create`` flags the user gave, by request field name."""
    from ..model.hints import FIELDS

    return {h.name: getattr(args, h.name) for h in FIELDS if getattr(args, h.name, None) is not None}

"""The ``clauderon-nb`` command: the magic's subcommands and flags in a terminal."""

from __future__ import annotations

import sys
from typing import Any

from ..model.redact import redact_json
from .parser import SUBCOMMANDS, HelpShown, UsageProblem, build_parser
from .progress_display import TerminalProgress
from .views import dumps


def _confirm(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def as_json(result: Any) -> Any:
    from ..model.session import Session
    from .views import session_dict

    if isinstance(result, Session):
        out: Any = session_dict(result)
    elif hasattr(result, "to_json"):
        out = result.to_json()
    else:
        out = {"message": repr(result)}
    return redact_json(out)


def _tui(args: Any) -> int:
    try:
        from .tui import run as run_tui
    except ImportError as exc:
        print(f"error: the terminal UI needs {exc.name}: pip install 'clauderon-nb[tui]'", file=sys.stderr)
        return 2
    from .connect import manager_for

    run_tui(manager_for(), all_owners=args.all)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on usage errors, 1 on backend failures."""
    given = sys.argv[1:] if argv is None else argv
    first = next((a for a in given if not a.startswith("-")), None)
    parser = build_parser("clauderon-nb", only=first if first in SUBCOMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except HelpShown as shown:
        print(shown.args[0], end="")
        return 0
    except UsageProblem as problem:
        print(problem, file=sys.stderr)  # already "clauderon-nb: …"
        return 2
    from .commands import Context, describe, run

    try:
        if args.command == "serve":
            from ..service.main import serve

            return serve(args)
        if args.command == "tui":
            return _tui(args)
        from .connect import manager_for

        ctx = Context(
            manager=manager_for(),
            confirm=_confirm if sys.stdin.isatty() else None,
            progress=TerminalProgress(),
            interactive_hint=f"run `clauderon-nb delete {getattr(args, 'name', 'NAME')} -f`",
        )
        result = run(args, ctx)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # describe() re-raises what it does not know
        if args.debug:
            raise
        message, code = describe(exc)
        print(f"error: {message}", file=sys.stderr)
        return code
    if result is None:
        return 0
    if getattr(args, "json", False):
        print(dumps(as_json(result)))
    else:
        print(repr(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

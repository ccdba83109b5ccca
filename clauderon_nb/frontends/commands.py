"""Run a parsed command against the manager. Shared by the CLI and the magics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ClauderonError, describe_validation_error
from ..model.progress import ProgressCallback, no_progress
from ..model.redact import redact_text
from .parser import UsageProblem, request_fields
from .views import SessionDetails, SessionTable, Text

if TYPE_CHECKING:
    from ..model.request import CreateSessionRequest
    from .connect import Manager


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@dataclass
class Context:
    """What a front end supplies: the manager, defaults, and how to talk to the user."""

    manager: Manager  # carries the front end's defaults (a resolver layer of their own)
    confirm: Callable[[str], bool] | None = None  # None: cannot ask (non-interactive)
    progress: ProgressCallback = no_progress
    write: Callable[[str], None] = write_stdout  # streaming output (logs --follow)
    interactive_hint: str = "add -f"


def build_request(args: argparse.Namespace, prompt: str | None = None) -> CreateSessionRequest:
    """The request from the flags (and a cell body); front-end defaults are not merged here."""
    values = request_fields(args)
    if prompt is not None:
        if "prompt" in values:
            raise UsageProblem("create: give the prompt either as --prompt or as the cell body, not both")
        values["prompt"] = prompt
    if "prompt" not in values:
        raise UsageProblem("create: --prompt is required (or use %%clauderon create with the prompt as the cell body)")
    from ..model.request import CreateSessionRequest

    return CreateSessionRequest(**values)


def run(args: argparse.Namespace, ctx: Context, *, prompt: str | None = None) -> Any:
    """Execute one command; returns a result object (Session, Plan, table, Text) or None."""
    mgr = ctx.manager
    cmd = args.command
    if cmd == "create":
        request = build_request(args, prompt)
        if args.dry_run:
            return mgr.plan(request, check_image=True)
        return mgr.create(request, progress=ctx.progress, wait=not args.no_wait)
    if cmd == "list":
        return SessionTable(mgr.list(all_owners=args.all), owners=args.all)
    if cmd == "show":
        return SessionDetails(mgr.get(args.name))
    if cmd == "logs":
        output = mgr.logs(args.name, tail=args.tail, follow=args.follow)
        if isinstance(output, str):
            return Text(output.rstrip("\n"))
        _stream(output, ctx.write)
        return None
    if cmd == "stop":
        return mgr.stop(args.name)
    if cmd == "start":
        return mgr.start(args.name)
    if cmd == "delete":
        session = mgr.get(args.name)
        if not args.force:
            if ctx.confirm is None:
                raise UsageProblem(
                    f"delete asks before removing session {session.name!r}, but cannot ask here; {ctx.interactive_hint}"
                )
            if not ctx.confirm(f"Delete session {session.name!r} (its container and workspace)? [y/N] "):
                return Text(f"Kept session {session.name}.")
        note = mgr.delete(session.id)
        return Text(f"Deleted session {session.name}." + (f" ({note})" if note else ""))
    if cmd == "attach":
        return Text(mgr.attach_command(args.name))
    if cmd == "config":
        fields: dict[str, Any] = {"repo": args.repo, "prompt": "(config)"}
        if args.backend:
            fields["backend"] = args.backend
        from ..model.request import CreateSessionRequest
        from .reports import ConfigView

        return ConfigView(mgr.resolve(CreateSessionRequest(**fields)), tuple(mgr.options().bounds))
    if cmd == "images":
        from .reports import ImageTable

        return ImageTable(mgr.images(args.target))
    if cmd == "cull":
        from .reports import CullReport

        return CullReport(mgr.cull(now=args.now, dry_run=args.dry_run), args.dry_run)
    if cmd == "fetch":
        return Text(mgr.fetch(args.name, args.repo))
    if cmd == "trust":
        return Text(mgr.trust_repo(args.repo))
    raise UsageProblem(f"{cmd}: needs a notebook with ipywidgets")


def _stream(chunks: Iterator[str], write: Callable[[str], None]) -> None:
    try:
        for chunk in chunks:
            if chunk:
                write(chunk)
    except KeyboardInterrupt:
        return


def describe(exc: BaseException) -> tuple[str, int]:
    """One line for an error and the exit code: 2 for usage and config, 1 for backend failures."""
    pydantic = sys.modules.get("pydantic")  # a validation error means pydantic is loaded already
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from ..model.hints import HINTS

        return _one_line(describe_validation_error(exc, fields=HINTS)), 2
    if isinstance(exc, BackendError):
        return _one_line(str(exc)), 1
    if isinstance(exc, (ClauderonError, UsageProblem)):
        return _one_line(str(exc)), 2
    raise exc


def _one_line(text: str) -> str:
    """An error as one line, credentials masked: a line break inside it (a path, a value) is written \\n."""
    return redact_text(text).replace("\r", "\\r").replace("\n", "\\n")

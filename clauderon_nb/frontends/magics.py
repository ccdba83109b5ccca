"""``%clauderon`` and ``%%clauderon``; settings as traitlets on ``Clauderon``.

Importing this module is light: the parser, pydantic and the backends load on
the first command.
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..errors import PolicyError


@magics_class
class Clauderon(Magics, Configurable):
    """AI coding-agent sessions from notebook cells. Settings: ``%config Clauderon``."""

    default_backend = Unicode("", help="Backend when --backend is not given: docker, kubernetes or local").tag(
        config=True
    )
    default_agent = Unicode("", help="Agent when --agent is not given").tag(config=True)
    home = Unicode("", help="CLAUDERON_HOME for this kernel (default: $CLAUDERON_HOME or ~/.clauderon)").tag(
        config=True
    )
    confirm_delete = Bool(True, help="Ask before `delete` unless -f is given").tag(config=True)
    show_progress = Bool(True, help="Show image pull and start progress while creating").tag(config=True)
    debug = Bool(False, help="Show the full error chain instead of one line").tag(config=True)
    service_url = Unicode(
        "",
        help="The clauderon service to use (default: $CLAUDERON_SERVICE_URL, or the one registered with "
        "JupyterHub); 'none' keeps sessions on this machine",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        Configurable.__init__(self, config=shell.config if shell is not None else None, **kwargs)
        Magics.__init__(self, shell=shell)

    @validate("default_backend")
    def _check_backend(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value:
            from ..model.choices import Backend

            try:
                return Backend.parse(value, "Clauderon.default_backend").value
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return value

    def _manager(self) -> Any:
        from .connect import manager_for

        return manager_for(
            home=self.home or None,
            defaults={"backend": self.default_backend, "agent": self.default_agent},
            defaults_origin="kernel defaults (%config Clauderon)",
            service_url=self.service_url,
        )

    def _confirm(self, question: str) -> bool:
        try:
            answer = self.shell.ask_yes_no(question, default="n") if self.shell else False
        except StdinNotImplementedError:
            raise UsageError(
                "delete asks before removing a session, but this kernel cannot read input; "
                "use %clauderon delete NAME -f (or %config Clauderon.confirm_delete = False)"
            ) from None
        return bool(answer)

    @no_var_expand
    @line_cell_magic
    def clauderon(self, line: str, cell: str | None = None) -> Any:
        """Create and manage agent sessions. ``%clauderon --help`` lists the commands.

        A prompt is taken verbatim: ``{…}`` and ``$name`` in ``--prompt`` (or a
        ``%%clauderon`` body) stay as typed, so notebook variables never leak into a
        prompt. Everything else expands ``{expr}`` and ``$name`` as IPython usually
        does (``--repo {demo.repo}``, ``%clauderon logs {s.name}``).
        """
        from .commands import Context, describe, run
        from .parser import HelpShown, UsageProblem, build_parser

        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%clauderon: cannot split the line: {exc}") from None
        first = next((t for t in argv if not t.startswith("-")), "")
        if self.shell is not None and ("{" in line or "$" in line):
            if first != "create":
                # As IPython would have: the caller of run_line_magic is two frames above this one.
                try:
                    argv = shlex.split(self.shell.var_expand(line, depth=2))
                except ValueError as exc:
                    raise UsageError(f"%clauderon: cannot split the line: {exc}") from None
            else:
                # The prompt stays exactly as typed (notebook variables never leak into it);
                # every other value expands as usual (``--repo {demo.repo}``).
                verbatim = False
                for i, token in enumerate(argv):
                    if not verbatim and token != "--prompt" and not token.startswith("--prompt="):
                        argv[i] = self.shell.var_expand(token, depth=2)
                    verbatim = token == "--prompt"
        prog = "%%clauderon" if cell is not None else "%clauderon"
        try:
            args = build_parser(prog).parse_args(argv)
        except HelpShown as shown:
            print(shown.args[0], end="")
            return None
        except UsageProblem as problem:
            raise UsageError(str(problem)) from None
        if cell is not None and args.command != "create":
            raise UsageError(f"%%clauderon: only `create` takes a cell body (the prompt), not {args.command!r}")
        debug = self.debug or args.debug
        if args.command in ("form", "sessions"):
            return self._widget(args.command, getattr(args, "all", False))
        from ..model.progress import no_progress
        from .progress_display import progress_display

        ctx = Context(
            manager=None,  # type: ignore[arg-type]  # made inside the try: finding a service can fail
            confirm=self._confirm if self.confirm_delete else (lambda _q: True),
            progress=progress_display() if self.show_progress else no_progress,
            interactive_hint="use %clauderon delete NAME -f",
        )
        prompt = cell.removesuffix("\n") if cell is not None else None
        try:
            ctx.manager = self._manager()
            result = run(args, ctx, prompt=prompt if cell is not None else None)
        except UsageError:
            raise
        except Exception as exc:
            if debug:
                raise
            message, _ = describe(exc)
            raise usage_error(exc, message) from None
        finally:
            finish = getattr(ctx.progress, "finish", None)
            if finish:
                finish()
        from .views import Text

        if isinstance(result, Text):
            if result.text:
                print(result.text)
            return None
        return result

    def _widget(self, which: str, all_owners: bool = False) -> Any:
        try:
            manager = self._manager()
        except Exception as exc:  # noqa: BLE001 - describe() re-raises what it does not know
            from .commands import describe

            raise UsageError(describe(exc)[0]) from None
        try:
            from .widgets import show_form, show_sessions
        except ImportError as exc:  # no ipywidgets: plain text instead of a widget
            from .views import SessionTable

            print(f"Widgets are not available ({exc.name} is not installed); showing text instead.")
            if which == "sessions":
                return SessionTable(manager.list(all_owners=all_owners), owners=all_owners)
            print("Create a session with: %clauderon create --repo PATH --prompt TEXT [--image …] (see --help)")
            return None
        return show_form(manager) if which == "form" else show_sessions(manager, all_owners)


def usage_error(exc: BaseException, message: str) -> Exception:
    """What a cell raises for an error: a one-line ``UsageError`` (IPython shows it without a traceback); a
    refusal of the admin policy stays a ``PolicyError`` (``except PolicyError`` catches it, here or on the
    service), shown in one line too by ``show_policy_error``."""
    if isinstance(exc, PolicyError):
        exc.args = (message,)
        return exc.with_traceback(None)
    return UsageError(message)


def show_policy_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython's handler for a ``PolicyError`` from a cell: one line, like a ``UsageError``, and the cell fails."""
    stb = [f"PolicyError: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def load(ip: Any) -> None:
    if not ip.custom_exceptions:  # never over another extension's handler
        ip.set_custom_exc((PolicyError,), show_policy_error)
    magics = Clauderon(shell=ip)
    ip.register_magics(magics)
    if magics not in ip.configurables:
        ip.configurables.append(magics)

"""``clauderon-nb tui``: the session list, logs and the create dialog in a terminal (Textual).

The same manager, request model and plan as every other entry point: a field is checked as you
type by ``CreateSessionRequest`` and a dry-run plan, and errors are the same one-line messages.
Loaded only by ``clauderon-nb tui`` (``pip install 'clauderon-nb[tui]'``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    Collapsible,
    DataTable,
    Footer,
    Input,
    Label,
    ProgressBar,
    RichLog,
    Select,
    Static,
    TextArea,
)

from ..errors import ClauderonError
from ..model.display import show_value
from ..model.hints import FORM_FIELDS, HINTS
from ..model.progress import ProgressEvent, progress_fraction
from ..model.session import Session, Status
from .commandline import magic_line
from .connect import Manager
from .form_state import OTHER, OptionField, choice_label, option_fields, options_value

if TYPE_CHECKING:
    from ..model.request import CreateSessionRequest
from .views import age_text, owner_totals

ADVANCED_TITLE = "Advanced Container Settings"
IMAGE_HELP = """\
What a session image needs (docs/images.md):

- the agent's command on PATH (claude, codex, gemini, or your [agents.NAME] command);
  create checks this before the agent starts and says so in one line if it is missing;
- git, so the agent can commit on its branch (its own workspace is at /workspace);
- sh, for the Kubernetes init container that clones the repository;
- a writable HOME for any user id: Docker runs the container as your uid:gid,
  Kubernetes as run_as_user (default 1000).

Containers run with init and a TTY, so `docker attach` / `kubectl attach -it` reach the agent.
Pin what you run: ghcr.io/team/dev:1@sha256:<digest>.

The image field suggests the engine's images; type REGISTRY/REPOSITORY: for its tags
(`clauderon-nb images REGISTRY/REPOSITORY` lists them with digest, size and age).
The Dockerfile field builds the image from the repository's committed files (tagged by their
hash: an unchanged repository is never rebuilt); a .devcontainer/devcontainer.json is used too.

Press Escape to close."""
_EMPTY = "No sessions. Press n for a new one."


class Cancelled(BaseException):
    """Raised in the create's progress callback when the user cancels: the create rolls back."""


class ImageHelp(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(IMAGE_HELP, id="image-help"), id="help-box")


class ConfirmDelete(ModalScreen[bool]):
    """Says what is removed, and that a branch with commits is kept."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        s = self.session
        with Vertical(id="confirm-box"):
            yield Label(
                f"Delete session {s.name}? Its {'pod' if s.backend == 'kubernetes' else 'container or process'}, "
                f"workspace and record are removed; the branch {s.branch} is kept if the agent committed on it."
            )
            with Horizontal():
                yield Button("Delete", variant="error", id="yes")
                yield Button("Cancel", id="no")

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class LogsScreen(Screen[None]):
    """The last lines, then new output as it comes (follow)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, manager: Manager, name: str, title: str = "") -> None:
        super().__init__()
        self.manager, self.session_name, self.title_text = manager, name, title or name

    def compose(self) -> ComposeResult:
        yield Label(f"Logs of {self.title_text} (Escape: back)")
        yield RichLog(id="log", wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        self._follow()

    @work(thread=True, exclusive=True)
    def _follow(self) -> None:
        log = self.query_one(RichLog)
        try:
            text = self.manager.logs(self.session_name, tail=200)
            self.app.call_from_thread(log.write, str(text) or "(no output yet)")
            stream = self.manager.logs(self.session_name, follow=True, tail=0)
            for chunk in stream if not isinstance(stream, str) else [stream]:
                if self.is_attached:
                    self.app.call_from_thread(log.write, chunk.rstrip("\n"))
        except ClauderonError as exc:
            self.app.call_from_thread(log.write, f"error: {exc}")


class CreateScreen(Screen[None]):
    """The create dialog: every field validated as you type, an Advanced Container Settings section."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Keys no text field uses (an Input takes Ctrl+A, Ctrl+D, Ctrl+E… for editing).
        Binding("f2", "toggle_advanced", "Advanced"),
        Binding("ctrl+s", "create", "Create"),
        Binding("f3", "dry_run", "Dry run"),
        Binding("f1", "image_help", "Image help"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, manager: Manager) -> None:
        super().__init__()
        self.manager = manager
        self.plan: Any = None
        self._cancel = False
        self._creating = False
        try:
            self.options: Any = manager.options()
        except ClauderonError:
            self.options = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="create-form"):
            yield Label("New session", id="title")
            for hint in FORM_FIELDS:
                if not hint.advanced:
                    yield from self._field(hint.name)
            with Collapsible(title=ADVANCED_TITLE, collapsed=True, id="advanced"):
                yield Static(self._bounds(), id="bounds")
                yield Button("What does an image need? (F1)", id="image-help-button")
                for hint in FORM_FIELDS:
                    if hint.advanced:
                        yield from self._field(hint.name)
                        if hint.name == "preset":  # the chosen preset's options, mounted when it changes
                            yield Vertical(id="preset-options")
                            yield Static("", id="e-preset_options", classes="error")
            yield Static("", id="summary")
            yield Static("", id="command")
            yield ProgressBar(total=1.0, show_eta=False, id="progress")
            yield Static("", id="progress-label")
            with Horizontal(id="buttons"):
                yield Button("Create", variant="primary", id="create", disabled=True)
                yield Button("Dry run", id="dry-run")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def _field(self, name: str) -> ComposeResult:
        hint = HINTS[name]
        yield Label(hint.title, classes="field-label")
        if hint.widget == "textarea":
            yield TextArea(id=f"f-{name}", classes="field")
        elif hint.widget == "choice":
            yield Select(self._choices(name), id=f"f-{name}", prompt="(configured)", classes="field")
        else:
            suggestions = self._suggestions(name)
            yield Input(
                value="." if name == "repo" else "",
                placeholder=hint.help,
                id=f"f-{name}",
                classes="field",
                suggester=SuggestFromList(suggestions, case_sensitive=False) if suggestions else None,
            )
        yield Static("", id=f"e-{name}", classes="error")

    def _from_options(self, name: str) -> list[str]:
        """A field's choices, from where its hint says (``Options.backends``, ``.agents``, ``.images`` …)."""
        source = HINTS[name].choices
        if self.options is None or source is None:
            return []
        values = list(getattr(self.options, source))
        if source == "images":  # and the policy's globs, as a reminder of what is allowed
            values += self.options.allowed_images
        return list(dict.fromkeys(values))

    def _choices(self, name: str) -> list[tuple[str, str]]:
        return [(choice_label(self.options, name, v), v) for v in self._from_options(name)]

    def _suggestions(self, name: str) -> list[str]:
        return self._from_options(name) if HINTS[name].widget == "combo" else []

    def _bounds(self) -> str:
        o = self.options
        text = "Memory units are 1024-based: 512m = 512 MiB, 4g = 4 GiB."
        if o is not None and o.bounds:
            text += " Admin policy: " + "; ".join(f"{k} {v}" for k, v, _ in o.bounds) + "."
        return text

    _suggested_for = ""

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.validate()
        self._load_local_images()

    @work(thread=True, exclusive=True, group="image-suggestions")
    def _load_local_images(self, typed: str = "") -> None:
        """The engine's images (and the tags of a registry repository being typed) as suggestions for the
        image field: loaded in a thread, cached briefly, never blocking typing."""
        try:
            found = self.manager.image_suggestions(typed)
        except Exception:  # noqa: BLE001 - suggestions are a convenience; the create checks for real
            return
        known = self._suggestions("image")
        merged = list(dict.fromkeys([*known, *found]))
        self.app.call_from_thread(self._set_image_suggestions, merged)

    def _set_image_suggestions(self, images: list[str]) -> None:
        self.query_one("#f-image", Input).suggester = SuggestFromList(images, case_sensitive=False)

    # --- values and validation --------------------------------------------------------

    def _option_fields(self) -> list[OptionField]:
        preset = self.query_one("#f-preset", Select)
        chosen = "" if preset.is_blank() else str(preset.value)
        return option_fields(self.options, chosen) if self.options is not None and chosen else []

    @on(Select.Changed, "#f-preset")
    async def _preset_changed(self) -> None:
        """Another preset: its options, a choice each (and a free value where the profile takes one)."""
        box = self.query_one("#preset-options", Vertical)
        await box.remove_children()
        widgets: list[Any] = []
        for f in self._option_fields():
            widgets.append(Label(f.label, classes="field-label"))
            widgets.append(Select(f.choices, value=f.default, allow_blank=False, id=f"po-{f.key}", classes="field"))
            if f.free_label is not None:
                free = Input(placeholder=f.free_hint or f.free_label, id=f"pv-{f.key}", classes="field")
                free.display = f.default == OTHER
                widgets.append(free)
        await box.mount_all(widgets)
        self.validate()

    def _option_values(self) -> str:
        chosen: dict[str, tuple[str, str]] = {}
        for f in self._option_fields():
            choice = self.query(f"#po-{f.key}")
            free = self.query(f"#pv-{f.key}")
            if choice:
                value = choice.first(Select).value
                picked = f.default if value is Select.BLANK else str(value)
                typed = free.first(Input).value if free else ""
                if free:
                    free.first(Input).display = picked == OTHER
                chosen[f.key] = (picked, typed)
        return options_value(self._option_fields(), chosen)

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for hint in FORM_FIELDS:
            widget = self.query_one(f"#f-{hint.name}")
            if isinstance(widget, TextArea):
                value = widget.text
            elif isinstance(widget, Select):
                value = "" if widget.is_blank() else str(widget.value)
            else:
                value = widget.value.strip() if isinstance(widget, Input) else ""
            if value:
                out[hint.name] = value
        options = self._option_values()
        if options:
            out["preset_options"] = options
        return out

    @on(Input.Changed)
    @on(TextArea.Changed)
    @on(Select.Changed)
    def _changed(self, event: Input.Changed | TextArea.Changed | Select.Changed) -> None:
        self.validate()
        if isinstance(event, Input.Changed) and event.input.id == "f-image":
            value = event.value.strip()
            if "/" in value and value.endswith(":") and value != self._suggested_for:
                self._suggested_for = value  # the tags of the repository being typed, once per repository
                self._load_local_images(value)

    def validate(self) -> bool:
        """Every field through the request model, then the whole request through a dry-run plan
        (``form_state``: the same as the notebook widget's)."""
        from .form_state import form_state

        values = self.values()
        state = form_state(self.manager, values, prompt_touched="prompt" in values)
        self.query_one("#command", Static).update("$ " + magic_line(values, prefix="clauderon-nb"))
        for hint in FORM_FIELDS:
            self.query_one(f"#e-{hint.name}", Static).update(state.errors.get(hint.name, ""))
        self.query_one("#e-preset_options", Static).update(state.errors.get("preset_options", ""))
        for key, text in state.hints.items():
            field = self.query(f"#f-{key}")
            if field and isinstance(field.first(), Input):
                field.first(Input).placeholder = text
        self.plan = state.plan
        notes = "".join(f"\nNote: {n}" for n in state.notes)
        self.query_one("#summary", Static).update(state.summary + notes)
        self.query_one("#create", Button).disabled = not state.ok or self._creating
        return state.ok

    # --- actions --------------------------------------------------------------------------

    def action_toggle_advanced(self) -> None:
        """F2 opens the section and moves to its first field (F2 again closes it, back to the form's first)."""
        section = self.query_one("#advanced", Collapsible)
        section.collapsed = not section.collapsed
        first = next(h.name for h in FORM_FIELDS if h.advanced == (not section.collapsed))
        self.set_focus(self.query_one(f"#f-{first}"))  # at once: keys typed next go to it

    def action_image_help(self) -> None:
        self.app.push_screen(ImageHelp())

    def action_dry_run(self) -> None:
        """The plan, with the image checked as ``--dry-run`` does (in a thread: a registry may be slow)."""
        if self.validate() and self.plan is not None:
            from ..model.request import CreateSessionRequest

            self._dry_run(CreateSessionRequest(**self.values()))

    @work(thread=True, exclusive=True, group="dry-run")
    def _dry_run(self, request: CreateSessionRequest) -> None:
        try:
            text = repr(self.manager.plan(request, check_image=True))
        except ClauderonError as exc:
            text = f"{self.plan!r}\n\nimage check: {exc}"
        self.app.call_from_thread(self.app.push_screen, PlanScreen(text))

    def action_cancel(self) -> None:
        if self._creating:
            self._cancel = True
            self.query_one("#progress-label", Static).update("Cancelling: what was made is being removed…")
        else:
            self.app.pop_screen()

    def action_create(self) -> None:
        if self._creating or not self.validate():
            return
        from ..model.request import CreateSessionRequest

        self._creating, self._cancel = True, False
        self.query_one("#create", Button).disabled = True
        self.query_one("#progress", ProgressBar).display = True
        self._run_create(CreateSessionRequest(**self.values()))

    @on(Button.Pressed, "#create")
    def _create_pressed(self) -> None:
        self.action_create()

    @on(Button.Pressed, "#dry-run")
    def _dry_pressed(self) -> None:
        self.action_dry_run()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#image-help-button")
    def _help_pressed(self) -> None:
        self.action_image_help()

    @work(thread=True, exclusive=True)
    def _run_create(self, request: Any) -> None:
        def progress(event: ProgressEvent) -> None:
            if self._cancel:
                raise Cancelled
            self.app.call_from_thread(self._progress, event)

        try:
            session = self.manager.create(request, progress=progress)
        except Cancelled:
            self.app.call_from_thread(self._finished, "Cancelled: nothing was left behind.", None)
        except ClauderonError as exc:
            self.app.call_from_thread(self._finished, f"error: {exc}", None)
        else:
            self.app.call_from_thread(self._finished, f"Session {session.name} is {session.status.value}.", session)

    def _progress(self, event: ProgressEvent) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.update(progress=progress_fraction(event, bar.progress or 0.0))
        self.query_one("#progress-label", Static).update(event.message[:200])

    def _finished(self, message: str, session: Session | None) -> None:
        self._creating = False
        self.query_one("#progress-label", Static).update(message)
        if session is not None:
            self.app.notify(message)
            self.app.pop_screen()
            refresh = getattr(self.app.screen, "refresh_sessions", None)
            if refresh:
                refresh()
        else:
            self.validate()


class PlanScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(self.text, id="plan-text"), id="plan-box")


class SessionsScreen(Screen[None]):
    """Name, status, backend, image, CPU, memory, age (and owner for admins), refreshed live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New"),
        Binding("l", "logs", "Logs"),
        Binding("s", "stop_start", "Stop/Start"),
        Binding("d", "delete", "Delete"),
        Binding("a", "attach", "Attach"),
        Binding("r", "refresh_sessions", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, manager: Manager, all_owners: bool = False, interval: float = 3.0) -> None:
        super().__init__()
        self.manager, self.all_owners, self.interval = manager, all_owners, interval
        self.sessions: list[Session] = []

    def compose(self) -> ComposeResult:
        yield Label("clauderon sessions", id="title")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="totals")
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        heads = ["name", "status", "backend", "image", "cpu", "memory", "age"]
        table.add_columns(*(["owner", *heads] if self.all_owners else heads))
        self.query_one("#totals", Static).display = self.all_owners
        self.refresh_sessions()
        if self.interval:
            self.set_interval(self.interval, self.refresh_sessions)

    def action_refresh_sessions(self) -> None:
        self.refresh_sessions()

    def refresh_sessions(self) -> None:
        try:
            sessions = self.manager.list(all_owners=self.all_owners)
        except ClauderonError as exc:
            self.query_one("#status-line", Static).update(f"error: {exc}")
            return
        self.sessions = sessions
        table = self.query_one(DataTable)
        now = time.time()
        rows = {s.id: self._row(s, now) for s in sessions}
        if [str(k.value) for k in table.rows] != list(rows):  # sessions came or went: rebuild
            cursor = table.cursor_row
            table.clear()
            for key, row in rows.items():
                table.add_row(*row, key=key)
            if rows:
                table.move_cursor(row=min(cursor, len(rows) - 1))
        else:  # same sessions: update the cells in place (no flicker)
            for key, row in rows.items():
                for column, value in zip(table.columns, row, strict=False):
                    table.update_cell(key, column, value)
        if self.all_owners:
            self.query_one("#totals", Static).update("\n".join(f"{o}: {text}" for o, text in owner_totals(sessions)))
        line = self.query_one("#status-line", Static)
        if not sessions:
            line.update(_EMPTY)
        elif str(line.render()) == _EMPTY:
            line.update("")

    def _row(self, s: Session, now: float) -> tuple[str, ...]:
        row = (
            s.name,
            s.status.value + (f" ({s.error})" if s.error else ""),
            s.backend,
            str(s.settings.get("image") or "-"),
            show_value("cpu_limit", s.settings.get("cpu_limit")),
            show_value("memory_limit", s.settings.get("memory_limit")),
            age_text(now - s.created_at),
        )
        return (s.owner, *row) if self.all_owners else row

    def _selected(self) -> Session | None:
        table = self.query_one(DataTable)
        if not self.sessions or table.cursor_row < 0 or table.cursor_row >= len(self.sessions):
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((s for s in self.sessions if s.id == key), None)

    def _act(self, what: str, fn: Any, session: Session) -> None:
        try:
            fn(session.id)
        except ClauderonError as exc:
            self.query_one("#status-line", Static).update(f"error: {exc}")
        else:
            self.query_one("#status-line", Static).update(f"{what} {session.name}.")
        self.refresh_sessions()

    def action_new(self) -> None:
        self.app.push_screen(CreateScreen(self.manager))

    def action_logs(self) -> None:
        session = self._selected()
        if session:
            self.app.push_screen(LogsScreen(self.manager, session.id, session.name))

    def action_stop_start(self) -> None:
        session = self._selected()
        if session:
            running = session.status is Status.RUNNING
            self._act(
                "Stopped" if running else "Started", self.manager.stop if running else self.manager.start, session
            )

    def action_delete(self) -> None:
        session = self._selected()
        if session is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("Deleted", self.manager.delete, session)

        self.app.push_screen(ConfirmDelete(session), answered)

    def action_attach(self) -> None:
        session = self._selected()
        if session is None:
            return
        try:
            command = self.manager.attach_command(session.id)
        except ClauderonError as exc:
            self.query_one("#status-line", Static).update(f"error: {exc}")
            return
        if self.app.is_headless:
            self.query_one("#status-line", Static).update(f"Attach with: {command}")
            return
        import shlex
        import subprocess

        with self.app.suspend():  # the agent's terminal; detach with Ctrl-P Ctrl-Q (docker) or Ctrl-C
            print(f"$ {command}")
            subprocess.run(shlex.split(command), check=False)
        self.refresh_sessions()


class ClauderonTUI(App[None]):
    """``clauderon-nb tui``."""

    TITLE = "clauderon"
    CSS = """
    #title { text-style: bold; padding: 0 1; }
    .field-label { margin-top: 1; }
    .error { color: $error; }
    #f-prompt { height: 5; }
    #preset-options { height: auto; }
    #summary, #command, #progress-label { margin-top: 1; }
    #buttons { height: auto; margin-top: 1; }
    #help-box, #plan-box, #confirm-box { background: $panel; border: thick $primary; margin: 2 4; padding: 1 2; }
    #confirm-box { height: auto; }
    """

    def __init__(self, manager: Manager, all_owners: bool = False, interval: float = 3.0) -> None:
        super().__init__()
        self.manager, self.all_owners, self.interval = manager, all_owners, interval

    def on_mount(self) -> None:
        self.push_screen(SessionsScreen(self.manager, self.all_owners, self.interval))


def run(manager: Manager, all_owners: bool = False) -> None:
    ClauderonTUI(manager, all_owners).run()

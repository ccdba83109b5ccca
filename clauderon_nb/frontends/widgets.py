"""The create form (with Advanced Container Settings) and the session list, as ipywidgets.

The form's fields come from ``CreateSessionRequest``: each widget's value goes
through the same model as the magic, the CLI and the API, and a dry-run plan
supplies placeholders (effective value and source) and policy errors.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

import ipywidgets as W
from pydantic import ValidationError

from ..errors import ClauderonError, describe_validation_error
from ..model.answers import Options, PlanView
from ..model.display import show_value
from ..model.hints import CONTAINER_FIELDS, FORM_FIELDS, HINTS
from ..model.progress import ProgressEvent, progress_fraction
from ..model.request import CreateSessionRequest
from ..model.session import Session, Status
from ..render.plan import Plan
from .commandline import magic_line
from .connect import Manager, manager_for
from .form_state import OTHER, OptionField, choice_label, option_fields, options_value
from .views import SessionTable, age_text, owner_totals

ADVANCED_TITLE = "Advanced Container Settings"
_STYLE = {"description_width": "130px"}


def _label(name: str) -> str:
    return HINTS[name].title if name in HINTS else name.replace("_", " ").capitalize()


def _error_html(text: str) -> str:
    """One red line; a trailing parenthetical (the full unit list) moves to the tooltip."""
    if not text:
        return ""
    short = re.sub(r" \([^()]*\)$", "", text)
    return (
        f"<span style='color:#cf222e;white-space:nowrap' title='{html.escape(text)}'>"
        f"{html.escape(short, quote=False)}</span>"
    )


class CreateSessionForm(W.VBox):  # type: ignore[misc]
    """A form that validates as you type and creates a session on the real backend."""

    def __init__(self, manager: Manager | None = None, defaults: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.manager = manager or manager_for()
        if defaults:  # the form's defaults: a resolver layer of their own (below the repository file)
            self.manager = self.manager.with_defaults(
                {**self.manager.defaults, **{k: v for k, v in defaults.items() if v}}, "form defaults"
            )
        self.session: Session | None = None
        self.plan: Plan | PlanView | None = None
        self._touched: set[str] = set()
        self._options_error = ""
        try:
            self.options: Options | None = self.manager.options()
        except ClauderonError as exc:
            self.options, self._options_error = None, str(exc)
        self.fields: dict[str, W.Widget] = {}
        self.errors: dict[str, W.HTML] = {}
        basic: list[W.Widget] = []
        advanced: list[W.Widget] = []
        # The chosen preset's options (a profile's profile_options): a choice each, and a free value.
        self.option_box = W.VBox([])
        self.errors["preset_options"] = W.HTML(layout=W.Layout(margin="0 0 0 8px"))
        self._option_widgets: dict[str, tuple[W.Dropdown, W.Text | None]] = {}
        for hint in FORM_FIELDS:
            name = hint.name
            widget = self._make_widget(name)
            self.fields[name] = widget
            self.errors[name] = W.HTML(layout=W.Layout(margin="0 0 0 8px"))
            row = W.HBox([widget, self.errors[name]])
            (advanced if HINTS[name].advanced else basic).append(row)
            if name == "preset":
                advanced.append(self.option_box)
            widget.observe(self._on_change, names="value")
        self.fields["preset"].observe(self._on_preset, names="value")
        self.policy_hint = W.HTML(self._policy_text())
        self.advanced = W.Accordion(children=[W.VBox([self.policy_hint, *advanced])], selected_index=None)
        self.advanced.set_title(0, ADVANCED_TITLE)
        self.summary = W.HTML()
        self.dry_run = W.Checkbox(False, description="Dry run (show the plan, create nothing)", indent=False)
        self.create_button = W.Button(description="Create", button_style="primary", disabled=True, icon="play")
        self.create_button.on_click(self._on_create)
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(visibility="hidden"))
        self.progress_label = W.Label()
        self.magic = W.Textarea(description="Copy as magic", style=_STYLE, layout=W.Layout(width="640px"), rows=2)
        self.result = W.HTML()
        super().__init__(
            children=[
                *basic,
                self.advanced,
                self.summary,
                W.HBox([self.create_button, self.dry_run]),
                W.HBox([self.progress, self.progress_label]),
                self.magic,
                self.result,
            ],
            **kwargs,
        )
        self.add_class("clauderon-form")
        self.validate()
        self._suggested_for: str | None = None
        self.fields["image"].observe(self._on_image_typed, names="value")
        self._load_image_suggestions("")

    def _load_image_suggestions(self, typed: str) -> None:
        """The image field's suggestions (the engine's images, the tags of the repository being typed),
        loaded in a thread: typing never waits for an engine or a registry."""
        import threading

        def load() -> None:
            try:
                found = self.manager.image_suggestions(typed)
            except Exception:  # noqa: BLE001 - suggestions are a convenience; the create checks for real
                return
            box = self.fields["image"]
            merged = list(dict.fromkeys([*self._choices("image"), *found]))
            if merged != list(box.options):
                box.options = merged

        threading.Thread(target=load, name="clauderon-image-suggestions", daemon=True).start()

    def _on_image_typed(self, change: dict[str, Any]) -> None:
        """Typing ``registry/repository:`` asks that repository for its tags (once per repository)."""
        value = str(change.get("new") or "")
        if "/" in value and value.endswith(":"):
            repository = value[:-1]
            if repository != self._suggested_for:
                self._suggested_for = repository
                self._load_image_suggestions(value)

    # --- building -----------------------------------------------------------

    def _choices(self, name: str) -> list[str]:
        source = HINTS[name].choices
        if self.options is None or source is None:
            return []
        return list(getattr(self.options, source))

    def _make_widget(self, name: str) -> W.Widget:
        hint = HINTS[name]
        common: dict[str, Any] = {"description": hint.title, "style": _STYLE, "tooltip": hint.help}
        kind = hint.widget
        if kind == "path":
            return W.Text(layout=W.Layout(width="640px"), continuous_update=True, placeholder="", **common)
        if kind == "textarea":
            return W.Textarea(layout=W.Layout(width="640px"), rows=3, placeholder=hint.help, **common)
        if kind == "choice":
            options = [("default", ""), *[(choice_label(self.options, name, c), c) for c in self._choices(name)]]
            return W.Dropdown(options=options, value="", layout=W.Layout(width="360px"), **common)
        if kind == "combo":
            return W.Combobox(
                options=self._choices(name),
                ensure_option=False,
                layout=W.Layout(width="560px"),
                continuous_update=True,
                **common,
            )
        return W.Text(layout=W.Layout(width="560px"), continuous_update=True, placeholder="", **common)

    def _policy_text(self) -> str:
        if self._options_error:
            return _error_html(self._options_error)
        o = self.options
        if o is None:
            return ""
        bounds = []
        if o.max_cpu is not None:
            bounds.append(f"CPU at most {show_value('cpu_limit', o.max_cpu)}")
        if o.max_memory is not None:
            bounds.append(f"memory at most {show_value('memory_limit', o.max_memory)}")
        if o.allowed_images:
            bounds.append("images matching " + ", ".join(o.allowed_images))
        text = "Memory units are 1024-based: 512m = 512 MiB, 4g = 4 GiB."
        if bounds:
            text += " Admin policy: " + "; ".join(bounds) + "."
        others = [(k, v, w) for k, v, w in o.bounds if k not in ("max_cpu", "max_memory", "allowed_images")]
        if others:
            text += " Also: " + "; ".join(f"{k} {v}" for k, v, _ in others) + "."
        where = sorted({w for _, _, w in o.bounds})
        if where:
            text += " (from " + ", ".join(where) + ")"
        return f"<small>{html.escape(text)}</small>"

    # --- validation ---------------------------------------------------------

    def values(self) -> dict[str, str]:
        """The non-empty field values as typed (the preset's options as ``preset_options``)."""
        out = {}
        for name, widget in self.fields.items():
            value = widget.value
            text = value if name == "prompt" else str(value or "").strip()
            if text.strip():
                out[name] = text
        chosen = {
            k: (str(c.value), str(f.value if f is not None else "")) for k, (c, f) in self._option_widgets.items()
        }
        options = options_value(self._option_fields(), chosen)
        if options:
            out["preset_options"] = options
        return out

    def _option_fields(self) -> list[OptionField]:
        preset = str(self.fields["preset"].value or "")
        return option_fields(self.options, preset) if self.options is not None and preset else []

    def _on_preset(self, _change: dict[str, Any]) -> None:
        """Another preset: its options, each a choice (and a free value where the profile takes one)."""
        self._option_widgets = {}
        rows: list[W.Widget] = []
        for f in self._option_fields():
            choice = W.Dropdown(
                options=f.choices, value=f.default, description=f.label, style=_STYLE, layout=W.Layout(width="360px")
            )
            free = None
            if f.free_label is not None:
                free = W.Text(
                    description=f.free_label,
                    placeholder=f.free_hint,
                    style=_STYLE,
                    continuous_update=True,
                    layout=W.Layout(width="560px", display="" if f.default == OTHER else "none"),
                )
                free.observe(self._on_change, names="value")
            choice.observe(self._on_option, names="value")
            self._option_widgets[f.key] = (choice, free)
            rows.append(W.HBox([choice, free] if free is not None else [choice]))
        self.option_box.children = [*rows, self.errors["preset_options"]] if rows else []

    def _on_option(self, change: dict[str, Any]) -> None:
        for choice, free in self._option_widgets.values():
            if free is not None:
                free.layout.display = "" if choice.value == OTHER else "none"
        self.validate()

    def _on_change(self, change: dict[str, Any]) -> None:
        owner = change.get("owner")
        for name, widget in self.fields.items():
            if widget is owner:
                self._touched.add(name)
        self.validate()

    def request(self) -> CreateSessionRequest:
        """The request the form would submit; raises ``ValidationError`` like every entry point."""
        return CreateSessionRequest(**self.values())

    def validate(self) -> bool:
        """Check every field through the model, then the whole request through a dry-run plan
        (``form_state``: the same as the terminal UI's)."""
        from .form_state import form_state

        touched = "prompt" in self._touched or bool(self.fields["prompt"].value)
        state = form_state(self.manager, self.values(), prompt_touched=touched)
        self.magic.value = magic_line(self.values())
        self.plan = state.plan
        for name, box in self.errors.items():
            box.value = _error_html(state.errors[name]) if name in state.errors else ""
        if state.plan is not None:
            self._show_plan(state.plan, state.hints)
        if state.summary_is_error:
            self.summary.value = _error_html(state.summary)
        elif state.plan is None:
            self.summary.value = f"<i>{html.escape(state.summary)}</i>"
        else:
            note = " Container settings do not apply to it." if state.plan.backend == "local" else ""
            said = "".join(f"<br><b>Note:</b> {html.escape(n)}" for n in state.notes)  # e.g. running on the host
            self.summary.value = f"{html.escape(state.summary)}{note}{said}"
        self.create_button.disabled = not state.ok
        return state.ok

    def _show_plan(self, plan: Plan | PlanView, hints: dict[str, str]) -> None:
        local = plan.backend == "local"
        for name in (n for n in CONTAINER_FIELDS if n in self.fields):
            self.fields[name].disabled = local and not self.fields[name].value
        if "build" not in hints and isinstance(self.fields.get("build"), W.Text):
            self.fields["build"].placeholder = "none — the image above (e.g. Dockerfile: build it from the repository)"
        for key, hint in hints.items():
            widget = self.fields.get(key)
            if isinstance(widget, (W.Text, W.Combobox)):
                widget.placeholder = hint
            elif isinstance(widget, W.Dropdown) and key in self.errors and not (widget.value or self.errors[key].value):
                self.errors[key].value = f"<small style='color:#57606a'>{html.escape(hint)}</small>"

    # --- creating -----------------------------------------------------------

    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.value = progress_fraction(event, self.progress.value)
        self.progress_label.value = event.message[:120]

    def _on_create(self, _button: Any = None) -> None:
        self.create()

    def create(self) -> Session | None:
        """What the Create button does: a dry run, or a real create with progress."""
        if not self.validate() or self.plan is None:
            return None
        request = self.request()
        if self.dry_run.value:  # as --dry-run: the image is checked too (on a click, never while typing)
            try:
                checked = self.manager.plan(request, check_image=True)
            except ClauderonError as exc:
                self.result.value = _error_html(str(exc))
                return None
            self.result.value = checked._repr_html_()
            return None
        self.create_button.disabled = True
        self.progress.value = 0.0
        self.progress.layout.visibility = "visible"
        try:
            self.session = self.manager.create(request, progress=self._on_progress)
        except (ClauderonError, ValidationError) as exc:
            text = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            self.result.value = _error_html(text)
            self.session = None
        else:
            self.result.value = self.session._repr_html_()
            # Done: clear what made this session, so a second click cannot make another one.
            for name in ("prompt", "name"):
                self.fields[name].value = ""
            self._touched.discard("prompt")
        finally:
            self.progress.layout.visibility = "hidden"
            self.progress_label.value = ""
            self.validate()
        return self.session

    def __repr__(self) -> str:
        return "CreateSessionForm: needs a Jupyter frontend; in a terminal use %clauderon create --help"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _full_text(super()._repr_mimebundle_(**kwargs), repr(self))


class SessionList(W.VBox):  # type: ignore[misc]
    """The owner's sessions with logs, stop/start and delete; refresh costs one backend call per backend.

    ``all_owners`` (admins): every owner's sessions, an owner column and filter, and each owner's totals.
    """

    def __init__(self, manager: Manager | None = None, all_owners: bool = False, **kwargs: Any) -> None:
        self.manager = manager or manager_for()
        self.all_owners = all_owners
        self.sessions: list[Session] = []
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.owner_filter = W.Dropdown(description="Owner", options=[("everyone", "")], value="")
        self.owner_filter.observe(lambda _c: self.refresh(reload=False), names="value")
        columns = 9 if all_owners else 8
        self.table = W.GridBox(
            layout=W.Layout(grid_template_columns=f"repeat({columns}, max-content)", grid_gap="2px 12px")
        )
        self.totals = W.HTML()
        self.detail = W.HTML()
        self._confirming: str | None = None
        top = W.HBox([self.refresh_button, self.owner_filter]) if all_owners else self.refresh_button
        children = [top, self.table, *([self.totals] if all_owners else []), self.detail]
        super().__init__(children=children, **kwargs)
        self.add_class("clauderon-sessions")
        self.refresh()

    def refresh(self, reload: bool = True) -> None:
        if reload:
            try:
                self.sessions = self.manager.list(all_owners=self.all_owners)
            except ClauderonError as exc:
                self.detail.value = _error_html(str(exc))
                self.sessions = []
        shown = self.sessions
        if self.all_owners:
            owners = sorted({s.owner for s in self.sessions})
            wanted = self.owner_filter.value if self.owner_filter.value in owners else ""
            self.owner_filter.options = [("everyone", ""), *((o, o) for o in owners)]
            self.owner_filter.value = wanted
            shown = [s for s in self.sessions if not wanted or s.owner == wanted]
            self.totals.value = _totals_html(self.sessions)
        heads = ("owner",) if self.all_owners else ()
        cells: list[W.Widget] = [
            W.HTML(f"<b>{h}</b>") for h in (*heads, "name", "status", "image", "limits", "age", "", "", "")
        ]
        now = time.time()
        for s in shown:
            limits = (
                ", ".join(show_value(k, s.settings[k]) for k in ("cpu_limit", "memory_limit") if s.settings.get(k))
                or "-"
            )
            color = {"running": "#1a7f37", "failed": "#cf222e"}.get(s.status.value, "#57606a")
            status = f"<span style='color:{color}'>{s.status.value}</span>"
            if s.error:
                status += f" <small>{html.escape(s.error)}</small>"
            if self.all_owners:
                cells.append(W.HTML(html.escape(s.owner)))
            cells += [
                W.HTML(f"<code>{html.escape(s.name)}</code>"),
                W.HTML(status),
                W.HTML(html.escape(str(s.settings.get("image") or s.backend))),
                W.HTML(html.escape(limits)),
                W.HTML(age_text(now - s.created_at)),
                self._button("Logs", s, self._logs),
                self._button("Stop" if s.status is Status.RUNNING else "Start", s, self._toggle),
                self._button(
                    "Confirm delete" if self._confirming == s.name else "Delete",
                    s,
                    self._delete,
                    style="danger" if self._confirming == s.name else "",
                ),
            ]
        if not shown:
            cells = [W.HTML("<i>No sessions.</i>")]
        self.table.children = cells

    def _button(self, label: str, session: Session, action: Any, style: str = "") -> W.Button:
        button = W.Button(
            description=label, button_style=style, layout=W.Layout(width="auto"), tooltip=f"{label} {session.name}"
        )
        button.add_class(f"clauderon-{label.split()[-1].lower()}-{session.name}")
        button.on_click(lambda _b: self._run(action, session))
        return button

    def _run(self, action: Any, session: Session) -> None:
        try:
            action(session)
        except ClauderonError as exc:
            self.detail.value = _error_html(str(exc))
            self.refresh()

    def _logs(self, session: Session) -> None:
        text = str(self.manager.logs(session.id, tail=20))
        self.detail.value = (
            f"<b>Last lines of {html.escape(session.name)}</b><pre>{html.escape(text) or '(no output yet)'}</pre>"
        )

    def _toggle(self, session: Session) -> None:
        if session.status is Status.RUNNING:
            self.manager.stop(session.id)
        else:
            self.manager.start(session.id)
        self.detail.value = ""
        self.refresh()

    def _delete(self, session: Session) -> None:
        if self._confirming != session.name:
            self._confirming = session.name
            self.detail.value = f"Click <b>Confirm delete</b> to remove {html.escape(session.name)}."
            self.refresh()
            return
        self._confirming = None
        note = self.manager.delete(session.id)
        self.detail.value = f"Deleted {html.escape(session.name)}." + (f" ({html.escape(note)})" if note else "")
        self.refresh()

    def __repr__(self) -> str:
        return repr(SessionTable(self.sessions))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _full_text(super()._repr_mimebundle_(**kwargs), repr(self))


def _totals_html(sessions: list[Session]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(owner)}</td><td>{html.escape(text)}</td></tr>" for owner, text in owner_totals(sessions)
    )
    return f"<b>Per owner</b><table>{rows}</table>" if rows else ""


def _full_text(bundle: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """The widget bundle with the whole plain-text fallback (ipywidgets cuts it at 110 characters)."""
    return {**(bundle or {}), "text/plain": text}


def show_form(manager: Manager, defaults: dict[str, str] | None = None) -> CreateSessionForm:
    return CreateSessionForm(manager, defaults)


def show_sessions(manager: Manager, all_owners: bool = False) -> SessionList:
    return SessionList(manager, all_owners)


__all__ = ["ADVANCED_TITLE", "CreateSessionForm", "SessionList", "magic_line"]

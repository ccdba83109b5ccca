"""One typed declaration per request field: how every front end presents it.

The CLI parser (flags, metavars, help groups), the form (widget kind, the
Advanced Container Settings section, where its choices come from) and the TUI to
come all read this table; the request model takes its descriptions from it. It
needs no pydantic, so the command line stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .units import CPU_HELP, MEMORY_HELP

Widget = Literal["text", "path", "textarea", "choice", "combo"]
#: Where a field's choices come from (an attribute of the manager's ``Options``).
ChoiceSource = Literal["backends", "agents", "pull_policies", "presets", "images"]


@dataclass(frozen=True)
class FieldHint:
    """How one request field is asked for."""

    name: str
    help: str
    metavar: str
    widget: Widget = "text"
    advanced: bool = False  # in "Advanced Container Settings" / the CLI's advanced group
    container_only: bool = False  # refused on the local backend
    choices: ChoiceSource | None = None
    label: str = ""
    const: str | None = None  # the value of the bare flag (``--build`` alone), when it may be given without one
    repeat: bool = False  # the flag may be given several times (its values make a list)
    in_form: bool = True  # a field of its own in the forms (else they set it from other fields)
    cli_flag: str = ""  # the flag's spelling when it is not the name's (a repeated flag is singular)

    @property
    def flag(self) -> str:
        """The command-line spelling: ``cpu_limit`` -> ``--cpu-limit``."""
        return self.cli_flag or flag_for(self.name)

    @property
    def title(self) -> str:
        """The form's label."""
        return self.label or self.name.replace("_", " ").capitalize()


def flag_for(name: str) -> str:
    return "--" + name.replace("_", "-")


FIELDS: tuple[FieldHint, ...] = (
    FieldHint("repo", "Git repository the session works on", "PATH", widget="path", label="Repository"),
    FieldHint("prompt", "What the agent should do", "TEXT", widget="textarea"),
    FieldHint("backend", "Where the session runs: docker, kubernetes or local", "B", "choice", choices="backends"),
    FieldHint(
        "agent",
        "Agent to run (claude, codex, gemini, echo, or one from config.toml)",
        "AGENT",
        "combo",
        choices="agents",
    ),
    FieldHint("name", "Session name (a DNS label; default: from the prompt plus 4 random characters)", "NAME"),
    FieldHint(
        "image",
        "Container image, [registry[:port]/]path[:tag][@sha256:…]",
        "IMAGE",
        "combo",
        advanced=True,
        container_only=True,
        choices="images",
    ),
    FieldHint(
        "build",
        "Build the image from the repository: a Dockerfile path relative to it (--build alone: Dockerfile; "
        "[build] in .clauderon.toml sets context, args and target)",
        "DOCKERFILE",
        advanced=True,
        container_only=True,
        label="Dockerfile",
        const="Dockerfile",
    ),
    FieldHint(
        "pull_policy",
        "always, if-not-present or never",
        "POLICY",
        "choice",
        advanced=True,
        container_only=True,
        choices="pull_policies",
    ),
    FieldHint("cpu_limit", f"CPU limit: {CPU_HELP}", "CPU", advanced=True, container_only=True, label="CPU limit"),
    FieldHint("memory_limit", f"Memory limit: {MEMORY_HELP}", "MEM", advanced=True, container_only=True),
    FieldHint(
        "cpu_request",
        "CPU request (Kubernetes requests; Docker cpu shares)",
        "CPU",
        advanced=True,
        container_only=True,
        label="CPU request",
    ),
    FieldHint(
        "memory_request",
        "Memory request (Kubernetes requests; Docker soft limit)",
        "MEM",
        advanced=True,
        container_only=True,
    ),
    FieldHint(
        "gpus",
        "GPUs: a number, or all (Docker device request; Kubernetes nvidia.com/gpu limit)",
        "N",
        advanced=True,
        container_only=True,
        label="GPUs",
    ),
    FieldHint(
        "preset",
        "Resource preset: small, medium, large, or one from config.toml (a [[profile_list]] profile's slug)",
        "PRESET",
        "choice",
        advanced=True,
        container_only=True,
        choices="presets",
    ),
    FieldHint(
        "preset_options",
        "The preset's options, as a profile's profile_options: NAME=VALUE (repeat the flag, or separate by commas)",
        "NAME=VALUE",
        advanced=True,
        container_only=True,
        repeat=True,
        in_form=False,
        cli_flag="--preset-option",
    ),
)
HINTS: dict[str, FieldHint] = {h.name: h for h in FIELDS}
#: The fields the notebook form and the terminal UI show, each as a widget of its own.
FORM_FIELDS = tuple(h for h in FIELDS if h.in_form)
#: Fields that only make sense for a container (refused on the local backend).
CONTAINER_FIELDS = tuple(h.name for h in FIELDS if h.container_only)
#: Fields a repository's .clauderon.toml (or a front end's defaults) may set: all but what names one session.
DEFAULTABLE_FIELDS = tuple(h.name for h in FIELDS if h.name not in ("repo", "prompt", "name"))


def local_backend_refusal(field: str, backend_origin: str | None = None) -> str:
    """The one message for a container setting given to the local backend."""
    where = f" (backend from {backend_origin})" if backend_origin else ""
    return (
        f"{field} does not apply to the local backend{where}: it runs the agent as a plain process; "
        "use --backend docker or kubernetes"
    )

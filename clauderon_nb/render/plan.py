"""A dry run: the resolved settings, where each came from, and the backend-native spec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.answers import PlanView
from ..model.display import show_value
from ..model.redact import redact_json
from ..model.settings_table import SHOWN, SHOWN_WHEN_SET

if TYPE_CHECKING:  # types only: showing a plan or a stored session needs neither the resolver nor pydantic
    from ..config.resolve import ResolvedSettings
    from .spec import SessionSpec


def settings_rows(
    settings: ResolvedSettings, sources: dict[str, str], origins: dict[str, str]
) -> list[tuple[str, str, str, str]]:
    """(setting, value, source, origin) for every setting shown for the backend."""
    return [
        (key, show_value(key, getattr(settings, key)), sources.get(key, "default"), origins.get(key, ""))
        for key in SHOWN[settings.backend.value]
        if key not in SHOWN_WHEN_SET or getattr(settings, key) not in (None, {}, [])
    ]


@dataclass(frozen=True)
class Plan:
    """What ``create`` would do. Creating nothing; secrets appear as ``***``."""

    session_spec: SessionSpec
    settings: ResolvedSettings
    sources: dict[str, str]
    origins: dict[str, str]
    spec: Any  # Docker: containers.create kwargs; Kubernetes: list of manifests; local: argv and cwd
    notes: tuple[str, ...] = ()  # what create will tell (or ask) the user
    needs_trust: bool = False  # the repository's own file picks what gets the credentials, unconfirmed
    image_check: str | None = None  # what the image check found (a dry run asks the engine or registry)

    @property
    def name(self) -> str:
        return self.session_spec.name

    @property
    def backend(self) -> str:
        return self.settings.backend.value

    @property
    def branch(self) -> str:
        return self.session_spec.branch

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(setting, value, source, origin) for every shown setting."""
        return settings_rows(self.settings, self.sources, self.origins)

    def view(self) -> PlanView:
        """What is shown of the plan (and what the service sends a client)."""
        return PlanView(
            name=self.name,
            backend=self.backend,
            branch=self.branch,
            command=tuple(self.session_spec.command),
            row_values=tuple(self.rows()),
            notes=self.notes,
            needs_trust=self.needs_trust,
            image_check=self.image_check,
            settings_json=self.settings.to_json(),
            sources=dict(self.sources),
            spec=json.loads(self._rendered()),
        )

    def _rendered(self) -> str:
        # The session id is assigned when the session is created; keep reprs stable.
        text = json.dumps(redact_json(self.spec), indent=2, sort_keys=False, default=str)
        return text.replace(self.session_spec.session_id, "<session-id>")

    def to_json(self) -> dict[str, Any]:
        return self.view().to_json()

    def __repr__(self) -> str:
        return repr(self.view())

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()

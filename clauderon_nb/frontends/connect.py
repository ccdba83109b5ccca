"""Which manager a front end talks to: the clauderon service when there is one, else this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from ..remote.client import RemoteManager
    from ..sessions.manager import SessionManager

#: What the front ends talk to: sessions on this machine, or on the clauderon service.
Manager = Union["SessionManager", "RemoteManager"]


def manager_for(
    home: str | None = None,
    defaults: dict[str, Any] | None = None,
    defaults_origin: str = "kernel defaults (%config Clauderon)",
    service_url: str = "",
) -> Manager:
    """A ``RemoteManager`` when a service is configured or registered with the hub, else a ``SessionManager``."""
    from ..remote.discovery import find_service

    endpoint = find_service(service_url)
    if endpoint is not None:
        from ..remote.client import RemoteManager

        return RemoteManager(endpoint, home, defaults=defaults, defaults_origin=defaults_origin)
    from ..sessions.manager import SessionManager

    return SessionManager(home=home, defaults=defaults, defaults_origin=defaults_origin)

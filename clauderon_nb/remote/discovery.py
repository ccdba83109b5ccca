"""Finding the clauderon service: an explicit URL, or the hub's registry of services."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from ..errors import ConfigError
from ..model.redact import redact_url
from .wire import Endpoint

#: ``CLAUDERON_SERVICE_URL=none`` (or ``%config Clauderon.service_url = "none"``): never use a service.
OFF = "none"


def find_service(explicit: str = "") -> Endpoint | None:
    """The service to use, or None for sessions on this machine.

    ``explicit`` (``%config Clauderon.service_url``) or ``$CLAUDERON_SERVICE_URL`` wins; else,
    under JupyterHub, the hub is asked for the service ``$CLAUDERON_SERVICE_NAME`` (default
    ``clauderon``). The token is ``$CLAUDERON_SERVICE_TOKEN`` or the server's ``$JUPYTERHUB_API_TOKEN``.
    """
    url = (explicit or os.environ.get("CLAUDERON_SERVICE_URL", "")).strip()
    token = os.environ.get("CLAUDERON_SERVICE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if url.lower() == OFF:
        return None
    if url:
        if not token:
            raise ConfigError(
                f"service_url {redact_url(url)!r} is set but there is no token: set JUPYTERHUB_API_TOKEN "
                "or CLAUDERON_SERVICE_TOKEN to a hub API token"
            )
        return Endpoint(url if url.endswith("/") else url + "/", token)
    api = os.environ.get("JUPYTERHUB_API_URL", "").strip()
    if not api or not token:
        return None
    found = _registered(api.rstrip("/"), os.environ.get("CLAUDERON_SERVICE_NAME", "clauderon"), token)
    return Endpoint(found, token) if found else None


@lru_cache(maxsize=8)
def _registered(api: str, name: str, token: str) -> str | None:
    """The service's base URL from the hub API, or None when the hub does not show one to this token."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{api}/services/{name}", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    url, prefix = data.get("url"), data.get("prefix") or f"/services/{name}/"
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(prefix, str):
        return None
    return url.rstrip("/") + "/" + prefix.strip("/") + "/"

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
    """The service's base URL from the hub API, or None when the hub has no such service for this token
    (404, or 403 without ``read:services``). A hub that cannot be asked is an error, never a quiet switch
    to sessions on this machine."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{api}/services/{name}", headers={"Authorization": f"token {token}"})
    way_out = "set CLAUDERON_SERVICE_URL to the service's URL, or CLAUDERON_SERVICE_URL=none for sessions here"
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (403, 404):
            return None
        raise ConfigError(
            f"JupyterHub API {redact_url(api)}: HTTP {exc.code} asking for service {name!r}; {way_out}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"cannot reach the JupyterHub API at {redact_url(api)} ({reason}); {way_out}") from None
    except ValueError:
        raise ConfigError(f"JupyterHub API {redact_url(api)}: not JSON for service {name!r}; {way_out}") from None
    url = data.get("url") if isinstance(data, dict) else None
    prefix = (data.get("prefix") if isinstance(data, dict) else None) or f"/services/{name}/"
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(prefix, str):
        return None  # registered without a URL of its own (an external service reached some other way)
    return url.rstrip("/") + "/" + prefix.strip("/") + "/"

"""``clauderon-nb serve``: run the service, as a JupyterHub-managed service or an external one."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import ConfigError

DEFAULT_DATA = Path("/var/lib/clauderon")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=os.environ.get("CLAUDERON_SERVICE_DATA") or None,
        help=f"the one session store, workspaces and uploads (default: $CLAUDERON_SERVICE_DATA or {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="the admin policy every request is checked against (default: /etc/clauderon/policy.toml)",
    )
    parser.add_argument(
        "--init",
        metavar="DIR",
        default=None,
        help="write a commented data folder to start from (policy.toml, config.toml, docker-config.toml; it works "
        "offline) into DIR, say how to run the service on it, and exit",
    )
    parser.add_argument(
        "--image",
        metavar="IMAGE",
        default=None,
        help="with --init: the sessions' default image (default: one the local Docker engine has)",
    )
    parser.add_argument(
        "--no-policy",
        action="store_true",
        help="run without an admin policy file: any image, any registry, builds, no quotas — for a hub of trusted "
        "users only (without this flag the service refuses to start with no policy)",
    )
    parser.add_argument(
        "--listen",
        metavar="URL",
        default=None,
        help="where to listen, e.g. http://127.0.0.1:10101 (default: $JUPYTERHUB_SERVICE_URL)",
    )
    parser.add_argument(
        "--prefix",
        metavar="PATH",
        default=None,
        help="URL prefix the hub proxies to the service (default: $JUPYTERHUB_SERVICE_PREFIX or /services/clauderon/)",
    )
    parser.add_argument(
        "--workspace-url",
        metavar="URL",
        default=None,
        help="the service's URL as session pods reach it (e.g. http://clauderon.jhub.svc:10101/services/clauderon/); "
        "Kubernetes sessions of repositories without a remote fetch their workspace from it",
    )
    parser.add_argument(
        "--cull-every",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how often to apply the policy's max_lifetime, idle_timeout and delete_stopped_after (0: never)",
    )
    parser.add_argument(
        "--metrics-public",
        action="store_true",
        help="serve /metrics without a token (default: hub admins and holders of the admin scope only)",
    )
    parser.add_argument(
        "--auth-cache-seconds",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="how long the hub's answer about a token (its user, groups and admin scope) is remembered; a revoked "
        "token or a group change takes effect within this (default: 10)",
    )
    parser.add_argument(
        "--admin-scope",
        metavar="SCOPE",
        default="custom:clauderon:admin",
        help="holders of this scope (and hub admins) may see and act on every session",
    )


def serve(args: argparse.Namespace) -> int:
    """Start the HTTP server; returns when SIGTERM or SIGINT arrives (``--init``: write a data folder)."""
    if args.init:
        return _init(Path(args.init).expanduser().resolve(), args.image)
    import asyncio
    import logging
    import signal
    from urllib.parse import urlsplit

    from jupyterhub.services.auth import HubAuth

    from ..config.policy import SYSTEM_POLICY_ENV
    from .answers import MAX_JSON
    from .handlers import make_app
    from .state import Service

    data = Path(args.data_dir or DEFAULT_DATA).expanduser().resolve()
    try:
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)  # workspaces and the store are the users' data: the service user only
    except OSError as exc:
        raise ConfigError(f"--data-dir {data}: cannot use it ({exc.strerror or exc})") from None
    if args.policy:
        policy = Path(args.policy).expanduser().resolve()
        if not policy.is_file():
            raise ConfigError(f"--policy {args.policy}: no such file")
        os.environ[SYSTEM_POLICY_ENV] = str(policy)
    os.environ.pop("CLAUDERON_POLICY", None)  # only the service's own policy applies
    listen = args.listen or os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:10101"
    where = urlsplit(listen)
    port = where.port
    if where.scheme != "http" or not where.hostname or not port:
        raise ConfigError(f"--listen {listen!r}: expected http://HOST:PORT")
    prefix = args.prefix or os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/clauderon/"
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        raise ConfigError(
            "JUPYTERHUB_API_TOKEN is not set: run the service from JupyterHub (c.JupyterHub.services) or give it "
            "the service's token and JUPYTERHUB_API_URL"
        )
    from ..config.policy import load_policy

    if not load_policy().files and not args.no_policy:  # a broken policy stops the service here too
        from ..config.policy import system_policy_path

        raise ConfigError(
            f"no admin policy ({system_policy_path()} does not exist and --policy was not given): a shared service "
            "enforces one; write one (clauderon-nb serve --init DIR writes a commented example), or run openly "
            "with --no-policy"
        )
    logging.basicConfig(level=logging.INFO, format="[clauderon %(asctime)s %(levelname)s] %(message)s")
    hub_auth = HubAuth(cache_max_age=int(max(0, args.auth_cache_seconds)))
    if not hub_auth.access_scopes:
        name = prefix.rstrip("/").rsplit("/", 1)[-1]
        hub_auth.access_scopes = {f"access:services!service={name}"}
    if args.workspace_url and not urlsplit(args.workspace_url).scheme.startswith("http"):
        raise ConfigError(f"--workspace-url {args.workspace_url!r}: expected http(s)://HOST:PORT/PREFIX/")
    service = Service(
        data_dir=data,
        hub_auth=hub_auth,
        admin_scope=args.admin_scope,
        workspace_url=args.workspace_url,
        metrics_public=args.metrics_public,
    )
    app = make_app(service, prefix)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Small for every request; a create raises its own once the caller is known (service/http.py).
        server = app.listen(port, address=where.hostname, xheaders=True, max_body_size=MAX_JSON)
        culler = None
        if args.cull_every > 0:
            from tornado.ioloop import PeriodicCallback

            async def cull_pass() -> None:
                try:
                    await service.run(service.cull)
                except Exception:
                    logging.exception("cull pass failed")

            culler = PeriodicCallback(cull_pass, args.cull_every * 1000)
            culler.start()
        logging.info("clauderon service %s listening on %s%s (data %s)", _version(), listen.rstrip("/"), prefix, data)
        await stop.wait()
        if culler is not None:
            culler.stop()
        server.stop()
        service.executor.shutdown(wait=False, cancel_futures=True)
        service.stream_executor.shutdown(wait=False, cancel_futures=True)
        service.create_executor.shutdown(wait=False, cancel_futures=True)

    asyncio.run(main())
    return 0


def _init(folder: Path, image: str | None) -> int:
    import sys

    from .init import init_data_dir

    written = init_data_dir(folder, image)
    print(f"Wrote {', '.join(p.name for p in written)} in {folder}.")
    print(
        'Read them, then register the service in jupyterhub_config.py (docs/jupyterhub.md, "An admin\'s first hour"):'
    )
    command = [
        sys.executable,
        "-m",
        "clauderon_nb",
        "serve",
        "--data-dir",
        str(folder),
        "--policy",
        str(folder / "policy.toml"),
    ]
    print(f"  command = {command!r}")
    return 0


def _version() -> str:
    from .._version import __version__

    return __version__

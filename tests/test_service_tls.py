"""The service asks the hub about users with the certificates HubAuth uses (JupyterHub's internal_ssl):
against a real TLS server that requires a client certificate, as a hub with internal_ssl does."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("jupyterhub")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An internal CA, and a server and a client certificate it signed (as internal_ssl makes them)."""
    d = tmp_path_factory.mktemp("internal-ssl")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "1", "-extfile", "san.cnf", "-out", f"{name}.crt", cwd=d)  # fmt: skip
    return d


@pytest.fixture
def hub_api(certs: Path) -> Iterator[str]:
    """A hub API over TLS that answers only clients with a certificate of the internal CA."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "token service-token":
                self.send_response(403)
                self.end_headers()
                return
            if self.path == "/hub/api/users/alice":
                body = json.dumps({"name": "alice", "created": "2026-01-01T00:00:00Z"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.crt"))
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/hub/api"
    finally:
        server.shutdown()
        server.server_close()


def _service(tmp_path: Path, api_url: str, **tls: str) -> object:
    from jupyterhub.services.auth import HubAuth

    from clauderon_nb.service.state import Service

    hub = HubAuth(api_url=api_url, api_token="service-token", **tls)
    return Service(data_dir=tmp_path, hub_auth=hub)


def test_the_account_check_uses_hubauths_certificates(hub_api: str, certs: Path, tmp_path: Path) -> None:
    service = _service(
        tmp_path,
        hub_api,
        certfile=str(certs / "client.crt"),
        keyfile=str(certs / "client.key"),
        client_ca=str(certs / "ca.crt"),
    )
    status, model = service._hub_user("alice")  # type: ignore[attr-defined]
    assert status == 200 and model["created"] == "2026-01-01T00:00:00Z"
    assert service._hub_user("ghost") == (404, {})  # type: ignore[attr-defined]  # a deleted account is seen


def test_without_the_certificates_the_failure_is_said_not_silent(
    hub_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service(tmp_path, hub_api)
    with caplog.at_level(logging.WARNING, logger="clauderon"):
        assert service._hub_user("ghost") == (0, {})  # type: ignore[attr-defined]
        assert service._hub_user("ghost") == (0, {})  # type: ignore[attr-defined]
    said = [r.getMessage() for r in caplog.records if "cannot ask the hub about users" in r.getMessage()]
    assert len(said) == 1 and "deleted accounts are not noticed" in said[0]  # once, not on every pass

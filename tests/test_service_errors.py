"""An unexpected failure of the service is logged with its traceback and a request id that the answer
carries, so an admin finds it. The service runs in this process (its hub answers every token as alice's);
the failure is a bug injected into one manager call, the only way to make a correct service fail."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class OneUserHub:
    """What HubAuth answers, for a service in this process: every token is alice's."""

    access_scopes: frozenset[str] = frozenset()
    api_url = "http://127.0.0.1:9/hub/api"
    api_token = "-"

    async def user_for_token(self, token: str, sync: bool = False) -> dict[str, Any]:
        return {"kind": "user", "name": "alice", "admin": False, "groups": [], "scopes": []}

    def check_scopes(self, needed: set[str], model: dict[str, Any]) -> bool:
        return True


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    from tornado.httpserver import HTTPServer

    from clauderon_nb.service.handlers import make_app
    from clauderon_nb.service.state import Service

    from .dockerkit import free_port

    port = free_port()
    service = Service(data_dir=tmp_path / "data", hub_auth=OneUserHub())
    service._created["alice\0"] = (None, 1e18)  # no account to ask the hub about
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = HTTPServer(make_app(service, "/services/clauderon/"), max_body_size=1024 * 1024)
        server.listen(port, "127.0.0.1")
        loop.call_soon(ready.set)
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{port}/services/clauderon/api/v1"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    service.executor.shutdown(wait=False)


def test_an_unexpected_failure_is_logged_with_the_id_the_answer_carries(
    service_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from clauderon_nb.sessions.manager import SessionManager

    def broken(self: SessionManager, all_owners: bool = False) -> list[Any]:
        raise KeyError("a bug")

    monkeypatch.setattr(SessionManager, "list", broken)
    request = urllib.request.Request(service_url + "/sessions", headers={"Authorization": "token t"})
    with caplog.at_level(logging.ERROR, logger="clauderon"), pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=20)
    assert exc.value.code == 500
    answer = json.loads(exc.value.read())
    rid = answer["request_id"]
    assert answer["error"] == "ClauderonError"
    assert answer["message"] == f"internal error (KeyError); the service log has it under request id {rid}"
    assert exc.value.headers["X-Request-Id"] == rid
    (record,) = [r for r in caplog.records if rid in r.getMessage()]
    assert "GET /services/clauderon/api/v1/sessions (alice) failed" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback is in the log


def test_an_expected_error_carries_the_request_id_too(service_url: str) -> None:
    request = urllib.request.Request(service_url + "/sessions/nothing", headers={"Authorization": "token t"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=20)
    answer = json.loads(exc.value.read())
    assert exc.value.code == 404 and answer["error"] == "NotFound"
    assert answer["request_id"] == exc.value.headers["X-Request-Id"]

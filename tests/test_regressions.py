"""The small regressions of issue 22, each as a user meets it: one clear line, never a crash or a hang."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from clauderon_nb.frontends.commands import describe
from clauderon_nb.model.request import CreateSessionRequest
from clauderon_nb.remote.client import RemoteManager, ServiceClient, _read_events
from clauderon_nb.remote.wire import Endpoint
from clauderon_nb.sessions.manager import SessionManager


def test_a_prompt_given_as_bytes_says_it_must_be_text() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest(prompt=b"fix the tests")
    line, code = describe(caught.value)
    assert (line, code) == ("prompt of type bytes: expected text", 2)


def test_a_request_made_with_model_construct_is_validated_not_crashed_on(home: Path, repo: Path) -> None:
    unchecked = CreateSessionRequest.model_construct(repo=str(repo), prompt="", backend="local")
    with pytest.raises(ValidationError) as caught:
        SessionManager().plan(unchecked)
    assert describe(caught.value) == ("prompt: must not be empty; say what the agent should do", 2)
    with pytest.raises(ValidationError):
        SessionManager().create(unchecked)
    assert SessionManager().list() == []  # nothing half-made


def test_a_path_with_a_line_break_is_still_one_line(home: Path, tmp_path: Path) -> None:
    odd = tmp_path / "two\nlines"
    with pytest.raises(Exception) as caught:
        SessionManager().plan(repo=str(odd), prompt="x", backend="local")
    line, code = describe(caught.value)
    assert "\n" not in line and "two\\nlines" in line and code == 2


def _sse(*lines: str) -> Iterator[bytes]:
    for line in lines:
        yield (line + "\n").encode()


def test_several_data_lines_of_one_event_are_one_value_joined_by_newlines() -> None:
    session = {
        "id": "abc",
        "name": "s",
        "owner": "u",
        "backend": "docker",
        "agent": "claude",
        "branch": "clauderon/s",
        "status": "running",
        "prompt": "first line\nsecond line",
    }
    text = json.dumps(session, indent=1)  # a JSON value over several lines, sent as several data: lines
    events = ["event: progress", 'data: {"step": "pull",', 'data: "message": "pulling"}', ""]
    events += ["event: session", *(f"data: {line}" for line in text.splitlines()), ""]
    seen: list[str] = []
    got = _read_events(_sse(*events), lambda e: seen.append(e.message))  # type: ignore[arg-type]
    assert seen == ["pulling"]
    assert (got.name, got.prompt) == ("s", "first line\nsecond line")


class _Quiet(http.server.BaseHTTPRequestHandler):
    """A followed log that stays silent longer than the client's read timeout, then says one line."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.flush()
        time.sleep(1.5)
        self.wfile.write(b"still here\n")

    def log_message(self, *args: object) -> None:
        pass


def test_a_followed_log_may_stay_quiet_longer_than_any_read_timeout(home: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = Endpoint(f"http://127.0.0.1:{server.server_address[1]}/api/v1", "t0ken")
        manager = RemoteManager(endpoint)
        manager.client = ServiceClient(endpoint, timeout=0.3)
        stream = manager.logs("s", follow=True)
        assert not isinstance(stream, str)
        assert "".join(stream) == "still here\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

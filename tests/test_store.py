"""The SQLite store: WAL, a schema version with migrations, unique names, one line per problem."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from clauderon_nb import ClauderonError
from clauderon_nb.model.session import Session, Status
from clauderon_nb.sessions.store import SCHEMA_VERSION, NameTaken, Store


def session(name: str, owner: str = "alice") -> Session:
    now = time.time()
    return Session(
        id=f"id-{name}",
        name=name,
        owner=owner,
        backend="docker",
        agent="claude",
        repo="/r",
        worktree=f"/w/{name}",
        branch=f"clauderon/{name}",
        prompt="p",
        settings={"cpu_limit": 500},
        backend_id=None,
        status=Status.CREATING,
        error=None,
        created_at=now,
        updated_at=now,
        runtime={"base_commit": "abc"},
    )


def test_wal_and_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "sessions.sqlite")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    Store(store.path)  # opening again migrates nothing and loses nothing


def test_round_trip_and_owner_filter(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.insert(session("a"))
    store.insert(session("b", owner="bob"))
    store.update("id-a", status=Status.RUNNING, runtime={"pid": 1}, settings={"cpu_limit": 1000})
    (a,) = store.all("alice")
    assert (a.status, a.runtime, a.settings) == (Status.RUNNING, {"pid": 1}, {"cpu_limit": 1000})
    assert [s.name for s in store.all()] == ["a", "b"]
    assert store.find("id-b", "bob") is not None and store.find("b", "bob") is not None
    assert store.find("b", "alice") is None and store.find("id-b", "alice") is None  # names are per owner
    assert store.find_any("id-b") is not None
    with pytest.raises(NameTaken, match="you already have a session named 'a'"):
        store.insert(Session(**{**session("a").__dict__, "id": "other"}))
    store.insert(Session(**{**session("a", owner="bob").__dict__, "id": "bobs-a"}))  # another owner: fine
    store.delete("id-a")
    assert store.find("a", "alice") is None


def test_a_version_1_store_is_migrated_keeping_every_session(tmp_path: Path) -> None:
    from clauderon_nb.sessions.store import _MIGRATIONS

    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    for statement in _MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO sessions VALUES ('id-1', 'old', 'alice', 'docker', 'claude', '/r', '/w', 'clauderon/old', "
        "'p', '{}', NULL, 'running', NULL, 1.0, 1.0, '{}')"
    )
    conn.commit()
    conn.close()
    store = Store(path)
    (old,) = store.all()
    assert (old.id, old.name, old.owner, old.status) == ("id-1", "old", "alice", Status.RUNNING)
    store.insert(Session(**{**session("old", owner="bob").__dict__, "id": "id-2"}))
    assert {s.owner for s in store.all()} == {"alice", "bob"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ClauderonError, match="schema version 99 is newer than this clauderon-nb understands"):
        Store(path)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            store = Store(path)  # each thread its own connections, as separate kernels would
            for i in range(25):
                store.insert(session(f"t{n}-{i}"))
                store.update(f"id-t{n}-{i}", status=Status.RUNNING)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = Store(path).all()
    assert len(rows) == 150 and all(s.status is Status.RUNNING for s in rows)

"""SQLite session store: WAL, versioned schema, safe for many processes at once."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ClauderonError
from ..model.session import Session, Status

T = TypeVar("T")
SCHEMA_VERSION = 2
BUSY_SECONDS = 30.0


def _table(name: str, *, unique: str) -> str:
    """The sessions table; ``unique`` is the uniqueness rule on names of that schema version."""
    name_column = "name TEXT NOT NULL UNIQUE" if unique == "name" else "name TEXT NOT NULL"
    rule = ",\n        UNIQUE (owner, name)" if unique == "owner, name" else ""
    return f"""
    CREATE TABLE {name} (
        id TEXT PRIMARY KEY,
        {name_column},
        owner TEXT NOT NULL,
        backend TEXT NOT NULL,
        agent TEXT NOT NULL,
        repo TEXT NOT NULL,
        worktree TEXT NOT NULL,
        branch TEXT NOT NULL,
        prompt TEXT NOT NULL,
        settings TEXT NOT NULL,
        backend_id TEXT,
        status TEXT NOT NULL,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        runtime TEXT NOT NULL DEFAULT '{{}}'{rule}
    )"""


# Each migration is a list of statements, run in one transaction with the version bump.
_MIGRATIONS: dict[int, list[str]] = {
    1: [_table("sessions", unique="name"), "CREATE INDEX sessions_owner ON sessions(owner)"],
    # Names are per owner (a shared service keeps every hub user's sessions in one store).
    2: [
        _table("sessions_v2", unique="owner, name"),
        "INSERT INTO sessions_v2 SELECT * FROM sessions",
        "DROP TABLE sessions",
        "ALTER TABLE sessions_v2 RENAME TO sessions",
        "CREATE INDEX sessions_owner ON sessions(owner)",
    ],
}
_COLUMNS = (
    "id, name, owner, backend, agent, repo, worktree, branch, prompt, settings, backend_id, status, error, "
    "created_at, updated_at, runtime"
)


_STATUSES = {s.value: s for s in Status}
_decode = json.JSONDecoder().decode  # json.loads without its per-call checks (a list reads every record)


def _status(value: Any) -> Status:
    found = _STATUSES.get(value) if isinstance(value, str) else None
    if found is not None:
        return found
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"unknown status {value!r}; expected one of {', '.join(s.value for s in Status)}") from None


class NameTaken(ClauderonError):
    """A session with this name already exists in the store."""


class StoreError(ClauderonError):
    """The session store is missing, unreadable or damaged."""


_FIX = "move it aside (or set CLAUDERON_HOME to another folder) and run again"


class Store:
    """Sessions under one ``CLAUDERON_HOME``.

    ``create=False`` opens an existing store only: read-only commands never make
    files, and a store that does not exist reads as empty.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        import threading

        self.path = path
        self._local = threading.local()  # one connection per thread, kept (opening one is most of a read)
        try:
            os.stat(path)
            self.exists = True
        except FileNotFoundError:
            self.exists = False
        except PermissionError:
            raise StoreError(
                f"{path}: cannot read the session store (permission denied on {path.parent}); "
                "set CLAUDERON_HOME (or %config Clauderon.home) to a folder of your own"
            ) from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the session store: {exc.strerror or exc}") from None
        if not self.exists and not create:
            return
        if not self.exists:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the session store folder {path.parent}: {exc.strerror or exc}; "
                    "set CLAUDERON_HOME (or %config Clauderon.home) to a folder you can write"
                ) from None
        elif not os.access(path, os.R_OK):
            raise StoreError(f"{path}: cannot read the session store (permission denied); check its owner and mode")
        self._migrate()
        self.exists = True

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the store, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
                conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; skips an fsync per commit
            except sqlite3.Error as exc:
                raise StoreError(self._explain(exc)) from None
            self._local.conn = conn
        return conn

    def _drop_connection(self, conn: sqlite3.Connection) -> None:
        """After an error the connection is closed; the next step opens a fresh one."""
        self._local.conn = None
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """Run ``fn`` in one transaction (``BEGIN IMMEDIATE`` when writing).

        SQLite can answer "database is locked" without waiting (for instance while
        another process recovers or checkpoints the WAL), so the whole transaction
        is retried for up to ``BUSY_SECONDS``.
        """
        deadline = time.monotonic() + BUSY_SECONDS
        delay = 0.005
        while True:
            conn = self._connection()
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                result = fn(conn)
                if write:
                    conn.execute("COMMIT")
                return result
            except sqlite3.IntegrityError:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            except sqlite3.OperationalError as exc:
                self._drop_connection(conn)
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise StoreError(self._explain(exc)) from None
            except sqlite3.DatabaseError as exc:
                self._drop_connection(conn)
                raise StoreError(self._explain(exc)) from None
            except BaseException:
                self._drop_connection(conn)
                raise
            import random

            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.2)

    def _explain(self, exc: Exception) -> str:
        text = str(exc)
        if "not a database" in text or "malformed" in text or "file is encrypted" in text:
            return f"{self.path}: not a clauderon session store ({text}); {_FIX}"
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            return (
                f"{self.path}: cannot write the session store ({text}); "
                "check the folder's permissions, or set CLAUDERON_HOME to a folder you can write"
            )
        return f"{self.path}: {text}"

    def _migrate(self) -> None:
        def migrate(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this clauderon-nb understands "
                    f"({SCHEMA_VERSION}); upgrade clauderon-nb"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")

        current = self._run(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
        if current == SCHEMA_VERSION:
            return  # the common case, read-only: no write lock just to open the store
        self._run(lambda conn: conn.execute("PRAGMA journal_mode = WAL").fetchone())  # kept in the file
        self._run(migrate, write=True)

    def _row(self, row: tuple[Any, ...]) -> Session:
        try:
            return self._parse_row(row)
        except (ValueError, TypeError, KeyError) as exc:
            name = row[1] if len(row) > 1 else "?"
            raise StoreError(f"{self.path}: session {name!r} has a damaged record ({exc}); {_FIX}") from None

    @staticmethod
    def _parse_row(row: tuple[Any, ...]) -> Session:
        settings, runtime = _decode(row[9]), _decode(row[15])
        if not isinstance(settings, dict) or not isinstance(runtime, dict):
            raise ValueError("settings and runtime must be JSON objects")
        return Session(
            id=row[0],
            name=row[1],
            owner=row[2],
            backend=row[3],
            agent=row[4],
            repo=row[5],
            worktree=row[6],
            branch=row[7],
            prompt=row[8],
            settings=settings,
            backend_id=row[10],
            status=_status(row[11]),
            error=row[12],
            created_at=row[13],
            updated_at=row[14],
            runtime=runtime,
        )

    def insert(self, session: Session) -> None:
        """Add a new session; ``NameTaken`` if its owner already has a session of that name."""
        values = (
            session.id,
            session.name,
            session.owner,
            session.backend,
            session.agent,
            session.repo,
            session.worktree,
            session.branch,
            session.prompt,
            json.dumps(session.settings),
            session.backend_id,
            session.status.value,
            session.error,
            session.created_at,
            session.updated_at,
            json.dumps(session.runtime),
        )
        try:
            self._run(
                lambda conn: conn.execute(f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * 16)})", values),
                write=True,
            )
        except sqlite3.IntegrityError:
            raise NameTaken(f"you already have a session named {session.name!r}; choose another --name") from None

    def update(self, session_id: str, **changes: Any) -> None:
        changes["updated_at"] = time.time()
        for key in ("settings", "runtime"):
            if key in changes:
                changes[key] = json.dumps(changes[key])
        if "status" in changes:
            changes["status"] = Status(changes["status"]).value
        sets = ", ".join(f"{k} = ?" for k in changes)
        self._run(
            lambda conn: conn.execute(f"UPDATE sessions SET {sets} WHERE id = ?", (*changes.values(), session_id)),
            write=True,
        )

    def delete(self, session_id: str) -> None:
        self._run(lambda conn: conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)), write=True)

    def all(self, owner: str | None = None) -> list[Session]:
        if not self.exists:
            return []
        if owner is None:
            rows = self._run(
                lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM sessions ORDER BY created_at").fetchall()
            )
        else:
            rows = self._run(
                lambda conn: conn.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE owner = ? ORDER BY created_at", (owner,)
                ).fetchall()
            )
        return [self._row(r) for r in rows]

    def find(self, name_or_id: str, owner: str) -> Session | None:
        """``owner``'s session of that name or id (names are per owner; other owners' are not found)."""
        if not self.exists:
            return None
        row = self._run(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE owner = ? AND (name = ? OR id = ?)",
                (owner, name_or_id, name_or_id),
            ).fetchone()
        )
        return self._row(row) if row else None

    def find_any(self, session_id: str) -> Session | None:
        """The session with that id, whoever owns it (for admins)."""
        if not self.exists:
            return None
        row = self._run(
            lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        )
        return self._row(row) if row else None

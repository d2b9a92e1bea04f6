"""The store's physical layer: SQLite tables of ciphertext. It never sees a key or a value.

Why these settings:

- **WAL** so readers never block writers or each other, and a reader sees
  one committed snapshot for the length of its transaction (no torn reads).
- **synchronous=FULL**: in WAL mode that fsyncs the log at every commit, so
  an acknowledged write survives a power cut (NORMAL would lose the last
  commits). It costs about 0.3 ms per write on this class of disk.
- **BEGIN IMMEDIATE** for every write: the write lock is taken before the
  current version is read, so two processes can never both compute version
  N+1 (no lost update, versions dense), and SQLite's busy timeout queues
  writers instead of failing them.

Tables: ``meta`` (schema and master key id), ``data_keys`` (wrapped),
``apps`` (per-app settings), ``secrets`` (one row per key: current and
oldest kept version, origin), ``versions`` (one row per version: the sealed
value or nothing once destroyed, and the git commit it was synced from),
``changes`` (a log other processes read to refresh their caches, pruned to
its last entries), ``synced_commits`` (per tenant, the commit ``sync --git``
applied last: the reference for rollback protection).

Schema versions: ``meta.schema`` says which one a file has. Opening an older
store upgrades it in place, in one write transaction (so a crash leaves the
old schema or the new one, never half of each): missing tables are created
from ``_SCHEMA`` and ``_MIGRATIONS[n]`` takes schema n to n+1 without
touching existing rows. A store with a newer schema than this code knows is
refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from typing import Final

from ..errors import FormatError, UnavailableError

__all__ = ["SCHEMA_VERSION", "Database"]

SCHEMA_VERSION: Final = 2
"""1: the first schema. 2: ``versions.commit_id`` and ``synced_commits`` (sync from git)."""
BUSY_TIMEOUT_MS: Final = 60_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    master_gen INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS data_keys_app ON data_keys (tenant, app);
CREATE TABLE IF NOT EXISTS apps (
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    data_key INTEGER,
    max_versions INTEGER,
    PRIMARY KEY (tenant, app)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    current INTEGER NOT NULL,
    oldest INTEGER NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, app, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    data_key INTEGER,
    sealed BLOB,
    created_at REAL NOT NULL,
    deleted_at REAL,
    destroyed INTEGER NOT NULL DEFAULT 0,
    commit_id TEXT,
    PRIMARY KEY (tenant, app, key, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    op TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS synced_commits (
    tenant TEXT PRIMARY KEY,
    commit_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    synced_at REAL NOT NULL
) WITHOUT ROWID;
"""

# Statements that take schema n to n+1, run after _SCHEMA has created any
# missing table. Only additive changes (a nullable column), so rows written
# before the upgrade keep their meaning: NULL commit_id = not from git.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: ("ALTER TABLE versions ADD COLUMN commit_id TEXT",),
}


class Database:
    """One connection to ``store.db``, shared by the threads of a process.

    ``lock`` serialises use of the connection (sqlite3 connections are not
    safe for concurrent use); processes are serialised by SQLite's own locks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._orphans: list[sqlite3.Connection] = []
        ref = weakref.ref(self)

        def after_fork_in_child() -> None:
            db = ref()
            if db is not None:
                db._after_fork()

        os.register_at_fork(after_in_child=after_fork_in_child)
        if not os.path.exists(path):
            # Create the file ourselves so it is 0600 from the first byte;
            # SQLite gives -wal and -shm the same mode as the database.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o600))
        try:
            self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                        isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise UnavailableError(
                f"cannot open the store {path}: {exc}",
                hint="check that this user may read and write the file and its folder",
            ) from None
        try:
            self._configure()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise FormatError(f"{path} is not a macula-secrets store ({exc})") from None

    def _after_fork(self) -> None:
        """A forked child (gunicorn --preload, multiprocessing) gets its own connection.

        SQLite forbids using a connection across fork(), and a lock held by
        another thread at fork time would never be released in the child. The
        inherited connection is kept unreferenced-but-alive rather than
        closed: closing it could disturb locks that belong to the parent.
        """
        self.lock = threading.RLock()
        self._orphans.append(self.conn)
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                    isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA synchronous = FULL")

    def _configure(self) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = OFF")
        if self._schema_version() == SCHEMA_VERSION:
            return  # the usual open: no write lock taken, nothing to wait for
        with self.write():
            # Read again under the write lock: another process may have
            # created or upgraded the store since the check above.
            found = self._schema_version()
            if found is not None and not 1 <= found <= SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {found}, this version of macula-secrets reads "
                    f"versions 1 to {SCHEMA_VERSION}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            if found is None:
                c.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                return
            for step in range(found, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    c.execute(statement)
            c.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))

    def _schema_version(self) -> int | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.OperationalError:  # a new file: no tables yet
            return None
        return None if row is None else int(row[0])

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): commit on success, roll back on error."""
        with self.lock:
            c = self.conn
            if c.in_transaction:  # nested use inside one of our own transactions
                yield c
                return
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed snapshot."""
        with self.lock:
            c = self.conn
            if c.in_transaction:
                yield c
                return
            c.execute("BEGIN")
            try:
                yield c
            finally:
                c.execute("COMMIT")

    def meta(self, name: str) -> bytes | int | str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self.lock:
            self.conn.close()

"""The runtime store: versioned secrets, encrypted at rest, shared by the processes of a node.

Most callers want :class:`macula_secrets.Secrets`, which puts a source (sops
files) behind this store. This class is the store alone: names are checked,
values are sealed by :mod:`.barrier`, rows live in :mod:`.sqlite`.

Reads are served from an in-process cache of the latest version of each key.
The cache stays correct across processes without asking SQLite on every
read: writers bump a shared-memory token after each commit
(:mod:`._notify`); a read that sees a new token reads the change log and
drops the keys that changed. The change log is also read at least every
``REFRESH_INTERVAL`` seconds, which bounds staleness if a writer was killed
between its commit and its bump.

Versions follow Vault's KV v2: ``put`` makes version N+1; ``delete`` marks
versions deleted (recoverable with ``undelete``); ``destroy`` erases their
ciphertext; at most ``max_versions`` are kept per key; ``cas=N`` writes only
when the current version is N (``cas=0``: only when the key does not exist).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Final

from .. import _crypto
from .._names import check_name
from ..audit import AuditLog
from ..errors import (
    ConflictError,
    FormatError,
    IntegrityError,
    KeySourceError,
    LimitError,
    MaculaError,
    NotFoundError,
)
from ..keys.master import MasterKeyProvider
from ..records import SyncedCommit, VersionInfo, from_timestamp
from . import barrier
from ._notify import ChangeToken
from .sqlite import Database

__all__ = ["ABSENT", "DEFAULT_MAX_VALUE_SIZE", "DEFAULT_MAX_VERSIONS", "DELETED", "LocalStore"]

DEFAULT_MAX_VERSIONS: Final = 10
"""Versions kept per key unless the app says otherwise (Vault's default)."""

DEFAULT_MAX_VALUE_SIZE: Final = 1024 * 1024
"""Largest value in bytes (1 MiB), unless configured otherwise."""

REFRESH_INTERVAL: Final = 1.0
"""Seconds between change-log reads when no change token was seen (see module doc)."""

_AUDIT_HMAC_PURPOSE: Final = b"macula-secrets audit hmac v1"

CHANGE_LOG_KEEP: Final = 10_000
"""Change-log entries kept; a process that falls further behind drops its whole cache."""


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT: Final = _Marker("ABSENT")
"""Cache entry and lookup result: the store has never had this key (or it was purged)."""

DELETED: Final = _Marker("DELETED")
"""Cache entry and lookup result: the key exists but its latest version is deleted or destroyed."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` for long operations (re-encryption)."""


def _where(tenant: str, app: str, key: str | None = None) -> str:
    base = app if tenant == "default" else f"{tenant}/{app}"
    return base if key is None else f"{base}/{key}"


class LocalStore:
    """``store.db`` in a home folder, unlocked with a master key. Thread-safe.

    Args:
        path: the database file (its folder is created 0700 if missing).
        master: where the master key comes from. A new store creates one
            there on first use; an existing store never gets a new key.
        max_versions: versions kept per key for apps without their own limit.
        max_value_size: largest value accepted, in UTF-8 bytes.
        audit: where every change is recorded, inside its transaction (a
            change whose audit line cannot be written is not made).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        master: MasterKeyProvider,
        *,
        max_versions: int = DEFAULT_MAX_VERSIONS,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        audit: AuditLog | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.audit = audit
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.max_versions = max_versions
        self.max_value_size = max_value_size
        self._master_provider = master
        self._db = Database(self.path)
        self._token = ChangeToken(self.path + ".token")
        self._master = b""
        self._master_gen = 0
        self._stored_key_id = b""
        self._pending_audit: list[tuple[str, dict[str, object]]] = []
        self._data_keys: dict[int, bytes] = {}
        self._cache: dict[tuple[str, str, str], str | _Marker] = {}
        # The version each cached value is (for load_all, which reads versions in bulk).
        self._versions: dict[tuple[str, str, str], int] = {}
        self._seen = self._token.read()
        self._next_refresh = time.monotonic() + REFRESH_INTERVAL
        self._last_seq = 0
        self._closed = False
        try:
            self._unlock()
            with self._db.read() as c:
                row = c.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
                self._last_seq = int(row[0])
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"LocalStore({self.path!r})"

    # -- master key ---------------------------------------------------------------

    def _unlock(self) -> None:
        """Load the master key that matches the store (creating both for a new store)."""
        stored = self._db.meta("key_id")
        if stored is None:
            with self._db.write() as c:
                if c.execute("SELECT 1 FROM meta WHERE name = 'key_id'").fetchone() is None:
                    if not self._master_provider.exists():
                        self._master_provider.create(_crypto.random_key())
                    key = self._master_provider.candidates()[0]
                    now = time.time()
                    c.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("key_id", barrier.key_id(key)), ("master_gen", 1),
                        ("master_created_at", now), ("created_at", now)])
        self._load_master()

    def _match_master(self) -> tuple[bytes, int, int, bytes] | None:
        """(key, generation, candidate index, stored id) of the key that opens the store."""
        with self._db.read() as c:
            rows = dict(c.execute(
                "SELECT name, value FROM meta WHERE name IN ('key_id', 'master_gen')").fetchall())
        stored_id = bytes(rows["key_id"])
        self._stored_key_id = stored_id
        for index, key in enumerate(self._master_provider.candidates()):
            if _crypto.constant_time_equal(barrier.key_id(key), stored_id):
                return key, int(rows["master_gen"]), index, stored_id
        return None

    def _load_master(self, *, lock_held: bool = False) -> None:
        """Load the master key that opens the store now (another process may have rotated it).

        A pending key (``.next``) that matches belongs to a rotation that
        committed but has not renamed its key file yet (it crashed, or is
        about to). It is used as it is; the rename is finished only under
        the provider's lock, so two rotations can never interleave their
        renames. Inside a store transaction that lock is not taken (a
        rotation takes it before the store's write lock), and a rename in
        flight is simply read again.
        """
        provider = self._master_provider
        found = None
        for _ in range(3):  # the key file and .next are read apart: a rename may fall between
            found = self._match_master()
            if found is not None:
                break
        if lock_held:
            if found is not None and found[2] > 0:
                with contextlib.suppress(FileNotFoundError):
                    provider.commit_rotation()
        elif (found is None or found[2] > 0) and not self._db.conn.in_transaction:
            with provider.locked():
                found = self._match_master()
                if found is not None and found[2] > 0:
                    with contextlib.suppress(FileNotFoundError):
                        provider.commit_rotation()
        if found is None:
            current = barrier.key_id(provider.candidates()[0]).hex()[:16]
            raise KeySourceError(
                f"the master key in {provider.description} does not open the store "
                f"{self.path} (key id {current}, the store expects "
                f"{self._stored_key_id.hex()[:16]})",
                hint="use the key this store was created with; a new key cannot read old secrets",
            )
        key, gen, _index, _stored = found
        self._master = key
        self._master_gen = gen
        if self.audit is not None:
            self.audit.set_hmac_key(_crypto.derive(key, _AUDIT_HMAC_PURPOSE))

    def master_key_created(self) -> float | None:
        """Unix time the current master key was made or rotated in (for its age metric)."""
        made = self._db.meta("master_created_at")
        return float(made) if isinstance(made, int | float) else None

    def master_key_id(self) -> str:
        """Hex id of the current master key (HKDF of it; safe to show)."""
        with self._db.lock:
            return barrier.key_id(self._master).hex()

    def rotate_master_key(self, *, reencrypt: bool = False,
                          progress: Progress | None = None) -> None:
        """Replace the master key; with ``reencrypt``, every data key and ciphertext too.

        Re-wrapping the data keys is one transaction, so a crash leaves the
        store on the old key or the new one. Other processes notice the new
        key the next time they need a data key they have not unwrapped yet,
        and read it from the provider: no restart.
        """
        provider = self._master_provider
        # Lock order: the provider's lock, then the store's write lock. Held
        # until the key file is renamed, so rotations never overlap.
        with provider.locked():
            self._rotate_locked()
        if reencrypt:
            self.reencrypt(progress=progress)

    def _rotate_locked(self) -> None:
        provider = self._master_provider
        with self._write() as c:
            self._load_master(lock_held=True)  # also finishes an interrupted rotation
            new = _crypto.random_key()
            gen = self._master_gen + 1
            rows = c.execute("SELECT id, tenant, app, wrapped FROM data_keys").fetchall()
            rewrapped = []
            for dk_id, tenant, app, wrapped in rows:
                dk = barrier.unwrap_data_key(self._master, bytes(wrapped), tenant=tenant, app=app,
                                             dk_id=dk_id)
                rewrapped.append((barrier.wrap_data_key(new, dk, tenant=tenant, app=app,
                                                        dk_id=dk_id), gen, dk_id))
            provider.begin_rotation(new)
            try:
                c.executemany("UPDATE data_keys SET wrapped = ?, master_gen = ? WHERE id = ?",
                              rewrapped)
                c.executemany("UPDATE meta SET value = ? WHERE name = ?", [
                    (barrier.key_id(new), "key_id"), (gen, "master_gen"),
                    (time.time(), "master_created_at")])
                self._log(c, "", "", "", 0, "rotate")
                self._audit("rotate-master", master_key_id=barrier.key_id(new).hex()[:16],
                            data_keys=len(rows))
            except BaseException:
                provider.abort_rotation()
                raise
        # Committed: the store now opens only with the new key.
        # (FileNotFoundError: a process that opened the store meanwhile did the rename.)
        with contextlib.suppress(FileNotFoundError):
            provider.commit_rotation()
        with self._db.lock:
            self._master, self._master_gen = new, gen
            if self.audit is not None:
                self.audit.set_hmac_key(_crypto.derive(new, _AUDIT_HMAC_PURPOSE))
        self._token.bump()

    def reencrypt(self, *, progress: Progress | None = None) -> int:
        """Give every app a new data key and re-seal every kept version with it.

        One transaction per app: readers see an app entirely before or after.
        Returns the number of versions re-sealed.
        """
        with self._db.read() as c:
            apps = c.execute("SELECT tenant, app FROM apps ORDER BY tenant, app").fetchall()
            total = c.execute(
                "SELECT count(*) FROM versions WHERE sealed IS NOT NULL").fetchone()[0]
        done = 0
        if progress:
            progress(0, total)
        for tenant, app in apps:
            with self._write() as c:
                rows = c.execute(
                    "SELECT key, version, data_key, sealed FROM versions "
                    "WHERE tenant = ? AND app = ? AND sealed IS NOT NULL",
                    (tenant, app)).fetchall()
                dk_id, dk = self._new_data_key(c, tenant, app)
                updates = []
                for key, version, old_id, sealed in rows:
                    old = self._data_key(c, old_id, tenant, app)
                    plain = barrier.open_value(old, bytes(sealed), tenant=tenant, app=app,
                                               key=key, version=version)
                    updates.append((dk_id, barrier.seal_value(dk, plain, tenant=tenant, app=app,
                                                              key=key, version=version),
                                    tenant, app, key, version))
                c.executemany("UPDATE versions SET data_key = ?, sealed = ? WHERE tenant = ? "
                              "AND app = ? AND key = ? AND version = ?", updates)
                c.execute("DELETE FROM data_keys WHERE tenant = ? AND app = ? AND id != ?",
                          (tenant, app, dk_id))
                self._log(c, tenant, app, "", 0, "rekey")
                self._audit("reencrypt", tenant=tenant, app=app, resealed=len(rows))
            done += len(rows)
            self._token.bump()
            if progress:
                progress(done, total)
        return done

    # -- data keys ---------------------------------------------------------------

    def _new_data_key(self, c: sqlite3.Connection, tenant: str, app: str) -> tuple[int, bytes]:
        # Always inside a write transaction, so the master key cannot change
        # before commit; but another process may have rotated it since we
        # loaded ours. Wrapping under a stale key would make this app
        # unreadable for every other process, so pick up the current one.
        gen = c.execute("SELECT value FROM meta WHERE name = 'master_gen'").fetchone()
        if gen is not None and int(gen[0]) != self._master_gen:
            self._load_master()
        dk = _crypto.random_key()
        dk_id = c.execute("SELECT coalesce(max(id), 0) + 1 FROM data_keys").fetchone()[0]
        wrapped = barrier.wrap_data_key(self._master, dk, tenant=tenant, app=app, dk_id=dk_id)
        c.execute("INSERT INTO data_keys VALUES (?, ?, ?, ?, ?, ?)",
                  (dk_id, tenant, app, wrapped, self._master_gen, time.time()))
        c.execute("INSERT INTO apps (tenant, app, data_key) VALUES (?, ?, ?) "
                  "ON CONFLICT (tenant, app) DO UPDATE SET data_key = excluded.data_key",
                  (tenant, app, dk_id))
        self._data_keys[dk_id] = dk
        return dk_id, dk

    def _active_data_key(self, c: sqlite3.Connection, tenant: str, app: str
                         ) -> tuple[int, bytes]:
        row = c.execute("SELECT data_key FROM apps WHERE tenant = ? AND app = ?",
                        (tenant, app)).fetchone()
        if row is None or row[0] is None:
            return self._new_data_key(c, tenant, app)
        return row[0], self._data_key(c, row[0], tenant, app)

    def _data_key(self, c: sqlite3.Connection, dk_id: int, tenant: str, app: str) -> bytes:
        dk = self._data_keys.get(dk_id)
        if dk is not None:
            return dk
        row = c.execute("SELECT tenant, app, wrapped, master_gen FROM data_keys WHERE id = ?",
                        (dk_id,)).fetchone()
        if row is None:
            raise IntegrityError(f"the data key of {_where(tenant, app)} is missing from the store")
        if row[3] != self._master_gen:
            self._load_master()  # rotated by another process: pick up the new key
        # The row's own tenant/app are ignored: the key must unwrap as *this*
        # app's key, so a row pointed at another app's key fails here.
        dk = barrier.unwrap_data_key(self._master, bytes(row[2]), tenant=tenant, app=app,
                                     dk_id=dk_id)
        self._data_keys[dk_id] = dk
        return dk

    # -- cache ---------------------------------------------------------------------

    def _refresh(self) -> None:
        """Drop cached entries that other processes changed (see the module doc)."""
        with self._db.lock:
            self._seen = self._token.read()
            self._next_refresh = time.monotonic() + REFRESH_INTERVAL
            c = self._db.conn
            rows = c.execute("SELECT seq, tenant, app, key, op FROM changes WHERE seq > ? "
                             "ORDER BY seq", (self._last_seq,)).fetchall()
            if not rows:
                return
            if rows[0][0] != self._last_seq + 1:
                # Fell behind the pruned log (or a writer's transaction rolled
                # back and left a gap): start the cache afresh.
                first = c.execute("SELECT min(seq) FROM changes").fetchone()[0]
                if first is None or first > self._last_seq + 1:
                    self._cache.clear()
            for _seq, tenant, app, key, op in rows:
                if op == "rotate":
                    continue
                if op == "rekey" or key == "":
                    self._data_keys.clear()
                    for k in [k for k in self._cache if k[0] == tenant and k[1] == app]:
                        del self._cache[k]
                else:
                    self._cache.pop((tenant, app, key), None)
            self._last_seq = rows[-1][0]

    def changes_since(self, seq: int) -> list[tuple[int, str, str, str, int, str]]:
        """Change-log entries after ``seq``: (seq, tenant, app, key, version, op).

        ``op`` is put, delete, undelete, destroy or purge for a key; rotate
        and rekey (with an empty key) for keys of the store itself.
        """
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT seq, tenant, app, key, version, op FROM changes WHERE seq > ? "
                "ORDER BY seq", (seq,)).fetchall()
        return [tuple(r) for r in rows]

    def last_change(self) -> int:
        """The newest change-log sequence number (0 for a new store)."""
        with self._db.lock:
            row = self._db.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        return int(row[0])

    def token(self) -> bytes:
        """The shared change token (see :mod:`._notify`): changes after every commit."""
        return self._token.read()

    @property
    def token_path(self) -> str:
        """The change token's file: every commit writes it (see :mod:`._notify`)."""
        return self._token.path

    def refresh(self) -> None:
        """Bring the cache up to date with the change log now."""
        self._refresh()

    def lookup(self, tenant: str, app: str, key: str) -> str | _Marker:
        """The latest value of a key, ``DELETED`` or ``ABSENT``; cached.

        This is the hot path of ``Secrets.get``: a cache hit costs a memory
        read of the change token and a dictionary lookup.
        """
        if self._token.read() != self._seen or time.monotonic() > self._next_refresh:
            self._refresh()
        hit = self._cache.get((tenant, app, key))
        if hit is not None:
            return hit
        return self._load_latest(tenant, app, key)

    def _load_latest(self, tenant: str, app: str, key: str) -> str | _Marker:
        check_name("tenant", tenant)
        check_name("app", app)
        check_name("key", key)
        # One statement, so no explicit transaction is needed for a consistent read.
        with self._db.lock:
            c = self._db.conn
            row = c.execute(
                "SELECT v.version, v.data_key, v.sealed, v.deleted_at FROM secrets s "
                "LEFT JOIN versions v ON v.tenant = s.tenant AND v.app = s.app AND "
                "v.key = s.key AND v.version = s.current "
                "WHERE s.tenant = ? AND s.app = ? AND s.key = ?", (tenant, app, key)).fetchone()
            result: str | _Marker
            if row is None:
                result = ABSENT
            elif row[2] is None or row[3] is not None:
                result = DELETED
            else:
                result = self._open(c, tenant, app, key, row[0], row[1], row[2])
                self._versions[(tenant, app, key)] = row[0]
            # Cached under the lock: a refresh by another thread cannot fall
            # between the read and this line and leave a stale value behind.
            self._cache[(tenant, app, key)] = result
        return result

    def _open(self, c: sqlite3.Connection, tenant: str, app: str, key: str, version: int,
              dk_id: int, sealed: bytes) -> str:
        dk = self._data_key(c, dk_id, tenant, app)
        plain = barrier.open_value(dk, bytes(sealed), tenant=tenant, app=app, key=key,
                                   version=version)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - the tag verified, so we wrote it
            raise IntegrityError(
                f"{_where(tenant, app, key)} version {version} is not text") from None

    # -- reads -----------------------------------------------------------------------

    def read_version(self, tenant: str, app: str, key: str, version: int
                     ) -> tuple[VersionInfo, str | None]:
        """One version's record and value (``None`` when deleted or destroyed).

        Raises:
            NotFoundError: the key or that version does not exist (or was pruned).
        """
        _check(tenant, app, key)
        with self._db.read() as c:
            current = self._current(c, tenant, app, key)
            row = c.execute(
                "SELECT version, data_key, sealed, created_at, deleted_at, destroyed, commit_id "
                "FROM versions WHERE tenant = ? AND app = ? AND key = ? AND version = ?",
                (tenant, app, key, version)).fetchone()
            if row is None:
                raise NotFoundError(f"{_where(tenant, app, key)} has no version {version}")
            info = _info(row[0], row[3], row[4], row[5], current, row[6])
            if info.state != "live":
                return info, None
            return info, self._open(c, tenant, app, key, row[0], row[1], row[2])

    def _current(self, c: sqlite3.Connection, tenant: str, app: str, key: str) -> int:
        row = c.execute("SELECT current FROM secrets WHERE tenant = ? AND app = ? AND key = ?",
                        (tenant, app, key)).fetchone()
        if row is None:
            raise NotFoundError(f"{_where(tenant, app, key)} does not exist")
        return int(row[0])

    def current_version(self, tenant: str, app: str, key: str) -> int:
        """The latest version number (0 when the key does not exist)."""
        _check(tenant, app, key)
        with self._db.read() as c:
            row = c.execute("SELECT current FROM secrets WHERE tenant = ? AND app = ? AND key = ?",
                            (tenant, app, key)).fetchone()
        return 0 if row is None else int(row[0])

    def history(self, tenant: str, app: str, key: str) -> list[VersionInfo]:
        """Every kept version, oldest first.

        Raises:
            NotFoundError: the key does not exist.
        """
        _check(tenant, app, key)
        with self._db.read() as c:
            current = self._current(c, tenant, app, key)
            rows = c.execute(
                "SELECT version, created_at, deleted_at, destroyed, commit_id FROM versions "
                "WHERE tenant = ? AND app = ? AND key = ? ORDER BY version",
                (tenant, app, key)).fetchall()
        return [_info(r[0], r[1], r[2], r[3], current, r[4]) for r in rows]

    def list_keys(self, tenant: str, app: str, *, include_deleted: bool = False) -> list[str]:
        """Key names of an app, sorted; by default only keys whose latest version is live."""
        check_name("tenant", tenant)
        check_name("app", app)
        with self._db.read() as c:
            if include_deleted:
                rows = c.execute("SELECT key FROM secrets WHERE tenant = ? AND app = ? "
                                 "ORDER BY key", (tenant, app)).fetchall()
            else:
                rows = c.execute(
                    "SELECT s.key FROM secrets s JOIN versions v ON v.tenant = s.tenant AND "
                    "v.app = s.app AND v.key = s.key AND v.version = s.current "
                    "WHERE s.tenant = ? AND s.app = ? AND v.deleted_at IS NULL AND "
                    "v.destroyed = 0 ORDER BY s.key", (tenant, app)).fetchall()
        return [r[0] for r in rows]

    def list_apps(self, tenant: str) -> list[str]:
        """Apps of a tenant that have at least one key, sorted."""
        check_name("tenant", tenant)
        with self._db.read() as c:
            rows = c.execute("SELECT DISTINCT app FROM secrets WHERE tenant = ? ORDER BY app",
                             (tenant,)).fetchall()
        return [r[0] for r in rows]

    def list_tenants(self) -> list[str]:
        """Tenants that have at least one key, sorted."""
        with self._db.read() as c:
            rows = c.execute("SELECT DISTINCT tenant FROM secrets ORDER BY tenant").fetchall()
        return [r[0] for r in rows]

    def load_all(self, tenant: str, app: str) -> dict[str, str]:
        """Every live key of an app with its latest value, decrypted in one read transaction."""
        check_name("tenant", tenant)
        check_name("app", app)
        if self._token.read() != self._seen or time.monotonic() > self._next_refresh:
            self._refresh()
        out: dict[str, str] = {}
        with self._db.read() as c:
            rows = c.execute(
                "SELECT s.key, v.version, v.data_key, v.sealed FROM secrets s "
                "JOIN versions v ON v.tenant = s.tenant AND v.app = s.app AND v.key = s.key "
                "AND v.version = s.current WHERE s.tenant = ? AND s.app = ? AND "
                "v.deleted_at IS NULL AND v.sealed IS NOT NULL ORDER BY s.key",
                (tenant, app)).fetchall()
            cache = self._cache
            for key, version, dk_id, sealed in rows:
                # The cache is kept coherent with the change log (refreshed
                # above), so a cached value is the latest version's value.
                # A cached value is used only if it is this very version.
                hit = cache.get((tenant, app, key))
                if isinstance(hit, str) and self._versions.get((tenant, app, key)) == version:
                    out[key] = hit
                else:
                    out[key] = self._open(c, tenant, app, key, version, dk_id, sealed)
            for key, version, _dk, _sealed in rows:
                self._cache[(tenant, app, key)] = out[key]
                self._versions[(tenant, app, key)] = version
        return out

    def updated_at(self, tenant: str, app: str, key: str) -> float | None:
        """When the key last got a new version (a Unix time), or ``None`` if it does not exist."""
        _check(tenant, app, key)
        with self._db.read() as c:
            row = c.execute("SELECT updated_at FROM secrets WHERE tenant = ? AND app = ? AND "
                            "key = ?", (tenant, app, key)).fetchone()
        return None if row is None else float(row[0])

    def origins(self, tenant: str, app: str | None = None) -> dict[tuple[str, str], str]:
        """``{(app, key): origin}`` for every key of a tenant (or of one app)."""
        with self._db.read() as c:
            if app is None:
                rows = c.execute("SELECT app, key, origin FROM secrets WHERE tenant = ?",
                                 (tenant,)).fetchall()
            else:
                rows = c.execute("SELECT app, key, origin FROM secrets WHERE tenant = ? AND "
                                 "app = ?", (tenant, app)).fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    # -- writes ----------------------------------------------------------------------

    def put(self, tenant: str, app: str, key: str, value: str, *, cas: int | None = None,
            origin: str = "local", before_commit: Callable[[int], None] | None = None,
            audit_as: tuple[str, int] | None = None) -> int:
        """Write a new version; return its number.

        ``before_commit(version)`` runs inside the transaction, after the
        check-and-set passed and the audit line was written, so a source (a
        sops file) is written under the store's write lock; if it raises,
        nothing is stored (and the audit log says the change aborted).
        ``audit_as=("rollback", N)`` records the write as a rollback to version N.

        Raises:
            ConflictError: ``cas`` is not the current version.
            LimitError: the value is larger than ``max_value_size``.
        """
        _check(tenant, app, key)
        data = self._encode(tenant, app, key, value)
        # The lock is held from the commit until the value is cached (see _load_latest).
        done: list[int] = []

        def write_source() -> None:
            if before_commit is not None:
                before_commit(done[0])

        with self._db.lock:
            with self._write(after_audit=write_source) as c:
                version = self._put_in(c, tenant, app, key, data, cas=cas, origin=origin)
                done.append(version)
                op, from_version = audit_as or ("put", None)
                self._audit(op, tenant=tenant, app=app, key=key, version=version,
                            origin=origin, cas=cas, from_version=from_version,
                            value_hmac=self._value_hmac(value))
            self._cache[(tenant, app, key)] = value
            self._versions[(tenant, app, key)] = version
        self._token.bump()
        return version

    def _encode(self, tenant: str, app: str, key: str, value: str) -> bytes:
        if not isinstance(value, str):
            raise FormatError(f"the value of {_where(tenant, app, key)} must be text (str), "
                              f"not {type(value).__name__}")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"the value of {_where(tenant, app, key)} is not valid Unicode "
                              "text") from None
        if len(data) > self.max_value_size:
            raise LimitError(f"the value of {_where(tenant, app, key)} is {len(data)} bytes, "
                             f"over the limit of {self.max_value_size} (max_value_size)")
        return data

    def _put_in(self, c: sqlite3.Connection, tenant: str, app: str, key: str, data: bytes, *,
                cas: int | None, origin: str, commit: str | None = None) -> int:
        row = c.execute("SELECT current, oldest FROM secrets WHERE tenant = ? AND app = ? "
                        "AND key = ?", (tenant, app, key)).fetchone()
        current, oldest = (int(row[0]), int(row[1])) if row else (0, 1)
        if cas is not None and cas != current:
            raise ConflictError(
                f"check-and-set failed for {_where(tenant, app, key)}: the current version is "
                f"{current}, not {cas}")
        version = current + 1
        dk_id, dk = self._active_data_key(c, tenant, app)
        sealed = barrier.seal_value(dk, data, tenant=tenant, app=app, key=key, version=version)
        now = time.time()
        c.execute("INSERT INTO versions (tenant, app, key, version, data_key, sealed, created_at, "
                  "commit_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (tenant, app, key, version, dk_id, sealed, now, commit))
        keep = self._max_versions(c, tenant, app)
        if version - oldest + 1 > keep:
            oldest = version - keep + 1
            c.execute("DELETE FROM versions WHERE tenant = ? AND app = ? AND key = ? AND "
                      "version < ?", (tenant, app, key, oldest))
        if row:
            c.execute("UPDATE secrets SET current = ?, oldest = ?, origin = ?, updated_at = ? "
                      "WHERE tenant = ? AND app = ? AND key = ?",
                      (version, oldest, origin, now, tenant, app, key))
        else:
            c.execute("INSERT INTO secrets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (tenant, app, key, version, oldest, origin, now, now))
        self._log(c, tenant, app, key, version, "put")
        return version

    def _max_versions(self, c: sqlite3.Connection, tenant: str, app: str) -> int:
        row = c.execute("SELECT max_versions FROM apps WHERE tenant = ? AND app = ?",
                        (tenant, app)).fetchone()
        return int(row[0]) if row and row[0] else self.max_versions

    def _log(self, c: sqlite3.Connection, tenant: str, app: str, key: str, version: int,
             op: str) -> None:
        seq = c.execute("INSERT INTO changes (tenant, app, key, version, op, at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (tenant, app, key, version, op, time.time())).lastrowid
        if seq is not None and seq % 1000 == 0:
            c.execute("DELETE FROM changes WHERE seq <= ?", (seq - CHANGE_LOG_KEEP,))

    @contextlib.contextmanager
    def _write(self, *, after_audit: Callable[[], None] | None = None
               ) -> Iterator[sqlite3.Connection]:
        """A write transaction whose audit lines are written just before it commits.

        Lines are collected while the transaction runs and appended when its
        work is done, so a change that fails half-way (and rolls back) leaves
        no line claiming it happened, and a line that cannot be written rolls
        the change back (fail closed). Only a failing COMMIT after the lines
        were written can leave a claim without its change, as can
        ``after_audit`` (a source file written after the lines, before the
        commit) when it fails; either is followed by an ``abort`` line.
        """
        with self._db.lock:
            if self._db.conn.in_transaction:
                yield self._db.conn
                return
            self._pending_audit = []
            flushed = False
            try:
                with self._db.write() as c:
                    yield c
                    pending, self._pending_audit = self._pending_audit, []
                    if self.audit is not None:
                        for op, fields in pending:
                            self.audit.record(op, fields)
                    flushed = True
                    if after_audit is not None:
                        after_audit()
            except BaseException as exc:
                self._pending_audit = []
                # A data key made in the rolled-back transaction was never
                # stored, and its id may go to another app's key next.
                self._data_keys.clear()
                if flushed and self.audit is not None:
                    with contextlib.suppress(MaculaError):
                        self.audit.record("abort", {"reason": "the change above failed after "
                                                    "it was recorded: " + type(exc).__name__},
                                          result="error")
                raise

    def _audit(self, op: str, **fields: object) -> None:
        if self.audit is None:
            return
        if self._db.conn.in_transaction:
            self._pending_audit.append((op, fields))
        else:
            self.audit.record(op, fields)

    def _value_hmac(self, value: str) -> str | None:
        return None if self.audit is None else self.audit.value_hmac(value)

    def audit_read(self, tenant: str, app: str, key: str, *, version: int | None = None,
                   result: str = "ok", via: str | None = None) -> None:
        """Record a read (the command line and the server do; in-process reads do not).

        ``result="stale", via="vault"``: a cached value was served because
        the source (Vault) could not be reached.

        Raises:
            UnavailableError: the audit log cannot be written: do not hand the value out.
        """
        if self.audit is not None:
            self.audit.append("read", tenant=tenant, app=app, key=key, version=version,
                              via=via, result=result)

    def set_max_versions(self, tenant: str, app: str, max_versions: int | None) -> None:
        """Versions kept per key of this app (``None``: the store's default).

        Extra old versions are pruned at each key's next write, as in Vault.
        """
        check_name("tenant", tenant)
        check_name("app", app)
        if max_versions is not None and max_versions < 1:
            raise LimitError("max_versions must be at least 1")
        with self._write() as c:
            c.execute("INSERT INTO apps (tenant, app, max_versions) VALUES (?, ?, ?) "
                      "ON CONFLICT (tenant, app) DO UPDATE SET max_versions = "
                      "excluded.max_versions", (tenant, app, max_versions))

    def get_max_versions(self, tenant: str, app: str) -> int:
        with self._db.read() as c:
            return self._max_versions(c, tenant, app)

    def _mark(self, tenant: str, app: str, key: str, versions: Iterable[int] | None, op: str,
              sql: str) -> list[int]:
        """Run ``sql`` (named parameters: now, tenant, app, key, version) on each version."""
        _check(tenant, app, key)
        with self._write() as c:
            current = self._current(c, tenant, app, key)
            targets = sorted(set(versions)) if versions is not None else [current]
            if not targets:
                raise LimitError("no versions given")
            changed = []
            now = time.time()
            for v in targets:
                cur = c.execute(sql, {"now": now, "tenant": tenant, "app": app, "key": key,
                                      "version": v})
                if cur.rowcount:
                    changed.append(v)
                    self._log(c, tenant, app, key, v, op)
            if changed:
                self._audit(op, tenant=tenant, app=app, key=key, versions=changed)
        self._cache.pop((tenant, app, key), None)
        if changed:
            self._token.bump()
        return changed

    def delete(self, tenant: str, app: str, key: str, versions: Iterable[int] | None = None
               ) -> list[int]:
        """Soft-delete versions (default: the latest); return those that changed.

        Raises:
            NotFoundError: the key does not exist.
        """
        return self._mark(tenant, app, key, versions, "delete",
                          "UPDATE versions SET deleted_at = :now WHERE tenant = :tenant AND "
                          "app = :app AND key = :key AND version = :version AND "
                          "deleted_at IS NULL AND destroyed = 0")

    def undelete(self, tenant: str, app: str, key: str, versions: Iterable[int] | None = None
                 ) -> list[int]:
        """Undo soft deletes (default: the latest version); destroyed versions stay gone."""
        return self._mark(tenant, app, key, versions, "undelete",
                          "UPDATE versions SET deleted_at = NULL WHERE tenant = :tenant AND "
                          "app = :app AND key = :key AND version = :version AND "
                          "deleted_at IS NOT NULL AND destroyed = 0")

    def destroy(self, tenant: str, app: str, key: str, versions: Iterable[int]) -> list[int]:
        """Erase versions' ciphertext for good; their records stay, marked destroyed."""
        return self._mark(tenant, app, key, list(versions), "destroy",
                          "UPDATE versions SET sealed = NULL, data_key = NULL, destroyed = 1 "
                          "WHERE tenant = :tenant AND app = :app AND key = :key AND "
                          "version = :version AND destroyed = 0")

    def destroy_values(self, tenant: str, app: str, key: str, values: Iterable[str]
                       ) -> list[int]:
        """Destroy every kept version (live or deleted) whose value is one of ``values``.

        For a source whose versions are not the store's (Vault): destroying
        a value there must not leave its ciphertext here.
        """
        _check(tenant, app, key)
        wanted = set(values)
        if not wanted:
            return []
        with self._db.read() as c:
            rows = c.execute(
                "SELECT version, data_key, sealed FROM versions WHERE tenant = ? AND app = ? "
                "AND key = ? AND sealed IS NOT NULL", (tenant, app, key)).fetchall()
            hits = [v for v, dk_id, sealed in rows
                    if self._open(c, tenant, app, key, v, dk_id, sealed) in wanted]
        return self.destroy(tenant, app, key, hits) if hits else []

    def purge(self, tenant: str, app: str, key: str) -> None:
        """Remove a key with every version and its metadata (Vault's metadata delete)."""
        _check(tenant, app, key)
        with self._write() as c:
            current = self._current(c, tenant, app, key)
            c.execute("DELETE FROM versions WHERE tenant = ? AND app = ? AND key = ?",
                      (tenant, app, key))
            c.execute("DELETE FROM secrets WHERE tenant = ? AND app = ? AND key = ?",
                      (tenant, app, key))
            self._log(c, tenant, app, key, current, "purge")
            self._audit("purge", tenant=tenant, app=app, key=key)
        self._cache.pop((tenant, app, key), None)
        self._token.bump()

    def rollback(self, tenant: str, app: str, key: str, version: int) -> int:
        """Write the value of ``version`` as a new version; return the new number.

        Raises:
            NotFoundError: no such version, or it is deleted or destroyed.
        """
        _check(tenant, app, key)
        with self._db.lock:  # held until the value is cached (see _load_latest)
            with self._write() as c:
                self._current(c, tenant, app, key)
                row = c.execute(
                    "SELECT data_key, sealed, deleted_at, destroyed FROM versions WHERE "
                    "tenant = ? AND app = ? AND key = ? AND version = ?",
                    (tenant, app, key, version)).fetchone()
                if row is None:
                    raise NotFoundError(f"{_where(tenant, app, key)} has no version {version}")
                if row[3] or row[1] is None:
                    raise NotFoundError(
                        f"{_where(tenant, app, key)} version {version} is destroyed")
                if row[2] is not None:
                    raise NotFoundError(
                        f"{_where(tenant, app, key)} version {version} is deleted",
                        hint="undelete it first")
                value = self._open(c, tenant, app, key, version, row[0], row[1])
                origin = c.execute("SELECT origin FROM secrets WHERE tenant = ? AND app = ? "
                                   "AND key = ?", (tenant, app, key)).fetchone()[0]
                new = self._put_in(c, tenant, app, key, value.encode("utf-8"), cas=None,
                                   origin=origin)
                self._audit("rollback", tenant=tenant, app=app, key=key, version=new,
                            from_version=version, value_hmac=self._value_hmac(value))
            self._cache[(tenant, app, key)] = value
            self._versions[(tenant, app, key)] = new
        self._token.bump()
        return new

    def apply(self, tenant: str, app: str, values: dict[str, str], *, origin: str,
              commit: str | None = None) -> tuple[list[str], list[str], list[str], int]:
        """Make the store match ``values`` for the keys of ``origin`` in one transaction.

        A new version only where a value differs from the latest live one;
        keys of this origin missing from ``values`` are soft-deleted. Returns
        (added, changed, deleted, unchanged count). Used by ``sync``; new
        versions carry ``commit`` (see :attr:`VersionInfo.commit`).
        """
        self.check_values(tenant, app, values)
        with self._write() as c:
            result = self._apply_in(c, tenant, app, values, origin=origin, commit=commit)
        self._after_apply(tenant, [(app, result)])
        return result

    def check_values(self, tenant: str, app: str, values: Mapping[str, str]) -> None:
        """Raise unless :meth:`apply` would accept these names and values.

        ``apply`` checks them itself; a caller with several apps checks each
        first, to name the file a bad value came from.

        Raises:
            InvalidNameError: a tenant, app or key name is not valid.
            FormatError, LimitError: a value is not text, or too large.
        """
        check_name("tenant", tenant)
        check_name("app", app)
        for key, value in values.items():
            check_name("key", key)
            self._encode(tenant, app, key, value)

    def _apply_in(self, c: sqlite3.Connection, tenant: str, app: str,
                  values: Mapping[str, str], *, origin: str, commit: str | None
                  ) -> tuple[list[str], list[str], list[str], int]:
        added: list[str] = []
        changed: list[str] = []
        deleted: list[str] = []
        unchanged = 0
        rows = c.execute(
            "SELECT s.key, s.origin, v.version, v.data_key, v.sealed, v.deleted_at FROM "
            "secrets s JOIN versions v ON v.tenant = s.tenant AND v.app = s.app AND "
            "v.key = s.key AND v.version = s.current WHERE s.tenant = ? AND s.app = ?",
            (tenant, app)).fetchall()
        live: dict[str, str | None] = {}
        origins: dict[str, str] = {}
        for key, key_origin, version, dk_id, sealed, deleted_at in rows:
            origins[key] = key_origin
            if sealed is None or deleted_at is not None:
                live[key] = None
            else:
                live[key] = self._open(c, tenant, app, key, version, dk_id, sealed)
        for key, value in values.items():
            old = live.get(key)
            if old == value:
                if origins.get(key) != origin:
                    c.execute("UPDATE secrets SET origin = ? WHERE tenant = ? AND app = ? "
                              "AND key = ?", (origin, tenant, app, key))
                unchanged += 1
                continue
            new = self._put_in(c, tenant, app, key, value.encode("utf-8"), cas=None,
                               origin=origin, commit=commit)
            self._audit("put", tenant=tenant, app=app, key=key, version=new, origin=origin,
                        via="sync", commit=commit, value_hmac=self._value_hmac(value))
            (changed if old is not None else added).append(key)
        for key, old in live.items():
            if key not in values and old is not None and origins.get(key) == origin:
                current = self._current(c, tenant, app, key)
                c.execute("UPDATE versions SET deleted_at = ? WHERE tenant = ? AND app = ? "
                          "AND key = ? AND version = ?", (time.time(), tenant, app, key,
                                                          current))
                self._log(c, tenant, app, key, current, "delete")
                self._audit("delete", tenant=tenant, app=app, key=key, versions=[current],
                            origin=origin, via="sync", commit=commit)
                deleted.append(key)
        return added, changed, deleted, unchanged

    def _after_apply(self, tenant: str, results: Iterable[
            tuple[str, tuple[list[str], list[str], list[str], int]]]) -> None:
        """After the commit: forget what changed here, then tell other processes."""
        bump = False
        for app, (added, changed, deleted, _unchanged) in results:
            for key in (*added, *changed, *deleted):
                self._cache.pop((tenant, app, key), None)
                bump = True
        if bump:
            self._token.bump()

    def synced_commit(self, tenant: str) -> SyncedCommit | None:
        """The commit ``sync --git`` applied last to ``tenant``, or ``None`` if none yet."""
        check_name("tenant", tenant)
        with self._db.read() as c:
            row = c.execute("SELECT commit_id, repo, path, synced_at FROM synced_commits "
                            "WHERE tenant = ?", (tenant,)).fetchone()
        if row is None:
            return None
        synced = from_timestamp(row[3])
        assert synced is not None  # noqa: S101 - synced_at is NOT NULL
        return SyncedCommit(commit=row[0], repo=row[1], path=row[2], synced=synced)

    def apply_commit(self, tenant: str, apps: Mapping[str, tuple[str, Mapping[str, str]]], *,
                     origins: Collection[str], commit: str, repo: str, path: str,
                     previous: str | None, force: bool = False,
                     ) -> dict[tuple[str, str], tuple[list[str], list[str], list[str], int]]:
        """Make a tenant's file-born keys match one git commit and record it: one transaction.

        ``apps`` maps each app file of the commit to ``(origin, values)``, as
        :meth:`apply` takes them; new versions carry ``commit``. A key of an
        origin in ``origins`` whose app has no file of that origin in ``apps``
        is soft-deleted (its file left the repository). The commit becomes the
        tenant's :meth:`synced_commit`. Either all of it is stored, durably,
        or none of it.

        ``previous`` is the synced commit the caller checked ``commit``
        against (``None``: there was none). Unless ``force``, a different
        record found inside the transaction (another sync won the race)
        changes nothing and raises ``ConflictError``, so the rollback check
        and the write cannot be separated by another writer.

        Returns ``{(app, origin): (added, changed, deleted, unchanged)}`` for
        every app applied, including apps whose file left.

        Raises:
            ConflictError: ``previous`` is no longer the recorded commit.
            LimitError, FormatError, InvalidNameError: a name or value is not
                acceptable (checked before anything is written).
        """
        check_name("tenant", tenant)
        for app, (_origin, values) in apps.items():
            self.check_values(tenant, app, values)
        results: dict[tuple[str, str], tuple[list[str], list[str], list[str], int]] = {}
        with self._write() as c:
            row = c.execute("SELECT commit_id FROM synced_commits WHERE tenant = ?",
                            (tenant,)).fetchone()
            recorded = None if row is None else str(row[0])
            if recorded != previous and not force:
                raise ConflictError(
                    f"another sync recorded commit {recorded[:12] if recorded else 'none'} "
                    f"for tenant {tenant} while this one ran; nothing was changed",
                    hint="run sync again")
            for app, (origin, values) in sorted(apps.items()):
                results[(app, origin)] = self._apply_in(c, tenant, app, values,
                                                        origin=origin, commit=commit)
            present = {(app, origin) for app, (origin, _values) in apps.items()}
            marks = ", ".join("?" * len(origins))
            stored = c.execute(
                f"SELECT DISTINCT app, origin FROM secrets WHERE tenant = ? AND "  # noqa: S608
                f"origin IN ({marks}) ORDER BY app, origin",
                (tenant, *origins)).fetchall() if origins else []
            for app, origin in stored:
                if (app, origin) not in present:
                    results[(app, origin)] = self._apply_in(c, tenant, app, {},
                                                            origin=origin, commit=commit)
            c.execute("INSERT INTO synced_commits (tenant, commit_id, repo, path, synced_at) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET "
                      "commit_id = excluded.commit_id, repo = excluded.repo, "
                      "path = excluded.path, synced_at = excluded.synced_at",
                      (tenant, commit, repo, path, time.time()))
            self._audit("sync-commit", tenant=tenant, commit=commit, previous=recorded,
                        repo=repo, path=path, forced=force or None)
        self._after_apply(tenant, [(app, r) for (app, _origin), r in results.items()])
        return results

    def close(self) -> None:
        """Release the database and the token map; the object is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._cache.clear()
        self._data_keys.clear()
        self._master = b""
        self._token.close()
        self._db.close()


def _check(tenant: str, app: str, key: str) -> None:
    check_name("tenant", tenant)
    check_name("app", app)
    check_name("key", key)


def _info(version: int, created: float, deleted: float | None, destroyed: int, current: int,
          commit: str | None) -> VersionInfo:
    made = from_timestamp(created)
    assert made is not None  # noqa: S101 - created_at is NOT NULL
    return VersionInfo(version=version, created=made, deleted=from_timestamp(deleted),
                       destroyed=bool(destroyed), current=version == current, commit=commit)

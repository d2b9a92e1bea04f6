"""The token store: the server's callers, kept hashed in ``<home>/tokens.db``.

A token is ``mst.`` followed by 32 random bytes in unpadded base64url (47
characters). It is shown once, when it is made, and never stored: the
database keeps its SHA-256 digest (with a purpose prefix), indexed, so
:meth:`TokenStore.lookup` finds a token by its digest. The 256 random bits
make the digest useless to someone who copies the file: there is nothing to
guess, so a slow or keyed hash would add cost and no protection. Each token
also has an *accessor*, a random public name for the audit log, ``token
list`` and ``token revoke``; it cannot be turned back into the token.

The file follows the store's SQLite rules (``localstore/sqlite.py``): WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE`` for writes, created 0600 in a 0700
home. Creation and revocation are audited by accessor inside their
transaction (fail closed: no audit line, no change).

Lookups run on every request, so a process keeps the rows it has read in
memory. It learns of a revocation by another process the way the store
learns of writes (``localstore/_notify.py``): every writer, after it
commits, writes fresh random bytes into ``tokens.db.token``, a file each
process has mapped into memory, and a lookup that sees new bytes drops its
cache (a memory read, no system call). A writer killed between its commit
and that bump would leave others unaware, so a lookup also compares a
counter in the database at most once a ``refresh`` interval (1 s). Expiry
is checked on every lookup.

This module is the token *store*; which capabilities a token gets is
:mod:`.policy`, and what a request may do is :meth:`.auth.Identity.allows`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from .. import _crypto
from ..audit import AuditLog
from ..errors import ConfigError, FormatError, MaculaError, UnavailableError
from ..localstore._notify import ChangeToken
from .auth import CAPABILITIES, Authenticator, Identity, Rule
from .policy import check_glob, describe_rule, dump_rules, parse_rules

__all__ = [
    "REFRESH_SECONDS",
    "TOKENS_FILE",
    "TOKEN_PREFIX",
    "TokenInfo",
    "TokenStore",
    "is_accessor",
    "parse_ttl",
]

TOKEN_PREFIX: Final = "mst."  # noqa: S105 - a prefix, not a token
"""Marks a macula-secrets token, so secret scanners and people can tell one apart."""
TOKEN_BYTES: Final = 32
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + 43  # 32 bytes in unpadded base64url
ACCESSOR_BYTES: Final = 12
TOKENS_FILE: Final = "tokens.db"
REFRESH_SECONDS: Final = 1.0
"""How stale this process's view of revocations by other processes may be."""
SCHEMA_VERSION: Final = 2
BUSY_TIMEOUT_MS: Final = 60_000
MAX_TTL_SECONDS: Final = 100 * 365 * 86400
MAX_NAME_LENGTH: Final = 200

# Domain separation: the digest of a token is never the digest of anything
# else this package hashes.
_DIGEST_PREFIX: Final = b"macula-secrets token v1\n"
_TOKEN_RE: Final = re.compile(r"mst\.[A-Za-z0-9_-]{43}")
_ACCESSOR_RE: Final = re.compile(rf"[0-9a-f]{{{2 * ACCESSOR_BYTES}}}")
_TTL_RE: Final = re.compile(r"([0-9]{1,12})([smhd]?)")
_TTL_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CACHE_SIZE: Final = 10_000
_CONTROL: Final = frozenset(chr(c) for c in (*range(0x20), 0x7F))

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    accessor TEXT PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    policy TEXT,
    rules TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peers (
    uid INTEGER PRIMARY KEY,
    accessor TEXT NOT NULL REFERENCES tokens (accessor)
);
"""

_BY_DIGEST: Final = ("SELECT digest, accessor, display_name, policy, rules, created_at, "
                     "expires_at, revoked_at FROM tokens WHERE digest = ?")
_BY_ACCESSOR: Final = ("SELECT accessor, display_name, policy, rules, created_at, expires_at, "
                       "revoked_at FROM tokens WHERE accessor = ?")
_ALL: Final = ("SELECT accessor, display_name, policy, rules, created_at, expires_at, "
               "revoked_at FROM tokens ORDER BY created_at, accessor")


def parse_ttl(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``7d`` -> seconds.

    Raises:
        ConfigError: not one of those forms, zero, or over 100 years.
    """
    match = _TTL_RE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"not a duration: {text!r}", hint="say 90s, 30m, 1h or 7d")
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError("a token's time to live must be more than 0")
    if seconds > MAX_TTL_SECONDS:
        raise ConfigError(f"a time to live of {text} is over 100 years",
                          hint="leave out --ttl for a token that does not expire")
    return float(seconds)


def is_accessor(text: str) -> bool:
    """Whether ``text`` has the form of an accessor (24 lower-case hex digits)."""
    return _ACCESSOR_RE.fullmatch(text) is not None


def _digest(token: str) -> bytes:
    return hashlib.sha256(_DIGEST_PREFIX + token.encode("ascii")).digest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the store knows about a token: everything but the token itself."""

    accessor: str
    display_name: str
    rules: tuple[Rule, ...]
    created_at: float
    expires_at: float | None = None
    """Unix time from which the token is refused (``None``: never)."""
    revoked_at: float | None = None
    policy: str | None = None
    """The named policy the rules came from (``None``: rules given directly)."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_identity(self) -> Identity:
        """A fresh :class:`Identity` (its ``meta`` is the caller's to change)."""
        meta = {} if self.policy is None else {"policy": self.policy}
        return Identity(accessor=self.accessor, display_name=self.display_name,
                        rules=self.rules, expires_at=self.expires_at, meta=meta)


class TokenStore:
    """Tokens in one SQLite file; thread-safe, and safe for several processes.

    ``clock`` gives Unix time (for ``created_at``, expiry and the refresh
    interval); tests pass a fake one instead of sleeping. ``refresh`` is how
    long this process trusts its cache before checking for changes made by
    other processes (0: check on every lookup).
    """

    def __init__(self, path: str, *, audit: AuditLog | None = None,
                 clock: Callable[[], float] = time.time,
                 refresh: float = REFRESH_SECONDS) -> None:
        self.path = path
        self.audit = audit
        self._clock = clock
        self._refresh = refresh
        self._lock = threading.RLock()
        self._cache: dict[bytes, TokenInfo] = {}
        self._epoch = 0
        self._generation: int | None = None
        self._checked_at: float | None = None
        self._pid = os.getpid()
        self._orphans: list[sqlite3.Connection] = []
        self._conn = self._connect()
        try:
            self._changes = ChangeToken(path + ".token")
        except OSError as exc:
            self._conn.close()
            raise UnavailableError(f"cannot open {path}.token: {exc.strerror}") from None
        self._seen = self._changes.read()

    @classmethod
    def from_home(cls, home: str, *, audit: AuditLog | None = None,
                  clock: Callable[[], float] = time.time,
                  refresh: float = REFRESH_SECONDS) -> TokenStore:
        """The store at ``<home>/tokens.db``; a missing home is created with mode 0700."""
        os.makedirs(home, mode=0o700, exist_ok=True)
        return cls(os.path.join(home, TOKENS_FILE), audit=audit, clock=clock, refresh=refresh)

    def __repr__(self) -> str:
        return f"TokenStore({self.path!r})"

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._changes.close()

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            # Created here so the file is 0600 from its first byte; SQLite gives
            # -wal and -shm the database's mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path,
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot open the token store {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            self._ensure_schema(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise FormatError(f"{self.path} is not a macula-secrets token store ({exc})"
                              ) from None
        return conn

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # a new file: no tables yet
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is not None and int(row[0]) == SCHEMA_VERSION:
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                conn.execute("INSERT INTO meta VALUES ('generation', 0)")
            elif int(row[0]) == 1:  # version 1 had no peers table: the loop above made it
                conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'",
                             (SCHEMA_VERSION,))
            elif int(row[0]) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {row[0]}, this version of macula-secrets reads "
                    f"{SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _check_fork(self) -> None:
        """A forked child (gunicorn --preload) opens its own connection and cache.

        SQLite forbids using a connection across fork(); the inherited one is
        left alone (closing it could disturb the parent's locks).
        """
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._orphans.append(self._conn)
            self._lock = threading.RLock()
            self._cache = {}
            self._generation = None
            self._checked_at = None
            self._conn = self._connect()

    @contextlib.contextmanager
    def _write(self, op: str, fields: dict[str, object]) -> Iterator[sqlite3.Connection]:
        """A write transaction that records ``op`` in the audit log just before it commits.

        A line that cannot be written rolls the change back (fail closed); a
        commit that fails after the line was written is followed by an
        ``abort`` line, as the store does.
        """
        self._check_fork()
        with self._lock, self._errors("write"):
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            recorded = False
            try:
                yield c
                c.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")
                if self.audit is not None:
                    self.audit.record(op, fields)
                    recorded = True
                c.execute("COMMIT")
                self._changes.bump()
            except BaseException as exc:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                if recorded and self.audit is not None:
                    with contextlib.suppress(MaculaError):
                        self.audit.record("abort", {"reason": "the change above failed after "
                                                    "it was recorded: " + type(exc).__name__},
                                          result="error")
                raise
            finally:
                # This process's own change is visible to its next lookup at once.
                self._drop_cache()
                self._generation = None

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn SQLite's errors (locked past the busy timeout, disk full, I/O) into
        ``UnavailableError``, in this one place."""
        try:
            yield
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot {doing} the token store {self.path}: {exc}"
                                   ) from None

    # -- operations ----------------------------------------------------------------------

    def create(self, rules: Sequence[Rule], *, display_name: str, ttl: float | None = None,
               policy: str | None = None, uid: int | None = None) -> tuple[str, TokenInfo]:
        """Make a token with ``rules``; return it (show it once) and its record.

        ``ttl`` is seconds until it expires (``None``: never); ``policy`` names
        the policy the rules came from, for ``token list``. ``uid`` also binds
        the token to a Unix user: a peer of the server's Unix socket running as
        that uid gets the token's identity without sending it (a uid has one
        binding; a new one replaces the old). Revoking the token ends both.

        Raises:
            ConfigError: no rules, a rule without capabilities or with an
                unknown one, a bad glob, a bad ``ttl`` or display name.
            UnavailableError: the audit log cannot be written (no token made).
        """
        rules = tuple(rules)
        if not rules:
            raise ConfigError("a token needs at least one rule")
        for rule in rules:
            if not rule.capabilities:
                raise ConfigError("a token rule grants no capability")
            unknown = rule.capabilities - CAPABILITIES
            if unknown:
                raise ConfigError(f"unknown capability {sorted(unknown)[0]!r}",
                                  hint="known: " + ", ".join(sorted(CAPABILITIES)))
            check_glob("tenant", rule.tenant)
            check_glob("app", rule.app)
            check_glob("key", rule.key)
        if ttl is not None and not 0 < ttl <= MAX_TTL_SECONDS:
            raise ConfigError("a token's time to live must be more than 0 and at most "
                              "100 years")
        _check_display_name(display_name)
        if uid is not None and not 0 <= uid < 2**32:
            raise ConfigError(f"uid {uid} is not a Unix user id")
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(_crypto.random_key()).rstrip(
            b"=").decode("ascii")
        accessor = _crypto.random_key()[:ACCESSOR_BYTES].hex()
        now = self._clock()
        info = TokenInfo(accessor=accessor, display_name=display_name, rules=rules,
                         created_at=now, expires_at=None if ttl is None else now + ttl,
                         policy=policy)
        tenants = {r.tenant for r in rules}
        fields: dict[str, object] = {
            "tenant": tenants.pop() if len(tenants) == 1 else None,
            "accessor": accessor,
            "name": display_name,
            "policy": policy,
            "rules": [describe_rule(r) for r in rules],
            "expires_at": None if info.expires_at is None else _iso(info.expires_at),
        }
        if uid is not None:
            fields["uid"] = uid
        with self._write("token-create", fields) as c:
            c.execute("INSERT INTO tokens (digest, accessor, display_name, policy, rules, "
                      "created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (_digest(token), accessor, display_name, policy, dump_rules(rules),
                       info.created_at, info.expires_at, None))
            if uid is not None:
                c.execute("INSERT OR REPLACE INTO peers (uid, accessor) VALUES (?, ?)",
                          (uid, accessor))
        return token, info

    def lookup_uid(self, uid: int) -> Identity | None:
        """The identity bound to a Unix uid (``token create --uid``), if its token is
        still valid; ``None`` otherwise. One indexed read per call."""
        self._check_fork()
        with self._lock, self._errors("read"):
            row = self._conn.execute(
                "SELECT t.accessor, t.display_name, t.policy, t.rules, t.created_at, "
                "t.expires_at, t.revoked_at FROM peers p JOIN tokens t "
                "ON t.accessor = p.accessor WHERE p.uid = ?", (uid,)).fetchone()
        if row is None:
            return None
        try:
            info = _info(row)
        except FormatError:
            return None  # fail closed
        if info.revoked or info.is_expired(self._clock()):
            return None
        return info.to_identity()

    def uids(self) -> dict[str, list[int]]:
        """``accessor -> uids`` bound to it (for ``token list``)."""
        self._check_fork()
        with self._lock, self._errors("read"):
            rows = self._conn.execute("SELECT accessor, uid FROM peers ORDER BY uid").fetchall()
        bound: dict[str, list[int]] = {}
        for accessor, uid in rows:
            bound.setdefault(str(accessor), []).append(int(uid))
        return bound

    def lookup(self, token: str) -> Identity | None:
        """The identity of ``token``; ``None`` when it is malformed, unknown, revoked or
        expired. Thread-safe; costs a dictionary look-up when the token was seen
        within the refresh interval."""
        if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
            return None
        digest = _digest(token)
        self._check_fork()
        now = self._clock()
        mark = self._changes.read()  # before any row is read: a later bump is seen next time
        if mark != self._seen:
            with self._lock:
                self._drop_cache()
                self._seen = mark
        checked = self._checked_at
        if checked is None or not 0 <= now - checked < self._refresh:
            with self._lock:
                try:
                    self._revalidate(now)
                except sqlite3.Error as exc:
                    raise UnavailableError(f"cannot read the token store {self.path}: {exc}"
                                           ) from None
        # Reading the dict needs no lock (one atomic operation). Filling it does, and
        # only when nothing dropped the cache since the checks above: a row read just
        # before a revocation must not be cached after the cache was dropped for it.
        epoch = self._epoch
        info = self._cache.get(digest)
        if info is None:
            with self._lock:
                try:
                    info = self._load(digest)
                except sqlite3.Error as exc:
                    raise UnavailableError(f"cannot read the token store {self.path}: {exc}"
                                           ) from None
                if info is None:
                    return None  # unknown digests are not cached: callers choose them
                if len(self._cache) >= _CACHE_SIZE:
                    self._drop_cache()
                elif self._epoch == epoch:
                    self._cache[digest] = info
        if info.revoked or info.is_expired(now):
            return None
        return info.to_identity()

    def _drop_cache(self) -> None:
        """Forget every cached row (with the lock held)."""
        self._cache.clear()
        self._epoch += 1

    def _revalidate(self, now: float) -> None:
        """Drop the cache when another process created or revoked a token.

        The change token tells at once; this check covers a writer killed
        between its commit and its bump. Checked at most once per ``refresh``,
        and at once when the clock went backwards (else a clock step back would
        freeze the cache).
        """
        checked = self._checked_at
        if checked is not None and 0 <= now - checked < self._refresh:
            return
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        generation = None if row is None else int(row[0])
        if generation != self._generation:
            self._drop_cache()
            self._generation = generation
        self._checked_at = now

    def _load(self, digest: bytes) -> TokenInfo | None:
        row = self._conn.execute(_BY_DIGEST,
                                 (digest,)).fetchone()
        # The index found the row by the digest; compare again in constant time so
        # that nothing about a near miss depends on how SQLite compares blobs.
        if row is None or not _crypto.constant_time_equal(bytes(row[0]), digest):
            return None
        try:
            return _info(row[1:])
        except FormatError:
            return None  # a row this version cannot read grants nothing (fail closed)

    def get(self, accessor: str) -> TokenInfo | None:
        """The record of the token with this accessor, or ``None``."""
        self._check_fork()
        with self._lock, self._errors("read"):
            row = self._conn.execute(_BY_ACCESSOR,
                                     (accessor,)).fetchone()
        return None if row is None else _info(row)

    def list(self) -> list[TokenInfo]:
        """Every token's record (revoked and expired ones too), oldest first.

        Raises:
            FormatError: a row's rules cannot be read (named by accessor).
        """
        self._check_fork()
        with self._lock, self._errors("read"):
            rows = self._conn.execute(
                _ALL).fetchall()
        return [_info(row) for row in rows]

    def revoke(self, accessor: str) -> bool:
        """Revoke the token with this accessor; ``False`` when there is no such token or
        it was already revoked. Other processes refuse it from their next lookup.

        Raises:
            UnavailableError: the audit log cannot be written (nothing revoked).
        """
        if not is_accessor(accessor):
            return False
        try:
            with self._write("token-revoke", {"accessor": accessor}) as c:
                changed = c.execute("UPDATE tokens SET revoked_at = ? "
                                    "WHERE accessor = ? AND revoked_at IS NULL",
                                    (self._clock(), accessor)).rowcount
                if not changed:
                    raise _NothingToRevokeError
        except _NothingToRevokeError:
            return False
        return True


class _NothingToRevokeError(Exception):
    """Rolls back (and so writes no audit line for) a revoke that changed nothing."""


def _info(row: Sequence[object]) -> TokenInfo:
    accessor, name, policy, rules, created, expires, revoked = row
    try:
        parsed = parse_rules(str(rules))
    except FormatError as exc:
        raise FormatError(f"token {accessor}: {exc}") from None
    return TokenInfo(accessor=str(accessor), display_name=str(name), rules=parsed,
                     created_at=float(created),  # type: ignore[arg-type]
                     expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
                     revoked_at=None if revoked is None else float(revoked),  # type: ignore[arg-type]
                     policy=None if policy is None else str(policy))


def _check_display_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("a token's display name is empty")
    if any(ch in _CONTROL for ch in name):
        raise ConfigError("a token's display name contains a control character")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"a token's display name is over {MAX_NAME_LENGTH} characters")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_: Callable[..., Authenticator] = TokenStore  # static conformance check, as age's `var _`

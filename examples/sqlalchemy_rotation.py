"""Recipe: a SQLAlchemy engine whose database password can rotate without a restart.

    from macula_secrets import Secrets
    from sqlalchemy_rotation import create_rotating_engine   # this file, copied into your app

    secrets = Secrets.open()
    db_password = secrets.ref("console", "db_password")
    engine = create_rotating_engine(
        "postgresql+psycopg://app@db.internal:5432/console",   # no password in the URL
        db_password,
        pool_pre_ping=True,
    )
    ...
    db_password.close()       # on shutdown: no more change callbacks, then the pool
    engine.dispose()

What rotates is the password: host, user and database name stay in the URL,
which is how managed databases and ``ALTER ROLE ... PASSWORD`` rotate. Each
physical connection is stamped with the "generation" of the password it was
opened with; four small hooks, all public SQLAlchemy API, do the rest:

1. ``do_connect``: every new physical connection reads the password from the
   :class:`~macula_secrets.SecretRef` at that moment, so it is never older
   than the store.
2. ``ref.on_change``: when a new version lands (a ``macula-secrets put`` from
   another process, a sync, the folder watcher), the generation moves on.
3. ``checkout``: a pooled connection from an older generation is never handed
   out again: raising ``DisconnectionError`` makes the pool close it and open
   a fresh one, with the new password, in its place.
4. ``checkin``: a connection that was in use during the change finished its
   work on its old session (PostgreSQL keeps an authenticated session valid
   after ``ALTER ROLE ... PASSWORD``) and is closed when it is returned.

Why not ``engine.dispose()`` in ``on_change``: it swaps in a new pool, and a
connection being opened at that moment (a checkout already inside the old
pool, such as one waiting out the gap below) is returned to the abandoned
pool and stays open until garbage collection. Retiring connections at
checkout is how SQLAlchemy's own ``pool_recycle`` and disconnect handling
work: an idle connection from before the change stays open, unused, until the
pool next reaches it, and is replaced then.

A connect refused after the password was sent waits up to ``auth_retry_wait``
seconds for the secret to change, then retries once with the new value: that
covers operators changing the database first and the secret a moment later
(docs/recipes/sqlalchemy.md has the rotation order and the limits).

This is an example, not part of the ``macula_secrets`` package: it needs
``sqlalchemy`` and a driver (here ``psycopg``), which macula-secrets does not
depend on. tests/interop/test_sqlalchemy_rotation.py runs it against a real
PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from macula_secrets import SecretRef

__all__ = ["create_rotating_engine"]

_log = logging.getLogger(__name__)

_GENERATION = "macula_password_generation"
"""Key in ``ConnectionPoolEntry.info`` (per DBAPI connection): the rotation it was made in."""


class _Rotation:
    """How many times the password changed, and a way to wait for the next change.

    The count is the "generation": each physical connection is stamped with
    the generation current when it read the password, so a connection from
    before a change can be told apart from one made after it.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.generation = 0

    def bump(self) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def wait_past(self, generation: int, timeout: float) -> bool:
        """Wait until the generation moves past ``generation``; whether it did in time."""
        with self._changed:
            return self._changed.wait_for(lambda: self.generation != generation, timeout)


def _refused_after_password(exc: Exception) -> bool:
    """Whether a failed connect got as far as sending the password.

    libpq reports no SQLSTATE for a refused connection, and the message text
    follows the server's language, so psycopg's documented ``Error.pgconn``
    (the failed connection) is what we look at: ``used_password`` is true when
    the server asked for the password and then closed the connection. That is
    a wrong password, or (rarely) a refusal after authentication, such as a
    database that does not exist; for those the retry below finds the secret
    unchanged and the original error is raised, ``auth_retry_wait`` later.
    """
    pgconn = getattr(exc, "pgconn", None)
    return bool(pgconn is not None and pgconn.used_password)


def create_rotating_engine(url: str | URL, password: SecretRef, *,
                           auth_retry_wait: float = 5.0, **engine_options: Any) -> Engine:
    """Create an engine whose connections take their password from ``password`` at connect time.

    ``url`` names the driver, host, user and database, and no password.
    ``engine_options`` go to :func:`sqlalchemy.create_engine` (``pool_size``,
    ``pool_pre_ping``, ...). Any DBAPI driver whose ``connect()`` takes
    ``password=`` works (psycopg, psycopg2, pg8000, mysqlclient); only the
    retry after a refused password is psycopg's, and other drivers skip it.

    The engine subscribes to changes of ``password``: keep the ``Secrets`` it
    came from open while the engine is used, and on shutdown call
    ``password.close()`` (ends the subscription), then ``engine.dispose()``.

    Raises (from a connect, wrapped by SQLAlchemy as usual):
        NotFoundError: the secret was deleted, so there is no password to use.
        sqlalchemy.exc.OperationalError: the database refused the connection
            and the secret did not change within ``auth_retry_wait`` seconds,
            or the retry with the new value was refused too.
    """
    engine = create_engine(url, **engine_options)
    rotation = _Rotation()

    @event.listens_for(engine, "do_connect")
    def connect_with_current_password(dialect: Dialect, conn_rec: ConnectionPoolEntry,
                                      cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        # Read the generation before the password: if a change lands in between,
        # the connection is stamped as older than it is and retired once too
        # often, which is harmless; the other order could keep a stale one.
        generation = rotation.generation
        tried = cparams["password"] = password.require()
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not _refused_after_password(exc):
                raise
            # The database and the secret may disagree for a moment during a
            # rotation. Wait (bounded) for the secret to change, then try once more;
            # the exception and the log name the secret, never its value.
            started = time.monotonic()
            rotation.wait_past(generation, auth_retry_wait)
            generation = rotation.generation
            cparams["password"] = password.require()
            if cparams["password"] == tried:
                raise
            _log.warning("connecting as %s was refused; retrying with the new version of %r "
                         "(after %.1f s)", cparams.get("user", "?"), password,
                         time.monotonic() - started)
            connection = dialect.connect(*cargs, **cparams)
        conn_rec.info[_GENERATION] = generation
        # Returning the connection tells SQLAlchemy not to connect again itself.
        return connection

    @event.listens_for(engine, "checkout")
    def replace_if_older_than_rotation(dbapi_connection: Any,
                                       connection_record: ConnectionPoolEntry,
                                       connection_proxy: PoolProxiedConnection) -> None:
        # The documented way for a checkout hook to refuse a pooled connection: the
        # pool closes it and connects again (through do_connect, so with the new
        # password) before anyone sees it. The message names the secret, not a value.
        if connection_record.info.get(_GENERATION) != rotation.generation:
            raise DisconnectionError(f"opened before {password!r} changed")

    @event.listens_for(engine, "checkin")
    def close_if_older_than_rotation(dbapi_connection: Any,
                                     connection_record: ConnectionPoolEntry) -> None:
        # A connection that was in use during the change comes back here: close it
        # now instead of keeping an idle session the checkout hook would refuse.
        if (dbapi_connection is not None
                and connection_record.info.get(_GENERATION) != rotation.generation):
            connection_record.invalidate()

    def rotated(ref: SecretRef, version: int) -> None:
        # Runs on the store's change-feed thread, after the new value is readable:
        # from now on the hooks above treat every older connection as stale, and a
        # connect waiting for the secret (the retry above) wakes up.
        rotation.bump()
        _log.info("%r changed (version %d): pooled database connections opened before "
                  "are replaced at their next checkout or closed when returned", ref, version)

    password.on_change(rotated)
    return engine

"""Example: a worker loop whose database URL comes from macula-secrets and may rotate.

    MACULA_SECRETS_HOME=... python examples/sqlalchemy_worker/worker.py --interval 5

Each tick reads ``jobs/database_url`` through a live handle
(:func:`macula_secrets.config.secret_ref`), runs one job against that
database and prints one JSON line: the tick, the database with its password
hidden (SQLAlchemy's ``render_as_string(hide_password=True)``) and the
job's result. The URL is never printed or logged as is.

Rotation needs no restart: when the URL read at the start of a tick differs
from the one the engine was made with (a ``macula-secrets put``, a sync, the
folder watcher), the worker disposes of the old engine and makes a new one
before the job. The worker runs one job at a time, so no connection is in
use while the engine is replaced. A multi-threaded program whose password
alone rotates wants examples/sqlalchemy_rotation.py instead, which retires
pooled connections without replacing the pool.

SIGTERM or Ctrl-C ends the loop after the current tick, with status 0.
This is an example, not part of the ``macula_secrets`` package; the tests in
tests/examples/ run it against the embedded store and a SOPS folder.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from macula_secrets import SecretRef
from macula_secrets.config import secret_ref

APP = "jobs"
"""The macula-secrets app this worker reads its secrets from."""


class Worker:
    """Runs one job per tick against the database the URL secret names at that moment."""

    def __init__(self, database_url: SecretRef) -> None:
        self._url = database_url
        self._current: tuple[str, Engine] | None = None

    def engine(self) -> Engine:
        """The engine for the current URL; a new one (the old one disposed) if it changed."""
        url = self._url.require()
        if self._current is None or self._current[0] != url:
            if self._current is not None:
                self._current[1].dispose()
            self._current = (url, create_engine(url, pool_pre_ping=True))
        return self._current[1]

    def tick(self, number: int) -> dict[str, object]:
        """Run one job; what it did, with the database named but its password hidden."""
        engine = self.engine()
        with engine.connect() as conn:
            site = conn.execute(text("SELECT value FROM meta WHERE name = 'site'")).scalar_one()
        return {"tick": number, "database": engine.url.render_as_string(hide_password=True),
                "site": str(site)}

    def close(self) -> None:
        if self._current is not None:
            self._current[1].dispose()
            self._current = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between ticks")
    parser.add_argument("--ticks", type=int, default=0, help="stop after N ticks (0: never)")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # The handle reads through the shared Secrets of this process, configured
    # from the environment (MACULA_SECRETS_HOME, MACULA_SECRETS_DIR, ...).
    worker = Worker(secret_ref(APP, "database_url"))
    try:
        number = 0
        while not stop.is_set():
            number += 1
            try:
                print(json.dumps(worker.tick(number)), flush=True)
            except (SQLAlchemyError, LookupError) as exc:
                # A database that is down, or a secret that was deleted: report it by
                # type (SQLAlchemy's messages can quote the statement, never the
                # password) and try again next tick.
                print(json.dumps({"tick": number, "error": type(exc).__name__}),
                      file=sys.stderr, flush=True)
            if number == args.ticks:
                break
            stop.wait(args.interval)
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

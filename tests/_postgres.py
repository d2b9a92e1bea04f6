"""Start and stop a throwaway PostgreSQL cluster on 127.0.0.1, for tests.

    from tests._postgres import start_postgres

    with start_postgres() as pg:             # a fresh cluster in its own temporary folder
        pg.admin("CREATE ROLE app LOGIN PASSWORD 'p1'")
        url = pg.url("app")                  # postgresql+psycopg://app@127.0.0.1:P/postgres

Each cluster is made by ``initdb`` in a private temporary folder and listens
on a free port of 127.0.0.1 and on a unix socket inside that folder. TCP
connections (what the code under test uses) need a scram-sha-256 password;
the superuser ``postgres`` gets in without one, over the socket only, which
is how :meth:`Postgres.admin` runs SQL. Durability is switched off
(``fsync=off``): a test never survives a crash of its cluster anyway. The
server is stopped with ``pg_ctl stop -m immediate`` and the folder removed
when the ``with`` block ends.

PostgreSQL refuses to run as root, so when the tests run as root (CI, the
dev container) every PostgreSQL program runs as the ``postgres`` OS user
through ``runuser``, and the folder is handed to that user. The programs
come from Debian's ``postgresql`` package (/usr/lib/postgresql/<major>/bin;
scripts/test apt-installs it). Like swtpm and OpenBao, a missing PostgreSQL
fails the tests rather than skipping them: :func:`need_binaries`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg.sql import Composable

HOST = "127.0.0.1"
OS_USER = "postgres"
"""The OS account the server runs as when the tests run as root."""
PROGRAMS = ("initdb", "pg_ctl", "postgres")

_HBA = """\
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
host    all       all       127.0.0.1/32   scram-sha-256
"""
"""Passwords for every TCP login; the superuser alone may use the socket without one."""


class PostgresError(RuntimeError):
    """PostgreSQL is not installed, or the cluster did not start."""


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin that has every program we run."""
    found = []
    for folder in glob.glob("/usr/lib/postgresql/*/bin"):
        major = Path(folder).parent.name
        if major.isdigit() and all((Path(folder) / p).is_file() for p in PROGRAMS):
            found.append((int(major), Path(folder)))
    return max(found)[1] if found else None


def missing() -> str | None:
    """Why no cluster can be started here, or ``None`` when one can."""
    if bin_dir() is None:
        return "PostgreSQL (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"the {OS_USER} OS user (made by Debian's postgresql package)"
        if shutil.which("runuser") is None:
            return "runuser (util-linux)"
    return None


def need_binaries() -> None:
    """Fail the calling test (not skip it) when PostgreSQL is missing."""
    import pytest

    reason = missing()
    if reason is not None:
        pytest.fail(f"not installed: {reason}; run scripts/test, which apt-installs "
                    "postgresql")


@dataclass
class Postgres:
    """A running cluster: where it listens, its data folder and the superuser's name."""

    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    superuser: str = OS_USER
    database: str = "postgres"

    def url(self, user: str, database: str | None = None) -> str:
        """A SQLAlchemy URL for ``user`` over TCP, without a password."""
        return (f"postgresql+psycopg://{user}@{self.host}:{self.port}/"
                f"{database or self.database}")

    def connect_superuser(self) -> Any:
        """A psycopg connection (autocommit) as the superuser, over the unix socket."""
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), port=self.port,
                               user=self.superuser, dbname=self.database, autocommit=True)

    def admin(self, query: str | Composable, params: tuple[object, ...] | None = None
              ) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; the rows it returned (``[]`` if none).

        Utility statements such as ``ALTER ROLE ... PASSWORD`` take no bind
        parameters: compose them with ``psycopg.sql.Literal`` instead.
        """
        with self.connect_superuser() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall()) if cur.description is not None else []

    def log_text(self) -> str:
        """The server log so far (startup and connection errors)."""
        path = self.data_dir.parent / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as the postgres OS user when we are root."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", OS_USER, "--", *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _check(result: subprocess.CompletedProcess[str], what: str, log: str = "") -> None:
    if result.returncode != 0:
        raise PostgresError(f"{what} failed with status {result.returncode}:\n"
                            f"{result.stdout}{result.stderr}{log}"[-4000:])


@contextlib.contextmanager
def start_postgres(timeout: float = 30.0) -> Iterator[Postgres]:
    """Run a fresh cluster until the ``with`` block ends; yields a :class:`Postgres`."""
    reason = missing()
    if reason is not None:
        raise PostgresError(f"not installed: {reason} (run scripts/test, which "
                            "apt-installs postgresql)")
    bindir = bin_dir()
    assert bindir is not None
    # Not pytest's tmp_path: that sits in a root-only folder the postgres user cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="macula-pg-"))
    try:
        data = folder / "data"
        if os.geteuid() == 0:
            account = pwd.getpwnam(OS_USER)
            os.chown(folder, account.pw_uid, account.pw_gid)
        _check(_run([str(bindir / "initdb"), "-D", str(data), "-U", OS_USER,
                     "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                     "--locale=C", "--no-sync", "--no-instructions"], folder, timeout),
               "initdb")
        (data / "pg_hba.conf").write_text(_HBA)
        log = folder / "postgres.log"
        for _attempt in range(3):  # a port may be taken between choosing and binding it
            port = _free_port()
            with open(data / "postgresql.conf", "a") as conf:
                # Later lines win, so a retry's port replaces the last attempt's.
                conf.write(f"\nlisten_addresses = '{HOST}'\nport = {port}\n"
                           f"unix_socket_directories = '{folder}'\n"
                           "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                           "password_encryption = 'scram-sha-256'\n")
            started = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                            "-t", str(int(timeout)), "start"], folder, timeout + 10)
            if started.returncode == 0:
                break
            if "could not bind" not in (log.read_text(errors="replace")
                                        if log.exists() else ""):
                _check(started, "pg_ctl start", log.read_text(errors="replace"))
        else:
            raise PostgresError("no free port for PostgreSQL on 127.0.0.1 after 3 tries")
        server = Postgres(HOST, port, folder, data)
        try:
            _wait_ready(server, timeout)
            yield server
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                 folder, timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(server: Postgres, timeout: float) -> None:
    """``pg_ctl -w`` already waits; this guards against a socket that is not there yet."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            server.admin("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL did not answer: {exc}\n"
                                    + server.log_text()[-4000:]) from exc
            time.sleep(0.05)

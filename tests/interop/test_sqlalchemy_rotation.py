"""The SQLAlchemy rotation recipe (examples/sqlalchemy_rotation.py) against a real PostgreSQL.

The password changes the way an operator changes it: ``ALTER ROLE`` as the
superuser, and ``macula-secrets put`` in another process (the CLI). What a
working recipe must show, and what each broken variant would get wrong:

- every physical connection opened after the change used the new password,
  and the server refused no login (a password read once, at engine creation,
  would fail, or get through only by the slow retry);
- no connection from before the change is handed out again (without the
  checkout hook, the pool hands back its idle pre-rotation sessions, which
  PostgreSQL still accepts, so only the backend PIDs tell);
- a connection in use during the change keeps working, and is closed when it
  is returned (without the checkin hook it stays open, idle, in the pool);
- when the database changed first, a connect waits for the secret and retries
  (without the retry it raises).

One PostgreSQL cluster serves the module; each test has its own role.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets as random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import sqlalchemy
from psycopg import sql
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from macula_secrets import Secrets
from tests._postgres import Postgres, need_binaries, start_postgres

pytestmark = pytest.mark.interop

WAIT = 20.0   # generous: a loaded CI machine; the tests never assert speed
ROOT = Path(__file__).resolve().parents[2]


def _load_recipe() -> ModuleType:
    """The example file as users copy it: loaded by path, not as part of any package."""
    path = ROOT / "examples" / "sqlalchemy_rotation.py"
    spec = importlib.util.spec_from_file_location("sqlalchemy_rotation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    need_binaries()
    with start_postgres() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for the CLI child: the test's store and no agent."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MACULA_SECRETS_", "SOPS_"))}
    e.update(MACULA_SECRETS_HOME=str(tmp_path / "home"),
             MACULA_SECRETS_AGENT_SOCK=str(tmp_path / "no-agent.sock"))
    return e


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[Secrets]:
    with Secrets.open(env=env) as s:
        yield s


class Role:
    """A login role of its own for one test, with throwaway passwords p1, p2, p3."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.name = f"app_{random.token_hex(4)}"
        self.passwords = {f"p{i}": random.token_urlsafe(16) for i in (1, 2, 3)}
        self.refusal = f'password authentication failed for user "{self.name}"'
        self.alter("p1", create=True)

    def alter(self, label: str, *, create: bool = False) -> None:
        verb = "CREATE ROLE {} LOGIN PASSWORD {}" if create else "ALTER ROLE {} PASSWORD {}"
        self.pg.admin(sql.SQL(verb).format(sql.Identifier(self.name),
                                           sql.Literal(self.passwords[label])))

    def label(self, password: str | None) -> str:
        """Which of our passwords this is ("p1", ...): assertions never show a value."""
        return next((k for k, v in self.passwords.items() if v == password), "other")

    def raw_connect(self, label: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.pg.host, port=self.pg.port, dbname=self.pg.database,
                               user=self.name, password=self.passwords[label])

    def refusals(self) -> int:
        """How many logins as this role the server refused for a wrong password."""
        return self.pg.log_text().count(self.refusal)

    def backend_pids(self) -> set[int]:
        rows = self.pg.admin("SELECT pid FROM pg_stat_activity WHERE usename = %s",
                             (self.name,))
        return {pid for (pid,) in rows}


@pytest.fixture
def role(pg: Postgres) -> Role:
    return Role(pg)


class Connects:
    """Every physical connection the engine opened: (backend pid, which password)."""

    def __init__(self, engine: Engine, role: Role) -> None:
        self.made: list[tuple[int, str]] = []
        self._lock = threading.Lock()

        @event.listens_for(engine, "connect")
        def record(dbapi_connection: Any, _record: Any) -> None:
            with self._lock:
                self.made.append((dbapi_connection.info.backend_pid,
                                  role.label(dbapi_connection.info.password)))


def _put_from_cli(env: dict[str, str], value: str) -> None:
    """`macula-secrets put console db_password` in another process, the value on stdin."""
    done = subprocess.run([sys.executable, "-m", "macula_secrets", "put", "console",
                           "db_password"], env=env, input=value, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _pid(conn: sqlalchemy.Connection) -> int:
    pid: int = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.02)


def _engine(role: Role, store: Secrets, **options: Any) -> tuple[Engine, threading.Event]:
    """The recipe's engine, and an event set once its on_change callback has run.

    The feed thread calls subscriptions in the order they were made, one at
    a time, so ours (made after the recipe's) runs once the recipe's has.
    """
    ref = store.ref("console", "db_password")
    engine: Engine = recipe.create_rotating_engine(role.pg.url(role.name), ref, **options)
    rotated = threading.Event()
    ref.on_change(lambda _ref, _version: rotated.set())
    return engine, rotated


def _no_secret_in(texts: list[str], role: Role) -> None:
    for label, value in role.passwords.items():
        assert not any(value in t for t in texts), f"password {label} in a message or log"


def test_rotation_reaches_new_connections_and_retires_old_ones(
        env: dict[str, str], store: Secrets, role: Role, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy_rotation")
    store.put("console", "db_password", role.passwords["p1"])
    engine, rotated = _engine(role, store, pool_size=3, max_overflow=2)
    connects = Connects(engine, role)
    try:
        # Three sessions with p1: two go back to the pool idle, one stays in use.
        first = [engine.connect() for _ in range(3)]
        before = {_pid(c) for c in first}
        held = first.pop()
        held_pid = _pid(held)
        held.execute(text("CREATE TEMP TABLE work (n int)"))   # session state in use
        for c in first:
            c.close()
        assert [label for _, label in connects.made] == ["p1"] * 3
        assert role.backend_pids() == before

        role.alter("p2")
        _put_from_cli(env, role.passwords["p2"])
        assert rotated.wait(WAIT), "no on_change callback after the CLI put"
        made_before_change = len(connects.made)

        # The session in use is untouched and still works.
        held.execute(text("INSERT INTO work VALUES (1)"))
        assert _pid(held) == held_pid

        # New checkouts reach the two idle pre-rotation sessions, close them and get
        # new sessions, each opened with p2.
        after = [engine.connect() for _ in range(2)]
        after_pids = {_pid(c) for c in after}
        assert not after_pids & before, "a pre-rotation session was handed out again"
        assert [label for _, label in connects.made[made_before_change:]] == ["p2", "p2"]
        _wait_until(lambda: role.backend_pids() == after_pids | {held_pid},
                    "the idle pre-rotation sessions closed")
        for c in after:
            c.close()

        # Returning the connection from before the change closes it; the new ones stay.
        held.close()
        _wait_until(lambda: role.backend_pids() == after_pids,
                    "the returned pre-rotation session closed")
        with engine.connect() as again:
            assert _pid(again) in after_pids
        assert [label for _, label in connects.made] == ["p1"] * 3 + ["p2"] * 2
        # No attempt, even a retried one, used the old password after the change.
        assert role.refusals() == 0

        # The database really rotated: p1 is refused for new sessions, p2 is accepted.
        with pytest.raises(psycopg.OperationalError):
            role.raw_connect("p1").close()
        assert role.refusals() == 1
        role.raw_connect("p2").close()
    finally:
        engine.dispose()
    _no_secret_in([r.getMessage() for r in caplog.records], role)
    assert any("changed (version 2)" in r.getMessage() for r in caplog.records)


def test_database_changed_first_a_connect_waits_for_the_secret(
        env: dict[str, str], store: Secrets, role: Role, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy_rotation")
    store.put("console", "db_password", role.passwords["p1"])
    engine, rotated = _engine(role, store, auth_retry_wait=WAIT)
    connects = Connects(engine, role)
    try:
        role.alter("p2")     # the database first: the secret still holds p1
        result: dict[str, object] = {}

        def checkout() -> None:
            try:
                with engine.connect() as conn:
                    result["pid"] = _pid(conn)
            except Exception as exc:
                result["error"] = exc

        worker = threading.Thread(target=checkout)
        started = time.monotonic()
        worker.start()
        # The server, not the recipe, says the first attempt (with p1) was refused.
        _wait_until(lambda: role.refusals() == 1, "the refused first attempt")
        assert worker.is_alive(), "the connect gave up instead of waiting for the secret"
        _put_from_cli(env, role.passwords["p2"])
        worker.join(WAIT)
        assert not worker.is_alive()
        assert "error" not in result, result.get("error")
        assert time.monotonic() - started < WAIT   # woken by the change, not the time limit
        assert [label for _, label in connects.made] == ["p2"]
        assert role.refusals() == 1
        assert rotated.wait(WAIT)
    finally:
        engine.dispose()
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages)
    _no_secret_in(messages, role)


def test_a_refusal_without_a_new_secret_fails_without_showing_a_password(
        store: Secrets, role: Role, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store.put("console", "db_password", role.passwords["p1"])
    engine, _ = _engine(role, store, auth_retry_wait=0.2)
    try:
        role.alter("p3")     # changed in the database only: the secret never follows
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.OperationalError) as info:
            engine.connect()
        assert time.monotonic() - started >= 0.2   # it did wait for a change
        assert "password authentication failed" in str(info.value)
        texts = [str(info.value), repr(info.value), str(info.value.orig),
                 repr(info.value.orig)]
        _no_secret_in(texts + [r.getMessage() for r in caplog.records], role)
    finally:
        engine.dispose()

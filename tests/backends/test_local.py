"""The runtime store passes the backend conformance checks."""

from __future__ import annotations

from pathlib import Path

from macula_secrets.backends.local import LocalBackend
from macula_secrets.keys.master import MasterKeyFile
from macula_secrets.localstore.store import LocalStore
from macula_secrets.testing import exercise_backend


def test_local_backend(tmp_path: Path) -> None:
    def factory() -> LocalBackend:
        store = LocalStore(tmp_path / "store.db", MasterKeyFile(tmp_path / "master.key"))
        return LocalBackend(store, tenant="acme")

    exercise_backend(factory, versioned=True)

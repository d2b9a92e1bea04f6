"""Tampering with the store on disk is detected, named, and never turns into a wrong value.

The tests edit ``store.db`` with plain ``sqlite3`` the way someone with
write access to the file could: flip bits of a sealed value (nonce,
ciphertext, tag), move sealed values between keys, versions and tenants,
swap or damage wrapped data keys. Every read through a freshly opened store
(so nothing comes from a cache) must raise ``IntegrityError`` naming the
app and key (or the app, for a data key) and must not contain the value.
Then the master key file: a different key, loose permissions, a missing
file. Last, nothing on disk may hold a value or an unwrapped data key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets as pysecrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.errors import IntegrityError, KeySourceError, LockedError
from macula_secrets.keys.master import format_key, parse_key
from macula_secrets.localstore import barrier
from macula_secrets.localstore.store import DELETED
from tests.fault._store_child import TENANT, open_store

APPS = ("web", "api")
KEYS = ("db_password", "token")
OTHER_TENANT = "acme"


def _value(tenant: str, app: str, key: str, version: int) -> str:
    return f"PLAINTEXT<{tenant}|{app}|{key}|v{version}>-{pysecrets.token_hex(6)}"


class Home:
    """A store with 2 tenants x 2 apps x 2 keys x 3 versions, closed; the values it holds."""

    def __init__(self, root: Path) -> None:
        self.path = root / "home"
        self.db = self.path / "store.db"
        self.key_file = self.path / "master.key"
        self.values: dict[tuple[str, str, str, int], str] = {}
        store = open_store(str(self.path))
        try:
            for tenant in (TENANT, OTHER_TENANT):
                for app in APPS:
                    for key in KEYS:
                        for version in (1, 2, 3):
                            value = _value(tenant, app, key, version)
                            assert store.put(tenant, app, key, value) == version
                            self.values[(tenant, app, key, version)] = value
        finally:
            store.close()

    @contextlib.contextmanager
    def sql(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()

    def sealed(self, tenant: str, app: str, key: str, version: int) -> bytes:
        with self.sql() as c:
            row = c.execute("SELECT sealed FROM versions WHERE tenant = ? AND app = ? AND "
                            "key = ? AND version = ?", (tenant, app, key, version)).fetchone()
        return bytes(row[0])

    def set_sealed(self, tenant: str, app: str, key: str, version: int, sealed: bytes,
                   data_key: int | None = None) -> None:
        with self.sql() as c:
            cur = c.execute("UPDATE versions SET sealed = ?, data_key = coalesce(?, data_key) "
                            "WHERE tenant = ? AND app = ? AND key = ? AND version = ?",
                            (sealed, data_key, tenant, app, key, version))
            assert cur.rowcount == 1

    def data_key_row(self, tenant: str, app: str) -> tuple[int, bytes]:
        with self.sql() as c:
            row = c.execute("SELECT d.id, d.wrapped FROM apps a JOIN data_keys d ON "
                            "d.id = a.data_key WHERE a.tenant = ? AND a.app = ?",
                            (tenant, app)).fetchone()
        return int(row[0]), bytes(row[1])

    def set_wrapped(self, dk_id: int, wrapped: bytes) -> None:
        with self.sql() as c:
            assert c.execute("UPDATE data_keys SET wrapped = ? WHERE id = ?",
                             (wrapped, dk_id)).rowcount == 1

    def data_key_of_version(self, tenant: str, app: str, key: str, version: int) -> int:
        with self.sql() as c:
            return int(c.execute("SELECT data_key FROM versions WHERE tenant = ? AND app = ? "
                                 "AND key = ? AND version = ?",
                                 (tenant, app, key, version)).fetchone()[0])

    def master(self) -> bytes:
        return parse_key(self.key_file.read_text(), source="test")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def _where(tenant: str, app: str) -> str:
    return app if tenant == TENANT else f"{tenant}/{app}"


def _assert_no_plaintext(home: Home, exc: BaseException) -> None:
    text = f"{exc} {getattr(exc, 'hint', '')} {exc!r}"
    for value in home.values.values():
        assert value not in text
        assert "PLAINTEXT<" not in text


def _fails(home: Home, tenant: str, app: str, key: str, version: int | None = None,
           *, data_key: bool = False) -> None:
    """Reading the (latest or given) version in a fresh store raises a named IntegrityError."""
    store = open_store(str(home.path))
    try:
        with pytest.raises(IntegrityError) as info:
            if version is None:
                store.lookup(tenant, app, key)
            else:
                store.read_version(tenant, app, key, version)
        message = str(info.value)
        if data_key:
            assert f"data key of {_where(tenant, app)}" in message, message
        else:
            assert f"{_where(tenant, app)}/{key}" in message, message
            if version is not None:
                assert f"version {version}" in message, message
        _assert_no_plaintext(home, info.value)
    finally:
        store.close()
    # The public API, opened afresh too, says the same.
    with Secrets.open(home=home.path, source="none", tenant=tenant) as api:
        with pytest.raises(IntegrityError) as info:
            if version is None:
                api.get(app, key)
            else:
                api.get(app, key, version=version)
        assert (f"data key of {_where(tenant, app)}" if data_key
                else f"{_where(tenant, app)}/{key}") in str(info.value)
        _assert_no_plaintext(home, info.value)


def _reads_fine(home: Home, tenant: str, app: str, key: str,
                versions: tuple[int, ...] = (1, 2, 3)) -> None:
    store = open_store(str(home.path))
    try:
        for version in versions:
            assert store.read_version(tenant, app, key, version)[1] == \
                home.values[(tenant, app, key, version)]
    finally:
        store.close()


# -- sealed values --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["nonce-first", "nonce-last", "ciphertext-first",
                                   "ciphertext-middle", "tag-first", "tag-last"])
def test_flipped_byte_of_sealed_value(home: Home, where: str) -> None:
    sealed = home.sealed(TENANT, "web", "db_password", 3)
    length = len(sealed)
    pos = {"nonce-first": 0, "nonce-last": 11, "ciphertext-first": 12,
           "ciphertext-middle": 12 + (length - 28) // 2, "tag-first": length - 16,
           "tag-last": length - 1}[where]
    home.set_sealed(TENANT, "web", "db_password", 3, _flip(sealed, pos))
    _fails(home, TENANT, "web", "db_password")
    _fails(home, TENANT, "web", "db_password", 3)
    _reads_fine(home, TENANT, "web", "token")
    _reads_fine(home, TENANT, "web", "db_password", versions=(1, 2))


@pytest.mark.parametrize("sealed", [b"", b"\x00" * 27, b"\x00" * 28, os.urandom(64)])
def test_truncated_or_garbage_sealed_value(home: Home, sealed: bytes) -> None:
    home.set_sealed(OTHER_TENANT, "api", "token", 2, sealed)
    _fails(home, OTHER_TENANT, "api", "token", 2)


def test_sealed_values_swapped_between_keys(home: Home) -> None:
    a = home.sealed(TENANT, "web", "db_password", 3)
    b = home.sealed(TENANT, "web", "token", 3)
    home.set_sealed(TENANT, "web", "db_password", 3, b)
    home.set_sealed(TENANT, "web", "token", 3, a)
    _fails(home, TENANT, "web", "db_password")
    _fails(home, TENANT, "web", "token")
    _fails(home, TENANT, "web", "token", 3)


def test_sealed_values_swapped_between_versions(home: Home) -> None:
    v1 = home.sealed(TENANT, "api", "token", 1)
    v3 = home.sealed(TENANT, "api", "token", 3)
    home.set_sealed(TENANT, "api", "token", 1, v3)
    home.set_sealed(TENANT, "api", "token", 3, v1)
    _fails(home, TENANT, "api", "token")
    _fails(home, TENANT, "api", "token", 1)
    _fails(home, TENANT, "api", "token", 3)
    # The version between them is untouched.
    _reads_fine(home, TENANT, "api", "token", versions=(2,))


def test_sealed_value_copied_to_another_app(home: Home) -> None:
    home.set_sealed(TENANT, "api", "token", 3, home.sealed(TENANT, "web", "token", 3))
    _fails(home, TENANT, "api", "token")


def test_sealed_value_copied_to_another_tenant(home: Home) -> None:
    # The same app and key names in the other tenant: only the tenant differs.
    home.set_sealed(OTHER_TENANT, "web", "db_password", 3,
                    home.sealed(TENANT, "web", "db_password", 3))
    _fails(home, OTHER_TENANT, "web", "db_password")
    _reads_fine(home, TENANT, "web", "db_password")


def test_sealed_value_and_data_key_pointer_copied_to_another_tenant(home: Home) -> None:
    # Copy the pointer to the source tenant's data key as well: the data key
    # must unwrap as the target tenant's own, and does not.
    dk_id = home.data_key_of_version(TENANT, "web", "db_password", 3)
    home.set_sealed(OTHER_TENANT, "web", "db_password", 3,
                    home.sealed(TENANT, "web", "db_password", 3), data_key=dk_id)
    _fails(home, OTHER_TENANT, "web", "db_password", data_key=True)


def test_version_pointed_at_another_apps_data_key(home: Home) -> None:
    dk_id = home.data_key_of_version(TENANT, "api", "token", 1)
    with home.sql() as c:
        c.execute("UPDATE versions SET data_key = ? WHERE tenant = ? AND app = 'web' AND "
                  "key = 'token' AND version = 3", (dk_id, TENANT))
    _fails(home, TENANT, "web", "token", data_key=True)


# -- wrapped data keys ----------------------------------------------------------------------------


def test_wrapped_data_key_replaced_by_another_apps(home: Home) -> None:
    web_id, _web = home.data_key_row(TENANT, "web")
    _api_id, api = home.data_key_row(TENANT, "api")
    home.set_wrapped(web_id, api)
    _fails(home, TENANT, "web", "db_password", data_key=True)
    _fails(home, TENANT, "web", "token", 2, data_key=True)
    _reads_fine(home, TENANT, "api", "token")


def test_wrapped_data_key_replaced_by_another_tenants(home: Home) -> None:
    acme_id, _ = home.data_key_row(OTHER_TENANT, "web")
    _default_id, default = home.data_key_row(TENANT, "web")
    home.set_wrapped(acme_id, default)
    _fails(home, OTHER_TENANT, "web", "token", data_key=True)
    _reads_fine(home, TENANT, "web", "token")


def test_wrapped_data_key_row_claims_another_app(home: Home) -> None:
    # Relabelling the row (tenant/app columns) does not move the key: the
    # wrapped bytes are bound to their app, and the row's labels are ignored.
    api_id, _ = home.data_key_row(TENANT, "api")
    with home.sql() as c:
        c.execute("UPDATE apps SET data_key = ? WHERE tenant = ? AND app = 'web'",
                  (api_id, TENANT))
        c.execute("UPDATE versions SET data_key = ? WHERE tenant = ? AND app = 'web'",
                  (api_id, TENANT))
        c.execute("UPDATE data_keys SET app = 'web' WHERE id = ?", (api_id,))
    _fails(home, TENANT, "web", "db_password", data_key=True)


@pytest.mark.parametrize("damage", ["random", "nonce", "ciphertext", "tag", "short"])
def test_wrapped_data_key_damaged(home: Home, damage: str) -> None:
    dk_id, wrapped = home.data_key_row(OTHER_TENANT, "api")
    new = {"random": os.urandom(len(wrapped)), "nonce": _flip(wrapped, 3),
           "ciphertext": _flip(wrapped, 12 + 7), "tag": _flip(wrapped, len(wrapped) - 5),
           "short": wrapped[:20]}[damage]
    home.set_wrapped(dk_id, new)
    _fails(home, OTHER_TENANT, "api", "token", data_key=True)
    _fails(home, OTHER_TENANT, "api", "db_password", 1, data_key=True)
    _reads_fine(home, TENANT, "api", "token")


def test_data_key_row_deleted(home: Home) -> None:
    dk_id, _ = home.data_key_row(TENANT, "web")
    with home.sql() as c:
        c.execute("DELETE FROM data_keys WHERE id = ?", (dk_id,))
    _fails(home, TENANT, "web", "token", data_key=True)


# -- the master key file --------------------------------------------------------------------------


def test_wrong_master_key(home: Home) -> None:
    original = home.key_file.read_bytes()
    home.key_file.write_text(format_key(os.urandom(32)))
    assert home.key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeySourceError) as info:
        Secrets.open(home=home.path, source="none")
    assert "does not open the store" in str(info.value)
    with pytest.raises(KeySourceError):
        open_store(str(home.path))
    home.key_file.write_bytes(original)
    _reads_fine(home, TENANT, "web", "token")


def test_master_key_readable_by_others(home: Home) -> None:
    home.key_file.chmod(0o644)
    with pytest.raises(KeySourceError) as info:
        Secrets.open(home=home.path, source="none")
    assert f"chmod 600 {home.key_file}" in f"{info.value} {info.value.hint}"
    home.key_file.chmod(0o600)
    _reads_fine(home, TENANT, "web", "token")


def test_master_key_missing(home: Home) -> None:
    original = home.key_file.read_bytes()
    before = {p.name: p.read_bytes() for p in home.path.iterdir() if p.name != "store.db.token"}
    home.key_file.unlink()
    with pytest.raises(LockedError):
        Secrets.open(home=home.path, source="none")
    with pytest.raises(LockedError):
        open_store(str(home.path))
    # The store was not re-keyed: no new key file, no new key in the store.
    assert not home.key_file.exists()
    assert not (home.path / "master.key.next").exists()
    home.key_file.write_bytes(original)
    home.key_file.chmod(0o600)
    with home.sql() as c:
        stored = bytes(c.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()[0])
    assert stored == barrier.key_id(home.master())
    assert before.keys() <= {p.name for p in home.path.iterdir()}
    for tenant in (TENANT, OTHER_TENANT):
        for app in APPS:
            for key in KEYS:
                _reads_fine(home, tenant, app, key)


# -- nothing in the clear on disk -----------------------------------------------------------------


def _all_data_keys(home: Home) -> list[bytes]:
    master = home.master()
    with home.sql() as c:
        rows = c.execute("SELECT id, tenant, app, wrapped FROM data_keys").fetchall()
    return [barrier.unwrap_data_key(master, bytes(w), tenant=t, app=a, dk_id=i)
            for i, t, a, w in rows]


def _assert_not_on_disk(folder: Path, secrets: list[bytes], label: str) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "store.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{label} found in {path.name}"


def test_nothing_in_the_clear_on_disk(home: Home) -> None:
    keys: list[bytes] = [home.master(), *_all_data_keys(home)]
    latest: dict[tuple[str, str], str] = {}
    canaries: list[str] = []
    store = open_store(str(home.path))
    try:
        # Distinctive values of several sizes, with deletes, rollbacks and destroys.
        for n in range(40):
            app = APPS[n % 2]
            key = f"canary_{n % 7}"
            value = f"CANARY-{n}-{pysecrets.token_hex(16)}" + "x" * (n * 97 % 3000)
            store.put(TENANT, app, key, value)
            latest[(app, key)] = value
            canaries.append(value)
        store.delete(TENANT, "web", "canary_0")
        store.undelete(TENANT, "web", "canary_0")
        store.delete(TENANT, "api", "canary_1")
        store.rollback(TENANT, "web", "canary_2", 1)
        store.destroy(TENANT, "api", "canary_3", [1])
        store.rollback(TENANT, "web", "canary_4", 2)
        store.purge(TENANT, "api", "canary_5")
        keys += _all_data_keys(home)
        values = [v.encode() for v in (*home.values.values(), *canaries)]
        # While the changes are still in the WAL.
        assert (home.path / "store.db-wal").stat().st_size > 0
        _assert_not_on_disk(home.path, values, "a value")
        _assert_not_on_disk(home.path, keys, "a key")
        # A rotation with re-encryption: new data keys, the old ones deleted.
        store.rotate_master_key(reencrypt=True)
        keys += [home.master(), *_all_data_keys(home)]
        _assert_not_on_disk(home.path, values, "a value")
        _assert_not_on_disk(home.path, keys, "a key")
    finally:
        store.close()
    # After a checkpoint everything is in store.db itself.
    with contextlib.closing(sqlite3.connect(home.db)) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    _assert_not_on_disk(home.path, values, "a value")
    _assert_not_on_disk(home.path, keys, "a key")
    # The key file holds the master key in base64 (and the raw bytes nowhere, above).
    assert base64.b64encode(home.master()) in home.key_file.read_bytes()
    # The values are all still there, as ciphertext.
    store = open_store(str(home.path))
    try:
        assert store.lookup(TENANT, "web", "canary_0") == latest[("web", "canary_0")]
        assert store.lookup(TENANT, "web", "canary_6") == latest[("web", "canary_6")]
        assert store.lookup(TENANT, "api", "canary_1") is DELETED
    finally:
        store.close()

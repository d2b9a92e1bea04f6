"""Master key rotation survives a crash at any point and reaches processes that are running.

Rotation writes the new key to ``master.key.next``, re-wraps the data keys
in one transaction, then renames the file over ``master.key``. The tests
kill a process that rotates in a loop at random moments, and crash one at
each step on purpose; after every crash a fresh open must read every value
(under the old key or the new one) and finish an interrupted rename. A
process that had the store open before a rotation must keep reading, and
must be able to start a new app, whose data key has to be wrapped under the
new master key for every other process to read it. ``reencrypt`` must give
every app a new data key and re-seal every version.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from macula_secrets.keys.master import MasterKeyFile
from macula_secrets.localstore.store import LocalStore
from tests.fault._store_child import TENANT, Child, key_id_of_file, open_store

APPS = 20
KEYS_PER_APP = 10
KILLS = 16


def _populate(home: Path) -> dict[tuple[str, str, int], str]:
    """200 keys in 20 apps, half with a second version; return (app, key, version) -> value."""
    values: dict[tuple[str, str, int], str] = {}
    store = open_store(str(home))
    try:
        for a in range(APPS):
            app = f"app{a:02d}"
            first = {f"key{k}": f"{app}-key{k}-v1-" + "s" * (a * k) for k in range(KEYS_PER_APP)}
            store.apply(TENANT, app, first, origin="local")
            second = {k: v.replace("-v1-", "-v2-") for k, v in first.items()
                      if int(k[3:]) % 2 == 0}
            store.apply(TENANT, app, {**first, **second}, origin="local")
            for key, value in first.items():
                values[(app, key, 1)] = value
            for key, value in second.items():
                values[(app, key, 2)] = value
    finally:
        store.close()
    return values


def _latest(values: dict[tuple[str, str, int], str]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for (app, key, _version), value in sorted(values.items()):
        out[(app, key)] = value
    return out


def _check_all(store: LocalStore, values: dict[tuple[str, str, int], str]) -> None:
    """Every version and every latest value reads, through both read paths."""
    for (app, key, version), value in values.items():
        assert store.read_version(TENANT, app, key, version)[1] == value, (app, key, version)
    latest = _latest(values)
    for (app, key), value in latest.items():
        assert store.lookup(TENANT, app, key) == value, (app, key)
    for a in range(APPS):
        app = f"app{a:02d}"
        assert store.load_all(TENANT, app) == {k: v for (ap, k), v in latest.items() if ap == app}


def _stored_key_id(home: Path) -> str:
    with contextlib.closing(sqlite3.connect(home / "store.db")) as conn:
        return bytes(conn.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()[0]
                     ).hex()


def _data_keys(home: Path) -> dict[int, tuple[str, str, bytes]]:
    with contextlib.closing(sqlite3.connect(home / "store.db")) as conn:
        rows = conn.execute("SELECT id, tenant, app, wrapped FROM data_keys").fetchall()
    return {r[0]: (r[1], r[2], bytes(r[3])) for r in rows}


def _reopen_and_check(home: Path, values: dict[tuple[str, str, int], str]) -> str:
    """Open afresh, read everything; the key file must then hold the store's key. Its id."""
    store = open_store(str(home))
    try:
        _check_all(store, values)
        key_id = store.master_key_id()
    finally:
        store.close()
    assert key_id_of_file(str(home / "master.key")) == key_id
    assert _stored_key_id(home) == key_id
    return key_id


# -- (a) killed at random while rotating ----------------------------------------------------------


def test_rotation_killed_at_random(tmp_path: Path) -> None:
    home = tmp_path / "home"
    values = _populate(home)
    rng = random.Random(2024)
    states = {"before-commit": 0, "committed-not-renamed": 0, "renamed": 0}
    seen_ids = {_reopen_and_check(home, values)}
    child: Child | None = None
    next_child: Child | None = Child("rotate-loop", str(home))
    try:
        for trial in range(KILLS):
            child, next_child = next_child, None
            assert child is not None
            child.expect("ready")
            child.send("go")
            child.expect("started")
            if trial + 1 < KILLS:
                next_child = Child("rotate-loop", str(home))
            kind = rng.random()
            if kind < 0.1:
                time.sleep(0.0)  # while it opens the store
            else:
                time.sleep(rng.uniform(0.0, 0.05) if kind < 0.4 else rng.uniform(0.05, 0.3))
            child.kill()
            child = None
            # Classify where the kill landed (for the record; any of them must recover).
            stored = _stored_key_id(home)
            pending = home / "master.key.next"
            if stored == key_id_of_file(str(home / "master.key")):
                states["before-commit" if pending.exists() else "renamed"] += 1
            else:
                assert pending.exists(), "the store's key is in neither key file"
                assert stored == key_id_of_file(str(pending))
                states["committed-not-renamed"] += 1
            key_id = _reopen_and_check(home, values)
            assert key_id == stored
            seen_ids.add(key_id)
    finally:
        for leftover in (child, next_child):
            if leftover is not None:
                leftover.close()
    # The store did rotate under all those kills (each child rotates many times).
    assert len(seen_ids) > 1, states


# -- (b) crash at each step, on purpose -----------------------------------------------------------


@pytest.mark.parametrize("where", ["before-rename", "after-begin", "mid-reencrypt"])
def test_rotation_crash_points(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    values = _populate(home)
    old_id = key_id_of_file(str(home / "master.key"))
    before = _data_keys(home)
    child = Child("crash-rotation", str(home), where)
    try:
        child.expect("ready")
        child.send("go")
        child.wait(expect_rc=9)
    finally:
        child.close()
    pending = home / "master.key.next"
    if where == "before-rename":
        # The store committed to the new key; the file was not renamed.
        assert pending.exists()
        new_id = key_id_of_file(str(pending))
        assert _stored_key_id(home) == new_id != old_id
        assert key_id_of_file(str(home / "master.key")) == old_id
    elif where == "after-begin":
        # The new key is on disk; the store never committed to it.
        assert pending.exists()
        assert _stored_key_id(home) == old_id != key_id_of_file(str(pending))
    else:
        # Rotated and renamed; re-encryption stopped after the first app.
        assert not pending.exists()
        assert _stored_key_id(home) == key_id_of_file(str(home / "master.key")) != old_id
        after = _data_keys(home)
        assert len(set(after) - set(before)) == 1, "one app should have a new data key"

    key_id = _reopen_and_check(home, values)
    if where == "after-begin":
        assert key_id == old_id
    else:
        assert key_id != old_id
        assert not pending.exists(), "the open should have finished the rename"
    # And the store rotates normally afterwards.
    store = open_store(str(home))
    try:
        store.rotate_master_key(reencrypt=where == "mid-reencrypt")
        final_id = store.master_key_id()
    finally:
        store.close()
    assert final_id not in (old_id, key_id)
    assert not pending.exists()
    assert _reopen_and_check(home, values) == final_id
    if where == "mid-reencrypt":
        assert len(_data_keys(home)) == APPS


# -- (c) processes that are running pick up the new key -------------------------------------------


def _small_store(home: Path) -> dict[tuple[str, str], str]:
    values = {(f"app{a}", f"key{k}"): f"app{a}-key{k}-{os.urandom(4).hex()}"
              for a in range(3) for k in range(3)}
    store = open_store(str(home))
    try:
        for (app, key), value in values.items():
            store.put(TENANT, app, key, value)
    finally:
        store.close()
    return values


@pytest.mark.parametrize("reencrypt", [False, True], ids=["rewrap", "reencrypt"])
def test_running_process_picks_up_rotation(tmp_path: Path, reencrypt: bool) -> None:
    home = tmp_path / "home"
    values = _small_store(home)
    keys = [list(k) for k in values]

    def expected() -> dict[str, str]:
        return {f"{app}/{key}": value for (app, key), value in values.items()}

    a = Child("live", str(home))
    rotator = open_store(str(home))
    try:
        a.expect("ready")
        assert a.request(op="read", keys=keys) == {"ok": expected()}
        for round_ in range(2):
            rotator.rotate_master_key(reencrypt=reencrypt)
            new_id = rotator.master_key_id()
            # Process A reads what it had, and what it never read before.
            assert a.request(op="read", keys=keys) == {"ok": expected()}
            assert a.request(op="read_version", app="app1", key="key2", version=1) == \
                {"ok": values[("app1", "key2")]}
            # A starts a new app (a new data key) and writes to an old one.
            fresh = f"fresh{round_}"
            for app, key in ((fresh, "k"), ("app0", "key0")):
                value = f"from-A-{app}-{key}-{round_}"
                reply = a.request(op="put", app=app, key=key, value=value)
                assert "ok" in reply, reply
                values[(app, key)] = value
                keys.append([app, key])
            assert a.request(op="read", keys=keys) == {"ok": expected()}
            # What A wrote reads everywhere: in the rotating process (no reopen)...
            for (app, key), value in values.items():
                assert rotator.lookup(TENANT, app, key) == value, (app, key)
            # ...and in a fresh one.
            store = open_store(str(home))
            try:
                for (app, key), value in values.items():
                    assert store.lookup(TENANT, app, key) == value, (app, key)
                assert store.master_key_id() == new_id
            finally:
                store.close()
            # A made a data key, so it must have loaded the new master key to wrap it.
            assert a.request(op="key_id") == {"ok": new_id}
    finally:
        rotator.close()
        a.close()


@pytest.mark.parametrize("reencrypt", [False, True], ids=["rewrap", "reencrypt"])
def test_second_store_in_process_picks_up_rotation(tmp_path: Path, reencrypt: bool) -> None:
    home = tmp_path / "home"
    values = _small_store(home)
    first = open_store(str(home))
    second = open_store(str(home))
    try:
        for (app, key), value in values.items():
            assert first.lookup(TENANT, app, key) == value
        second.rotate_master_key(reencrypt=reencrypt)
        for (app, key), value in values.items():
            assert first.lookup(TENANT, app, key) == value
        assert first.put(TENANT, "brand_new", "k", "v-new") == 1
        assert first.lookup(TENANT, "brand_new", "k") == "v-new"
        assert second.lookup(TENANT, "brand_new", "k") == "v-new"
        assert first.master_key_id() == second.master_key_id()
    finally:
        first.close()
        second.close()
    store = open_store(str(home))
    try:
        assert store.lookup(TENANT, "brand_new", "k") == "v-new"
        for (app, key), value in values.items():
            assert store.lookup(TENANT, app, key) == value
    finally:
        store.close()


# -- (d) re-encryption replaces data keys ---------------------------------------------------------


def test_reencrypt_replaces_data_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    values = _populate(home)
    before = _data_keys(home)
    with contextlib.closing(sqlite3.connect(home / "store.db")) as conn:
        sealed_before = dict(((r[0], r[1], r[2]), bytes(r[3])) for r in conn.execute(
            "SELECT app, key, version, sealed FROM versions"))
    old_id = key_id_of_file(str(home / "master.key"))
    progress: list[tuple[int, int]] = []
    store = open_store(str(home))
    try:
        store.rotate_master_key(reencrypt=True, progress=lambda d, t: progress.append((d, t)))
    finally:
        store.close()
    after = _data_keys(home)
    assert len(after) == len(before) == APPS
    assert not set(after) & set(before), "data key ids were reused"
    assert not {w for _t, _a, w in after.values()} & {w for _t, _a, w in before.values()}
    assert sorted((t, a) for t, a, _w in after.values()) == \
        sorted((t, a) for t, a, _w in before.values())
    with contextlib.closing(sqlite3.connect(home / "store.db")) as conn:
        rows = conn.execute("SELECT app, key, version, data_key, sealed FROM versions").fetchall()
    assert len(rows) == len(sealed_before) == len(values)
    for app, key, version, dk_id, sealed in rows:
        assert dk_id in after and after[dk_id][1] == app
        assert bytes(sealed) != sealed_before[(app, key, version)]
    assert progress[0] == (0, len(values))
    assert progress[-1] == (len(values), len(values))
    assert _reopen_and_check(home, values) != old_id


# -- concurrent rotations ----------------------------------------------------------------------


class _InterruptedError(Exception):
    """Stands in for a crash: raised where a process would have died."""


def test_overlapping_rotations_keep_the_committed_key(tmp_path: Path) -> None:
    """A rotation that starts while another is between its commit and its key-file rename
    waits for it (the provider's lock), so its own pending key can never be what the first
    one's rename installs, even when the second dies before committing."""
    home = tmp_path / "home"
    values = _small_store(home)
    key_file = str(home / "master.key")
    errors: list[BaseException] = []

    class SecondRotator(MasterKeyFile):
        def begin_rotation(self, key: bytes) -> None:
            super().begin_rotation(key)
            raise _InterruptedError  # dies before its transaction commits

    def second_rotation() -> None:
        try:
            second = open_store(str(home), SecondRotator(key_file))
            try:
                second.rotate_master_key()
            finally:
                second.close()
        except _InterruptedError:
            pass
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=second_rotation)

    class FirstRotator(MasterKeyFile):
        def commit_rotation(self) -> None:
            # Committed, not yet renamed: another rotation starts now.
            worker.start()
            super().commit_rotation()

    first = open_store(str(home), FirstRotator(key_file))
    try:
        first.rotate_master_key()
        committed = first.master_key_id()
    finally:
        first.close()
    worker.join(60)
    assert not worker.is_alive() and not errors, errors
    assert key_id_of_file(key_file) == committed
    store = open_store(str(home))
    try:
        for (app, key), value in values.items():
            assert store.lookup(TENANT, app, key) == value
    finally:
        store.close()


def test_open_while_another_process_rotates(tmp_path: Path) -> None:
    home = tmp_path / "home"
    values = _small_store(home)
    key_file = str(home / "master.key")
    other = open_store(str(home))

    class RotatedMeanwhile(MasterKeyFile):
        armed = True

        def candidates(self) -> list[bytes]:
            if self.armed:
                self.armed = False
                other.rotate_master_key()
            return super().candidates()

    try:
        store = open_store(str(home), RotatedMeanwhile(key_file))
        try:
            for (app, key), value in values.items():
                assert store.lookup(TENANT, app, key) == value
        finally:
            store.close()
    finally:
        other.close()

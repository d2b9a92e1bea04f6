"""The runtime store through ``Secrets`` (source ``none``): KV v2 versions, limits, names,
tenants, file modes, and change notifications across instances."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.errors import (
    ConfigError,
    ConflictError,
    FormatError,
    LimitError,
    NotFoundError,
)

SECRET = "value-that-must-not-appear-Qx7"


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def open_store(home: Path, **env: str) -> Secrets:
    return Secrets.open(home=home, source="none", env=env)


@pytest.fixture
def secrets(home: Path) -> Iterator[Secrets]:
    s = open_store(home)
    yield s
    s.close()


def states(secrets: Secrets, app: str, key: str) -> list[tuple[int, str, bool]]:
    return [(i.version, i.state, i.current) for i in secrets.history(app, key)]


# -- versions -----------------------------------------------------------------------


def test_versions_are_dense_and_history_is_oldest_first(secrets: Secrets) -> None:
    assert [secrets.put("web", "k", f"v{i}") for i in range(1, 6)] == [1, 2, 3, 4, 5]
    history = secrets.history("web", "k")
    assert [i.version for i in history] == [1, 2, 3, 4, 5]
    assert [i.current for i in history] == [False] * 4 + [True]
    assert all(i.created.tzinfo is not None for i in history)
    assert [i.created for i in history] == sorted(i.created for i in history)
    assert [secrets.get("web", "k", version=v) for v in range(1, 6)] == [
        "v1", "v2", "v3", "v4", "v5"]
    assert secrets.get("web", "k") == "v5"
    # Another key of the app, and the same key of another app, count on their own.
    assert secrets.put("web", "other", "x") == 1
    assert secrets.put("db", "k", "x") == 1


def test_history_records_deleted_destroyed_and_current(secrets: Secrets) -> None:
    for i in range(3):
        secrets.put("web", "k", f"{SECRET}{i}")
    secrets.delete("web", "k", versions=[1])
    secrets.destroy("web", "k", [2])
    v1, v2, v3 = secrets.history("web", "k")
    assert (v1.state, v1.deleted is not None, v1.destroyed, v1.current) == (
        "deleted", True, False, False)
    assert (v2.state, v2.deleted, v2.destroyed, v2.current) == ("destroyed", None, True, False)
    assert (v3.state, v3.deleted, v3.destroyed, v3.current) == ("live", None, False, True)
    assert v1.deleted is not None and v1.deleted >= v1.created
    record = v1.to_json()
    assert record["state"] == "deleted" and record["version"] == 1
    assert str(record["created_time"]).endswith("Z")
    assert str(record["deletion_time"]).endswith("Z")
    assert v3.to_json()["deletion_time"] == ""
    # Deleting the latest: the key reads as absent, its records stay.
    secrets.delete("web", "k")
    assert secrets.get("web", "k") is None
    assert secrets.get("web", "k", "fallback") == "fallback"
    assert secrets.list("web") == []
    assert states(secrets, "web", "k") == [(1, "deleted", False), (2, "destroyed", False),
                                           (3, "deleted", True)]
    secrets.undelete("web", "k")
    assert secrets.get("web", "k") == f"{SECRET}2"
    secrets.undelete("web", "k", versions=[1])
    assert secrets.get("web", "k", version=1) == f"{SECRET}0"


def test_missing_keys_raise_not_found(secrets: Secrets) -> None:
    secrets.put("web", "present", "x")
    for call in (lambda: secrets.delete("web", "absent"),
                 lambda: secrets.delete("web", "absent", versions=[1]),
                 lambda: secrets.undelete("web", "absent"),
                 lambda: secrets.destroy("web", "absent", [1]),
                 lambda: secrets.rollback("web", "absent", 1),
                 lambda: secrets.history("web", "absent"),
                 lambda: secrets.require("web", "absent"),
                 lambda: secrets.delete("nosuchapp", "present")):
        with pytest.raises(NotFoundError):
            call()
    assert secrets.get("web", "absent") is None
    assert secrets.get("web", "absent", version=1) is None
    assert secrets.list("nosuchapp") == []
    assert secrets.load_all("nosuchapp") == {}
    with pytest.raises(NotFoundError, match="web/absent version 3"):
        secrets.require("web", "absent", version=3)


def test_delete_and_undelete_of_versions_that_are_not_there_change_nothing(
        secrets: Secrets) -> None:
    secrets.put("web", "k", "a")
    secrets.delete("web", "k", versions=[0, 7, -1])
    secrets.undelete("web", "k", versions=[9])
    secrets.destroy("web", "k", [5])
    assert states(secrets, "web", "k") == [(1, "live", True)]
    with pytest.raises(LimitError):
        secrets.delete("web", "k", versions=[])


def test_destroyed_stays_destroyed(secrets: Secrets) -> None:
    secrets.put("web", "k", SECRET)
    secrets.delete("web", "k")
    secrets.destroy("web", "k", [1])
    secrets.undelete("web", "k")
    secrets.undelete("web", "k", versions=[1])
    assert secrets.get("web", "k") is None
    assert secrets.get("web", "k", version=1) is None
    assert states(secrets, "web", "k") == [(1, "destroyed", True)]
    # The ciphertext is gone from the database, not just marked.
    with sqlite3.connect(secrets.store.path) as db:
        assert db.execute("SELECT sealed, data_key, destroyed FROM versions").fetchall() == [
            (None, None, 1)]
    # A new version is written normally after a destroyed one.
    assert secrets.put("web", "k", "fresh") == 2
    assert secrets.get("web", "k") == "fresh"


# -- check-and-set ----------------------------------------------------------------


def test_cas_zero_creates_only(secrets: Secrets) -> None:
    assert secrets.put("web", "k", "first", cas=0) == 1
    with pytest.raises(ConflictError):
        secrets.put("web", "k", "second", cas=0)
    assert secrets.get("web", "k") == "first"
    assert secrets.put("web", "k", "second", cas=1) == 2
    # A deleted latest version still exists: cas=0 still refuses.
    secrets.delete("web", "k")
    with pytest.raises(ConflictError):
        secrets.put("web", "k", "third", cas=0)
    assert secrets.put("web", "k", "third", cas=2) == 3


def test_wrong_cas_names_app_key_and_both_versions_but_no_value(secrets: Secrets) -> None:
    secrets.put("web", "k", "a")
    secrets.put("web", "k", "b")
    with pytest.raises(ConflictError) as info:
        secrets.put("web", "k", SECRET, cas=5)
    message = str(info.value)
    assert "web/k" in message
    assert "2" in message and "5" in message
    assert "current version is 2, not 5" in message
    assert SECRET not in message
    assert secrets.history("web", "k")[-1].version == 2
    acme = secrets.with_tenant("acme")
    with pytest.raises(ConflictError, match="acme/web/k"):
        acme.put("web", "k", SECRET, cas=1)


# -- max_versions -------------------------------------------------------------------


def test_default_keeps_ten_versions(secrets: Secrets) -> None:
    for i in range(1, 13):
        secrets.put("web", "k", f"v{i}")
    assert [i.version for i in secrets.history("web", "k")] == list(range(3, 13))
    assert secrets.get("web", "k", version=2) is None
    assert secrets.get("web", "k", version=3) == "v3"
    with pytest.raises(NotFoundError, match="web/k has no version 2"):
        secrets.store.read_version("default", "web", "k", 2)


def test_set_max_versions_per_app(secrets: Secrets) -> None:
    secrets.set_max_versions("web", 3)
    for i in range(1, 6):
        secrets.put("web", "k", f"v{i}")
        secrets.put("db", "k", f"v{i}")
    assert [i.version for i in secrets.history("web", "k")] == [3, 4, 5]
    assert [i.version for i in secrets.history("db", "k")] == [1, 2, 3, 4, 5]
    assert secrets.get("web", "k", version=2) is None
    with pytest.raises(NotFoundError, match="no version 2"):
        secrets.rollback("web", "k", 2)
    with pytest.raises(NotFoundError):
        secrets.require("web", "k", version=1)
    assert secrets.store.get_max_versions("default", "web") == 3
    assert secrets.store.get_max_versions("default", "db") == 10
    # Lowering the limit prunes at the key's next write (as Vault does).
    secrets.set_max_versions("db", 2)
    assert len(secrets.history("db", "k")) == 5
    secrets.put("db", "k", "v6")
    assert [i.version for i in secrets.history("db", "k")] == [5, 6]
    # Back to the default: nothing comes back, and ten are kept from now on.
    secrets.set_max_versions("web", None)
    assert secrets.store.get_max_versions("default", "web") == 10
    for i in range(6, 12):
        secrets.put("web", "k", f"v{i}")
    assert [i.version for i in secrets.history("web", "k")] == list(range(3, 12))
    # The limit belongs to the tenant's app.
    assert secrets.with_tenant("acme").store.get_max_versions("acme", "db") == 10


def test_max_versions_one_keeps_only_the_latest(secrets: Secrets) -> None:
    secrets.set_max_versions("web", 1)
    secrets.put("web", "k", "a")
    secrets.put("web", "k", "b")
    assert states(secrets, "web", "k") == [(2, "live", True)]
    with pytest.raises(NotFoundError):
        secrets.rollback("web", "k", 1)


def test_max_versions_must_be_positive(secrets: Secrets) -> None:
    for bad in (0, -1):
        with pytest.raises(LimitError):
            secrets.set_max_versions("web", bad)


# -- rollback -----------------------------------------------------------------------


def test_rollback_writes_a_new_version_with_the_old_value(secrets: Secrets) -> None:
    secrets.put("web", "k", "a")
    secrets.put("web", "k", "b")
    assert secrets.rollback("web", "k", 1) == 3
    assert secrets.get("web", "k") == "a"
    assert [i.version for i in secrets.history("web", "k")] == [1, 2, 3]
    # Rolling back to a version whose key's latest is deleted also works.
    secrets.delete("web", "k")
    assert secrets.rollback("web", "k", 2) == 4
    assert secrets.get("web", "k") == "b"


def test_rollback_to_deleted_or_destroyed_is_refused_clearly(secrets: Secrets) -> None:
    for i in range(3):
        secrets.put("web", "k", f"{SECRET}{i}")
    secrets.delete("web", "k", versions=[1])
    secrets.destroy("web", "k", [2])
    with pytest.raises(NotFoundError) as deleted:
        secrets.rollback("web", "k", 1)
    assert str(deleted.value) == "web/k version 1 is deleted"
    assert deleted.value.hint is not None and "undelete" in deleted.value.hint
    with pytest.raises(NotFoundError) as destroyed:
        secrets.rollback("web", "k", 2)
    assert str(destroyed.value) == "web/k version 2 is destroyed"
    with pytest.raises(NotFoundError) as missing:
        secrets.rollback("web", "k", 9)
    assert str(missing.value) == "web/k has no version 9"
    for exc in (deleted.value, destroyed.value, missing.value):
        assert SECRET not in str(exc)
    assert secrets.history("web", "k")[-1].version == 3


# -- values -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "\x00", "line1\nline2\r\n", "é😀\u2028", "ENC[x]"])
def test_any_text_round_trips(secrets: Secrets, value: str) -> None:
    secrets.put("web", "k", value)
    assert secrets.get("web", "k") == value
    with open_store(Path(secrets.store.path).parent) as again:
        assert again.get("web", "k") == value
        assert again.load_all("web") == {"k": value}


def test_value_size_limit_default(secrets: Secrets) -> None:
    limit = 1024 * 1024
    assert secrets.store.max_value_size == limit
    secrets.put("web", "k", "x" * limit)
    with pytest.raises(LimitError) as info:
        secrets.put("web", "k", "x" * (limit + 1))
    assert f"{limit + 1} bytes" in str(info.value) and "web/k" in str(info.value)
    assert len(secrets.history("web", "k")) == 1


def test_value_size_limit_from_the_environment(home: Path) -> None:
    with open_store(home, MACULA_SECRETS_MAX_VALUE_SIZE="16") as s:
        assert s.store.max_value_size == 16
        assert s.put("web", "k", "x" * 16) == 1
        assert s.put("web", "k", "é" * 8) == 2  # 16 bytes of UTF-8
        for too_big in ("x" * 17, "é" * 8 + "x", "😀" * 5):
            with pytest.raises(LimitError) as info:
                s.put("web", "k", too_big)
            assert too_big not in str(info.value)
        assert s.history("web", "k")[-1].version == 2


@pytest.mark.parametrize("bad", [b"bytes", 5, None, ["x"], 1.5])
def test_non_text_values_are_refused(secrets: Secrets, bad: object) -> None:
    with pytest.raises(FormatError, match="must be text"):
        secrets.put("web", "k", bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        secrets.history("web", "k")


def test_lone_surrogate_is_refused(secrets: Secrets) -> None:
    with pytest.raises(FormatError, match="not valid Unicode") as info:
        secrets.put("web", "k", "ab\ud800cd")
    assert "ab" not in str(info.value).replace("web", "")
    with pytest.raises(NotFoundError):
        secrets.history("web", "k")


# -- tenants ------------------------------------------------------------------------


def test_tenants_are_independent(home: Path, secrets: Secrets) -> None:
    acme = secrets.with_tenant("acme")
    assert acme.tenant == "acme"
    secrets.put("web", "k", "default-value")
    assert acme.get("web", "k") is None
    assert acme.put("web", "k", "acme-value") == 1
    acme.put("web", "k", "acme-value-2")
    assert secrets.get("web", "k") == "default-value"
    assert acme.get("web", "k") == "acme-value-2"
    assert [i.version for i in secrets.history("web", "k")] == [1]
    assert [i.version for i in acme.history("web", "k")] == [1, 2]
    acme.delete("web", "k")
    assert secrets.get("web", "k") == "default-value"
    assert acme.list("web") == [] and secrets.list("web") == ["k"]
    assert secrets.store.list_tenants() == ["acme", "default"]
    # A tenant view shares the store: closing it leaves the store open.
    acme.close()
    assert secrets.get("web", "k") == "default-value"
    # Opening as the tenant sees the same data as the view.
    with Secrets.open(home=home, source="none", tenant="acme", env={}) as direct:
        assert direct.tenant == "acme"
        assert direct.get("web", "k", version=1) == "acme-value"
    with Secrets.open(home=home, source="none", env={"MACULA_SECRETS_TENANT": "acme"}) as env:
        assert env.tenant == "acme"
        assert [i.version for i in env.history("web", "k")] == [1, 2]


def test_each_tenant_app_has_its_own_data_key(secrets: Secrets) -> None:
    secrets.put("web", "k", "x")
    secrets.put("db", "k", "x")
    secrets.with_tenant("acme").put("web", "k", "x")
    with sqlite3.connect(secrets.store.path) as db:
        rows = db.execute("SELECT tenant, app, id, wrapped FROM data_keys").fetchall()
        used = db.execute("SELECT tenant, app, data_key FROM versions").fetchall()
    assert sorted((t, a) for t, a, _i, _w in rows) == [
        ("acme", "web"), ("default", "db"), ("default", "web")]
    assert len({i for _t, _a, i, _w in rows}) == 3
    assert len({bytes(w) for _t, _a, _i, w in rows}) == 3
    ids = {(t, a): i for t, a, i, _w in rows}
    assert all(ids[(t, a)] == dk for t, a, dk in used)


# -- names --------------------------------------------------------------------------

BAD_NAMES = ["", "a/b", "a\\b", "..", "a..b", ".", "a\x00b", "a\nb", "a\x7fb", "x" * 256,
             "é" * 128]


def _safe_message(exc: BaseException) -> None:
    message = str(exc)
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in message), repr(message)


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_app_and_key_names_are_refused(secrets: Secrets, bad: str) -> None:
    calls: dict[str, list[Callable[[], object]]] = {
        "app": [lambda: secrets.put(bad, "k", "v"), lambda: secrets.get(bad, "k"),
                lambda: secrets.list(bad), lambda: secrets.load_all(bad),
                lambda: secrets.history(bad, "k"), lambda: secrets.set_max_versions(bad, 2),
                lambda: secrets.subscribe(bad, lambda *_: None)],
        "key": [lambda: secrets.put("web", bad, "v"), lambda: secrets.get("web", bad),
                lambda: secrets.get("web", bad, version=1), lambda: secrets.delete("web", bad),
                lambda: secrets.history("web", bad), lambda: secrets.rollback("web", bad, 1)],
    }
    for kind, fns in calls.items():
        for fn in fns:
            with pytest.raises(ConfigError) as info:
                fn()
            assert f"{kind} name" in str(info.value)
            _safe_message(info.value)
    assert secrets.store.list_apps("default") == []


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_tenant_names_are_refused(home: Path, secrets: Secrets, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        secrets.with_tenant(bad)
    assert "tenant name" in str(info.value)
    _safe_message(info.value)
    with pytest.raises(ConfigError) as info:
        secrets.store.put(bad, "web", "k", "v")
    _safe_message(info.value)
    if bad:  # an empty tenant setting means "not set": the default tenant
        with pytest.raises(ConfigError) as info:
            Secrets.open(home=home, source="none", tenant=bad, env={})
        _safe_message(info.value)


def test_names_at_the_byte_limit_are_accepted(home: Path, secrets: Secrets) -> None:
    two = "é" * 127 + "a"  # 255 bytes of UTF-8
    three = "€" * 85  # 255 bytes
    assert len(two.encode()) == len(three.encode()) == 255
    for name in (two, three, "x" * 255):
        secrets.put(name, name, "v")
        assert secrets.get(name, name) == "v"
        view = secrets.with_tenant(name)
        view.put("web", name, "t")
        assert view.get("web", name) == "t"
    with Secrets.open(home=home, source="none", tenant=three, env={}) as t:
        assert t.get("web", three) == "t"
    over = "€" * 85 + "a"
    with pytest.raises(ConfigError, match="256 bytes"):
        secrets.put("web", over, "v")


def test_dots_inside_names_are_fine(secrets: Secrets) -> None:
    secrets.put("web.v2", "db.password", "x")
    secrets.put(".hidden", "k.", "y")
    assert secrets.load_all("web.v2") == {"db.password": "x"}
    assert secrets.get(".hidden", "k.") == "y"


# -- files on disk ------------------------------------------------------------------


def test_home_and_files_are_private(home: Path) -> None:
    with open_store(home) as s:
        s.put("web", "k", SECRET)
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(home / "master.key").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(home / "store.db").st_mode) == 0o600
        for name in os.listdir(home):
            mode = stat.S_IMODE(os.stat(home / name).st_mode)
            assert mode & 0o077 == 0, f"{name} is {mode:o}"
    # The value is not in any file in plain text.
    for name in os.listdir(home):
        assert SECRET.encode() not in (home / name).read_bytes(), name


def test_reprs_show_no_value(secrets: Secrets) -> None:
    secrets.put("web", "k", SECRET)
    secrets.put("web", "k", SECRET + "2")
    assert secrets.get("web", "k") == SECRET + "2"
    shown = [repr(secrets), str(secrets), repr(secrets.store), repr(secrets.config),
             repr(secrets.with_tenant("acme")), repr(secrets.history("web", "k")),
             repr(secrets.store.read_version("default", "web", "k", 1)[0]),
             repr(secrets.store.changes_since(0))]
    for text in shown:
        assert SECRET not in text
    assert "store.db" in repr(secrets) and "store.db" in repr(secrets.store)


def test_values_survive_reopening(home: Path) -> None:
    with open_store(home) as s:
        s.put("web", "k", "a")
        s.put("web", "k", "b")
        s.delete("web", "k", versions=[1])
        s.set_max_versions("web", 4)
    with open_store(home) as s:
        assert s.get("web", "k") == "b"
        assert states(s, "web", "k") == [(1, "deleted", False), (2, "live", True)]
        assert s.store.get_max_versions("default", "web") == 4


# -- instances on one home ------------------------------------------------------------


def test_a_write_by_one_instance_is_read_by_another(home: Path) -> None:
    with open_store(home) as one, open_store(home) as two:
        one.put("web", "k", "a")
        assert two.get("web", "k") == "a"  # now cached in two
        one.put("web", "k", "b")
        assert two.get("web", "k") == "b"
        one.delete("web", "k")
        assert two.get("web", "k") is None
        one.undelete("web", "k")
        assert two.get("web", "k") == "b"
        assert two.load_all("web") == {"k": "b"}
        one.rollback("web", "k", 1)
        assert two.get("web", "k") == "a"
        assert two.load_all("web") == {"k": "a"}
        one.destroy("web", "k", [3])
        assert two.get("web", "k") is None
        assert two.list("web") == []


class _Recorder:
    """A subscription callback that also reads the new value, as the docs promise works."""

    def __init__(self, secrets: Secrets, *, fail_first: bool = False) -> None:
        self.secrets = secrets
        self.calls: list[tuple[str, str, int, str | None]] = []
        self.event = threading.Event()
        self._fail = fail_first

    def __call__(self, app: str, key: str, version: int) -> None:
        if self._fail:
            self._fail = False
            raise RuntimeError("a failing callback must not stop the subscription")
        self.calls.append((app, key, version, self.secrets.get(app, key)))
        self.event.set()

    def wait(self) -> None:
        assert self.event.wait(10), "no callback within 10 s"
        self.event.clear()


def test_subscribe_sees_a_put_by_another_instance(home: Path) -> None:
    with open_store(home) as reader, open_store(home) as writer:
        writer.put("web", "k", "old")
        assert reader.get("web", "k") == "old"  # cached before the change
        seen = _Recorder(reader)
        sub = reader.subscribe("web", seen, interval=0.01)
        writer.put("db", "k", "other app")  # not this subscription's app
        version = writer.put("web", "k", "new")
        seen.wait()
        assert seen.calls == [("web", "k", version, "new")]
        writer.delete("web", "k")
        seen.wait()
        assert seen.calls[-1] == ("web", "k", version, None)
        sub.cancel()
        assert sub.app == "web"
        # After cancel, changes reach a new subscription but not the old one.
        later = _Recorder(reader)
        reader.subscribe("web", later, interval=0.01)
        writer.put("web", "k", "newer")
        later.wait()
        assert later.calls == [("web", "k", version + 1, "newer")]
        assert len(seen.calls) == 2


def test_subscribe_to_one_key_and_survive_a_failing_callback(home: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == "macula-changes"}
    with open_store(home) as reader, open_store(home) as writer:
        seen = _Recorder(reader, fail_first=True)
        reader.subscribe("web", seen, key="wanted", interval=0.01)
        ours = {t for t in threading.enumerate() if t.name == "macula-changes"} - before
        assert len(ours) == 1
        writer.put("web", "wanted", "1")  # the callback raises on this one
        writer.put("web", "ignored", "x")
        writer.put("web", "wanted", "2")
        seen.wait()
        assert seen.calls == [("web", "wanted", 2, "2")]
    # close() stopped the subscription thread.
    assert not any(t.is_alive() for t in ours)


class _RaceHook(dict[tuple[str, str, str], object]):
    """A cache that, at the moment one value is about to be cached, lets another process
    commit a newer version and another thread of this process refresh the cache.

    That is an interleaving real threads can produce. The refresh thread is given a
    moment to finish (joined with a timeout): if the store holds its lock from reading
    a value until caching it, the refresh has to wait and then drops the stale value.
    """

    def __init__(self, cache: Mapping[tuple[str, str, str], object],
                 on_set: Callable[[], threading.Thread]) -> None:
        super().__init__(cache)
        self.on_set: Callable[[], threading.Thread] | None = on_set
        self.refresher: threading.Thread | None = None

    def __setitem__(self, k: tuple[str, str, str], v: object) -> None:
        if self.on_set is not None and k == ("default", "web", "k"):
            on_set, self.on_set = self.on_set, None
            self.refresher = on_set()
            self.refresher.join(0.3)
        super().__setitem__(k, v)


@pytest.mark.parametrize("first", ["read", "write"])
def test_a_value_cached_while_another_process_commits_is_not_kept(home: Path,
                                                                  first: str) -> None:
    with open_store(home) as mine, open_store(home) as other:
        other.put("web", "k", "v1")
        store = mine.store

        def meanwhile() -> threading.Thread:
            other.put("web", "k", "newest")
            thread = threading.Thread(target=store.refresh)
            thread.start()
            return thread

        hook = _RaceHook(store._cache, meanwhile)
        store._cache = hook  # type: ignore[assignment]
        if first == "read":
            assert mine.get("web", "k") in ("v1", "newest")
        else:
            mine.put("web", "k", "mine")
        assert hook.refresher is not None
        hook.refresher.join(10)
        assert not hook.refresher.is_alive()
        assert mine.get("web", "k") == other.get("web", "k") == "newest"

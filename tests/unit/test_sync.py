"""The store with a sops source: ``sync``, read-through on first use, and writes that go
into the app's file. Files are written by our own ``sops.encrypt`` (the real sops binary
does the same in tests/interop/test_store_sops_interop.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets import sops as sopslib
from macula_secrets.errors import ConfigError, IntegrityError
from macula_secrets.keys.age import generate_identity
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

WEB = {"token": "t1", "db": {"password": "pw", "port": 5432}, "debug": True, "ratio": 1.5}
WEB_FLAT = {"token": "t1", "db.password": "pw", "db.port": "5432", "debug": "true",
            "ratio": "1.5"}
FORMATS = {"yaml": "yaml", "json": "json", "env": "dotenv"}


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    return path


@pytest.fixture
def env(age_key_file: Path) -> dict[str, str]:
    return {"SOPS_AGE_KEY_FILE": str(age_key_file)}


@pytest.fixture
def secrets(tmp_path: Path, folder: Path, env: dict[str, str]) -> Iterator[Secrets]:
    s = Secrets.open(home=tmp_path / "home", secrets_dir=folder, env=env)
    assert s.source is not None
    yield s
    s.close()


def write_app(folder: Path, app: str, data: dict[str, object] | bytes, ext: str = "yaml",
              recipient: str = TEST_AGE_PUBLIC) -> Path:
    path = folder / f"{app}.enc.{ext}"
    path.write_bytes(sopslib.encrypt(data, recipients=[recipient], format=FORMATS[ext]))
    return path


def read_file(path: Path) -> dict[str, object]:
    return sopslib.load(path, identities=[TEST_AGE_SECRET])


def versions(secrets: Secrets, app: str, key: str) -> list[tuple[int, str]]:
    return [(i.version, i.state) for i in secrets.history(app, key)]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), (a, b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


# -- sync -------------------------------------------------------------------------------


def test_sync_adds_every_key_flattened(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    steps: list[tuple[int, int]] = []
    report = secrets.sync(progress=lambda done, total: steps.append((done, total)))
    assert steps == [(0, 1), (1, 1)]
    (web,) = report.apps
    assert (web.app, web.source, web.error) == ("web", str(path), None)
    assert web.added == ("token", "db.password", "db.port", "debug", "ratio")  # file order
    assert report.changed_anything and report.errors == []
    assert secrets.load_all("web") == WEB_FLAT
    assert secrets.list("web") == sorted(WEB_FLAT)
    assert all(versions(secrets, "web", k) == [(1, "live")] for k in WEB_FLAT)
    assert set(secrets.store.origins("default", "web").values()) == {"sops"}


def test_a_second_sync_changes_nothing(secrets: Secrets, folder: Path) -> None:
    write_app(folder, "web", WEB)
    secrets.sync()
    seq = secrets.store.last_change()
    report = secrets.sync()
    assert not report.changed_anything
    (web,) = report.apps
    assert (web.added, web.changed, web.deleted, web.unchanged) == ((), (), (), 5)
    assert secrets.store.last_change() == seq
    assert all(versions(secrets, "web", k) == [(1, "live")] for k in WEB_FLAT)


def test_one_changed_value_makes_one_new_version(secrets: Secrets, folder: Path) -> None:
    write_app(folder, "web", WEB)
    secrets.sync()
    write_app(folder, "web", {**WEB, "token": "t2"})  # every ciphertext is new
    report = secrets.sync()
    (web,) = report.apps
    assert (web.added, web.changed, web.deleted, web.unchanged) == ((), ("token",), (), 4)
    assert versions(secrets, "web", "token") == [(1, "live"), (2, "live")]
    assert secrets.get("web", "token") == "t2"
    assert secrets.get("web", "token", version=1) == "t1"
    for key in ("db.password", "db.port", "debug", "ratio"):
        assert versions(secrets, "web", key) == [(1, "live")]


def test_a_key_that_left_the_file_is_soft_deleted(secrets: Secrets, folder: Path) -> None:
    write_app(folder, "web", WEB)
    secrets.sync()
    write_app(folder, "web", {k: v for k, v in WEB.items() if k != "debug"})
    (web,) = secrets.sync().apps
    assert web.deleted == ("debug",)
    assert versions(secrets, "web", "debug") == [(1, "deleted")]
    assert secrets.get("web", "debug") is None
    assert "debug" not in secrets.list("web")
    assert not secrets.sync().changed_anything
    # Back in the file: a new version.
    write_app(folder, "web", {**WEB, "debug": False})
    (web,) = secrets.sync().apps
    assert web.added == ("debug",)
    assert versions(secrets, "web", "debug") == [(1, "deleted"), (2, "live")]
    assert secrets.get("web", "debug") == "false"


def test_a_removed_file_soft_deletes_its_keys(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    write_app(folder, "db", {"url": "postgres://"})
    secrets.sync()
    path.unlink()
    report = secrets.sync()
    gone = [a for a in report.apps if a.app == "web"]
    assert len(gone) == 1 and gone[0].source == "(file removed)"
    assert sorted(gone[0].deleted) == sorted(WEB_FLAT)
    assert secrets.list("web") == [] and secrets.load_all("web") == {}
    assert all(versions(secrets, "web", k) == [(1, "deleted")] for k in WEB_FLAT)
    assert secrets.get("db", "url") == "postgres://"
    assert not secrets.sync().changed_anything


def test_keys_put_by_hand_are_left_alone(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.put("manual", "k", "by hand")  # an app without a file: the store alone
    secrets.sync()
    # A key of the store's own in an app that has a file.
    secrets.store.put("default", "web", "local-only", "mine")
    write_app(folder, "web", {"token": "t2"})
    secrets.sync()
    path.unlink()
    secrets.sync()
    assert versions(secrets, "manual", "k") == [(1, "live")]
    assert secrets.get("manual", "k") == "by hand"
    assert versions(secrets, "web", "local-only") == [(1, "live")]
    assert secrets.load_all("web") == {"local-only": "mine"}
    assert set(secrets.store.origins("default", "manual").values()) == {"local"}


def _tamper(path: Path) -> None:
    """Change one base64 character inside the ciphertext of the first value."""
    text = path.read_text()
    match = re.search(r"ENC\[AES256_GCM,data:([A-Za-z0-9+/]+)", text)
    assert match is not None
    i = match.start(1)
    text = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
    path.write_text(text)


def test_bad_files_are_reported_by_name_and_the_others_sync(secrets: Secrets,
                                                             folder: Path) -> None:
    write_app(folder, "good", {"k": "good-value"})
    tampered = write_app(folder, "tampered", {"k": "tampered-value"})
    _tamper(tampered)
    foreign = write_app(folder, "foreign", {"k": "foreign-value"},
                        recipient=generate_identity().to_recipient().text)
    badname = write_app(folder, "badname", {"a/b": "badname-value"})
    report = secrets.sync()
    errors = {a.app: a for a in report.errors}
    assert sorted(errors) == ["badname", "foreign", "tampered"]
    assert errors["tampered"].source == str(tampered)
    assert errors["foreign"].source == str(foreign)
    assert errors["badname"].source == str(badname)
    for failed in errors.values():
        assert failed.error and not failed.changed_anything
        assert f"{failed.app}-value" not in failed.error
    assert "key name" in str(errors["badname"].error)
    assert secrets.get("good", "k") == "good-value"
    assert secrets.store.list_apps("default") == ["good"]
    # Reading a key of the tampered file directly fails loudly.
    with pytest.raises(IntegrityError):
        secrets.get("tampered", "k")


def test_a_file_that_breaks_later_keeps_its_keys(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.sync()
    _tamper(path)
    report = secrets.sync()
    assert [a.app for a in report.errors] == ["web"]
    assert not report.changed_anything
    assert {k: secrets.get("web", k) for k in WEB_FLAT} == WEB_FLAT
    assert secrets.store.load_all("default", "web") == WEB_FLAT


def test_load_all_survives_a_file_that_breaks_later(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.sync()
    _tamper(path)
    assert secrets.list("web") == sorted(WEB_FLAT)
    assert secrets.load_all("web") == WEB_FLAT


def test_sync_needs_a_source(tmp_path: Path) -> None:
    with Secrets.open(home=tmp_path / "home", source="none", env={}) as s, \
            pytest.raises(ConfigError, match="no secrets folder"):
        s.sync()


# -- read-through -------------------------------------------------------------------------


def test_a_never_synced_app_is_read_from_its_file_and_cached(secrets: Secrets,
                                                             folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    assert secrets.store.list_apps("default") == []
    assert secrets.get("web", "token") == "t1"
    assert versions(secrets, "web", "token") == [(1, "live")]
    assert secrets.store.origins("default", "web") == {("web", "token"): "sops"}
    assert secrets.get("web", "absent") is None
    # list names the file's keys; load_all caches all of them.
    assert secrets.list("web") == sorted(WEB_FLAT)
    assert secrets.load_all("web") == WEB_FLAT
    assert secrets.store.list_keys("default", "web") == sorted(WEB_FLAT)
    # history of a key not read yet also reads it through.
    write_app(folder, "db", {"url": "x"})
    assert versions(secrets, "db", "url") == [(1, "live")]
    # The store answers first; the file's new value arrives with the next sync.
    write_app(folder, "web", {**WEB, "token": "t2"})
    assert secrets.get("web", "token") == "t1"
    secrets.sync()
    assert secrets.get("web", "token") == "t2"
    path.unlink()
    secrets.sync()
    assert secrets.get("web", "token") is None


def test_a_second_instance_caches_the_same_version(tmp_path: Path, folder: Path,
                                                   env: dict[str, str]) -> None:
    write_app(folder, "web", WEB)
    home = tmp_path / "home"
    with Secrets.open(home=home, secrets_dir=folder, env=env) as one, \
            Secrets.open(home=home, secrets_dir=folder, env=env) as two:
        assert one.get("web", "token") == "t1"
        assert two.get("web", "token") == "t1"
        assert versions(two, "web", "token") == [(1, "live")]


# -- writes into the file ----------------------------------------------------------------


def _only_value_and_mac_changed(before: str, after: str, key_line: str) -> None:
    diff = changed_lines(before, after)
    kinds = []
    for old, new in diff:
        assert old.split(":", 1)[0] == new.split(":", 1)[0]
        kinds.append(old.strip().split(":", 1)[0].strip('"'))
    assert key_line in kinds
    assert set(kinds) <= {key_line, "mac", "lastmodified"}, diff
    assert "mac" in kinds


def test_put_changes_only_that_value_in_the_file(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.sync()
    before = path.read_text()
    assert secrets.put("web", "db.password", "new-pw") == 2
    after = path.read_text()
    _only_value_and_mac_changed(before, after, "password")
    assert read_file(path)["db"] == {"password": "new-pw", "port": 5432}
    assert secrets.get("web", "db.password") == "new-pw"
    assert not secrets.sync().changed_anything
    # cas is checked before the file is touched.
    from macula_secrets.errors import ConflictError

    with pytest.raises(ConflictError):
        secrets.put("web", "db.password", "lost", cas=1)
    assert path.read_text() == after
    # A new key is added to the file.
    assert secrets.put("web", "extra", "added") == 1
    assert read_file(path)["extra"] == "added"
    assert not secrets.sync().changed_anything


def test_rollback_with_a_file_writes_the_old_value_into_it(secrets: Secrets,
                                                           folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.sync()
    secrets.put("web", "token", "t2")
    assert secrets.rollback("web", "token", 1) == 3
    assert read_file(path)["token"] == "t1"
    assert not secrets.sync().changed_anything


def test_delete_removes_the_key_from_the_file(secrets: Secrets, folder: Path) -> None:
    path = write_app(folder, "web", WEB)
    secrets.sync()
    secrets.delete("web", "token")
    assert "token" not in read_file(path)
    assert secrets.get("web", "token") is None
    assert versions(secrets, "web", "token") == [(1, "deleted")]
    assert not secrets.sync().changed_anything
    secrets.undelete("web", "token")
    assert read_file(path)["token"] == "t1"
    assert not secrets.sync().changed_anything
    # A nested key, never read into the store before.
    secrets.delete("web", "db.port")
    assert read_file(path)["db"] == {"password": "pw"}
    assert versions(secrets, "web", "db.port") == [(1, "deleted")]


@pytest.mark.parametrize("ext", ["env", "json"])
def test_dotenv_and_json_files(secrets: Secrets, folder: Path, ext: str) -> None:
    plain = b"TOKEN=abc\nURL=postgres://x\n" if ext == "env" else \
        b'{"TOKEN": "abc", "db": {"URL": "postgres://x"}, "ON": true}'
    path = write_app(folder, "app", plain, ext=ext)
    report = secrets.sync()
    assert report.errors == []
    want = {"TOKEN": "abc", "URL": "postgres://x"} if ext == "env" else \
        {"TOKEN": "abc", "db.URL": "postgres://x", "ON": "true"}
    assert secrets.load_all("app") == want
    before = path.read_text()
    assert secrets.put("app", "TOKEN", "xyz") == 2
    after = path.read_text()
    if ext == "json":
        _only_value_and_mac_changed(before, after, "TOKEN")
    else:
        diff = changed_lines(before, after)
        assert {old.split("=", 1)[0] for old, _new in diff} <= {
            "TOKEN", "sops_mac", "sops_lastmodified"}
    assert read_file(path)["TOKEN"] == "xyz"
    secrets.delete("app", "TOKEN")
    assert "TOKEN" not in read_file(path)
    assert not secrets.sync().changed_anything


def test_json_integers_read_as_written(secrets: Secrets, folder: Path) -> None:
    write_app(folder, "app", b'{"port": 5432, "ratio": 1.5, "big": 1e300}', ext="json")
    assert secrets.get("app", "port") == "5432"
    assert secrets.get("app", "ratio") == "1.5"
    assert secrets.get("app", "big") == "1e+300"


def test_age_key_file_from_the_configuration(tmp_path: Path, folder: Path,
                                             age_key_file: Path) -> None:
    write_app(folder, "web", WEB)
    config = tmp_path / "cwd" / "macula-secrets.toml"
    config.write_text(f'age_key_file = "{age_key_file}"\n')
    with Secrets.open(home=tmp_path / "home", secrets_dir=folder, env={}) as s:
        assert s.sync().errors == []
        assert s.get("web", "token") == "t1"


def test_a_tenant_reads_its_own_subfolder(secrets: Secrets, folder: Path) -> None:
    write_app(folder, "web", WEB)
    (folder / "acme").mkdir()
    write_app(folder / "acme", "web", {"token": "acme-token"})
    acme = secrets.with_tenant("acme")
    assert acme.get("web", "token") == "acme-token"
    assert secrets.get("web", "token") == "t1"
    report = acme.sync()
    assert [a.app for a in report.apps] == ["web"] and report.errors == []
    assert acme.load_all("web") == {"token": "acme-token"}
    assert secrets.store.list_tenants() == ["acme", "default"]

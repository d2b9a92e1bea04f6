"""The store with a sops source, against files made and read by the real sops 3.11.

sops encrypts the app files; ``Secrets.sync`` and ``Secrets.get`` read them; a
``Secrets.put``/``delete`` rewrites one value (the rest of the file stays byte
for byte), and sops must decrypt the result, MAC included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.keys.age import generate_identity
from tests.conftest import TEST_AGE_PUBLIC, run_sops

pytestmark = pytest.mark.interop

WEB_YAML = b"token: t1\ndb:\n    password: pw\n    port: 5432\ndebug: true\n"
WEB_FLAT = {"token": "t1", "db.password": "pw", "db.port": "5432", "debug": "true"}


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    return path


class Sops:
    def __init__(self, binary: str, env: dict[str, str], scratch: Path) -> None:
        self.binary = binary
        self.env = env
        self.scratch = scratch
        scratch.mkdir(exist_ok=True)

    def ok(self, *args: str) -> bytes:
        result = run_sops(self.binary, *args, env=self.env)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    def encrypt_to(self, target: Path, plain: bytes, ext: str,
                   recipient: str = TEST_AGE_PUBLIC) -> Path:
        """sops encrypts ``plain`` (format from ``ext``) into ``target``."""
        source = self.scratch / f"plain.{ext}"
        source.write_bytes(plain)
        target.write_bytes(self.ok("encrypt", "--age", recipient, str(source)))
        return target

    def decrypt(self, path: Path) -> bytes:
        return self.ok("decrypt", str(path))

    def extract(self, path: Path, index: str) -> bytes:
        return self.ok("decrypt", "--extract", index, str(path))


@pytest.fixture
def sops(sops_bin: str, sops_env: dict[str, str], tmp_path: Path) -> Sops:
    return Sops(sops_bin, sops_env, tmp_path / "scratch")


@pytest.fixture
def secrets(tmp_path: Path, folder: Path, sops_env: dict[str, str]) -> Iterator[Secrets]:
    s = Secrets.open(home=tmp_path / "home", secrets_dir=folder, env=sops_env)
    yield s
    s.close()


def versions(secrets: Secrets, app: str, key: str) -> list[tuple[int, str]]:
    return [(i.version, i.state) for i in secrets.history(app, key)]


def assert_one_value_changed(before: bytes, after: bytes, key: str) -> None:
    """Only the line of ``key``, the MAC and lastmodified differ."""
    a, b = before.decode().splitlines(), after.decode().splitlines()
    assert len(a) == len(b)
    names = set()
    for old, new in zip(a, b, strict=True):
        if old != new:
            name = re.split(r"[:=]", old.strip(), maxsplit=1)[0].strip('"')
            assert name == re.split(r"[:=]", new.strip(), maxsplit=1)[0].strip('"')
            names.add(name)
    assert key in names
    assert names - {key} <= {"mac", "lastmodified", "sops_mac", "sops_lastmodified"}
    assert names & {"mac", "sops_mac"}


# -- sync ---------------------------------------------------------------------------


def test_sync_files_made_by_sops(secrets: Secrets, folder: Path, sops: Sops) -> None:
    sops.encrypt_to(folder / "web.enc.yaml", WEB_YAML, "yaml")
    sops.encrypt_to(folder / "env.enc.env", b"TOKEN=abc\nPORT=5432\n", "env")
    sops.encrypt_to(folder / "api.enc.json", b'{"key": "k1", "nested": {"on": false}}', "json")
    report = secrets.sync()
    assert report.errors == []
    assert sorted(a.app for a in report.apps) == ["api", "env", "web"]
    assert secrets.load_all("web") == WEB_FLAT
    assert secrets.load_all("env") == {"TOKEN": "abc", "PORT": "5432"}
    assert secrets.load_all("api") == {"key": "k1", "nested.on": "false"}
    seq = secrets.store.last_change()
    again = secrets.sync()
    assert not again.changed_anything and secrets.store.last_change() == seq


def test_a_value_set_by_sops_makes_one_new_version(secrets: Secrets, folder: Path,
                                                   sops: Sops) -> None:
    path = sops.encrypt_to(folder / "web.enc.yaml", WEB_YAML, "yaml")
    secrets.sync()
    sops.ok("set", str(path), '["token"]', '"t2"')
    (web,) = secrets.sync().apps
    assert (web.added, web.changed, web.deleted, web.unchanged) == ((), ("token",), (), 3)
    assert versions(secrets, "web", "token") == [(1, "live"), (2, "live")]
    assert secrets.get("web", "token") == "t2"
    sops.ok("unset", str(path), '["debug"]')
    (web,) = secrets.sync().apps
    assert web.deleted == ("debug",)
    assert versions(secrets, "web", "debug") == [(1, "deleted")]


def test_tampered_and_foreign_files_are_reported(secrets: Secrets, folder: Path,
                                                 sops: Sops) -> None:
    sops.encrypt_to(folder / "good.enc.yaml", b"k: good\n", "yaml")
    tampered = sops.encrypt_to(folder / "tampered.enc.yaml", b"k: secret-tampered\n", "yaml")
    text = tampered.read_text()
    match = re.search(r"k: ENC\[AES256_GCM,data:([A-Za-z0-9+/])", text)
    assert match is not None
    i = match.start(1)
    tampered.write_text(text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:])
    sops.encrypt_to(folder / "foreign.enc.yaml", b"k: secret-foreign\n", "yaml",
                    recipient=generate_identity().to_recipient().text)
    report = secrets.sync()
    errors = {a.app: a for a in report.errors}
    assert sorted(errors) == ["foreign", "tampered"]
    assert errors["tampered"].source == str(tampered)
    for failed in errors.values():
        assert failed.error and "secret-" not in failed.error
    assert secrets.get("good", "k") == "good"
    # sops agrees the tampered file is bad.
    result = run_sops(sops.binary, "decrypt", str(tampered), env=sops.env)
    assert result.returncode != 0


# -- read-through and writes ------------------------------------------------------------


def test_get_reads_a_sops_file_and_caches_it(secrets: Secrets, folder: Path,
                                             sops: Sops) -> None:
    sops.encrypt_to(folder / "web.enc.yaml", WEB_YAML, "yaml")
    assert secrets.get("web", "db.password") == "pw"
    assert versions(secrets, "web", "db.password") == [(1, "live")]
    assert secrets.store.origins("default", "web") == {("web", "db.password"): "sops"}


@pytest.mark.parametrize("ext, plain, key, index", [
    ("yaml", WEB_YAML, "db.password", '["db"]["password"]'),
    ("json", b'{"db": {"password": "pw"}, "other": "o"}', "db.password",
     '["db"]["password"]'),
    ("env", b"PASSWORD=pw\nOTHER=o\n", "PASSWORD", '["PASSWORD"]'),
], ids=["yaml", "json", "env"])
def test_put_rewrites_one_value_and_sops_reads_it(secrets: Secrets, folder: Path, sops: Sops,
                                                  ext: str, plain: bytes, key: str,
                                                  index: str) -> None:
    path = sops.encrypt_to(folder / f"app.enc.{ext}", plain, ext)
    secrets.sync()
    before = path.read_bytes()
    assert secrets.put("app", key, "new: 'pw' ü") == 2
    after = path.read_bytes()
    assert_one_value_changed(before, after, key.rsplit(".", 1)[-1])
    extracted = sops.extract(path, index)
    assert extracted.decode().rstrip("\n") == "new: 'pw' ü"
    assert not secrets.sync().changed_anything
    # delete takes the key out of the file; sops still opens it.
    secrets.delete("app", key)
    decrypted = sops.decrypt(path).decode()
    assert "new: 'pw'" not in decrypted and "pw" not in decrypted.replace("password", "")
    assert secrets.get("app", key) is None
    assert not secrets.sync().changed_anything


def test_put_of_a_new_key_is_read_by_sops(secrets: Secrets, folder: Path, sops: Sops) -> None:
    path = sops.encrypt_to(folder / "api.enc.json", b'{"key": "k1"}', "json")
    secrets.put("api", "added", "v")
    assert json.loads(sops.decrypt(path)) == {"key": "k1", "added": "v"}
    secrets.put("api", "db.url", "u")  # no "db" mapping yet: a top-level dotted key
    assert json.loads(sops.decrypt(path))["db.url"] == "u"
    assert secrets.sync().errors == []
    assert secrets.load_all("api") == {"key": "k1", "added": "v", "db.url": "u"}

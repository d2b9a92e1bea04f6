"""Apps whose source is an age-encrypted env file, read through Secrets, sync and run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets import sops as sopslib
from macula_secrets.backends.envfile import encrypt_file
from macula_secrets.errors import PermissionDeniedError
from tests.cli._support import run_proc
from tests.conftest import TEST_AGE_PUBLIC

ENV = b'DATABASE_URL="postgres://db/x"\nexport API_TOKEN=tok_1\n# a comment\nEMPTY=\n'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    (path / "billing.env.age").write_bytes(encrypt_file(ENV, [TEST_AGE_PUBLIC]))
    return path


@pytest.fixture
def secrets(tmp_path: Path, folder: Path, age_key_file: Path, private_cwd: Path) -> Secrets:
    s = Secrets.open(home=tmp_path / "home", secrets_dir=folder,
                     env={"SOPS_AGE_KEY_FILE": str(age_key_file)})
    yield s
    s.close()


def test_reads_come_from_the_env_file_and_are_cached(secrets: Secrets) -> None:
    assert secrets.get("billing", "DATABASE_URL") == "postgres://db/x"
    assert secrets.list("billing") == ["API_TOKEN", "DATABASE_URL", "EMPTY"]
    assert secrets.load_all("billing") == {"DATABASE_URL": "postgres://db/x",
                                           "API_TOKEN": "tok_1", "EMPTY": ""}
    assert secrets.store.origins("default", "billing")[("billing", "API_TOKEN")] == "envfile"


def test_env_files_are_read_only(secrets: Secrets) -> None:
    with pytest.raises(PermissionDeniedError, match="read-only") as info:
        secrets.put("billing", "API_TOKEN", "tok_2")
    assert info.value.hint is not None and "envfile edit" in info.value.hint
    assert secrets.get("billing", "API_TOKEN") == "tok_1"
    with pytest.raises(PermissionDeniedError):
        secrets.delete("billing", "API_TOKEN")


def test_sync_takes_env_files_and_reports_a_clash(secrets: Secrets, folder: Path) -> None:
    report = secrets.sync()
    assert [(a.app, sorted(a.added)) for a in report.apps] == [
        ("billing", ["API_TOKEN", "DATABASE_URL", "EMPTY"])]
    assert not secrets.sync().changed_anything
    (folder / "billing.env.age").write_bytes(
        encrypt_file(ENV.replace(b"tok_1", b"tok_2"), [TEST_AGE_PUBLIC]))
    report = secrets.sync()
    assert [a.changed for a in report.apps] == [("API_TOKEN",)]
    assert secrets.get("billing", "API_TOKEN") == "tok_2"
    (folder / "billing.enc.yaml").write_bytes(
        sopslib.encrypt({"API_TOKEN": "from-sops"}, recipients=[TEST_AGE_PUBLIC]))
    report = secrets.sync()
    assert [a.source for a in report.errors] == [str(folder / "billing.env.age")]
    assert secrets.get("billing", "API_TOKEN") == "from-sops"
    assert secrets.get("billing", "DATABASE_URL") == "postgres://db/x"  # not deleted meanwhile
    (folder / "billing.enc.yaml").unlink()
    (folder / "billing.env.age").unlink()
    report = secrets.sync()
    assert secrets.list("billing") == []


def test_run_injects_env_file_secrets(tmp_path: Path, folder: Path, age_key_file: Path) -> None:
    env = {**os.environ, "MACULA_SECRETS_HOME": str(tmp_path / "home"),
           "MACULA_SECRETS_DIR": str(folder), "SOPS_AGE_KEY_FILE": str(age_key_file)}
    r = run_proc("run", "--app", "billing", "--", "sh", "-c", 'printf %s "$API_TOKEN"', env=env)
    assert r.rc == 0, r.err
    assert r.out == b"tok_1"

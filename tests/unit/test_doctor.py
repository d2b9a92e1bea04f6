"""The doctor's checks as library functions: no command line, no subprocesses, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from macula_secrets import doctor
from macula_secrets._config import Config, MasterKeyConfig
from macula_secrets.keys.master import MasterKeyFile
from macula_secrets.localstore.store import LocalStore


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    home = tmp_path / "home"
    store = LocalStore(str(home / "store.db"), MasterKeyFile(str(home / "master.key")))
    store.put("default", "web", "password", "value-1")
    store.close()
    return Config(home=str(home), secrets_dir=None, source="none")


def test_file_names_match_the_server() -> None:
    from macula_secrets.server.run import AUDIT_FILE
    from macula_secrets.server.tokens import TOKENS_FILE

    assert doctor.TOKENS_FILE == TOKENS_FILE
    assert doctor.SERVER_AUDIT_FILE == AUDIT_FILE


def test_permissions(cfg: Config, tmp_path: Path) -> None:
    key = Path(cfg.master_key_path)
    found = doctor.check_permissions(cfg, {}, user_home=str(tmp_path))
    assert [r.status for r in found if r.check == "keys"] == ["ok"]
    key.chmod(0o660)
    bad = [r for r in doctor.check_permissions(cfg, {}, user_home=str(tmp_path))
           if r.status == "fail"]
    assert [(r.message, r.hint) for r in bad] == [
        (f"master key file {key}: mode 0660, others can read and change it",
         f"chmod 600 {key}")]
    key.chmod(0o600)
    # Owned by someone else (seen from another uid): a failure, root only a warning.
    other = doctor.check_permissions(cfg, {}, user_home=str(tmp_path), uid=os.getuid() + 1)
    owner = [r for r in other if r.message.startswith("master key file")]
    expected = "warn" if os.getuid() == 0 else "fail"
    assert [r.status for r in owner] == [expected]
    # A group-readable home folder warns; the store's ciphertext only warns too.
    Path(cfg.home).chmod(0o750)
    Path(cfg.store_path).chmod(0o644)
    warns = [r.message for r in doctor.check_permissions(cfg, {}, user_home=str(tmp_path))
             if r.status == "warn"]
    assert len(warns) == 2 and warns[0].startswith(f"home folder {cfg.home}: mode 0750")


def test_sealed_key_file_is_named(cfg: Config, tmp_path: Path) -> None:
    sealed = Config(home=cfg.home, secrets_dir=None, source="none",
                    master_key=MasterKeyConfig(path=str(tmp_path / "elsewhere.sealed")))
    Path(tmp_path / "elsewhere.sealed").write_text("macula-sealed-key tpm 1\n")
    Path(tmp_path / "elsewhere.sealed").chmod(0o644)
    bad = [r for r in doctor.check_permissions(sealed, {}, user_home=str(tmp_path))
           if r.status == "fail"]
    assert [r.hint for r in bad] == [f"chmod 600 {tmp_path / 'elsewhere.sealed'}"]


def test_store_check_and_value_never_in_results(cfg: Config) -> None:
    results = doctor.check_store(cfg, {})
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[1].message == "1 live version of 1 key decrypt (tenants: default)"
    assert all("value-1" not in r.message for r in results)
    assert doctor.check_store(cfg, {}, tenants=["nobody"])[1].message.endswith(
        "(tenants: no tenants)")


def test_wrong_master_key_fails_unlock(cfg: Config) -> None:
    Path(cfg.master_key_path).unlink()
    MasterKeyFile(cfg.master_key_path).create(os.urandom(32))
    results = doctor.check_store(cfg, {})
    assert results[-1].status == "fail"
    assert results[-1].message.startswith("cannot unlock the store: the master key in key file")


def test_run_checks_and_failed(cfg: Config) -> None:
    results = doctor.run_checks(cfg, {}, now=os.stat(cfg.store_path).st_mtime)
    assert not doctor.failed(results)
    assert [r.check for r in results if r.check in ("tpm", "vault", "secrets")] == [
        "tpm", "vault", "secrets"]
    assert doctor.failed([*results, doctor.Result("x", "fail", "broken")])

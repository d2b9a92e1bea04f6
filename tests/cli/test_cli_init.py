"""Black-box tests of `init`, the first-run wizard: identity, master key provider, recovery.

The tpm case runs against the swtpm simulator, the escrow case decrypts with the real
`age`; both are marked interop.
"""

from __future__ import annotations

import base64
import builtins
import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets._config import load_config
from macula_secrets._masterkey import open_provider
from macula_secrets.cli import initcmd
from macula_secrets.errors import KeySourceError
from tests.cli._support import CANARY, Result, run_cli

PASSPHRASE = "pw-" + CANARY


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private identity location, no passphrase or provider from the outside."""
    return {"SOPS_AGE_KEY_FILE": str(tmp_path / "age" / "keys.txt"),
            "MACULA_SECRETS_PASSPHRASE": "", "MACULA_SECRETS_KEY_PROVIDER": "",
            "MACULA_SECRETS_MASTER_KEY": "", "MACULA_SECRETS_CONFIG": "",
            "MACULA_SECRETS_HOME": "", "MACULA_SECRETS_SOURCE": "none"}


def init(home: Path, env: dict[str, str], *args: str | os.PathLike[str]) -> Result:
    return run_cli("init", "--home", home, "--yes", *args, env=env, cwd=home.parent)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def full_env(env: dict[str, str]) -> dict[str, str]:
    merged = dict(os.environ)
    for k, v in env.items():
        if v:
            merged[k] = v
        else:
            merged.pop(k, None)
    return merged


def master_key(home: Path, env: dict[str, str]) -> bytes:
    e = full_env(env)
    return open_provider(load_config(e, home=str(home), source="none"), e).candidates()[0]


def check_store(home: Path, env: dict[str, str], result: Result, provider: str, *,
                config_mode: int = 0o600) -> None:
    """The store opens as configured, a put/get round trip holds, nothing secret leaked."""
    result.assert_ok()
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["master_key"]["provider"] == provider
    with Secrets.open(home=home, source="none", env=full_env(env)) as secrets:
        secrets.put("console", "db_password", CANARY)
    with Secrets.open(home=home, source="none", env=full_env(env)) as secrets:
        assert secrets.require("console", "db_password") == CANARY
    key = master_key(home, env)
    for text in (result.text, result.err):
        assert base64.b64encode(key).decode() not in text
        assert key.hex() not in text
        assert "AGE-SECRET-KEY" not in text
        assert PASSPHRASE not in text
    for path in [*home.iterdir(), Path(env["SOPS_AGE_KEY_FILE"])]:
        if path.is_file():
            wanted = config_mode if path.name == "config.toml" else 0o600
            assert mode(path) == wanted, path
    assert f"macula-secrets is set up in {home}" in result.text


def age_keygen(path: Path) -> str:
    """A new age identity in ``path`` from the real age-keygen; returns its public key."""
    if shutil.which("age-keygen") is None:
        pytest.skip("age-keygen is not installed")
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True,
                   timeout=30)
    text = path.read_text()
    return text.split("# public key: ", 1)[1].split()[0]


def test_file_provider(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    r = init(home, env)
    check_store(home, env, r, "file")
    identity = Path(env["SOPS_AGE_KEY_FILE"])
    public = identity.read_text().split("# public key: ", 1)[1].split()[0]
    assert f"public key     {public}" in r.text
    assert (home / "master.key").exists()
    assert "back up" in r.text.lower()


def test_passphrase_from_the_environment(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    env["MACULA_SECRETS_PASSPHRASE"] = PASSPHRASE
    r = init(home, env, "--provider", "passphrase")
    check_store(home, env, r, "passphrase")
    assert not (home / "master.key").exists()
    assert (home / "master.key.sealed").exists()
    env["MACULA_SECRETS_PASSPHRASE"] = "another passphrase"
    with pytest.raises(KeySourceError):  # the wrong passphrase opens nothing
        Secrets.open(home=home, source="none", env=full_env(env))


@pytest.mark.parametrize("kind", ["age", "ssh-ed25519"])
def test_identity_provider(tmp_path: Path, env: dict[str, str], kind: str) -> None:
    home = tmp_path / "home"
    node = tmp_path / "node_key"
    if kind == "age":
        age_keygen(node)
    else:
        if shutil.which("ssh-keygen") is None:
            pytest.skip("ssh-keygen is not installed")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(node)],
                       check=True, capture_output=True, timeout=30)
    r = init(home, env, "--provider", "identity", "--node-identity", node)
    check_store(home, env, r, "identity")
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["master_key"]["identity"] == str(node)
    assert not (home / "master.key").exists()


def test_identity_provider_defaults_to_the_new_identity(tmp_path: Path,
                                                        env: dict[str, str]) -> None:
    home = tmp_path / "home"
    r = init(home, env, "--provider", "identity")
    check_store(home, env, r, "identity")
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["master_key"]["identity"] == env["SOPS_AGE_KEY_FILE"]


@pytest.fixture(scope="module")
def swtpm() -> Iterator[str]:
    from tests._swtpm import missing_tools, start_swtpm

    if missing_tools():
        pytest.skip(f"not installed: {', '.join(missing_tools())}")
    with start_swtpm() as tpm:
        yield tpm.tcti


@pytest.mark.interop
def test_tpm_provider(tmp_path: Path, env: dict[str, str], swtpm: str) -> None:
    home = tmp_path / "home"
    r = init(home, env, "--provider", "tpm", "--tcti", swtpm, "--pcrs", "sha256:7")
    check_store(home, env, r, "tpm")
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["master_key"]["tcti"] == swtpm
    assert config["master_key"]["pcrs"] == "sha256:7"
    assert not (home / "master.key").exists()


def test_shares_restore_the_key(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "shares"
    r = init(home, env, "--shares", "3", "--threshold", "2", "--shares-dir", folder)
    check_store(home, env, r, "file")
    files = sorted(folder.iterdir())
    assert len(files) == 3 and all(mode(f) == 0o600 for f in files)
    assert "any 2 restore the key" in r.text
    (home / "master.key").unlink()
    run_cli("key", "combine", files[0], files[2], "--home", home, env=env).assert_ok()
    with Secrets.open(home=home, source="none", env=full_env(env)) as secrets:
        assert secrets.require("console", "db_password") == CANARY


@pytest.mark.interop
def test_escrow_copy_opens_with_the_real_age(tmp_path: Path, env: dict[str, str]) -> None:
    if shutil.which("age") is None:
        pytest.skip("age is not installed")
    home = tmp_path / "home"
    recovery = tmp_path / "recovery.txt"
    public = age_keygen(recovery)
    r = init(home, env, "--recovery-recipient", public)
    check_store(home, env, r, "file")
    escrow = home / "master.key.recovery.age"
    assert mode(escrow) == 0o600
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["master_key"]["recovery_recipients"] == [public]
    restored = tmp_path / "restored"
    restored.mkdir()
    out = subprocess.run(["age", "-d", "-i", str(recovery), str(escrow)], check=True,
                         capture_output=True, timeout=30).stdout
    (home / "master.key").unlink()
    key_file = home / "master.key"
    key_file.write_bytes(out)
    key_file.chmod(0o600)
    with Secrets.open(home=home, source="none", env=full_env(env)) as secrets:
        assert secrets.require("console", "db_password") == CANARY


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int]]:
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                found[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def test_rerun_on_an_initialised_home_changes_nothing(tmp_path: Path,
                                                      env: dict[str, str]) -> None:
    home = tmp_path / "home"
    init(home, env).assert_ok()
    before = snapshot(home, tmp_path / "age")
    line = init(home, env, "--provider", "passphrase").assert_one_error()
    assert "already initialised" in line
    assert snapshot(home, tmp_path / "age") == before


def test_force_finishes_an_interrupted_init(tmp_path: Path, env: dict[str, str]) -> None:
    """A store with a plain key file and no [master_key] table: --force moves the key
    and writes the table; a second --force has nothing to do and replaces nothing."""
    home = tmp_path / "home"
    Secrets.open(home=home, source="none", env=full_env(env)).close()
    env["MACULA_SECRETS_PASSPHRASE"] = PASSPHRASE
    r = init(home, env, "--force", "--provider", "passphrase")
    check_store(home, env, r, "passphrase")
    before = snapshot(home)
    again = init(home, env, "--force").assert_ok()
    assert "unchanged" in again.text
    assert {p: v for p, v in snapshot(home).items() if "store.db" not in p} == {
        p: v for p, v in before.items() if "store.db" not in p}


def test_existing_master_key_table_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('tenant = "default"\n[master_key]\nprovider = "file"\n')
    line = init(home, env).assert_one_error()
    assert "already has a [master_key] table" in line
    assert sorted(p.name for p in home.iterdir()) == ["config.toml"]


def test_existing_config_is_kept(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("# mine\nmax_versions = 5\n")
    (home / "config.toml").chmod(0o640)
    r = init(home, env)
    check_store(home, env, r, "file", config_mode=0o640)  # its mode is kept too
    text = (home / "config.toml").read_text()
    assert text.startswith("# mine\nmax_versions = 5\n")


def test_existing_identity_is_reused(tmp_path: Path, env: dict[str, str]) -> None:
    identity = Path(env["SOPS_AGE_KEY_FILE"])
    identity.parent.mkdir()
    public = age_keygen(identity)
    before = identity.read_bytes()
    r = init(tmp_path / "home", env)
    check_store(tmp_path / "home", env, r, "file")
    assert identity.read_bytes() == before
    assert public in r.text and "existing, unchanged" in r.text


def test_import_identity(tmp_path: Path, env: dict[str, str]) -> None:
    source = tmp_path / "old.txt"
    public = age_keygen(source)
    r = init(tmp_path / "home", env, "--import-identity", source)
    check_store(tmp_path / "home", env, r, "file")
    assert Path(env["SOPS_AGE_KEY_FILE"]).read_text() == source.read_text()
    assert public in r.text


@pytest.mark.parametrize(("args", "expected"), [
    (["--provider", "vault"], "unknown master key provider 'vault'"),
    (["--provider", "tpm"], "no TPM found"),
    (["--recovery-recipient", "age1notakey"], "invalid age recipient"),
    (["--shares", "3", "--threshold", "4"], "--threshold 4 is more than --shares 3"),
    (["--provider", "passphrase"], "no passphrase for the master key"),
    (["--import-identity", "missing.txt"], "missing.txt"),
])
def test_bad_input_creates_nothing(tmp_path: Path, env: dict[str, str], args: list[str],
                                   expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(initcmd, "TPM_DEVICE", str(tmp_path / "no-tpm"))
    home = tmp_path / "home"
    line = init(home, env, *args).assert_one_error()
    assert expected in line
    assert not home.exists()
    assert not Path(env["SOPS_AGE_KEY_FILE"]).exists()


def test_interactive(tmp_path: Path, env: dict[str, str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal: questions with defaults, the passphrase asked twice (hidden)."""
    answers = iter(["",            # import an identity? (empty: make a new one)
                    "passphrase",  # where the master key lives
                    "n",           # recovery shares?
                    ""])           # recovery recipients
    hidden: list[str] = []
    monkeypatch.setattr(initcmd, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda *a: next(answers))
    monkeypatch.setattr(initcmd, "_read_hidden", lambda prompt: hidden.append(prompt)
                        or PASSPHRASE)
    home = tmp_path / "home"
    r = run_cli("init", "--home", home, env=env, cwd=tmp_path)
    assert next(answers, None) is None
    assert len(hidden) == 2
    assert "Where should the master key live? (file, passphrase, identity" in r.err
    assert "[file]" in r.err
    env["MACULA_SECRETS_PASSPHRASE"] = PASSPHRASE
    check_store(home, env, r, "passphrase")

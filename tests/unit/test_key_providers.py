"""Master key providers: sealed files (passphrase, node identity), the environment, escrow.

Every provider must open the same store and keep every secret; a store is
made with one provider and opened with another after ``migrate_key``.
Passphrase sealing runs age's scrypt (work factor 18, about a second), so
those tests are few.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets._config import load_config
from macula_secrets._masterkey import chosen_kind, open_provider
from macula_secrets.errors import KeySourceError
from macula_secrets.keys.master import MasterKeyFile, format_key, parse_key
from macula_secrets.keys.sealed import (
    EnvKey,
    IdentitySealer,
    PassphraseSealer,
    SealedKeyFile,
    parse_sealed,
)

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def node_key(tmp_path: Path) -> tuple[Path, str]:
    out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True)
    path = tmp_path / "node.key"
    path.write_text(out.stdout)
    path.chmod(0o600)
    recipient = next(line.split(": ", 1)[1] for line in out.stdout.splitlines()
                     if line.startswith("# public key: "))
    return path, recipient


def _config(home: Path, table: str = "") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(table)


def test_identity_sealed_key_opens_only_with_that_node(tmp_path: Path,
                                                       node_key: tuple[Path, str]) -> None:
    path, recipient = node_key
    sealed = SealedKeyFile(tmp_path / "master.key.sealed", IdentitySealer(path))
    key = os.urandom(32)
    sealed.create(key)
    text = (tmp_path / "master.key.sealed").read_text()
    assert (tmp_path / "master.key.sealed").stat().st_mode & 0o777 == 0o600
    assert base64.b64encode(key).decode() not in text
    # A fresh provider (no cache) unseals with the node's identity...
    assert SealedKeyFile(tmp_path / "master.key.sealed", IdentitySealer(path)).candidates() == [key]
    # ...and the real age CLI agrees: the blob is a standard age file to that recipient.
    blob = parse_sealed(text, source="test")
    out = subprocess.run(["age", "-d", "-i", str(path)], input=blob, capture_output=True,
                         check=True)
    assert out.stdout == key
    # Another node's identity cannot.
    other = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    other_path = tmp_path / "other.key"
    other_path.write_text(other)
    with pytest.raises(KeySourceError, match="not sealed to node identity"):
        SealedKeyFile(tmp_path / "master.key.sealed", IdentitySealer(other_path)).candidates()
    # Sealing needs only the recipient (a node enrolled from its public key).
    only_public = SealedKeyFile(tmp_path / "by-recipient", IdentitySealer(recipient=recipient))
    only_public.create(key)
    assert SealedKeyFile(tmp_path / "by-recipient", IdentitySealer(path)).candidates() == [key]


def test_ssh_ed25519_host_key_seals_the_master_key(tmp_path: Path) -> None:
    host_key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                   check=True)
    sealed = SealedKeyFile(tmp_path / "master.key.sealed", IdentitySealer(host_key))
    key = os.urandom(32)
    sealed.create(key)
    fresh = SealedKeyFile(tmp_path / "master.key.sealed", IdentitySealer(host_key))
    assert fresh.candidates() == [key]
    blob = parse_sealed((tmp_path / "master.key.sealed").read_text(), source="test")
    out = subprocess.run(["age", "-d", "-i", str(host_key)], input=blob, capture_output=True,
                         check=True)
    assert out.stdout == key


def test_passphrase_sealed_key_asks_once_and_names_a_wrong_passphrase(tmp_path: Path) -> None:
    asked: list[int] = []

    def passphrase() -> str:
        asked.append(1)
        return PASSPHRASE

    path = tmp_path / "master.key.sealed"
    sealed = SealedKeyFile(path, PassphraseSealer(passphrase))
    key = os.urandom(32)
    sealed.create(key)
    assert sealed.candidates() == [key]
    assert sealed.candidates() == [key]
    assert len(asked) == 1  # sealing; reading back the same blob is cached
    fresh = SealedKeyFile(path, PassphraseSealer(passphrase))
    assert fresh.candidates() == [key]
    assert fresh.candidates() == [key]
    assert len(asked) == 2  # one unseal for a new provider, not one per read
    wrong = SealedKeyFile(path, PassphraseSealer(lambda: "not it"))
    with pytest.raises(KeySourceError, match="wrong passphrase") as info:
        wrong.candidates()
    assert PASSPHRASE not in str(info.value) and "not it" not in str(info.value)
    assert "not it" not in repr(wrong.sealer) and PASSPHRASE not in repr(sealed.sealer)


def test_a_sealed_file_of_another_kind_names_the_right_provider(tmp_path: Path,
                                                                node_key: tuple[Path, str]
                                                                ) -> None:
    path = tmp_path / "master.key.sealed"
    SealedKeyFile(path, IdentitySealer(node_key[0])).create(os.urandom(32))
    with pytest.raises(KeySourceError, match="sealed by identity, not passphrase") as info:
        SealedKeyFile(path, PassphraseSealer(lambda: PASSPHRASE)).candidates()
    assert info.value.hint == 'set [master_key] provider = "identity"'


def test_sealed_file_readable_by_others_is_refused(tmp_path: Path,
                                                   node_key: tuple[Path, str]) -> None:
    path = tmp_path / "master.key.sealed"
    SealedKeyFile(path, IdentitySealer(node_key[0])).create(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(KeySourceError, match="can be read by others") as info:
        SealedKeyFile(path, IdentitySealer(node_key[0])).candidates()
    assert info.value.hint == f"run: chmod 600 {path}"


def test_env_key_opens_a_store_but_cannot_rotate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("app", "k", "v1")
    key_text = (home / "master.key").read_text()
    (home / "master.key").unlink()
    env = {"MACULA_SECRETS_MASTER_KEY": key_text.splitlines()[-1]}
    with Secrets.open(home=home, source="none", env=env) as secrets:
        assert secrets.get("app", "k") == "v1"
        with pytest.raises(KeySourceError, match="cannot be rotated in place"):
            secrets.rotate_master_key()
        assert secrets.get("app", "k") == "v1"
    assert repr(EnvKey(key_text)) == "EnvKey('MACULA_SECRETS_MASTER_KEY')"


def test_every_provider_opens_the_same_store(tmp_path: Path, node_key: tuple[Path, str]) -> None:
    """Made with a key file, the store opens from the environment, a node identity and a
    passphrase after the key is sealed for each; every secret stays."""
    home = tmp_path / "home"
    values = {f"k{i}": f"value {i}" for i in range(5)}
    with Secrets.open(home=home, source="none", env={}) as secrets:
        for k, v in values.items():
            secrets.put("app", k, v)
    key = MasterKeyFile(home / "master.key").candidates()[0]

    def check(env: dict[str, str]) -> None:
        with Secrets.open(home=home, source="none", env=env) as secrets:
            assert secrets.load_all("app") == values

    check({"MACULA_SECRETS_MASTER_KEY": format_key(key).splitlines()[-1]})
    (home / "master.key").unlink()
    SealedKeyFile(home / "master.key.sealed", IdentitySealer(node_key[0])).create(key)
    _config(home, f'[master_key]\nidentity = "{node_key[0]}"\n')
    cfg = load_config({}, home=str(home))
    assert chosen_kind(cfg, {}) == "identity"  # found from the sealed file
    check({})
    (home / "master.key.sealed").unlink()
    SealedKeyFile(home / "master.key.sealed", PassphraseSealer(lambda: PASSPHRASE)).create(key)
    _config(home)
    check({"MACULA_SECRETS_PASSPHRASE": PASSPHRASE})


def test_rotation_of_a_sealed_key_is_crash_safe_and_reseals(tmp_path: Path,
                                                            node_key: tuple[Path, str]) -> None:
    home = tmp_path / "home"
    _config(home, f'[master_key]\nprovider = "identity"\nidentity = "{node_key[0]}"\n')
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("app", "k", "v")
        before = (home / "master.key.sealed").read_text()
        secrets.rotate_master_key()
        assert secrets.get("app", "k") == "v"
    assert (home / "master.key.sealed").read_text() != before
    assert not (home / "master.key.next").exists()
    assert not (home / "master.key.sealed.next").exists()
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.get("app", "k") == "v"


def test_escrow_copy_follows_rotations_and_recovers_with_age(tmp_path: Path,
                                                             node_key: tuple[Path, str]) -> None:
    """The escrow copy, decrypted with the offline recovery identity by the real age CLI,
    is a master key file that opens the store, after creation and after a rotation."""
    recovery_path, recovery = node_key
    home = tmp_path / "home"
    _config(home, f'[master_key]\nrecovery_recipients = ["{recovery}"]\n')
    escrow = home / "master.key.recovery.age"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("app", "k", "v")
        first = escrow.read_bytes()
        assert first.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
        assert escrow.stat().st_mode & 0o777 == 0o600
        secrets.rotate_master_key()
    assert escrow.read_bytes() != first
    out = subprocess.run(["age", "-d", "-i", str(recovery_path), str(escrow)],
                         capture_output=True, check=True)
    recovered = parse_key(out.stdout.decode(), source="escrow")
    assert recovered == MasterKeyFile(home / "master.key").candidates()[0]
    # Losing the node's key is not losing the data: restore it from the escrow copy.
    (home / "master.key").unlink()
    fd = os.open(home / "master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, out.stdout)
    os.close(fd)
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.get("app", "k") == "v"


def test_open_provider_settings_are_checked(tmp_path: Path) -> None:
    from macula_secrets.errors import ConfigError

    home = tmp_path / "home"
    _config(home, '[master_key]\nprovider = "floppy"\n')
    with pytest.raises(ConfigError, match="provider must be one of"):
        load_config({}, home=str(home))
    _config(home, '[master_key]\nprovider = "identity"\n')
    with pytest.raises(ConfigError, match="needs \\[master_key\\] identity"):
        open_provider(load_config({}, home=str(home)), {})
    _config(home, '[master_key]\nprovider = "env"\n')
    with pytest.raises(KeySourceError, match="MACULA_SECRETS_MASTER_KEY is not set"):
        open_provider(load_config({}, home=str(home)), {})


def test_migrate_between_providers_keeps_every_secret(tmp_path: Path,
                                                      node_key: tuple[Path, str]) -> None:
    """file -> identity -> passphrase -> file, the store opening after each move."""
    from macula_secrets._masterkey import migrate

    home = tmp_path / "home"
    _config(home, f'[master_key]\nidentity = "{node_key[0]}"\n')
    values = {f"k{i}": f"value {i}" for i in range(3)}
    with Secrets.open(home=home, source="none", env={}) as secrets:
        for k, v in values.items():
            secrets.put("app", k, v)
    env = {"MACULA_SECRETS_PASSPHRASE": PASSPHRASE}

    def move(to: str, gone: str, present: str) -> None:
        cfg = load_config(env, home=str(home))
        _, new = migrate(cfg, env, to)
        assert str(home / present) in new
        assert not (home / gone).exists()
        assert (home / present).stat().st_mode & 0o777 == 0o600
        assert chosen_kind(load_config(env, home=str(home)), env) == to
        with Secrets.open(home=home, source="none", env=env) as secrets:
            assert secrets.load_all("app") == values

    move("identity", "master.key", "master.key.sealed")
    move("passphrase", "master.key", "master.key.sealed")  # sealed to sealed, one file
    assert not (home / "master.key.sealed.migrating").exists()
    move("file", "master.key.sealed", "master.key")


def test_migrate_keeps_the_old_key_when_asked_and_refuses_nonsense(tmp_path: Path) -> None:
    from macula_secrets._masterkey import migrate
    from macula_secrets.errors import ConfigError

    home = tmp_path / "home"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        secrets.put("app", "k", "v")
    env = {"MACULA_SECRETS_PASSPHRASE": PASSPHRASE}
    cfg = load_config(env, home=str(home))
    with pytest.raises(ConfigError, match="already kept by the file provider"):
        migrate(cfg, env, "file")
    with pytest.raises(ConfigError, match="cannot migrate the master key to 'env'"):
        migrate(cfg, env, "env")
    migrate(cfg, env, "passphrase", keep_old=True)
    assert (home / "master.key").exists() and (home / "master.key.sealed").exists()

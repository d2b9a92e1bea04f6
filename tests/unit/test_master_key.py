"""The master key file: format, permissions, creation that never overwrites, stale temporaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from macula_secrets.errors import KeySourceError, LockedError
from macula_secrets.keys.master import KEY_PREFIX, MasterKeyFile, format_key, parse_key


def test_create_then_read(tmp_path: Path) -> None:
    f = MasterKeyFile(tmp_path / "home" / "master.key")
    key = os.urandom(32)
    f.create(key)
    assert f.candidates() == [key]
    assert (tmp_path / "home" / "master.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    assert KEY_PREFIX in (tmp_path / "home" / "master.key").read_text()
    with pytest.raises(KeySourceError, match="already exists"):
        f.create(os.urandom(32))
    assert f.candidates() == [key]


def test_missing_key_is_locked(tmp_path: Path) -> None:
    with pytest.raises(LockedError, match="does not exist"):
        MasterKeyFile(tmp_path / "master.key").candidates()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    f = MasterKeyFile(tmp_path / "master.key")
    f.create(os.urandom(32))
    os.chmod(f.path, mode)
    with pytest.raises(KeySourceError) as info:
        f.candidates()
    assert f"mode {mode:04o}" in str(info.value)
    assert info.value.hint == f"run: chmod 600 {f.path}"


@pytest.mark.parametrize("text", ["", "hello\n", KEY_PREFIX + "!!!\n",
                                  KEY_PREFIX + "AAAA\n", "# only a comment\n"])
def test_malformed_key_files(text: str) -> None:
    with pytest.raises(KeySourceError, match="not a macula-secrets master key file"):
        parse_key(text, source="k")


def test_format_round_trip() -> None:
    key = os.urandom(32)
    assert parse_key(format_key(key), source="k") == key


def test_rotation_files(tmp_path: Path) -> None:
    f = MasterKeyFile(tmp_path / "master.key")
    old, new = os.urandom(32), os.urandom(32)
    f.create(old)
    f.begin_rotation(new)
    assert f.candidates() == [old, new]
    assert Path(f.pending_path).stat().st_mode & 0o777 == 0o600
    f.commit_rotation()
    assert f.candidates() == [new]
    f.begin_rotation(old)
    f.abort_rotation()
    assert f.candidates() == [new]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f"master.key.tmp{dead}"
    stale.write_text("leftover key material")
    f = MasterKeyFile(tmp_path / "master.key")
    f.create(os.urandom(32))
    assert not stale.exists()

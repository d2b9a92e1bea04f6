"""Black-box tests of ``macula-secrets envfile encrypt|decrypt|edit``."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from macula_secrets.keys import age
from tests.cli._support import CANARY, run_cli
from tests.conftest import TEST_AGE_PUBLIC

EDITOR = Path(__file__).with_name("editor.py")
TEXT = f'DB_PASSWORD="{CANARY}"\nTOKEN=abc # comment\n'


@pytest.fixture
def keys_env(age_key_file: Path) -> dict[str, str]:
    return {"SOPS_AGE_KEY_FILE": str(age_key_file)}


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "app.env"
    path.write_text(TEXT)
    return path


def _encrypt(plain: Path, *extra: str | Path) -> Path:
    out = plain.with_name(plain.name + ".age")
    run_cli("envfile", "encrypt", "-r", TEST_AGE_PUBLIC, *extra, "-o", out, plain).assert_ok()
    return out


@pytest.mark.parametrize("armor", [[], ["-a"]], ids=["binary", "armored"])
def test_round_trip(plain: Path, keys_env: dict[str, str], armor: list[str]) -> None:
    enc = _encrypt(plain, *armor)
    assert enc.stat().st_mode & 0o777 == 0o600
    assert CANARY.encode() not in enc.read_bytes()
    r = run_cli("envfile", "decrypt", enc, env=keys_env).assert_ok()
    assert r.out == TEXT.encode() and r.err == ""
    out = plain.parent / "decrypted.env"
    run_cli("envfile", "decrypt", "-o", out, enc, env=keys_env).assert_ok()
    assert out.read_text() == TEXT
    assert out.stat().st_mode & 0o777 == 0o600


def test_encrypt_to_stdout_and_in_place(plain: Path, keys_env: dict[str, str]) -> None:
    r = run_cli("envfile", "encrypt", "-a", "-r", TEST_AGE_PUBLIC, plain).assert_ok()
    assert r.out.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n") and r.err == ""
    run_cli("envfile", "encrypt", "-i", plain,
            env={"SOPS_AGE_RECIPIENTS": TEST_AGE_PUBLIC}).assert_ok()
    assert plain.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert run_cli("envfile", "decrypt", plain, env=keys_env).assert_ok().out == TEXT.encode()
    # Encrypting it again is refused.
    line = run_cli("envfile", "encrypt", "-i", "-r", TEST_AGE_PUBLIC, plain).assert_one_error()
    assert "already an age file" in line


def test_recipients_file(plain: Path, tmp_path: Path) -> None:
    other = age.generate_identity()
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# ops\n{TEST_AGE_PUBLIC}\n\n{other.recipient}\n")
    enc = plain.with_name("app.env.age")
    run_cli("envfile", "encrypt", "-R", recipients, "-o", enc, plain).assert_ok()
    keys = tmp_path / "other.txt"
    keys.write_text(f"{age.format_identity_file(other, created=datetime(2026, 1, 1, tzinfo=UTC))}")
    r = run_cli("envfile", "decrypt", enc, env={"SOPS_AGE_KEY_FILE": str(keys)}).assert_ok()
    assert r.out == TEXT.encode()


@pytest.mark.parametrize(("args", "env", "expect"), [
    ([], {}, "no age recipients given"),
    (["-r", "age1notakey"], {}, "invalid age recipient"),
    (["-r", "AGE-SECRET-KEY-1QQQ"], {}, "a private key, not a recipient"),
    ([], {"SOPS_AGE_RECIPIENTS": f"{TEST_AGE_PUBLIC},"}, "unknown age recipient type"),
])
def test_encrypt_recipient_errors(plain: Path, args: list[str], env: dict[str, str],
                                  expect: str) -> None:
    r = run_cli("envfile", "encrypt", *args, "-o", plain.with_suffix(".age"), plain, env=env)
    assert expect in r.assert_one_error()
    assert not plain.with_suffix(".age").exists()


def test_encrypt_refuses_text_that_is_not_dotenv(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text(f"GOOD=1\nnot a {CANARY} line\n")
    r = run_cli("envfile", "encrypt", "-r", TEST_AGE_PUBLIC, "-o", tmp_path / "o.age", bad)
    assert r.assert_one_error() == f"macula: error: {bad}: line 2 is not a valid dotenv line"
    assert not (tmp_path / "o.age").exists()


def test_missing_file(tmp_path: Path, keys_env: dict[str, str]) -> None:
    missing = tmp_path / "missing.env.age"
    for op in (["encrypt", "-r", TEST_AGE_PUBLIC], ["decrypt"]):
        line = run_cli("envfile", *op, missing, env=keys_env).assert_one_error()
        assert str(missing) in line and "No such file" in line


def test_decrypt_errors(tmp_path: Path, plain: Path, keys_env: dict[str, str]) -> None:
    line = run_cli("envfile", "decrypt", plain, env=keys_env).assert_one_error()
    assert line == f"macula: error: {plain} is not an age file"
    enc = _encrypt(plain)
    line = run_cli("envfile", "decrypt", enc).assert_one_error()
    assert "failed to load age identities" in line
    data = bytearray(enc.read_bytes())
    data[-5] ^= 0x40
    enc.write_bytes(bytes(data))
    line = run_cli("envfile", "decrypt", enc, env=keys_env).assert_one_error()
    assert line == f"macula: error: {enc}: age file failed to verify"


def test_usage_errors() -> None:
    assert run_cli("envfile").rc == 2
    assert run_cli("envfile", "frobnicate").rc == 2
    r = run_cli("envfile", "encrypt", "-o", "x", "-i", "y")
    assert r.rc == 2 and "not allowed with" in r.err
    r = run_cli("envfile", "--help")
    assert r.rc == 0 and b"examples:" in r.out and b"encrypt" in r.out


@pytest.mark.parametrize("op", ["encrypt", "decrypt", "edit"])
def test_help_has_examples(op: str) -> None:
    r = run_cli("envfile", op, "--help")
    assert r.rc == 0 and b"example" in r.out


# -- edit ---------------------------------------------------------------------------------


def _editor_env(tmp_path: Path, keys_env: dict[str, str], action: str,
                **extra: str) -> dict[str, str]:
    env = {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(EDITOR))}",
        "EDIT_LOG": str(tmp_path / "edit-log.json"),
        "EDIT_ACTION": action,
        **keys_env,
    }
    env.update(extra)
    return env


def _edit_log(tmp_path: Path) -> dict[str, object]:
    log: dict[str, object] = json.loads((tmp_path / "edit-log.json").read_text())
    return log


@pytest.mark.parametrize("armor", [[], ["-a"]], ids=["binary", "armored"])
def test_edit_changes_the_file(tmp_path: Path, plain: Path, keys_env: dict[str, str],
                               armor: list[str]) -> None:
    enc = _encrypt(plain, *armor)
    env = _editor_env(tmp_path, keys_env, "replace", EDIT_OLD="TOKEN=abc", EDIT_NEW="TOKEN=xyz")
    r = run_cli("envfile", "edit", "-r", TEST_AGE_PUBLIC, enc, env=env).assert_ok()
    assert r.err == ""
    log = _edit_log(tmp_path)
    assert log["mode"] == 0o600 and log["dir_mode"] == 0o700
    assert log["dir_entries"] == ["app.env"]
    assert log["content"] == TEXT
    assert not Path(str(log["path"])).parent.exists()
    # Armoring is kept as it was.
    assert enc.read_bytes().startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1")
    r = run_cli("envfile", "decrypt", enc, env=keys_env).assert_ok()
    assert r.out == TEXT.replace("TOKEN=abc", "TOKEN=xyz").encode()


def test_edit_unchanged_leaves_the_file(tmp_path: Path, plain: Path,
                                        keys_env: dict[str, str]) -> None:
    enc = _encrypt(plain)
    before = enc.read_bytes()
    stamp = enc.stat().st_mtime_ns
    r = run_cli("envfile", "edit", "-r", TEST_AGE_PUBLIC, enc,
                env=_editor_env(tmp_path, keys_env, "noop")).assert_ok()
    assert "has not changed" in r.err
    assert enc.read_bytes() == before and enc.stat().st_mtime_ns == stamp
    assert not Path(str(_edit_log(tmp_path)["path"])).parent.exists()


def test_edit_needs_recipients_before_the_editor(tmp_path: Path, plain: Path,
                                                 keys_env: dict[str, str]) -> None:
    enc = _encrypt(plain)
    r = run_cli("envfile", "edit", enc, env=_editor_env(tmp_path, keys_env, "noop"))
    assert "no age recipients given" in r.assert_one_error()
    assert not (tmp_path / "edit-log.json").exists()


def test_edit_invalid_result_is_not_saved(tmp_path: Path, plain: Path,
                                          keys_env: dict[str, str]) -> None:
    enc = _encrypt(plain)
    before = enc.read_bytes()
    env = _editor_env(tmp_path, keys_env, "write", EDIT_CONTENT=f"OK=1\nbroken {CANARY} x\n")
    r = run_cli("envfile", "edit", "-r", TEST_AGE_PUBLIC, enc, env=env)
    assert r.rc == 1 and r.out == b""
    assert "line 2 is not a valid dotenv line" in r.err
    assert "macula: error: the edited file is not valid dotenv; nothing was saved" in r.err
    assert CANARY not in r.err
    assert enc.read_bytes() == before
    assert not Path(str(_edit_log(tmp_path)["path"])).parent.exists()


def test_edit_editor_fails(tmp_path: Path, plain: Path, keys_env: dict[str, str]) -> None:
    enc = _encrypt(plain)
    before = enc.read_bytes()
    r = run_cli("envfile", "edit", "-r", TEST_AGE_PUBLIC, enc,
                env=_editor_env(tmp_path, keys_env, "fail"))
    assert "editor exited with status 4" in r.assert_one_error()
    assert enc.read_bytes() == before


def test_edit_new_file(tmp_path: Path, keys_env: dict[str, str]) -> None:
    enc = tmp_path / "new.env.age"
    env = _editor_env(tmp_path, keys_env, "write", EDIT_CONTENT="A=1\n",
                      SOPS_AGE_RECIPIENTS=TEST_AGE_PUBLIC)
    run_cli("envfile", "edit", enc, env=env).assert_ok()
    assert enc.stat().st_mode & 0o777 == 0o600
    assert run_cli("envfile", "decrypt", enc, env=keys_env).assert_ok().out == b"A=1\n"

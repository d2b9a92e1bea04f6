"""Black-box tests of `key split` and `key combine`: recovery shares of the master key
(and of an age identity) through files, standard input and the hidden prompt."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.cli import sharecmds
from tests.cli._support import CANARY, Result, run_cli
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

VALUES = {("console", "db_password"): CANARY, ("console", "api_token"): "tok-1",
          ("billing", "stripe_key"): "sk_test_42"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A store with a few secrets."""
    home = tmp_path / "home"
    with Secrets.open(home=home, source="none") as secrets:
        for (app, key), value in VALUES.items():
            secrets.put(app, key, value)
    return home


def cli(home: Path, *args: str | os.PathLike[str], input: bytes = b"") -> Result:
    return run_cli("key", *args, "--home", home, input=input,
                   env={"MACULA_SECRETS_SOURCE": "none"})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def share_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("macula-share-1-")]


def assert_store_intact(home: Path) -> None:
    with Secrets.open(home=home, source="none") as secrets:
        for (app, key), value in VALUES.items():
            assert secrets.require(app, key) == value


def test_split_to_files_then_combine_restores_the_store(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "shares"
    r = cli(home, "split", "--shares", "5", "--threshold", "3", "--out-dir", out).assert_ok()
    files = [Path(line) for line in r.text.splitlines()]
    assert len(files) == 5 and all(mode(f) == 0o600 for f in files)
    assert mode(out) == 0o700
    assert "give each custodian one file" in r.err
    first = files[0].read_text()
    assert first.startswith("# macula-secrets recovery share 1 of 5 (split ")
    assert "any 3 of the 5 shares restore it" in first
    original = (home / "master.key").read_bytes()
    (home / "master.key").unlink()

    r = cli(home, "combine", files[4], files[1], files[2]).assert_ok()
    assert r.out == b""
    assert "master key restored to" in r.err and "the store opens with it" in r.err
    assert mode(home / "master.key") == 0o600
    assert_store_intact(home)
    from macula_secrets.keys.master import parse_key

    assert parse_key((home / "master.key").read_text(), source="x") == \
        parse_key(original.decode(), source="y")
    # Running it again changes nothing.
    again = cli(home, "combine", files[0], files[3], files[4]).assert_ok()
    assert "already holds this master key" in again.err


def test_split_prints_shares_and_stdin_combines(home: Path) -> None:
    r = cli(home, "split", "--shares", "3", "--threshold", "2").assert_ok()
    assert r.err == ""
    assert r.text.startswith("# Recovery shares for the master key of ")
    assert "any 2 of the 3 shares restore it" in r.text
    shares = share_lines(r.text)
    assert len(shares) == 3
    (home / "master.key").unlink()
    # The printed text as it is ('#' lines are skipped), or just two lines.
    cli(home, "combine", input=(shares[2] + "\n\n" + shares[0] + "\n").encode()).assert_ok()
    assert_store_intact(home)
    (home / "master.key").unlink()
    cli(home, "combine", input=r.out).assert_ok()
    assert_store_intact(home)


def test_a_mistyped_share_is_named(home: Path, tmp_path: Path) -> None:
    r = cli(home, "split", "--shares", "3", "--threshold", "2", "--out-dir", tmp_path / "s")
    files = [Path(line) for line in r.assert_ok().text.splitlines()]
    text = files[1].read_text()
    at = text.index("macula-share-1-") + 40
    files[1].write_text(text[:at] + ("Z" if text[at] != "Z" else "Y") + text[at + 1:])
    (home / "master.key").unlink()

    line = cli(home, "combine", files[0], files[1]).assert_one_error()
    assert line == f"macula: error: {files[1]}: checksum does not match (a character is mistyped)"
    assert not (home / "master.key").exists()

    shares = [share_lines(f.read_text())[0] for f in files]
    line = cli(home, "combine", input=f"{shares[0]}\n{shares[1]}\n".encode()).assert_one_error()
    assert line.startswith("macula: error: the share on line 2 of standard input: checksum "
                           "does not match")
    assert not (home / "master.key").exists()


def test_too_few_and_mixed_shares(home: Path) -> None:
    one = share_lines(cli(home, "split", "--shares", "3", "--threshold", "2").text)
    two = share_lines(cli(home, "split", "--shares", "3", "--threshold", "2").text)
    (home / "master.key").unlink()
    line = cli(home, "combine", input=one[0].encode()).assert_one_error()
    assert "1 of the 2 shares needed to restore a master key were given" in line
    line = cli(home, "combine", input=f"{one[0]}\n{two[1]}\n".encode()).assert_one_error()
    assert "belongs to another split" in line
    assert not (home / "master.key").exists()


def test_a_different_existing_key_is_not_replaced(home: Path, tmp_path: Path) -> None:
    shares = share_lines(cli(home, "split", "--shares", "2", "--threshold", "2").text)
    other = tmp_path / "other"
    with Secrets.open(home=other, source="none"):
        pass
    before = (other / "master.key").read_bytes()
    line = cli(other, "combine", input="\n".join(shares).encode()).assert_one_error()
    assert line == f"macula: error: {other / 'master.key'} holds a different master key; " \
                   "it is not replaced"
    assert (other / "master.key").read_bytes() == before


def test_shares_of_a_rotated_key_do_not_open_the_store(home: Path) -> None:
    old = share_lines(cli(home, "split", "--shares", "2", "--threshold", "2").text)
    run_cli("key", "rotate-master", "--home", home).assert_ok()
    (home / "master.key").unlink()
    line = cli(home, "combine", input="\n".join(old).encode()).assert_one_error()
    assert "does not open the store" in line
    assert not (home / "master.key").exists()


def test_output_elsewhere(home: Path, tmp_path: Path) -> None:
    shares = share_lines(cli(home, "split", "--shares", "2", "--threshold", "2").text)
    target = tmp_path / "keys" / "restored.key"
    cli(home, "combine", "--output", target, input="\n".join(shares).encode()).assert_ok()
    assert mode(target) == 0o600
    assert target.read_bytes().splitlines()[-1] == \
        (home / "master.key").read_bytes().splitlines()[-1]


def test_hidden_prompt_asks_again_for_a_mistyped_share(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shares = share_lines(cli(home, "split", "--shares", "3", "--threshold", "2").text)
    mistyped = shares[1][:-1] + ("0" if shares[1][-1] != "0" else "1")
    typed = iter(["", shares[0], mistyped, shares[0], shares[1].lower()])
    prompts: list[str] = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr(sharecmds, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(sharecmds, "_read_hidden", read)
    (home / "master.key").unlink()
    r = cli(home, "combine").assert_ok()
    assert prompts == ["share 1: ", "share 1: ", "share 2 of 2: ", "share 2 of 2: ",
                       "share 2 of 2: "]
    errors = [line for line in r.err.splitlines() if line.startswith("macula: error: ")]
    assert errors == ["macula: error: share 2: checksum does not match (a character is "
                      "mistyped)", "macula: error: share 2: is share 1 of 3 again (as share 1)"]
    assert "2 of the 3 shares are needed" in r.err
    for share in shares:
        assert share not in r.err and share.lower() not in r.err
    assert_store_intact(home)


def test_prompt_stopped_early(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shares = share_lines(cli(home, "split", "--shares", "3", "--threshold", "3").text)
    typed: Iterator[str] = iter(shares[:2])

    def read(prompt: str) -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(sharecmds, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(sharecmds, "_read_hidden", read)
    (home / "master.key").unlink()
    r = cli(home, "combine")
    assert r.rc == 1
    assert "macula: error: 2 of the 3 shares needed to restore a master key were given" in r.err
    assert not (home / "master.key").exists()


def test_age_identity_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# public key: {TEST_AGE_PUBLIC}\n{TEST_AGE_SECRET}\n")
    keys.chmod(0o600)
    home = tmp_path / "home"
    r = cli(home, "split", "--shares", "3", "--threshold", "2", "--identity", keys).assert_ok()
    assert f"the age identity {TEST_AGE_PUBLIC}" in r.text
    assert TEST_AGE_SECRET not in r.text
    shares = share_lines(r.text)
    assert not home.exists()  # no store was made

    restored = tmp_path / "restored.txt"
    r = cli(home, "combine", "--output", restored, input="\n".join(shares[1:]).encode())
    r.assert_ok()
    assert mode(restored) == 0o600
    assert TEST_AGE_SECRET in restored.read_text()
    # By default, where sops looks first; an existing different file is left alone.
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "sops-keys.txt"))
    cli(home, "combine", input="\n".join(shares[:2]).encode()).assert_ok()
    assert TEST_AGE_SECRET in (tmp_path / "sops-keys.txt").read_text()
    again = cli(home, "combine", input="\n".join(shares[:2]).encode()).assert_ok()
    assert "already holds the age identity" in again.err


@pytest.mark.parametrize(("args", "message"), [
    (("--shares", "3", "--threshold", "1"), "--threshold must be at least 2"),
    (("--shares", "2", "--threshold", "3"), "--threshold 3 is more than --shares 2"),
    (("--shares", "256", "--threshold", "2"), "--shares must be between 2 and 255, not 256"),
])
def test_split_argument_errors(home: Path, args: tuple[str, ...], message: str) -> None:
    assert cli(home, "split", *args).assert_one_error() == f"macula: error: {message}"


def test_split_without_a_store(tmp_path: Path) -> None:
    line = cli(tmp_path / "nothing", "split", "--shares", "2", "--threshold", "2") \
        .assert_one_error()
    assert line.startswith("macula: error: no master key: ")


def test_help_texts() -> None:
    key_help = run_cli("key", "--help").text
    assert "split" in key_help and "combine" in key_help
    split_help = run_cli("key", "split", "--help").assert_ok().text
    assert "--threshold M" in split_help and "--out-dir DIR" in split_help
    assert "macula-share-1" in split_help
    combine_help = run_cli("key", "combine", "--help").assert_ok().text
    assert "hidden prompt" in combine_help and "--output FILE" in combine_help

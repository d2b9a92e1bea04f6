"""Minimal diffs: ``set``, ``unset`` and ``edit`` change only what changed.

sops's most repeated complaint (its issues 288, 1480, 1587, 2022) is that
an edit rewrites every ciphertext. Here a file with ten keys is changed in
one place, and a line diff of the file before and after may show only that
key's line, ``mac`` and ``lastmodified``: every other value keeps its exact
``ENC[...]`` string. Checked on files written by sops and by us, for YAML,
JSON, dotenv and INI, and once through ``git diff`` in a real repository.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli._support import EXTENSIONS, TEST_KEY, Sops, changed_lines, run_cli
from tests.cli.samples import TEN

pytestmark = pytest.mark.interop

EDITOR = Path(__file__).with_name("editor.py")
METADATA_LINE = re.compile(r'^\s*"?(sops_)?(mac|lastmodified)"?\s*[:=]')
KEY5 = re.compile(r'^\s*(\[main\]\s*)?"?key5"?\s*[:=]')


def _make(sops: Sops, folder: Path, fmt: str, writer: str) -> Path:
    src = folder / f"plain.{EXTENSIONS[fmt]}"
    src.write_bytes(TEN[fmt])
    enc = folder / f"secrets.{EXTENSIONS[fmt]}"
    if writer == "sops":
        enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
    else:
        run_cli("encrypt", "--age", TEST_KEY.public, "--output", enc, src).assert_ok()
    return enc


def _editor(folder: Path, old: str, new: str) -> dict[str, str]:
    return {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(EDITOR))}",
        "EDIT_LOG": str(folder / "edit-log.json"),
        "EDIT_ACTION": "replace",
        "EDIT_OLD": old,
        "EDIT_NEW": new,
    }


def _change(kind: str, enc: Path, fmt: str) -> None:
    path = '["main"]["key5"]' if fmt == "ini" else '["key5"]'
    if kind == "set":
        run_cli("set", enc, path, '"changed"').assert_ok()
    elif kind == "unset":
        run_cli("unset", enc, path).assert_ok()
    else:
        run_cli("edit", enc, env=_editor(enc.parent, "value-5-", "edited-5-")).assert_ok()


def _only_metadata_and_key5(before: bytes, after: bytes, fmt: str, kind: str) -> None:
    if fmt == "ini":
        # sops 3.11 writes INI metadata keys in random order: compare that section as a set.
        b_data, b_meta_text = before.split(b"[sops]\n")
        a_data, a_meta_text = after.split(b"[sops]\n")
        removed, added = changed_lines(b_data, a_data)
        b_meta = set(b_meta_text.splitlines())
        a_meta = set(a_meta_text.splitlines())
        meta_changes = {line.decode() for line in b_meta ^ a_meta}
        assert all(METADATA_LINE.match(line) for line in meta_changes), meta_changes
        assert len(meta_changes) in (2, 4)  # mac, and lastmodified unless in the same second
        for line in sorted(meta_changes):
            m = METADATA_LINE.match(line)
            assert m is not None
            name = m.group(2)
            (removed if line.encode() in b_meta else added).append(name)
    else:
        removed, added = changed_lines(before, after)

    def kinds(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if line in ("mac", "lastmodified"):
                out.append(line)
            elif KEY5.match(line):
                out.append("key5")
            else:
                m = METADATA_LINE.match(line)
                out.append(m.group(2) if m else f"UNEXPECTED: {line}")
        return sorted(out)

    got_removed, got_added = kinds(removed), kinds(added)
    # lastmodified has a resolution of one second: it may not have changed.
    assert got_removed.count("lastmodified") == got_added.count("lastmodified") <= 1
    got_removed = [k for k in got_removed if k != "lastmodified"]
    got_added = [k for k in got_added if k != "lastmodified"]
    assert got_removed == ["key5", "mac"], (removed, added)
    assert got_added == (["mac"] if kind == "unset" else ["key5", "mac"]), (removed, added)


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize("writer", ["sops", "ours"])
@pytest.mark.parametrize("kind", ["set", "unset", "edit"])
@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini"])
def test_one_change_one_key(sops: Sops, tmp_path: Path, fmt: str, kind: str, writer: str) -> None:
    enc = _make(sops, tmp_path, fmt, writer)
    before = enc.read_bytes()
    expected = sops.ok("--decrypt", enc) if writer == "sops" and kind == "set" else None
    _change(kind, enc, fmt)
    after = enc.read_bytes()
    _only_metadata_and_key5(before, after, fmt, kind)
    if expected is not None:
        plain = sops.ok("--decrypt", enc)
        assert plain.count(b"changed") == 1 and len(plain.splitlines()) == len(
            expected.splitlines()
        )


def test_git_diff_stat(sops: Sops, tmp_path: Path, keyed: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=repo, capture_output=True, text=True, check=True, timeout=30,
        ).stdout

    git("init", "-q")
    enc = _make(sops, repo, "yaml", "sops")
    (repo / "plain.yaml").unlink()
    git("add", "secrets.yaml")
    git("commit", "-q", "-m", "sops")
    def changed() -> list[str]:
        lines = git("diff", "-U0").splitlines()
        names = [ln[1:].split(":")[0].strip() for ln in lines
                 if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
        # lastmodified has a resolution of one second: it may not have changed.
        return sorted(n for n in names if n != "lastmodified")

    def numstat() -> tuple[int, int]:
        added, removed, name = git("diff", "--numstat").split()
        assert name == "secrets.yaml"
        lm = 1 if "lastmodified" in git("diff", "-U0") else 0
        return int(added) - lm, int(removed) - lm

    run_cli("set", enc, '["key3"]', '"rotated"').assert_ok()
    # key3 and mac (and lastmodified): one line out, one line in, each.
    assert numstat() == (2, 2)
    assert changed() == ["key3", "key3", "mac", "mac"]
    git("commit", "-q", "-am", "set")
    run_cli("edit", enc, env=_editor(repo, "value-7-", "new-7-")).assert_ok()
    assert numstat() == (2, 2)
    assert changed() == ["key7", "key7", "mac", "mac"]
    git("commit", "-q", "-am", "edit")
    run_cli("unset", enc, '["key0"]').assert_ok()
    assert numstat() == (1, 2)
    assert changed() == ["key0", "mac", "mac"]
    assert sops.ok("--decrypt", "--extract", '["key3"]', enc) == b"rotated"

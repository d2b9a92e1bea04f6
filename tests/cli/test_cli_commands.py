"""The commands beyond encrypt/decrypt, checked against the real sops and age.

set, unset, rotate, updatekeys, filestatus, edit (with a scripted $EDITOR),
exec-env, exec-file and keygen. Most calls run in this process
(:func:`run_cli`); each command group also runs once as a real process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli._support import (
    CANARY,
    EXTENSIONS,
    MACULA_BIN,
    TEST_KEY,
    AgeKey,
    Sops,
    enc_values,
    key_file,
    normalize,
    recipients_in,
    run_cli,
    run_proc,
)
from tests.cli.samples import PLAINTEXTS, YAML

pytestmark = pytest.mark.interop

EDITOR = Path(__file__).with_name("editor.py")


@pytest.fixture
def enc_yaml(sops: Sops, tmp_path: Path, keyed: Path) -> Path:
    """The YAML sample, encrypted by sops to the test key."""
    src = tmp_path / "plain.yaml"
    src.write_bytes(YAML)
    enc = tmp_path / "secrets.yaml"
    enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
    return enc


def _sops_encrypt(sops: Sops, folder: Path, fmt: str, name: str = "secrets",
                  recipients: str = TEST_KEY.public) -> Path:
    src = folder / f"plain-{name}.{EXTENSIONS[fmt]}"
    src.write_bytes(PLAINTEXTS[fmt])
    enc = folder / f"{name}.{EXTENSIONS[fmt]}"
    enc.write_bytes(sops.ok("--encrypt", "--age", recipients, src))
    return enc


def _copy(path: Path, name: str) -> Path:
    out = path.with_name(name)
    out.write_bytes(path.read_bytes())
    return out


# -- set ---------------------------------------------------------------------------------------

SET_CASES = [
    ('["password"]', '"n3w"'),
    ('["data"]["port"]', "6543"),
    ('["data"]["ratio"]', "1.25"),
    ('["data"]["enabled"]', "false"),
    ('["obj"]', '{"k": [1, true, "s", null], "n": {"deep": "x"}, "f": 2.5}'),
    ('["new"]["deep"][0]', '"created"'),
    ('["list"][1]["other"]', '"o2"'),
    ('["list"][9]', '"appended"'),
    ('["note_unencrypted"]', '"still visible"'),
    ('["unicode"]', '"ünïcødé ✓"'),
]


def test_set_matches_sops(sops: Sops, enc_yaml: Path) -> None:
    for path, value in SET_CASES:
        ours = _copy(enc_yaml, "ours.yaml")
        theirs = _copy(enc_yaml, "theirs.yaml")
        run_cli("set", ours, path, value).assert_ok()
        sops.ok("set", theirs, path, value)
        assert normalize(ours.read_bytes()) == normalize(theirs.read_bytes()), path
        assert sops.ok("--decrypt", ours) == sops.ok("--decrypt", theirs), path
    # JSON numbers become floats, as in sops.
    run_cli("set", ours, '["num"]', "5").assert_ok()
    assert re.search(r"\nnum: ENC\[[^\]]*type:float\]", ours.read_text())


@pytest.mark.parametrize("fmt", ["json", "dotenv", "ini"])
def test_set_on_other_formats(sops: Sops, tmp_path: Path, keyed: Path, fmt: str) -> None:
    enc = _sops_encrypt(sops, tmp_path, fmt)
    path = '["data"]["password"]' if fmt == "ini" else '["password"]'
    ours = _copy(enc, f"ours.{EXTENSIONS[fmt]}")
    theirs = _copy(enc, f"theirs.{EXTENSIONS[fmt]}")
    run_cli("set", ours, path, '"changed"').assert_ok()
    sops.ok("set", theirs, path, '"changed"')
    assert sops.ok("--decrypt", ours) == sops.ok("--decrypt", theirs)
    assert run_cli("decrypt", ours).out == sops.ok("--decrypt", theirs)


def test_set_value_file_and_stdin(sops: Sops, enc_yaml: Path, tmp_path: Path) -> None:
    value_file = tmp_path / "value.json"
    value_file.write_text('{"from": "file", "num": [1, 2]}\n')
    run_cli("set", enc_yaml, '["a"]', "--value-file", value_file).assert_ok()
    run_cli("set", enc_yaml, '["b"]', "--value-stdin", input=b'"from stdin"').assert_ok()
    expected = _copy(enc_yaml, "theirs.yaml")
    plain = sops.ok("--decrypt", enc_yaml)
    assert b"a:\n    from: file\n    num:\n        - 1\n        - 2\n" in plain
    assert plain.endswith(b"b: from stdin\n")
    # Exactly one value source.
    r = run_cli("set", expected, '["c"]', '"x"', "--value-stdin", input=b'"y"')
    assert "exactly one" in r.assert_one_error()
    assert "not valid JSON" in run_cli("set", expected, '["c"]', "not json").assert_one_error()
    r = run_cli("--sops-exit-codes", "set", expected, '["c"]', "{")
    r.assert_one_error(rc=7)


def test_set_idempotent(sops: Sops, enc_yaml: Path) -> None:
    before = enc_yaml.read_bytes()
    run_cli("set", "--idempotent", enc_yaml, '["user"]', '"admin"').assert_ok()
    assert enc_yaml.read_bytes() == before  # already set: not even lastmodified changes
    run_cli("set", "--idempotent", enc_yaml, '["user"]', '"root"').assert_ok()
    assert enc_yaml.read_bytes() != before
    assert sops.ok("--decrypt", "--extract", '["user"]', enc_yaml) == b"root"


def test_set_and_unset_as_processes(sops: Sops, enc_yaml: Path) -> None:
    r = run_proc("set", enc_yaml, '["user"]', '"proc"', env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    r = run_proc("unset", enc_yaml, '["password"]', env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    plain = sops.ok("--decrypt", enc_yaml)
    assert b"\nuser: proc\n" in plain and b"\npassword:" not in plain
    r = run_proc("unset", enc_yaml, '["password"]', env=sops.env)
    assert r.rc == 1 and r.err.startswith("macula: error: ") and "Traceback" not in r.err


# -- unset -------------------------------------------------------------------------------------


def test_unset_matches_sops(sops: Sops, enc_yaml: Path) -> None:
    for path in ('["password"]', '["data"]["port"]', '["list"][1]', '["list"][0]', '["data"]'):
        ours = _copy(enc_yaml, "ours.yaml")
        theirs = _copy(enc_yaml, "theirs.yaml")
        run_cli("unset", ours, path).assert_ok()
        sops.ok("unset", theirs, path)
        assert normalize(ours.read_bytes()) == normalize(theirs.read_bytes()), path
        assert sops.ok("--decrypt", ours) == sops.ok("--decrypt", theirs)


def test_unset_missing_and_idempotent(sops: Sops, enc_yaml: Path) -> None:
    before = enc_yaml.read_bytes()
    for path in ('["nope"]', '["data"]["nope"]', '["list"][7]'):
        assert sops("unset", enc_yaml, path).returncode == 1
        run_cli("unset", enc_yaml, path).assert_one_error()
        run_cli("unset", "--idempotent", enc_yaml, path).assert_ok()
        assert enc_yaml.read_bytes() == before
    line = run_cli("unset", enc_yaml, '["nope"]').assert_one_error()
    assert "not found" in line and "nope" in line


# -- rotate ------------------------------------------------------------------------------------


def test_rotate_new_data_key(sops: Sops, enc_yaml: Path) -> None:
    plain = sops.ok("--decrypt", enc_yaml)
    before = enc_yaml.read_bytes()
    # To stdout by default: the file is untouched.
    out = run_cli("rotate", enc_yaml).assert_ok().out
    assert enc_yaml.read_bytes() == before
    assert normalize(out) == normalize(before)
    run_cli("rotate", "-i", enc_yaml).assert_ok()
    after = enc_yaml.read_bytes()
    old, new = enc_values(before), enc_values(after)
    assert len(old) == len(new) > 10
    assert not set(old) & set(new)  # every value and the MAC changed
    assert normalize(after) == normalize(before)
    assert sops.ok("--decrypt", enc_yaml) == plain


def test_rotate_add_and_remove_recipients(
    sops: Sops, enc_yaml: Path, tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    plain = sops.ok("--decrypt", enc_yaml)
    new = age_keys[0]
    run_cli("rotate", "-i", "--add-age", new.public, enc_yaml).assert_ok()
    assert recipients_in(enc_yaml.read_bytes()) == [TEST_KEY.public, new.public]
    only_new = key_file(tmp_path, new, name="new.txt")
    assert sops.ok("--decrypt", enc_yaml, keys=only_new) == plain
    run_cli("rotate", "-i", "--rm-age", TEST_KEY.public, enc_yaml).assert_ok()
    assert recipients_in(enc_yaml.read_bytes()) == [new.public]
    assert sops("--decrypt", enc_yaml).returncode == 128
    assert sops.ok("--decrypt", enc_yaml, keys=only_new) == plain
    run_cli("decrypt", enc_yaml).assert_one_error()


def test_rotate_key_groups_keeps_threshold(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    groups = "".join(f"      - age: [{k.public}]\n" for k in age_keys)
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n{groups}"
    )
    src = tmp_path / "plain.yaml"
    src.write_bytes(YAML)
    enc = tmp_path / "groups.yaml"
    enc.write_bytes(sops.ok("--encrypt", src, cwd=tmp_path))
    pair = key_file(tmp_path, age_keys[0], age_keys[2], name="pair.txt")
    plain = sops.ok("--decrypt", enc, keys=pair)
    before = enc_values(enc.read_bytes())
    run_cli("rotate", "-i", enc, env={"SOPS_AGE_KEY_FILE": str(pair)}).assert_ok()
    assert not set(before) & set(enc_values(enc.read_bytes()))
    assert "shamir_threshold: 2" in enc.read_text()
    other_pair = key_file(tmp_path, age_keys[1], age_keys[2], name="pair2.txt")
    assert sops.ok("--decrypt", enc, keys=other_pair) == plain
    single = key_file(tmp_path, age_keys[1], name="single.txt")
    assert sops("--decrypt", enc, keys=single).returncode == 128


def test_rotate_as_process_and_with_sops(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    src = tmp_path / "plain.json"
    src.write_bytes(PLAINTEXTS["json"])
    enc = tmp_path / "ours.json"
    run_cli("encrypt", "--age", TEST_KEY.public, "--output", enc, src).assert_ok()
    r = run_proc("rotate", "-i", "--add-age", age_keys[1].public, enc, env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    sops.ok("rotate", "-i", "--rm-age", TEST_KEY.public, enc)
    kf = key_file(tmp_path, age_keys[1], name="k1.txt")
    assert run_cli("decrypt", enc, env={"SOPS_AGE_KEY_FILE": str(kf)}).assert_ok().out == \
        sops.ok("--decrypt", enc, keys=kf)


# -- updatekeys -----------------------------------------------------------------------------


def _rule(folder: Path, *keys: AgeKey, regex: str = "") -> None:
    path_regex = f"  - path_regex: {regex}\n    age: " if regex else "  - age: "
    (folder / ".sops.yaml").write_text(
        "creation_rules:\n" + path_regex + ",".join(k.public for k in keys) + "\n"
    )


def _split_meta(data: bytes, fmt: str) -> tuple[bytes, list[bytes]]:
    """(data part, mac and lastmodified lines) of an encrypted file."""
    lines = data.splitlines(keepends=True)
    marks = {"yaml": b"sops:\n", "json": b'\t"sops": {\n', "ini": b"[sops]\n"}
    if fmt == "dotenv":
        body = b"".join(line for line in lines if not line.startswith(b"sops_"))
    else:
        body = data[: data.index(marks[fmt])]
    keep = [line for line in lines if re.search(rb"\b(mac|lastmodified)\b", line)]
    return body, keep


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_updatekeys_same_data_key(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey], fmt: str
) -> None:
    enc = _sops_encrypt(sops, tmp_path, fmt)
    plain = sops.ok("--decrypt", enc)
    before = enc.read_bytes()
    _rule(tmp_path, TEST_KEY, age_keys[0])
    r = run_cli("updatekeys", "-y", enc, cwd=tmp_path).assert_ok()
    assert f"+++ {age_keys[0].public}" in r.err
    after = enc.read_bytes()
    meta_fmt = "json" if fmt == "binary" else fmt
    body_after, kept_after = _split_meta(after, meta_fmt)
    body_before, kept_before = _split_meta(before, meta_fmt)
    assert body_after == body_before
    assert sorted(kept_after) == sorted(kept_before)  # sops 3.11 orders INI metadata randomly
    assert recipients_in(after) == [TEST_KEY.public, age_keys[0].public]
    kf = key_file(tmp_path, age_keys[0], name="k0.txt")
    assert sops.ok("--decrypt", enc, keys=kf) == plain
    # Nothing left to do.
    r = run_cli("updatekeys", "-y", enc, cwd=tmp_path).assert_ok()
    assert "already up to date" in r.err
    assert enc.read_bytes() == after


def test_updatekeys_remove_key_and_confirmation(
    sops: Sops, enc_yaml: Path, tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    plain = sops.ok("--decrypt", enc_yaml)
    _rule(tmp_path, age_keys[1])
    before = enc_yaml.read_bytes()
    # No TTY and no -y: refuse, and leave the file alone.
    r = run_cli("updatekeys", enc_yaml, cwd=tmp_path)
    assert r.rc == 1 and r.out == b""
    # The planned change, then the refusal.
    assert r.err.endswith("macula: error: refusing to change keys without confirmation\n"
                          "macula: hint: pass -y to confirm non-interactively\n")
    assert enc_yaml.read_bytes() == before
    r = run_proc("updatekeys", "-y", enc_yaml, cwd=tmp_path, env=sops.env)
    assert r.rc == 0 and r.out == b"", r.err
    assert f"--- {TEST_KEY.public}" in r.err and f"+++ {age_keys[1].public}" in r.err
    assert recipients_in(enc_yaml.read_bytes()) == [age_keys[1].public]
    assert sops("--decrypt", enc_yaml).returncode == 128
    kf = key_file(tmp_path, age_keys[1], name="k1.txt")
    assert sops.ok("--decrypt", enc_yaml, keys=kf) == plain


def test_updatekeys_to_key_groups(
    sops: Sops, enc_yaml: Path, tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    plain = sops.ok("--decrypt", enc_yaml)
    groups = "".join(f"      - age: [{k.public}]\n" for k in age_keys)
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n{groups}"
    )
    run_cli("updatekeys", "-y", enc_yaml, cwd=tmp_path).assert_ok()
    assert "shamir_threshold: 2" in enc_yaml.read_text()
    for pair in ((0, 1), (1, 2)):
        kf = key_file(tmp_path, *(age_keys[i] for i in pair), name="pair.txt")
        assert sops.ok("--decrypt", enc_yaml, keys=kf) == plain
        assert run_cli("decrypt", enc_yaml, env={"SOPS_AGE_KEY_FILE": str(kf)}).out == plain


def test_updatekeys_folder_tree(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    tree = tmp_path / "tree"
    layout = {"yaml": "a", "json": "sub/b", "dotenv": "sub/deeper/c", "ini": "d",
              "binary": "sub/e"}
    files = []
    plains = {}
    for fmt, stem in layout.items():
        folder = (tree / stem).parent
        folder.mkdir(parents=True, exist_ok=True)
        enc = _sops_encrypt(sops, folder, fmt, name=Path(stem).name)
        (folder / f"plain-{Path(stem).name}.{EXTENSIONS[fmt]}").unlink()
        files.append(enc)
        plains[enc] = sops.ok("--decrypt", enc)
    (tree / "sub" / "README.txt").write_text("not a sops file\n")
    (tree / "plain.yaml").write_text("a: 1\n")
    _rule(tree, age_keys[2])
    r = run_cli("updatekeys", "-y", tree, cwd=tree).assert_ok()
    assert "5 of 5 files updated" in r.err
    kf = key_file(tmp_path, age_keys[2], name="k2.txt")
    for enc in files:
        assert recipients_in(enc.read_bytes()) == [age_keys[2].public], enc
        assert sops.ok("--decrypt", enc, keys=kf) == plains[enc], enc
    assert (tree / "plain.yaml").read_text() == "a: 1\n"
    r = run_cli("updatekeys", "-y", tree, cwd=tree).assert_ok()
    assert r.err.count("already up to date") == 5
    assert "0 of 5 files updated" in r.err


def test_sops_updatekeys_on_our_file(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    src = tmp_path / "plain.yaml"
    src.write_bytes(YAML)
    enc = tmp_path / "ours.yaml"
    run_cli("encrypt", "--age", TEST_KEY.public, "--output", enc, src).assert_ok()
    plain = run_cli("decrypt", enc).assert_ok().out
    _rule(tmp_path, age_keys[0])
    sops.ok("updatekeys", "-y", enc, cwd=tmp_path)
    kf = key_file(tmp_path, age_keys[0], name="k0.txt")
    assert run_cli("decrypt", enc, env={"SOPS_AGE_KEY_FILE": str(kf)}).assert_ok().out == plain
    run_cli("decrypt", enc).assert_one_error()


# -- filestatus -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_filestatus_matches_sops(sops: Sops, tmp_path: Path, keyed: Path, fmt: str) -> None:
    enc = _sops_encrypt(sops, tmp_path, fmt)
    plain = tmp_path / f"plain-secrets.{EXTENSIONS[fmt]}"
    assert sops.ok("filestatus", enc) == b'{"encrypted":true}\n'
    assert run_cli("filestatus", enc).assert_ok().out == b'{"encrypted":true}\n'
    proc = sops("filestatus", plain)
    if fmt == "binary":  # not JSON: both fail to parse it
        assert proc.returncode == 1
        run_cli("filestatus", plain).assert_one_error()
    else:
        assert proc.stdout == b'{"encrypted":false}\n'
        assert run_cli("filestatus", plain).assert_ok().out == proc.stdout


def test_filestatus_as_process(sops: Sops, enc_yaml: Path) -> None:
    r = run_proc("filestatus", enc_yaml, env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b'{"encrypted":true}\n', "")


# -- edit ---------------------------------------------------------------------------------------


def _editor_env(tmp_path: Path, action: str, **extra: str) -> dict[str, str]:
    env = {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(EDITOR))}",
        "EDIT_LOG": str(tmp_path / "edit-log.json"),
        "EDIT_ACTION": action,
    }
    env.update(extra)
    return env


def _edit_log(tmp_path: Path) -> dict[str, object]:
    log: dict[str, object] = json.loads((tmp_path / "edit-log.json").read_text())
    return log


def test_edit_changes_one_value(sops: Sops, enc_yaml: Path, tmp_path: Path) -> None:
    before = sops.ok("--decrypt", enc_yaml)
    env = _editor_env(tmp_path, "replace", EDIT_OLD="token: t0k3n", EDIT_NEW="token: edited")
    run_cli("edit", enc_yaml, env=env).assert_ok()
    log = _edit_log(tmp_path)
    # The plaintext was in a 0600 file, alone in a private folder, named like the target.
    assert log["mode"] == 0o600
    assert log["dir_mode"] == 0o700
    assert log["dir_entries"] == ["secrets.yaml"]
    assert log["content"] == before.decode()
    temp = Path(str(log["path"]))
    assert not temp.exists() and not temp.parent.exists()
    after = sops.ok("--decrypt", enc_yaml)
    assert after == before.replace(b"token: t0k3n", b"token: edited")


def test_edit_unchanged(enc_yaml: Path, tmp_path: Path) -> None:
    before = enc_yaml.read_bytes()
    r = run_cli("edit", enc_yaml, env=_editor_env(tmp_path, "noop")).assert_ok()
    assert "has not changed" in r.err
    assert enc_yaml.read_bytes() == before
    r = run_cli("--sops-exit-codes", "edit", enc_yaml, env=_editor_env(tmp_path, "noop"))
    assert r.rc == 200
    assert not Path(str(_edit_log(tmp_path)["path"])).parent.exists()


@pytest.mark.parametrize("content", ["a: [", "sops:\n    x: 1\n", f"bad: {CANARY}\n\tx: ["])
def test_edit_invalid_without_tty(enc_yaml: Path, tmp_path: Path, content: str) -> None:
    before = enc_yaml.read_bytes()
    r = run_cli("edit", enc_yaml, env=_editor_env(tmp_path, "write", EDIT_CONTENT=content))
    assert r.rc == 1 and r.out == b""
    assert "macula: error: " in r.err and "Traceback" not in r.err
    assert CANARY not in r.err
    assert enc_yaml.read_bytes() == before
    assert not Path(str(_edit_log(tmp_path)["path"])).parent.exists()


def test_edit_editor_fails(enc_yaml: Path, tmp_path: Path) -> None:
    before = enc_yaml.read_bytes()
    line = run_cli("edit", enc_yaml, env=_editor_env(tmp_path, "fail")).assert_one_error()
    assert "status 4" in line
    assert enc_yaml.read_bytes() == before
    assert not Path(str(_edit_log(tmp_path)["path"])).parent.exists()


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_edit_new_file_from_example(sops: Sops, tmp_path: Path, keyed: Path, fmt: str) -> None:
    target = tmp_path / f"new.{EXTENSIONS[fmt]}"
    # sops's example document, captured by the same editor.
    sops_log = tmp_path / "sops-log"
    sops_log.mkdir()
    proc = sops("edit", "--age", TEST_KEY.public, target,
                env=_editor_env(sops_log, "noop"))
    assert proc.returncode == 200 and not target.exists()
    example = _edit_log(sops_log)["content"]
    # Unchanged: nothing is written (as sops).
    run_cli("edit", "--age", TEST_KEY.public, target, env=_editor_env(tmp_path, "noop"))
    assert not target.exists()
    assert _edit_log(tmp_path)["content"] == example
    env = _editor_env(tmp_path, "replace", EDIT_OLD="Welcome to", EDIT_NEW="Hello to")
    run_cli("edit", "--age", TEST_KEY.public, target, env=env).assert_ok()
    assert target.exists()
    plain = sops.ok("--decrypt", target)
    assert b"Hello to SOPS!" in plain
    assert recipients_in(target.read_bytes()) == [TEST_KEY.public]


def test_edit_new_file_uses_creation_rules(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    _rule(tmp_path, age_keys[0])
    env = _editor_env(tmp_path, "replace", EDIT_OLD="example_value", EDIT_NEW="x")
    run_cli("edit", "new.yaml", cwd=tmp_path, env=env).assert_ok()
    assert recipients_in((tmp_path / "new.yaml").read_bytes()) == [age_keys[0].public]


def test_edit_as_process(sops: Sops, enc_yaml: Path, tmp_path: Path) -> None:
    env = dict(sops.env)
    env.update(_editor_env(tmp_path, "replace", EDIT_OLD="user: admin", EDIT_NEW="user: edited"))
    r = run_proc("edit", enc_yaml, env=env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    assert sops.ok("--decrypt", "--extract", '["user"]', enc_yaml) == b"edited"
    # sops edits our file the same way.
    env = _editor_env(tmp_path, "replace", EDIT_OLD="user: edited", EDIT_NEW="user: again")
    proc = sops("edit", enc_yaml, env=env)
    assert proc.returncode == 0, proc.stderr
    assert run_cli("decrypt", "--extract", '["user"]', enc_yaml).out == b"again"


# -- exec-env / exec-file ------------------------------------------------------------------

ENV_YAML = (
    f"a: x\npassword: {CANARY}\nn: 5\nf: 1.5\nt: true\nz: null\ns: \"multi\\nline\"\n"
    "# comment\nq: 'with spaces and $dollar'\n"
).encode()


@pytest.fixture
def env_file(sops: Sops, tmp_path: Path, keyed: Path) -> Path:
    src = tmp_path / "env-plain.yaml"
    src.write_bytes(ENV_YAML)
    enc = tmp_path / "env.yaml"
    enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
    return enc


def _env_lines(data: bytes) -> list[bytes]:
    return sorted(data.split(b"\0"))


def test_exec_env_pristine_matches_sops(sops: Sops, env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.out"
    cmd = f"/usr/bin/env -0 > {out}"
    run_cli("exec-env", "--pristine", env_file, cmd).assert_ok()
    ours = out.read_bytes()
    sops.ok("exec-env", "--pristine", env_file, cmd)
    assert _env_lines(ours) == _env_lines(out.read_bytes())
    assert f"password={CANARY}".encode() in ours.split(b"\0")
    assert b"s=multi\nline" in ours.split(b"\0")
    assert b"HOME=" not in ours


def test_exec_env_inherits_environment(env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.out"
    run_cli("exec-env", env_file, f'printf "%s|%s|%s|%s" "$password" "$n" "$HOME" "$q" > {out}',
            env={"HOME": str(tmp_path)}).assert_ok()
    assert out.read_text() == f"{CANARY}|5|{tmp_path}|with spaces and $dollar"
    # After "--", several arguments run without a shell.
    run_cli("exec-env", env_file, "--", sys.executable, "-c",
            f"import os; open({str(out)!r}, 'w').write(os.environ['a'])").assert_ok()
    assert out.read_text() == "x"


def test_exec_env_exit_status_and_errors(sops: Sops, env_file: Path, tmp_path: Path) -> None:
    assert run_cli("exec-env", env_file, "exit 7").rc == 7
    assert sops("exec-env", env_file, "exit 7").returncode == 7
    r = run_proc("exec-env", env_file, "exit 9", env=sops.env)
    assert (r.rc, r.out, r.err) == (9, b"", "")
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"top: {CANARY}\nmap:\n    k: v\n")
    run_cli("encrypt", "-i", "--age", TEST_KEY.public, nested).assert_ok()
    assert sops("exec-env", nested, "true").returncode != 0
    line = run_cli("exec-env", nested, "true").assert_one_error()
    assert "offending key map" in line


def test_exec_file_fifo(sops: Sops, env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    info = tmp_path / "info"
    cmd = f"stat -c '%F %a' {{}} > {info}; dirname {{}} >> {info}; cat {{}} > {out}"
    run_cli("exec-file", env_file, cmd).assert_ok()
    kind, folder = info.read_text().splitlines()
    assert kind == "fifo 600"
    assert not Path(folder).exists()
    theirs = sops.ok("exec-file", env_file, "cat {}")
    assert out.read_bytes() == theirs == sops.ok("--decrypt", env_file)


def test_exec_file_no_fifo(sops: Sops, env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    info = tmp_path / "info"
    cmd = (f"stat -c '%F %a' {{}} > {info}; stat -c %a $(dirname {{}}) >> {info}; "
           f"dirname {{}} >> {info}; cat {{}} > {out}")
    r = run_proc("exec-file", "--no-fifo", "--output-type", "json", env_file, cmd, env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    kind, dir_mode, folder = info.read_text().splitlines()
    assert kind == "regular file 600"
    assert dir_mode == "700"
    assert not Path(folder).exists()
    assert out.read_bytes() == sops.ok("--decrypt", "--output-type", "json", env_file)
    assert run_cli("exec-file", env_file, "exit 5").rc == 5


def test_decrypt_output_file_is_private(enc_yaml: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain-out.yaml"
    run_cli("decrypt", "--output", out, enc_yaml).assert_ok()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"password: s3cr3t-CANARY" in out.read_bytes()
    r = run_cli("decrypt", "-i", "--output", out, enc_yaml)
    assert "together" in r.assert_one_error()


def test_encrypt_stdin_with_filename_override(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    _rule(tmp_path, age_keys[0], regex=r"^conf/.*\.json$")
    args = ["--filename-override", "conf/app.json"]
    theirs = sops.ok("encrypt", *args, input=PLAINTEXTS["json"], cwd=tmp_path)
    ours = run_cli("encrypt", *args, input=PLAINTEXTS["json"], cwd=tmp_path).assert_ok().out
    assert normalize(ours, "json") == normalize(theirs, "json")
    assert recipients_in(ours) == [age_keys[0].public]


# -- keygen -------------------------------------------------------------------------------------


def test_keygen_output_file(sops: Sops, tmp_path: Path) -> None:
    key = tmp_path / "new-keys.txt"
    r = run_proc("keygen", "-o", key, env=sops.env)
    assert r.rc == 0 and r.out == b""
    m = re.fullmatch(r"Public key: (age1[a-z0-9]+)\n", r.err)
    assert m, r.err
    public = m.group(1)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    text = key.read_text()
    assert f"# public key: {public}\n" in text
    assert re.search(r"^AGE-SECRET-KEY-1[0-9A-Z]+$", text, re.M)
    # age itself derives the same recipient and decrypts with the file.
    derived = subprocess.run(["age-keygen", "-y", key], capture_output=True, check=True,
                             text=True, timeout=30).stdout.strip()
    assert derived == public
    msg = tmp_path / "msg.age"
    subprocess.run(["age", "-r", public, "-o", msg], input=b"hello age", check=True, timeout=30)
    assert subprocess.run(["age", "-d", "-i", key, msg], capture_output=True, check=True,
                          timeout=30).stdout == b"hello age"
    # sops finds it through SOPS_AGE_KEY_FILE.
    src = tmp_path / "p.yaml"
    src.write_text("a: b\n")
    enc = tmp_path / "e.yaml"
    enc.write_bytes(sops.ok("--encrypt", "--age", public, src))
    assert sops.ok("--decrypt", enc, keys=key) == b"a: b\n"
    # It never overwrites an existing file.
    before = key.read_bytes()
    r = run_proc("keygen", "-o", key, env=sops.env)
    r.assert_one_error()
    assert key.read_bytes() == before


def test_keygen_to_stdout(tmp_path: Path) -> None:
    r = run_cli("keygen").assert_ok()
    text = r.text
    assert re.fullmatch(
        r"# created: \S+\n# public key: (age1[a-z0-9]+)\nAGE-SECRET-KEY-1[0-9A-Z]+\n", text
    ), text
    m = re.search(r"public key: (\S+)", text)
    assert m is not None
    public = m.group(1)
    assert r.err == f"Public key: {public}\n"
    assert os.path.exists(tmp_path)


def test_updatekeys_progress_bar_on_a_terminal(
    sops: Sops, tmp_path: Path, keyed: Path, age_keys: list[AgeKey]
) -> None:
    """More than a few files and stderr on a terminal: a progress bar, and the same result."""
    import pty

    tree = tmp_path / "many"
    tree.mkdir()
    src = tmp_path / "plain.json"
    src.write_bytes(PLAINTEXTS["json"])
    for i in range(7):
        run_cli("encrypt", "--age", TEST_KEY.public, "--output", tree / f"f{i}.json",
                src).assert_ok()
    _rule(tree, age_keys[0])
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([MACULA_BIN, "updatekeys", "-y", tree], cwd=tree, env=sops.env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                              timeout=60, check=False)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0, seen
    assert proc.stdout == b""  # the bar goes to the terminal on stderr, not to stdout
    assert b"\x1b[" in seen  # drawn (and erased) with terminal control sequences
    assert b"Traceback" not in seen
    assert b"7 of 7 files updated" in seen
    kf = key_file(tmp_path, age_keys[0], name="k0.txt")
    for i in range(7):
        assert recipients_in((tree / f"f{i}.json").read_bytes()) == [age_keys[0].public]
    assert sops.ok("--decrypt", tree / "f6.json", keys=kf) == run_cli(
        "decrypt", tree / "f6.json", env={"SOPS_AGE_KEY_FILE": str(kf)}).out

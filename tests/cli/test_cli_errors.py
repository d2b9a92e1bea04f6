"""Failures: one line on stderr, the right exit status, nothing leaked, nothing lost.

Every failure exits 1 with exactly one ``macula: error:`` line on stderr (an
optional ``macula: hint:`` line may follow), no traceback and nothing on
stdout. With ``--sops-exit-codes`` the status is sops's number, checked
against the real sops on the same input. A planted secret (:data:`CANARY`)
never appears in any output, exception or repr.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from macula_secrets import errors
from macula_secrets.keys import age as age_keys_module
from macula_secrets.sops import decrypt as api_decrypt
from macula_secrets.sops.keygroups import IdentityList
from tests.cli._support import (
    CANARY,
    EXTENSIONS,
    MACULA_BIN,
    TEST_KEY,
    AgeKey,
    Result,
    Sops,
    files_in,
    key_file,
    run_cli,
)
from tests.cli.samples import PLAINTEXTS, YAML

pytestmark = pytest.mark.interop

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
ENC_FIELDS = re.compile(
    r"ENC\[AES256_GCM,data:(?P<data>[^,]*),iv:(?P<iv>[^,]*),tag:(?P<tag>[^,]*),"
    r"type:(?P<type>\w+)\]"
)


@pytest.fixture
def encrypted(sops: Sops, tmp_path: Path, keyed: Path) -> dict[str, Path]:
    """The samples of every format, encrypted by sops."""
    out = {}
    for fmt, plain in PLAINTEXTS.items():
        src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
        src.write_bytes(plain)
        enc = tmp_path / f"secrets.{EXTENSIONS[fmt]}"
        enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
        out[fmt] = enc
    return out


def _b64_variant(field: str, pos: int, rng: random.Random) -> str | None:
    """``field`` with the character at ``pos`` replaced so that the decoded bytes change."""
    if field[pos] == "=":
        return field[:pos] + rng.choice(B64) + field[pos + 1:]  # invalid padding
    original = base64.b64decode(field)
    for c in rng.sample(B64, len(B64)):
        if c == field[pos]:
            continue
        candidate = field[:pos] + c + field[pos + 1:]
        try:
            if base64.b64decode(candidate) != original:
                return candidate
        except binascii.Error:
            return candidate
    return None


def _mutations(text: str, rng: random.Random, per_value: int) -> list[tuple[str, str]]:
    """(description, mutated text): one changed character in ENC values other than comments."""
    out = []
    for m in ENC_FIELDS.finditer(text):
        if m.group("type") == "comment":
            continue  # sops keeps a comment it cannot decrypt as it is: tested below
        for _ in range(per_value):
            group = rng.choice(["data", "iv", "tag", "data", "iv", "tag", "other"])
            if group == "other":
                # Anywhere else in ENC[...]: prefix, field names, type, brackets.
                start = rng.randrange(m.start(), m.end())
                if any(m.start(g) <= start < m.end(g) for g in ("data", "iv", "tag")):
                    continue
                ch = text[start]
                repl = "x" if ch != "x" else "y"
            else:
                field = m.group(group)
                pos = rng.randrange(len(field))
                variant = _b64_variant(field, pos, rng)
                if variant is None:
                    continue
                start = m.start(group) + pos
                repl = variant[pos]
            out.append((f"{group}@{start}", text[:start] + repl + text[start + 1:]))
    return out


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_any_changed_byte_of_any_enc_value_is_an_error(
    encrypted: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    text = encrypted[fmt].read_text()
    rng = random.Random(f"flip-{fmt}")
    cases = _mutations(text, rng, per_value=20 if fmt == "binary" else 3)
    assert len(cases) >= 20
    target = tmp_path / f"tampered.{EXTENSIONS[fmt]}"
    for where, mutated in cases:
        target.write_text(mutated)
        r = run_cli("decrypt", target)
        assert r.rc == 1, (where, r.err)
        r.assert_one_error()


def test_sops_exit_codes_match_sops_for_tampering(sops: Sops, encrypted: dict[str, Path],
                                                   tmp_path: Path) -> None:
    text = encrypted["yaml"].read_text()
    lines = text.split("\n")
    rng = random.Random("sops-codes")
    cases = dict(_mutations(text, rng, per_value=1)[:: 6])
    # The MAC field itself, lastmodified, a clear value, values swapped between keys,
    # and two items swapped inside one list (same associated data: only the MAC sees it).
    mac = next(m for m in ENC_FIELDS.finditer(text) if text[:m.start()].endswith("mac: "))
    pos = mac.start("data") + 3
    cases["mac"] = text[:pos] + ("A" if text[pos] != "A" else "B") + text[pos + 1:]
    cases["lastmodified"] = re.sub(
        r'(lastmodified: "\d{4}-\d\d-\d\dT\d\d:\d\d:)(\d\d)',
        lambda m: m.group(1) + f"{(int(m.group(2)) + 1) % 60:02d}", text,
    )
    cases["clear value"] = text.replace("note_unencrypted: visible", "note_unencrypted: vis1ble")
    user = next(ln for ln in lines if ln.startswith("user: "))
    marked = next(ln for ln in lines if ln.startswith("marked: "))
    cases["swap keys"] = text.replace(user, "@@").replace(marked, "marked: " + user[6:]).replace(
        "@@", "user: " + marked[8:])
    items = [ln for ln in lines if re.match(r"    - ENC\[", ln)]
    cases["swap list items"] = text.replace(items[0], "@@").replace(items[-1], items[0]).replace(
        "@@", items[-1])
    target = tmp_path / "tampered.yaml"
    seen = set()
    for where, mutated in cases.items():
        assert mutated != text, where
        target.write_text(mutated)
        expected = sops("--decrypt", target).returncode
        assert expected != 0, where
        r = run_cli("--sops-exit-codes", "decrypt", target)
        r.assert_one_error(rc=expected)
        seen.add(expected)
    assert {25, 51} <= seen
    # The MAC cases say so.
    target.write_text(cases["clear value"])
    assert "MAC" in run_cli("decrypt", target).assert_one_error()


def test_tampered_comment_is_kept_as_sops_keeps_it(
    sops: Sops, encrypted: dict[str, Path], tmp_path: Path
) -> None:
    """A comment that fails to decrypt is left as it is (sops: a warning, exit 0).

    Comments are outside the MAC in the SOPS format; this gap is sops's and is
    replicated so that files from old sops versions with clear comments still
    open. The tampered text is shown as ciphertext, never as a wrong plaintext.
    """
    text = encrypted["yaml"].read_text()
    m = next(m for m in ENC_FIELDS.finditer(text) if m.group("type") == "comment")
    pos = m.start("data")
    target = tmp_path / "comment.yaml"
    target.write_text(text[:pos] + ("A" if text[pos] != "A" else "B") + text[pos + 1:])
    expected = sops.ok("--decrypt", target)
    assert run_cli("decrypt", target).assert_ok().out == expected


# -- keys ---------------------------------------------------------------------------------------


def test_no_identity_matches_names_the_recipients(
    sops: Sops, encrypted: dict[str, Path], tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    other = key_file(tmp_path, age_keys[0], name="other.txt")
    for enc in encrypted.values():
        r = run_cli("decrypt", enc, env={"SOPS_AGE_KEY_FILE": str(other)})
        line = r.assert_one_error()
        assert TEST_KEY.public in line, line
        assert enc.name in line
        assert age_keys[0].secret not in r.err
        assert sops("--decrypt", enc, keys=other).returncode == 128
        run_cli("--sops-exit-codes", "decrypt", enc,
                env={"SOPS_AGE_KEY_FILE": str(other)}).assert_one_error(rc=128)
    # No identity anywhere at all.
    r = run_cli("decrypt", encrypted["yaml"], env={"SOPS_AGE_KEY_FILE": ""})
    assert TEST_KEY.public in r.assert_one_error()


def test_no_identity_as_process(sops: Sops, encrypted: dict[str, Path]) -> None:
    env = {k: v for k, v in sops.env.items() if k != "SOPS_AGE_KEY_FILE"}
    proc = subprocess.run([MACULA_BIN, "decrypt", encrypted["json"]], env=env,
                          capture_output=True, timeout=60, check=False)
    Result(proc.returncode, proc.stdout, proc.stderr.decode()).assert_one_error()


# -- malformed input ----------------------------------------------------------------------------

MALFORMED = [
    ("yaml", f"password: [{CANARY}\n"),
    ("yaml", f"a: 1\n  b: {CANARY}\n"),
    ("yaml", f"a: 1\na: {CANARY}\n"),
    ("yaml", f"- {CANARY}\n"),
    ("yaml", f"\tpassword: {CANARY}\n"),
    ("json", f'{{"password": "{CANARY}'),
    ("json", f'{{"password": {CANARY}}}'),
    ("json", f'["{CANARY}"]'),
    ("json", ""),
    ("dotenv", f"ok=1\n{CANARY}\n"),
    ("ini", f"[sec\npassword = {CANARY}\n"),
    ("ini", f"password {CANARY}\n"),
]


@pytest.mark.parametrize(("fmt", "text"), MALFORMED)
def test_malformed_plaintext(sops: Sops, tmp_path: Path, fmt: str, text: str) -> None:
    src = tmp_path / f"bad.{EXTENSIONS[fmt]}"
    src.write_text(text)
    expected = sops("--encrypt", "--age", TEST_KEY.public, src).returncode
    assert expected != 0
    run_cli("encrypt", "--age", TEST_KEY.public, src).assert_one_error()
    r = run_cli("--sops-exit-codes", "encrypt", "--age", TEST_KEY.public, src)
    r.assert_one_error(rc=expected)


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_malformed_or_truncated_encrypted_file(
    sops: Sops, encrypted: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    data = encrypted[fmt].read_bytes()
    target = tmp_path / f"cut.{EXTENSIONS[fmt]}"
    rng = random.Random(f"cut-{fmt}")
    cuts = sorted({0, 1, len(data) // 2, len(data) - 40, *rng.sample(range(2, len(data)), 12)})
    for cut in cuts:
        target.write_bytes(data[:cut])
        r = run_cli("decrypt", target)
        if r.rc == 0:
            # Only a cut that removes nothing meaningful (the final newline, or a whole
            # default metadata line that sops 3.11 wrote last in INI) may still open,
            # and then exactly as sops opens it.
            proc = sops("--decrypt", target)
            assert proc.returncode == 0 and r.out == proc.stdout, (cut, data[cut:][:80])
            continue
        r.assert_one_error()
    # Not a SOPS file at all.
    target.write_bytes(PLAINTEXTS[fmt])
    line = run_cli("decrypt", target).assert_one_error()
    if fmt != "binary":
        # (sops exits 1 for binary plaintext too, we exit 2 as for any unparsable
        # input: a documented difference of --sops-exit-codes.)
        assert "metadata not found" in line
        assert sops("--decrypt", target).returncode == 1
        run_cli("--sops-exit-codes", "decrypt", target).assert_one_error(rc=1)


def test_already_encrypted(sops: Sops, encrypted: dict[str, Path]) -> None:
    for fmt in ("yaml", "json", "dotenv", "ini"):
        enc = encrypted[fmt]
        before = enc.read_bytes()
        assert sops("--encrypt", "--age", TEST_KEY.public, enc).returncode == 203
        line = run_cli("encrypt", "--age", TEST_KEY.public, enc).assert_one_error()
        assert "already" in line
        run_cli("--sops-exit-codes", "encrypt", "-i", "--age", TEST_KEY.public,
                enc).assert_one_error(rc=203)
        assert enc.read_bytes() == before


def test_missing_file(sops: Sops, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    for argv in (["decrypt", missing], ["encrypt", "--age", TEST_KEY.public, missing],
                 ["rotate", missing], ["filestatus", missing], ["set", missing, '["a"]', "1"],
                 ["unset", missing, '["a"]'], ["exec-env", missing, "true"]):
        r = run_cli(*argv)
        assert "missing.yaml" in r.assert_one_error()
    assert sops("--decrypt", tmp_path / "missing.yaml").returncode == 100
    run_cli("--sops-exit-codes", "decrypt", tmp_path / "missing.yaml").assert_one_error(rc=100)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["decrypt", "--input-type", "toml", "x.yaml"],
        ["encrypt", "--output-type", "xml", "x.yaml"],
        ["decrypt", "--no-such-flag", "x.yaml"],
        ["set", "x.yaml"],
        ["unset"],
        ["encrypt", "--encrypted-regex", "a", "--unencrypted-regex", "b", "x.yaml"],
        ["encrypt", "--indent", "two", "x.yaml"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    r = run_cli(*argv)
    r.assert_one_error(rc=2)


def test_usage_error_as_process() -> None:
    proc = subprocess.run([MACULA_BIN, "decrypt", "--input-type", "toml", "x"],
                          capture_output=True, timeout=60, check=False)
    r = Result(proc.returncode, proc.stdout, proc.stderr.decode())
    assert "invalid choice" in r.assert_one_error(rc=2)


def test_invalid_tree_path(encrypted: dict[str, Path], sops: Sops) -> None:
    enc = encrypted["yaml"]
    assert sops("--decrypt", "--extract", "nested", enc).returncode == 91
    run_cli("decrypt", "--extract", "nested", enc).assert_one_error()
    run_cli("--sops-exit-codes", "decrypt", "--extract", "nested", enc).assert_one_error(rc=91)


# -- nothing lost on failure ---------------------------------------------------------------------


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _run_limited(args: list[str | os.PathLike[str]], env: dict[str, str], limit: int,
                 cwd: Path | None = None) -> Result:
    """Run the console script unable to write files larger than ``limit`` bytes (EFBIG)."""
    proc = subprocess.run([MACULA_BIN, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          timeout=60, check=False, preexec_fn=lambda: _limit_file_size(limit))
    return Result(proc.returncode, proc.stdout, proc.stderr.decode())


def test_failed_in_place_writes_leave_the_original(
    sops: Sops, encrypted: dict[str, Path], tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    # encrypt -i: the output cannot be written.
    src = tmp_path / "plain.yaml"
    before = src.read_bytes()
    listing = files_in(tmp_path)
    r = _run_limited(["encrypt", "-i", "--age", TEST_KEY.public, src], sops.env, len(before) + 100)
    assert "too large" in r.assert_one_error().lower()
    assert src.read_bytes() == before
    assert files_in(tmp_path) == listing
    # encrypt -i: no matching creation rule.
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n  - path_regex: nothing\n")
    run_cli("encrypt", "-i", src, cwd=tmp_path).assert_one_error()
    assert src.read_bytes() == before
    (tmp_path / ".sops.yaml").unlink()

    enc = encrypted["yaml"]
    before = enc.read_bytes()
    # rotate -i: cannot write; no identity.
    r = _run_limited(["rotate", "-i", enc], sops.env, 1000)
    r.assert_one_error()
    assert enc.read_bytes() == before
    assert files_in(tmp_path) == listing
    other = key_file(tmp_path, age_keys[0], name="other.txt")
    listing = files_in(tmp_path)
    run_cli("rotate", "-i", enc, env={"SOPS_AGE_KEY_FILE": str(other)}).assert_one_error()
    assert enc.read_bytes() == before
    # updatekeys: no identity; cannot write.
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_keys[1].public}\n")
    listing = files_in(tmp_path)
    run_cli("updatekeys", "-y", enc, cwd=tmp_path,
            env={"SOPS_AGE_KEY_FILE": str(other)}).assert_one_error()
    assert enc.read_bytes() == before
    r = _run_limited(["updatekeys", "-y", enc], sops.env, 1000, cwd=tmp_path)
    assert r.rc == 1 and "macula: error: " in r.err and "Traceback" not in r.err
    assert enc.read_bytes() == before
    # set, unset: cannot write.
    changes: list[list[str | os.PathLike[str]]] = [
        ["set", enc, '["user"]', '"x"'], ["unset", enc, '["user"]']]
    for args in changes:
        _run_limited(args, sops.env, 1000).assert_one_error()
        assert enc.read_bytes() == before
    assert files_in(tmp_path) == listing


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; "
                    "test_failed_in_place_writes_leave_the_original covers failed writes")
def test_unwritable_folder(encrypted: dict[str, Path], tmp_path: Path) -> None:
    enc = encrypted["yaml"]
    before = enc.read_bytes()
    listing = files_in(tmp_path)
    tmp_path.chmod(0o555)
    try:
        argvs: list[list[str | os.PathLike[str]]] = [
            ["rotate", "-i", enc], ["set", enc, '["user"]', '"x"'],
            ["encrypt", "-i", "--age", TEST_KEY.public, tmp_path / "plain.yaml"]]
        for argv in argvs:
            run_cli(*argv).assert_one_error()
    finally:
        tmp_path.chmod(0o755)
    assert enc.read_bytes() == before
    assert files_in(tmp_path) == listing


# -- no secret in errors, exceptions or reprs ----------------------------------------------------


def test_no_secret_in_exceptions_or_reprs(
    encrypted: dict[str, Path], tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    data = encrypted["yaml"].read_bytes()
    doc = api_decrypt(data, format="yaml", identities=[TEST_KEY.secret])
    key = doc._cipher.data_key()  # the key must not leak anywhere below
    forbidden = [CANARY, TEST_KEY.secret, key.hex(), key.hex().upper(),
                 base64.b64encode(key).decode(), "AGE-SECRET-KEY"]
    identities = age_keys_module.parse_identities(TEST_KEY.secret, source="test")
    shown = [repr(doc), str(doc), repr(doc.metadata), repr(doc._cipher),
             repr(identities), str(identities[0]), repr(IdentityList(identities)),
             repr(doc.metadata.key_groups)]
    # Exceptions from every kind of failure, with all their attributes.
    failures: list[BaseException] = []
    text = data.decode()
    tampered = [
        text.replace("note_unencrypted: visible", "note_unencrypted: changed"),
        re.sub(r"(user: ENC\[AES256_GCM,data:)(.)", lambda m: m.group(1) + (
            "A" if m.group(2) != "A" else "B"), text),
        text.replace("type:str", "type:int", 1),
        text[: len(text) // 2],
    ]
    for t in tampered:
        with pytest.raises(errors.MaculaError) as info:
            api_decrypt(t.encode(), format="yaml", identities=[TEST_KEY.secret])
        failures.append(info.value)
    with pytest.raises(errors.NoMatchingKeyError) as info:
        api_decrypt(data, format="yaml", identities=[age_keys[0].secret])
    failures.append(info.value)
    for exc in failures:
        shown += [str(exc), repr(exc), repr(exc.args), str(getattr(exc, "hint", "")),
                  repr(getattr(exc, "errors", "")), repr(getattr(exc, "recipients", ""))]
        assert exc.__cause__ is None or not any(
            f in str(exc.__cause__) for f in forbidden
        )
    blob = "\n".join(shown)
    for f in forbidden:
        assert f not in blob
    assert age_keys[0].secret not in blob
    # The secret is really there, so the checks above mean something.
    assert CANARY in doc.plaintext().decode()


def test_failing_commands_never_print_the_secret(
    sops: Sops, encrypted: dict[str, Path], tmp_path: Path
) -> None:
    enc = encrypted["yaml"]
    runs = [
        run_cli("decrypt", "--extract", '["password"]["x"]', enc),
        run_cli("exec-env", enc, "true"),
        run_cli("decrypt", "--output-type", "dotenv", enc),
        run_cli("decrypt", "--output-type", "ini", enc),
        run_cli("decrypt", "--output-type", "binary", enc),
        run_cli("unset", enc, '["password"]["x"]'),
    ]
    for r in runs:
        assert r.rc == 1
        r.assert_one_error()
    # Malformed plaintext holding the secret in the offending line.
    for fmt, text in MALFORMED:
        src = tmp_path / f"bad.{EXTENSIONS[fmt]}"
        src.write_text(text)
        r = run_cli("encrypt", "--age", TEST_KEY.public, src)
        r.assert_one_error()


def test_yaml_without_sops_block_mentions_no_value(tmp_path: Path, keyed: Path) -> None:
    target = tmp_path / "plain.yaml"
    target.write_bytes(YAML)
    line = run_cli("decrypt", target).assert_one_error()
    assert "metadata not found" in line


VERSIONS = ["3.11.0-rc.1", "3.11.0+build.1", "v3.11.0", "3.11.0-0", "03.11.0", "3.11.0-01",
            "3.11.0-rc..1", "3.11.0+", "3.11", "3.11.0.1", "3.11.0-rc+b+c", "3.11.0-x y", ""]


def test_version_validation_matches_sops(sops: Sops, encrypted: dict[str, Path],
                                         tmp_path: Path) -> None:
    text = encrypted["yaml"].read_text()
    target = tmp_path / "version.yaml"
    for v in VERSIONS:
        target.write_text(text.replace("    version: 3.11.0", f'    version: "{v}"'))
        proc = sops("--decrypt", target)
        r = run_cli("decrypt", target)
        if proc.returncode == 0:
            assert r.assert_ok().out == proc.stdout, v
        else:
            assert "version" in r.assert_one_error(), v

"""Interop through the command line: macula-secrets and the real sops, both directions.

For each format and each option, the same plaintext is encrypted by both
tools. The two encrypted files must be identical once their random parts are
masked (:func:`normalize`): same values encrypted, same types, same layout
and metadata. ``sops -d`` must print the same bytes for both, and
``macula-secrets decrypt`` of the sops file must print exactly what
``sops -d`` prints.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.cli._support import (
    CANARY,
    EXTENSIONS,
    TEST_KEY,
    AgeKey,
    Sops,
    key_file,
    normalize,
    recipients_in,
    run_cli,
    run_proc,
)
from tests.cli.samples import PLAINTEXTS, YAML

pytestmark = pytest.mark.interop

REGEX = "^(data|password)$"
OPTIONS: dict[str, list[str]] = {
    "default": [],
    "encrypted-regex": ["--encrypted-regex", REGEX],
    "unencrypted-regex": ["--unencrypted-regex", "^(user|note)"],
    "encrypted-suffix": ["--encrypted-suffix", "_enc"],
    "unencrypted-suffix": ["--unencrypted-suffix", "_plain"],
    "encrypted-comment-regex": ["--encrypted-comment-regex", "sops:enc"],
    "unencrypted-comment-regex": ["--unencrypted-comment-regex", "sops:clear"],
    "mac-only-encrypted": ["--mac-only-encrypted"],
    "mac-only-encrypted+regex": ["--mac-only-encrypted", "--encrypted-regex", REGEX],
}
CASES = [
    *itertools.product(("yaml", "json", "dotenv", "ini"), OPTIONS),
    ("binary", "default"),
    ("binary", "encrypted-regex"),
]


def _both_encrypt(
    sops: Sops, tmp_path: Path, fmt: str, flags: list[str], recipients: str,
    *, plain: bytes | None = None,
) -> tuple[Path, Path, Path]:
    """Encrypt the sample with both tools; return (plaintext, ours, theirs) paths."""
    ext = EXTENSIONS[fmt]
    src = tmp_path / f"plain.{ext}"
    src.write_bytes(PLAINTEXTS[fmt] if plain is None else plain)
    ours = tmp_path / f"ours.{ext}"
    theirs = tmp_path / f"theirs.{ext}"
    run_cli("encrypt", *flags, "--age", recipients, "--output", ours, src, cwd=tmp_path).assert_ok()
    theirs.write_bytes(sops.ok("--encrypt", *flags, "--age", recipients, src, cwd=tmp_path))
    return src, ours, theirs


@pytest.mark.parametrize(("fmt", "option"), CASES)
def test_encrypt_and_decrypt_match_sops(
    sops: Sops, tmp_path: Path, keyed: Path, fmt: str, option: str
) -> None:
    flags = OPTIONS[option]
    _, ours, theirs = _both_encrypt(sops, tmp_path, fmt, flags, TEST_KEY.public)
    # Same values encrypted, same types and layout, same metadata.
    assert normalize(ours.read_bytes(), fmt) == normalize(theirs.read_bytes(), fmt)
    # sops reads ours exactly as it reads its own.
    expected = sops.ok("--decrypt", theirs)
    assert sops.ok("--decrypt", ours) == expected
    # We read sops's file exactly as sops does.
    assert run_cli("decrypt", theirs).assert_ok().out == expected
    assert run_cli("decrypt", ours).assert_ok().out == expected


def test_default_encrypt_hides_the_secret(tmp_path: Path, keyed: Path) -> None:
    for fmt, plain in PLAINTEXTS.items():
        src = tmp_path / f"p.{EXTENSIONS[fmt]}"
        src.write_bytes(plain)
        out = run_cli("encrypt", "--age", TEST_KEY.public, src).assert_ok().out
        assert CANARY.encode() not in out, fmt


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_console_script_round_trip(sops: Sops, tmp_path: Path, fmt: str) -> None:
    """The installed ``macula-secrets`` command, as a real process."""
    src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
    src.write_bytes(PLAINTEXTS[fmt])
    enc = tmp_path / f"enc.{EXTENSIONS[fmt]}"
    r = run_proc("encrypt", "--age", TEST_KEY.public, "--output", enc, src, env=sops.env)
    assert (r.rc, r.out, r.err) == (0, b"", "")
    expected = sops.ok("--decrypt", enc)
    r = run_proc("decrypt", enc, env=sops.env)
    assert (r.rc, r.err) == (0, "")
    assert r.out == expected
    r = run_proc("decrypt", "--input-type", fmt, "--output-type", fmt,
                 input=enc.read_bytes(), env=sops.env)
    assert r.out == expected, r.err


# -- several recipients and key groups ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_several_recipients_each_identity_alone(
    sops: Sops, tmp_path: Path, age_keys: list[AgeKey], fmt: str
) -> None:
    k1, k2 = age_keys[0], age_keys[1]
    recipients = f"{k1.public},{k2.public}"
    _, ours, theirs = _both_encrypt(sops, tmp_path, fmt, [], recipients)
    assert normalize(ours.read_bytes(), fmt) == normalize(theirs.read_bytes(), fmt)
    assert recipients_in(ours.read_bytes()) == [k1.public, k2.public]
    expected = PLAINTEXTS[fmt] if fmt == "binary" else None
    outputs = []
    for key in (k1, k2):
        kf = key_file(tmp_path, key, name=f"{key.public[-6:]}.txt")
        for f in (ours, theirs):
            outputs.append(sops.ok("--decrypt", f, keys=kf))
            r = run_cli("decrypt", f, env={"SOPS_AGE_KEY_FILE": str(kf)})
            outputs.append(r.assert_ok().out)
    assert len(set(outputs)) == 1
    if expected is not None:
        assert outputs[0] == expected


def _groups_config(folder: Path, keys: list[AgeKey], threshold: int = 2) -> Path:
    groups = "".join(f"          - age:\n              - {k.public}\n" for k in keys)
    cfg = folder / ".sops.yaml"
    cfg.write_text(
        f"creation_rules:\n    - shamir_threshold: {threshold}\n      key_groups:\n{groups}"
    )
    return cfg


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_key_groups_threshold_two_of_three(
    sops: Sops, tmp_path: Path, age_keys: list[AgeKey], fmt: str
) -> None:
    _groups_config(tmp_path, age_keys)
    ext = EXTENSIONS[fmt]
    src = tmp_path / f"plain.{ext}"
    src.write_bytes(PLAINTEXTS[fmt])
    ours = tmp_path / f"ours.{ext}"
    theirs = tmp_path / f"theirs.{ext}"
    run_cli("encrypt", "--output", ours, src, cwd=tmp_path).assert_ok()
    theirs.write_bytes(sops.ok("--encrypt", src, cwd=tmp_path))
    assert normalize(ours.read_bytes(), fmt) == normalize(theirs.read_bytes(), fmt)
    text = ours.read_text()
    assert "shamir_threshold" in text
    assert recipients_in(ours.read_bytes()) == [k.public for k in age_keys]

    pairs = list(itertools.combinations(age_keys, 2))
    if fmt != "yaml":
        pairs = pairs[:1]
    reference = None
    for pair in pairs:
        kf = key_file(tmp_path, *pair, name="pair.txt")
        env = {"SOPS_AGE_KEY_FILE": str(kf)}
        for f in (ours, theirs):
            out = sops.ok("--decrypt", f, keys=kf)
            reference = reference or out
            assert out == reference
            assert run_cli("decrypt", f, env=env).assert_ok().out == reference
    # No identity of the file: the message names all three recipients.
    kf = key_file(tmp_path, TEST_KEY, name="none.txt")
    line = run_cli("decrypt", ours, env={"SOPS_AGE_KEY_FILE": str(kf)}).assert_one_error()
    assert all(k.public in line for k in age_keys), line
    # One identity is not enough, for either tool.
    singles = age_keys if fmt == "yaml" else age_keys[:1]
    for key in singles:
        kf = key_file(tmp_path, key, name="single.txt")
        for f in (ours, theirs):
            proc = sops("--decrypt", f, keys=kf)
            assert proc.returncode == 128
            line = run_cli("decrypt", f, env={"SOPS_AGE_KEY_FILE": str(kf)}).assert_one_error()
            assert "threshold of 2" in line and "only 1" in line, line


# -- --extract ---------------------------------------------------------------------------

EXTRACTS = [
    '["user"]', '["password"]', '["data"]["port"]', '["data"]["ratio"]', '["data"]["enabled"]',
    '["data"]["when"]', '["list"]', '["list"][0]', '["list"][1]', '["list"][2]',
    '["list"][1]["password"]', '["data"]', '["multi"]', '["unicode"]', '["empty"]',
    '["nothing"]',
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_extract_matches_sops(sops: Sops, tmp_path: Path, keyed: Path, fmt: str) -> None:
    src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
    src.write_bytes(PLAINTEXTS[fmt])
    enc = tmp_path / f"enc.{EXTENSIONS[fmt]}"
    enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
    for path in EXTRACTS:
        if fmt == "json" and "when" in path:
            continue
        proc = sops("--decrypt", "--extract", path, enc)
        ours = run_cli("decrypt", "--extract", path, enc)
        if proc.returncode != 0:
            ours.assert_one_error()
            continue
        assert ours.assert_ok().out == proc.stdout, path
    # A string is printed raw, with no newline.
    assert run_cli("decrypt", "--extract", '["user"]', enc).out == b"admin"
    # A missing key fails in both.
    assert sops("--decrypt", "--extract", '["nope"]', enc).returncode == 1
    assert "nope" in run_cli("decrypt", "--extract", '["nope"]', enc).assert_one_error()


def test_extract_from_flat_formats(sops: Sops, tmp_path: Path, keyed: Path) -> None:
    for fmt, path in (("dotenv", '["multi"]'), ("ini", '["data"]'), ("ini", '["data"]["token"]')):
        src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
        src.write_bytes(PLAINTEXTS[fmt])
        enc = tmp_path / f"enc.{EXTENSIONS[fmt]}"
        enc.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
        proc = sops("--decrypt", "--extract", path, enc)
        ours = run_cli("decrypt", "--extract", path, enc)
        if proc.returncode != 0:  # an INI section is a map, not an INI file: sops fails
            ours.assert_one_error()
        else:
            assert ours.assert_ok().out == proc.stdout, (fmt, path)


# -- conversions and indentation -----------------------------------------------------------

FLAT_YAML = b"# c\nuser: admin\nport: 5432\nratio: 0.5\nflag: true\nmulti: |-\n    a\n    b\n"
SECTIONS_YAML = b"main:\n    user: admin\n    pass: x\nother:\n    k: v\n"
CONVERSIONS = [
    ("yaml", YAML, "json"),
    ("yaml", FLAT_YAML, "dotenv"),
    ("yaml", SECTIONS_YAML, "ini"),
    ("json", PLAINTEXTS["json"], "yaml"),
    ("dotenv", PLAINTEXTS["dotenv"], "json"),
    ("dotenv", PLAINTEXTS["dotenv"], "yaml"),
    ("ini", PLAINTEXTS["ini"], "json"),
    ("ini", PLAINTEXTS["ini"], "yaml"),
    ("binary", PLAINTEXTS["binary"], "json"),
]


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize(("fmt_in", "plain", "fmt_out"), CONVERSIONS,
                         ids=[f"{a}-{c}" for a, _, c in CONVERSIONS])
def test_input_output_type_conversions(
    sops: Sops, tmp_path: Path, fmt_in: str, plain: bytes, fmt_out: str
) -> None:
    src = tmp_path / "plain.txt"  # extension says binary: the flags decide
    src.write_bytes(plain)
    types = ["--input-type", fmt_in, "--output-type", fmt_out]
    # Encrypt with a conversion: identical layout to sops's.
    ours = run_cli("encrypt", *types, "--age", TEST_KEY.public, src).assert_ok().out
    theirs = sops.ok("--encrypt", *types, "--age", TEST_KEY.public, src)
    assert normalize(ours, fmt_out) == normalize(theirs, fmt_out)
    enc = tmp_path / "enc.txt"
    enc.write_bytes(theirs)
    back = ["--input-type", fmt_out, "--output-type", fmt_out]
    expected = sops.ok("--decrypt", *back, enc)
    assert run_cli("decrypt", *back, enc).assert_ok().out == expected
    enc.write_bytes(ours)
    assert sops.ok("--decrypt", *back, enc) == expected
    # Decrypt with a conversion.
    enc.write_bytes(sops.ok("--encrypt", "--input-type", fmt_in, "--output-type", fmt_in,
                            "--age", TEST_KEY.public, src))
    conv = ["--input-type", fmt_in, "--output-type", fmt_out]
    assert run_cli("decrypt", *conv, enc).assert_ok().out == sops.ok("--decrypt", *conv, enc)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("indent", ["2", "0", "8"])
def test_indent(sops: Sops, tmp_path: Path, keyed: Path, fmt: str, indent: str) -> None:
    ext = EXTENSIONS[fmt]
    src = tmp_path / f"plain.{ext}"
    src.write_bytes(PLAINTEXTS[fmt])
    ours = run_cli("encrypt", "--indent", indent, "--age", TEST_KEY.public, src).assert_ok().out
    theirs = sops.ok("--encrypt", "--indent", indent, "--age", TEST_KEY.public, src)
    assert normalize(ours, fmt) == normalize(theirs, fmt)
    enc = tmp_path / f"enc.{ext}"
    enc.write_bytes(theirs)
    expected = sops.ok("--decrypt", "--indent", indent, enc)
    assert run_cli("decrypt", "--indent", indent, enc).assert_ok().out == expected


def test_indent_from_sops_yaml_stores(sops: Sops, tmp_path: Path, keyed: Path) -> None:
    (tmp_path / ".sops.yaml").write_text(
        f"stores:\n  yaml:\n    indent: 2\n  json:\n    indent: 3\n"
        f"creation_rules:\n  - age: {TEST_KEY.public}\n"
    )
    for fmt in ("yaml", "json"):
        src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
        src.write_bytes(PLAINTEXTS[fmt])
        ours = run_cli("encrypt", src, cwd=tmp_path).assert_ok().out
        theirs = sops.ok("--encrypt", src, cwd=tmp_path)
        assert normalize(ours, fmt) == normalize(theirs, fmt)
        enc = tmp_path / f"enc.{EXTENSIONS[fmt]}"
        enc.write_bytes(theirs)
        expected = sops.ok("--decrypt", enc, cwd=tmp_path)
        assert run_cli("decrypt", enc, cwd=tmp_path).assert_ok().out == expected, fmt


# -- .sops.yaml discovery and creation rules ---------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, age_keys: list[AgeKey]) -> Path:
    """A folder with a .sops.yaml: prod/*.yaml -> key 0, *.json -> key 1 + encrypted_regex."""
    root = tmp_path / "repo"
    for sub in ("prod/deep", "dev", "outside"):
        (root / sub).mkdir(parents=True)
    (root / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - path_regex: prod/.*\\.yaml$\n    age: {age_keys[0].public}\n"
        f"  - path_regex: \\.json$\n    age: >-\n      {age_keys[1].public},\n"
        f"      {age_keys[2].public}\n    encrypted_regex: ^password$\n"
    )
    for name in ("prod/a.yaml", "prod/deep/b.yaml", "dev/c.yaml"):
        (root / name).write_bytes(YAML)
    (root / "dev/d.json").write_bytes(PLAINTEXTS["json"])
    return root


@pytest.mark.parametrize(
    "case",
    [
        (".", "prod/a.yaml", [0]),
        ("prod", "a.yaml", [0]),
        ("prod/deep", "b.yaml", [0]),
        ("dev", "d.json", [1, 2]),
        (".", "dev/d.json", [1, 2]),
    ],
)
def test_creation_rules_found_from_cwd_and_parents(
    sops: Sops, repo: Path, age_keys: list[AgeKey], case: tuple[str, str, list[int]]
) -> None:
    cwd, target, expected = case
    where = repo / cwd
    ours = run_cli("encrypt", target, cwd=where).assert_ok().out
    theirs = sops.ok("--encrypt", target, cwd=where)
    fmt = "json" if target.endswith(".json") else "yaml"
    assert normalize(ours, fmt) == normalize(theirs, fmt)
    assert recipients_in(ours) == [age_keys[i].public for i in expected]


def test_no_matching_rule_is_an_error_even_with_age(sops: Sops, repo: Path) -> None:
    for args in ([], ["--age", TEST_KEY.public]):
        proc = sops("--encrypt", *args, "dev/c.yaml", cwd=repo)
        assert proc.returncode != 0
        assert b"no matching creation rules" in proc.stderr
        line = run_cli("encrypt", *args, "dev/c.yaml", cwd=repo).assert_one_error()
        assert "no matching creation rules" in line


def test_config_flag_and_no_search_from_target_folder(
    sops: Sops, repo: Path, tmp_path: Path, age_keys: list[AgeKey]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = repo / "prod/a.yaml"
    # The config is searched from the working directory, not from the file's folder.
    proc = sops("--encrypt", target, cwd=elsewhere)
    assert proc.returncode != 0
    line = run_cli("encrypt", target, cwd=elsewhere).assert_one_error()
    assert "no keys provided" in line
    # --config names it explicitly (SOPS_CONFIG likewise).
    cfg = repo / ".sops.yaml"
    theirs = sops.ok("--config", cfg, "--encrypt", target, cwd=elsewhere)
    ours = run_cli("--config", cfg, "encrypt", target, cwd=elsewhere).assert_ok().out
    assert normalize(ours) == normalize(theirs)
    assert recipients_in(ours) == [age_keys[0].public]
    r = run_cli("encrypt", target, cwd=elsewhere, env={"SOPS_CONFIG": str(cfg)}).assert_ok()
    assert recipients_in(r.out) == [age_keys[0].public]


def test_cli_selection_rule_against_config(sops: Sops, repo: Path) -> None:
    # The same rule on both sides: the command line wins.
    args = ["--encrypted-regex", "^user$", "dev/d.json"]
    theirs = sops.ok("--encrypt", *args, cwd=repo)
    ours = run_cli("encrypt", *args, cwd=repo).assert_ok().out
    assert normalize(ours, "json") == normalize(theirs, "json")
    assert b'"encrypted_regex": "^user$"' in ours
    # A different rule conflicts with the config's: sops exits 8.
    args = ["--encrypted-suffix", "_enc", "dev/d.json"]
    proc = sops("--encrypt", *args, cwd=repo)
    assert proc.returncode == 8
    assert "more than one" in run_cli("encrypt", *args, cwd=repo).assert_one_error()
    run_cli("--sops-exit-codes", "encrypt", *args, cwd=repo).assert_one_error(rc=8)


@pytest.mark.parametrize(
    ("fmt", "plain"),
    [
        ("dotenv", b"KEY=caf\xe9\nOK=1\n"),
        ("ini", b"[s]\nkey = caf\xe9\n"),
        ("json", b'{"key": "caf\xe9"}'),
    ],
)
def test_non_utf8_plaintext(
    sops: Sops, tmp_path: Path, keyed: Path, fmt: str, plain: bytes
) -> None:
    """sops encrypts text files that are not UTF-8 (dotenv and INI keep the bytes,
    JSON turns them into U+FFFD). We decrypt such files exactly as sops does, but
    refuse to create them: DESIGN.md lists non-UTF-8 as bad input (a clear error,
    nothing written); binary files are the way to store arbitrary bytes."""
    src = tmp_path / f"plain.{EXTENSIONS[fmt]}"
    src.write_bytes(plain)
    theirs = tmp_path / f"theirs.{EXTENSIONS[fmt]}"
    theirs.write_bytes(sops.ok("--encrypt", "--age", TEST_KEY.public, src))
    expected = sops.ok("--decrypt", theirs)
    assert run_cli("decrypt", theirs).assert_ok().out == expected
    ours = tmp_path / f"ours.{EXTENSIONS[fmt]}"
    result = run_cli("encrypt", "--age", TEST_KEY.public, "--output", ours, src)
    result.assert_one_error()
    assert "UTF-8" in result.err
    assert not ours.exists()

"""The four stores against the real sops 3.11 binary, without our engine.

For a plaintext X the real sops gives E = ``sops encrypt X`` and
D = ``sops decrypt E``. Our stores must reproduce both from the same input:
``emit_plain(load_plain(X)) == D``, ``emit_plain(load_plain(D)) == D`` and
``emit_encrypted(*load_encrypted(E)) == E`` (the ``[sops]`` section of an INI
file compared as a set of lines: sops 3.11 writes it in random order). The
cross-format and ``--extract`` tests compare our output with what sops prints
for the same tree in another format.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from macula_secrets.errors import FormatError
from macula_secrets.sops.metadata import Metadata
from macula_secrets.sops.stores import get_store
from macula_secrets.sops.tree import Branch
from tests.conftest import TEST_AGE_PUBLIC, run_sops

pytestmark = pytest.mark.interop

# -- fixtures: plaintext documents per format ------------------------------------

JSON_DOCS = {
    "basic": b'{"api_key": "k-123", "retries": 3, "nested": {"list": [true, "x"]}}',
    "numbers": (
        b'{"n": [1, 1.5, -0, 1e20, 1e21, 1e-6, 1e-7, 123456789012345678901234, 0.1, 100,'
        b" 1E2, -1.5e-10, 5e-324, 1.7976931348623157e308, 12345678901234567890],"
        b' "n_unencrypted": [3, 0.5, 1e300]}'
    ),
    "strings": (
        b'{"s": "a<b>&c\\u2028\\u2029\\u0000\\u0001\\b\\f\\n\\r\\t\\u007f\\"\\\\\\/'
        b'\xc3\xa9\xf0\x9f\x98\x80\\ud800x", "": "", "\xe9\x8d\xb5": "\xe5\x80\xbc",'
        b' "dup": 1, "dup": 2}'
    ),
    "shapes": (
        b'  {"e": {}, "l": [], "nested": {"x": [[], {}, [[{"deep": [null, false]}]]],'
        b' "t": true, "z": null}, "empty": ""}\n trailing content is ignored'
    ),
    "empty": b"{}",
}

DOTENV_DOCS = {
    "basic": b"# comment\nTOKEN=abc\nPUBLIC_unencrypted=yes\n",
    "edges": (
        b'# comment\nTOKEN=abc\n\nexport X=1\n  SPACED =x y \nQ="a b"\nML=line1\\nline2\n'
        b"E=\nEQ=a=b=c\nCR=x\r\n#\n# spaced\n\xc3\xa9=\xe2\x82\xac\nDUP=1\nDUP=2\n"
        b"\xef\xbb\xbfBOM=1\nLAST=no newline"
    ),
    "comments_only": b"#a\n# b\n",
}

INI_DOCS = {
    "basic": b"[main]\nuser = root\npass = hunter2\n",
    "comments": (
        b'top = 1\n; c1\n# c2\n[s1] ; sc\nk1 = v1 ; inline\nlongkey=  "quoted"  \n'
        b'k2: colon\n\n; before sec\n[ s2 ]\na = b#c\nq = \'single\'\ne =\nx = "a"b"\n'
        b";;; many\n;\n##  hashes\nlast = 1\n; trailing comment is dropped\n"
    ),
    "duplicates": (
        b"[a]\nk = 1\n; c for k2\nk2 = 2\nk = 3\n[a]\nz = 9\n[DEFAULT]\nd = 1\n[c]\n"
        b'cont = a\\\n  b\\\n c\nml = """line1\nline2"""\nbt = `x;y`\n"q k" = v\n'
        b"`b k` = v2\n\xc3\xa9k = 1\nx = 2\n"
    ),
    "odd_headers": (
        b"\xef\xbb\xbf[s]]\r\nk=v\r\n[[s]\nk ==v\n  [t] x\nk\t=\tv v\t\n[a] ; b]\n"
        b"\tk = v\nc = a \\ \nnext = 1\nbt2 = `abc\ndef` ; after\n"
        b'k3 = """x"""y ; z\nq = "a" ; c\nsq = \'a\'\ncolon:in: key\n'
    ),
    "empty": b"",
    "default_only": b"; lone\nk = v\n",
}

BINARY_DOCS = {
    "text": b"raw\n",
    "empty": b"",
    "bytes": bytes(range(256)) * 3 + b"\xff\xfe\x00",
}

FORMAT_DOCS = {"json": JSON_DOCS, "dotenv": DOTENV_DOCS, "ini": INI_DOCS, "binary": BINARY_DOCS}
CASES = [(fmt, name) for fmt, docs in FORMAT_DOCS.items() for name in docs]


# -- helpers --------------------------------------------------------------------


class Sops:
    """The real sops, run in a directory without a .sops.yaml above it."""

    def __init__(self, binary: str, env: dict[str, str], cwd: Path) -> None:
        self.binary = binary
        self.env = env
        self.cwd = cwd

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_sops(self.binary, *args, env=self.env, cwd=self.cwd)

    def ok(self, *args: str) -> bytes:
        r = self.run(*args)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout

    def encrypt(self, path: Path, fmt: str, *extra: str, age: bool = True) -> bytes:
        args = ["encrypt", "--input-type", fmt, "--output-type", fmt, *extra]
        if age:
            args += ["--age", TEST_AGE_PUBLIC]
        return self.ok(*args, str(path))

    def decrypt(self, path: Path, fmt: str, out: str | None = None, *extra: str) -> bytes:
        out = out or fmt
        return self.ok("decrypt", "--input-type", fmt, "--output-type", out, *extra, str(path))


@pytest.fixture
def sops(sops_bin: str, sops_env: dict[str, str], tmp_path: Path) -> Sops:
    work = tmp_path / "work"
    work.mkdir()
    return Sops(sops_bin, sops_env, work)


def same_file(fmt: str, ours: bytes, theirs: bytes) -> bool:
    """Byte equality, except the randomly ordered [sops] section of INI files."""
    if fmt != "ini":
        return ours == theirs
    head_a, sep_a, tail_a = ours.partition(b"[sops]\n")
    head_b, sep_b, tail_b = theirs.partition(b"[sops]\n")
    lines_a = tail_a.split(b"\n")
    lines_b = tail_b.split(b"\n")
    return (head_a, sep_a, sorted(lines_a)) == (head_b, sep_b, sorted(lines_b))


def check_encrypted(fmt: str, encrypted: bytes) -> None:
    store = get_store(fmt)
    branches, raw = store.load_encrypted(encrypted)
    assert same_file(fmt, store.emit_encrypted(branches, raw), encrypted)
    metadata = Metadata.from_branch(raw)
    rules = [k for k in raw.keys() if k.endswith(("_suffix", "_regex"))]  # noqa: SIM118
    if fmt == "binary" and not rules:
        metadata.rule = None  # sops 3.11 writes no selection rule for binary files
    assert same_file(fmt, store.emit_encrypted(branches, metadata.to_branch()), encrypted)


# -- fidelity -------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), CASES)
def test_plain_and_encrypted_fidelity(sops: Sops, tmp_path: Path, fmt: str, name: str) -> None:
    plain = FORMAT_DOCS[fmt][name]
    src = tmp_path / f"plain.{fmt}"
    src.write_bytes(plain)
    encrypted = sops.encrypt(src, fmt)
    enc_path = tmp_path / f"enc.{fmt}"
    enc_path.write_bytes(encrypted)
    decrypted = sops.decrypt(enc_path, fmt)

    store = get_store(fmt)
    assert store.emit_plain(store.load_plain(plain)) == decrypted
    assert store.emit_plain(store.load_plain(decrypted)) == decrypted
    assert not store.has_metadata(store.load_plain(plain))
    check_encrypted(fmt, encrypted)


@pytest.mark.parametrize("fmt", ["json", "dotenv", "ini"])
def test_key_groups_rules_and_mac_only(sops: Sops, tmp_path: Path, fmt: str) -> None:
    config = sops.cwd / ".sops.yaml"
    config.write_text(
        "creation_rules:\n  - key_groups:\n"
        + f"      - age: [{TEST_AGE_PUBLIC}]\n" * 3
        + "    shamir_threshold: 2\n    encrypted_regex: ^(pass|token)$\n"
        "    mac_only_encrypted: true\n"
    )
    plain = {
        "json": b'{"pass": "x", "other": 1.5, "token": ["a", {"b": true}]}',
        "dotenv": b"pass=x\nother=y\n",
        "ini": b"[db]\npass = x\nother = y\n",
    }[fmt]
    src = sops.cwd / f"plain.{fmt}"
    src.write_bytes(plain)
    encrypted = sops.encrypt(src, fmt, age=False)  # the rule in ./.sops.yaml applies
    check_encrypted(fmt, encrypted)
    _, raw = get_store(fmt).load_encrypted(encrypted)
    metadata = Metadata.from_branch(raw)
    assert len(metadata.key_groups) == 3 and metadata.shamir_threshold == 2
    assert metadata.mac_only_encrypted and metadata.rule == ("encrypted_regex", "^(pass|token)$")


def test_json_indent_option(sops: Sops, tmp_path: Path) -> None:
    src = tmp_path / "plain.json"
    src.write_bytes(JSON_DOCS["basic"])
    enc = tmp_path / "enc.json"
    enc.write_bytes(sops.encrypt(src, "json"))
    for indent in (0, 2, 7):
        # --indent exists only in the legacy flag form in 3.11.
        decrypted = sops.ok("--indent", str(indent), "-d", "--input-type", "json", str(enc))
        store = get_store("json", indent=indent)
        assert store.emit_plain(store.load_plain(JSON_DOCS["basic"])) == decrypted


# -- cross-format output ----------------------------------------------------------

CROSS_SOURCES = [
    ("json", JSON_DOCS["basic"]),
    ("json", JSON_DOCS["shapes"]),
    (
        "json",
        b'{"flat": "x", "n": 5, "f": 1.5, "big": 1e6, "b": true, "z": null,'
        b' "s": "multi\\nline", "d": 1e21, "g": 1234567, "h": 0.0001, "i": 1e-5}',
    ),
    (
        "json",
        b'{"sec": {"a": "x", "n": 5, "f": 1.5, "big": 1e6, "b": true, "z": null,'
        b' "s": "a;b", "l": [1, "two", {"k": [null]}, []], "e": {}}, "DEFAULT": {"x": "1"},'
        b' "t": {"k": "` \\"q\\" `"}}',
    ),
    ("ini", INI_DOCS["comments"]),
    ("ini", INI_DOCS["duplicates"]),
    ("dotenv", DOTENV_DOCS["edges"]),
    ("binary", b"a\xffb\xe2\x82c\n\x00\x7f<"),
]


@pytest.mark.parametrize(("fmt", "plain"), CROSS_SOURCES)
def test_cross_format_output(sops: Sops, tmp_path: Path, fmt: str, plain: bytes) -> None:
    src = tmp_path / f"plain.{fmt}"
    src.write_bytes(plain)
    enc = tmp_path / f"enc.{fmt}"
    enc.write_bytes(sops.encrypt(src, fmt))
    tree = get_store(fmt).load_plain(plain)
    for out in ("json", "dotenv", "ini", "binary"):
        if out == fmt:
            continue
        r = sops.run("decrypt", "--input-type", fmt, "--output-type", out, str(enc))
        if r.returncode == 0:
            assert get_store(out).emit_plain(tree) == r.stdout, out
        else:
            assert r.returncode == 4, r.stderr
            with pytest.raises(FormatError):
                get_store(out).emit_plain(tree)


EXTRACT_DOC = (
    b'{"n": 5, "f": 1.5e300, "b": true, "z": null, "l": [1, "a<", {"k": [true]}, []],'
    b' "m": {"x": {"y": 1}}, "e": [], "eo": {}, "s": "str", "i": 1e-7}'
)
EXTRACT_PATHS = [
    ("n",),
    ("f",),
    ("b",),
    ("z",),
    ("l",),
    ("e",),
    ("i",),
    ("l", 2),
    ("m",),
]


def test_extract_values(sops: Sops, tmp_path: Path) -> None:
    src = tmp_path / "plain.json"
    src.write_bytes(EXTRACT_DOC)
    enc = tmp_path / "enc.json"
    enc.write_bytes(sops.encrypt(src, "json"))
    (tree,) = get_store("json").load_plain(EXTRACT_DOC)
    for path in EXTRACT_PATHS:
        value: object = tree
        for part in path:
            value = value.get(part) if isinstance(part, str) else value[part]  # type: ignore[attr-defined, index]
        expr = "".join(f'["{p}"]' if isinstance(p, str) else f"[{p}]" for p in path)
        for out in ("json", "ini", "dotenv", "binary"):
            r = sops.run("decrypt", "--output-type", out, "--extract", expr, str(enc))
            store = get_store(out)
            try:
                if isinstance(value, Branch):
                    ours = store.emit_plain([value])  # a mapping prints as a document
                else:
                    ours = store.emit_value(value)
            except FormatError:
                assert r.returncode != 0, (expr, out, r.stdout)
                continue
            assert r.returncode == 0, (expr, out, r.stderr)
            assert ours == r.stdout, (expr, out)


# -- JSON error texts -------------------------------------------------------------

# Inputs whose sops message we reproduce exactly (lower-cased first letter).
JSON_ERRORS = [
    b"[1]",
    b"",
    b"{1:2}",
    b'{"a":1,}',
    b'{"a":"\\x"}',
    b'{"a":01}',
    b'{"a" 1}',
    b'{"a":tru}',
    b'{"a":-}',
    b'{"a":1 "b":2}',
    b'{"a":"x\ny"}',
    b'{"a":"\\ug"}',
    b'{"a":1.}',
    b'{"a":1e}',
    b'{"a":"abc',
    b'{"a":[1,]}',
    b"{,}",
    b'{"a"}',
    b'{"a":}',
    b"\xef\xbb\xbf{}",
    b'{"a":[1 2]}',
    b'{"a":{]}',
    b"]",
    b'{"a":x}',
    b'{"a":"\\u12"}',
    b'{"a":nul}',
]


def test_json_syntax_errors_match_sops(sops: Sops, tmp_path: Path) -> None:
    src = tmp_path / "bad.json"
    store = get_store("json")
    for text in JSON_ERRORS:
        src.write_bytes(text)
        r = sops.run("encrypt", "--age", TEST_AGE_PUBLIC, str(src))
        assert r.returncode == 2
        theirs = r.stderr.decode().strip().removeprefix("Error unmarshalling file: ")
        with pytest.raises(FormatError) as info:
            store.load_plain(text)
        # Our style lower-cases a leading capitalised word ("Expected", "Could").
        expected = ": ".join(
            p[:1].lower() + p[1:] if p[1:2].islower() else p for p in theirs.split(": ", 1)
        )
        assert str(info.value) == expected, text


def test_already_encrypted_detection_matches_sops(sops: Sops, tmp_path: Path) -> None:
    for fmt, plain in [
        ("json", b'{"a": 1, "sops": {}}'),
        ("dotenv", b"A=1\nsops_x=1\n"),
        ("ini", b"[s]\nk = v\n[sops]\nx = y\n"),
        ("binary", b'{"sops": 1}'),
    ]:
        src = tmp_path / "p"
        src.write_bytes(plain)
        r = sops.run(
            "encrypt", "--age", TEST_AGE_PUBLIC, "--input-type", fmt, "--output-type", fmt, str(src)
        )
        store = get_store(fmt)
        assert (r.returncode == 203) == store.has_metadata(store.load_plain(plain)), fmt


ENCRYPTED_JSON_ERRORS = [
    b'{"a":1}x',
    b'{"a":1',
    b"[1]",
    b'"x"',
    b'{"sops":"x"}',
    b"{1:2}",
    b'{"a":1}',
    b'{"sops":null}',
]


def test_encrypted_json_loader_errors_match_sops(sops: Sops, tmp_path: Path) -> None:
    src = tmp_path / "bad.json"
    store = get_store("json")
    for text in ENCRYPTED_JSON_ERRORS:
        src.write_bytes(text)
        r = sops.run("decrypt", str(src))
        assert r.returncode != 0
        theirs = r.stderr.decode().strip()
        with pytest.raises(FormatError) as info:
            store.load_encrypted(text)
        assert str(info.value) == theirs[:1].lower() + theirs[1:], text

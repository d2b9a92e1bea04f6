"""Hostile input: each limit gives one clear error line, never a crash or a hang.

Deep nesting (YAML and JSON, 10,000 levels), alias bombs, oversized files
(a small limit through the API and the CLI rather than 64 MiB on disk),
metadata listing thousands of recipients or key groups, an ``enc`` with
hundreds of age stanzas, and huge values.
"""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from macula_secrets.errors import LimitError, MaculaError
from macula_secrets.sops.document import decrypt_bytes
from macula_secrets.sops.keygroups import IdentityList
from macula_secrets.sops.stores import get_store
from macula_secrets.sops.tree import Branch
from tests.cli._support import (
    CANARY,
    EXTENSIONS,
    MACULA_BIN,
    TEST_KEY,
    Result,
    Sops,
    normalize,
    run_cli,
)
from tests.cli.samples import PLAINTEXTS

DEEP = 10_000


def _identities() -> IdentityList:
    from macula_secrets.keys import age

    return IdentityList(age.parse_identities(TEST_KEY.secret, source="test"))


def _encrypt(folder: Path, fmt: str, plain: bytes | None = None) -> Path:
    src = folder / f"plain.{EXTENSIONS[fmt]}"
    src.write_bytes(PLAINTEXTS[fmt] if plain is None else plain)
    enc = folder / f"secrets.{EXTENSIONS[fmt]}"
    run_cli("encrypt", "--age", TEST_KEY.public, "--output", enc, src).assert_ok()
    return enc


# -- nesting ------------------------------------------------------------------------------------

DEEP_DOCS = {
    "yaml-flow-seq": ("yaml", "a: " + "[" * DEEP + "]" * DEEP + "\n"),
    "yaml-flow-map": ("yaml", "a: " + "{a: " * DEEP + "x" + "}" * DEEP + "\n"),
    "yaml-block-seq": ("yaml", "a:\n" + "- " * DEEP + "x\n"),
    "yaml-block-map": ("yaml", "".join(" " * i + "a:\n" for i in range(2000)) + " " * 2000
                       + "a: x\n"),
    "json-array": ("json", '{"a": ' + "[" * DEEP + "]" * DEEP + "}"),
    "json-object": ("json", '{"a": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}"),
}


@pytest.mark.parametrize("case", sorted(DEEP_DOCS))
def test_deep_nesting(tmp_path: Path, keyed: Path, case: str) -> None:
    fmt, text = DEEP_DOCS[case]
    src = tmp_path / f"deep.{EXTENSIONS[fmt]}"
    src.write_text(text)
    line = run_cli("encrypt", "--age", TEST_KEY.public, src).assert_one_error()
    assert "nest" in line or "deep" in line, line
    # The same nesting inside an encrypted file.
    enc = _encrypt(tmp_path, fmt)
    data = enc.read_text()
    if fmt == "yaml":
        hostile = text + data
    else:
        hostile = '{"z": ' + text[len('{"a": '):-1] + ",\n" + data.lstrip()[1:]
    enc.write_text(hostile)
    line = run_cli("decrypt", enc).assert_one_error()
    assert "nest" in line or "deep" in line, line
    with pytest.raises(LimitError):
        get_store(fmt).load_plain(text.encode())


def test_deep_nesting_as_process(tmp_path: Path) -> None:
    src = tmp_path / "deep.yaml"
    src.write_text(DEEP_DOCS["yaml-flow-seq"][1])
    proc = subprocess.run([MACULA_BIN, "encrypt", "--age", TEST_KEY.public, src],
                          capture_output=True, timeout=60, check=False)
    Result(proc.returncode, proc.stdout, proc.stderr.decode()).assert_one_error()


# -- alias bombs ---------------------------------------------------------------------------------


def _laughs(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghij"[: levels - 1]:
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_recursive_alias(tmp_path: Path) -> None:
    src = tmp_path / "loop.yaml"
    src.write_text("a: &x [*x]\n")
    run_cli("encrypt", "--age", TEST_KEY.public, src).assert_one_error()


def test_alias_bomb_refused_like_sops(sops: Sops, tmp_path: Path) -> None:
    """go-yaml refuses documents mostly made of alias expansions ("excessive aliasing")."""
    src = tmp_path / "laughs.yaml"
    src.write_text(_laughs(4))
    assert sops("--encrypt", "--age", TEST_KEY.public, src).returncode == 2
    line = run_cli("encrypt", "--age", TEST_KEY.public, src).assert_one_error()
    assert "alias" in line
    run_cli("--sops-exit-codes", "encrypt", "--age", TEST_KEY.public, src).assert_one_error(rc=2)
    # Three levels (729 values) are fine for sops, and here.
    src.write_text(_laughs(3))
    theirs = sops.ok("--encrypt", "--age", TEST_KEY.public, src)
    ours = run_cli("encrypt", "--age", TEST_KEY.public, src).assert_ok().out
    assert normalize(ours) == normalize(theirs)


def _limit_cpu() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (1, 1))


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    """Nine levels of nine aliases: refused within a second of CPU (the process gets no more)."""
    src = tmp_path / "laughs.yaml"
    src.write_text(_laughs(9))
    proc = subprocess.run([MACULA_BIN, "encrypt", "--age", TEST_KEY.public, src],
                          capture_output=True, timeout=60, check=False, preexec_fn=_limit_cpu)
    Result(proc.returncode, proc.stdout, proc.stderr.decode()).assert_one_error()


# -- size -------------------------------------------------------------------------------------


def test_file_size_limit_api(tmp_path: Path) -> None:
    data = _encrypt(tmp_path, "yaml").read_bytes()
    with pytest.raises(LimitError) as info:
        decrypt_bytes(data, format="yaml", unwrapper=_identities(), max_size=len(data) - 1)
    assert str(len(data) - 1) in str(info.value)
    doc = decrypt_bytes(data, format="yaml", unwrapper=_identities(), max_size=len(data))
    assert CANARY in doc.plaintext().decode()


def test_file_size_limit_cli(tmp_path: Path, keyed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from macula_secrets.cli import filecmds

    enc = _encrypt(tmp_path, "yaml", PLAINTEXTS["yaml"] + b"# padding\n" * 500)
    plain = tmp_path / "plain.yaml"
    assert plain.stat().st_size > 4096 and enc.stat().st_size > 4096
    value = tmp_path / "value.json"
    value.write_text('"' + "v" * 5000 + '"')
    monkeypatch.setattr(filecmds, "MAX_INPUT", 4096)
    argvs: list[list[str | os.PathLike[str]]] = [
        ["decrypt", enc], ["encrypt", "--age", TEST_KEY.public, plain],
        ["set", enc, '["a"]', "--value-file", value], ["rotate", enc], ["filestatus", enc]]
    for argv in argvs:
        before = enc.read_bytes()
        line = run_cli(*argv).assert_one_error()
        assert "larger than 4096 bytes" in line, (argv, line)
        assert enc.read_bytes() == before
    line = run_cli("decrypt", input=enc.read_bytes()).assert_one_error()
    assert "larger than" in line


# -- metadata: recipients, key groups, stanzas ------------------------------------------------


def _hostile_metadata(enc: Path, fmt: str, change: str) -> None:
    """Rewrite ``enc``'s metadata through the store's own writer."""
    store = get_store(fmt)
    branches, meta = store.load_encrypted(enc.read_bytes())
    i = meta.index_of("age")
    entry = meta[i][1][0]  # type: ignore[index]
    # The pure-Python YAML reader is slower: fewer copies there, still above the limits.
    many = {"yaml": 1100, "json": 5000}.get(fmt, 2000)
    if change == "recipients":
        meta[i] = ("age", [entry] * many)
    elif change == "groups":
        del meta[i]
        groups = {"yaml": 200, "json": 1000}.get(fmt, 500)
        meta.insert(0, ("key_groups", [Branch([("age", [entry])]) for _ in range(groups)]))
        meta.insert(0, ("shamir_threshold", 2))
    elif change == "stanzas":
        recipients = [x25519.Identity.generate().to_public() for _ in range(300)]
        armored = pyrage.encrypt(os.urandom(32), recipients, armored=True).decode()
        meta[i] = ("age", [Branch([("recipient", entry.get("recipient")), ("enc", armored)])])
    elif change == "huge-enc":
        meta[i] = ("age", [Branch([("recipient", entry.get("recipient")),
                                   ("enc", entry.get("enc") * 400)])])
    enc.write_bytes(store.emit_encrypted(branches, meta))


@pytest.mark.parametrize("change", ["recipients", "groups", "stanzas", "huge-enc"])
@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini"])
def test_hostile_metadata(tmp_path: Path, keyed: Path, fmt: str, change: str) -> None:
    enc = _encrypt(tmp_path, fmt)
    _hostile_metadata(enc, fmt, change)
    r = run_cli("decrypt", enc)
    line = r.assert_one_error()
    words = {"recipients": "keys", "groups": "key groups", "stanzas": "stanzas",
             "huge-enc": "characters long"}
    assert words[change] in line or "limit" in line, line
    assert "Traceback" not in r.err


def test_flat_metadata_index_limit(tmp_path: Path, keyed: Path) -> None:
    enc = _encrypt(tmp_path, "dotenv")
    text = enc.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("sops_age__list_0__map_enc="))
    enc.write_text(text + line.replace("list_0", "list_99999999") + "\n")
    assert "list index" in run_cli("decrypt", enc).assert_one_error()


def test_encrypt_refuses_more_recipients_than_it_can_read(tmp_path: Path) -> None:
    src = tmp_path / "p.yaml"
    src.write_text("a: b\n")
    many = ",".join(str(x25519.Identity.generate().to_public()) for _ in range(1100))
    line = run_cli("encrypt", "--age", many, src).assert_one_error()
    assert "1100 recipients" in line and "limit" in line
    groups = "".join(
        f"      - age: [{x25519.Identity.generate().to_public()}]\n" for _ in range(65)
    )
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - key_groups:\n{groups}")
    line = run_cli("encrypt", src, cwd=tmp_path).assert_one_error()
    assert "65 key groups" in line


# -- huge values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "binary"])
def test_huge_value_round_trip(tmp_path: Path, keyed: Path, fmt: str) -> None:
    big = "x" * 1_000_000 + CANARY
    plain = {
        "yaml": f"big: {big}\nsmall: y\n",
        "json": f'{{"big": "{big}", "small": "y"}}',
        "dotenv": f"big={big}\nsmall=y\n",
        "binary": big,
    }[fmt].encode()
    enc = _encrypt(tmp_path, fmt, plain)
    assert CANARY.encode() not in enc.read_bytes()
    out = run_cli("decrypt", enc).assert_ok().out
    assert big.encode() in out


def test_huge_metadata_fields(tmp_path: Path, keyed: Path) -> None:
    enc = _encrypt(tmp_path, "yaml")
    text = enc.read_text()
    for old, new in (
        ("    mac: ENC[AES256_GCM,data:", "    mac: ENC[AES256_GCM,data:" + "QUJD" * 250_000),
        ("    lastmodified: \"", "    lastmodified: \"" + "2" * 100_000),
        ("    version: 3.11.0", "    version: 3.11.0-" + "x" * 100_000 + " y"),
    ):
        assert old in text
        enc.write_text(text.replace(old, new))
        run_cli("decrypt", enc).assert_one_error()


def test_limit_errors_are_macula_errors() -> None:
    assert issubclass(LimitError, MaculaError)

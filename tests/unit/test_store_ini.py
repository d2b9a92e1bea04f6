"""Unit tests for the INI store (SOPS_FORMAT.md 5.4).

The expected trees and layouts were taken from the real sops 3.11 (go-ini
v1.67); tests/interop/test_stores_vs_sops.py re-checks many of them.
"""

from __future__ import annotations

import pytest

from macula_secrets.errors import FormatError, LimitError
from macula_secrets.sops.metadata import AgeKey, Metadata
from macula_secrets.sops.stores.ini import make_store
from macula_secrets.sops.tree import Branch, Comment, Timestamp

# SOPS_FORMAT.md 10.4: real sops output for "[main]", "user = root", "pass = hunter2".
VECTOR_INI = (
    "[main]\n"
    "user = ENC[AES256_GCM,data:vBfnDw==,iv:7GqSrmUK56L0+Pw9wRGP5VYJpOjdlLbLq2v3E1YtXjc=,tag:"
    "NTbThW42zbA5K4IXeEAQ4w==,type:str]\n"
    "pass = ENC[AES256_GCM,data:Sv7kGGUEKA==,iv:s24f8ixuD9lo8UhQaCIA7cAhvXLuTAB2BF1uTgQLOiQ=,"
    "tag:ja61w7HRCNa018BCQF87sA==,type:str]\n"
    "\n"
    "[sops]\n"
    "age__list_0__map_recipient = age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2al"
    "a06\n"
    "age__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3J"
    "nL3YxCi0+IFgyNTUxOSBJamFUK2hOTXRGWVJ4Q2Ew\\nT21iVzdpbHlQbnpSa0ErZkFaQ3phUERUSmtJCldOdVVuc"
    "3NpbU5TdHdRNFN6RjQw\\nTWozSnhwMThLRFhOeThBNHBiaCtuUGsKLS0tIHU4Rk5xTlRXSHRma0NhTXBOdldY\\nS"
    "Ex4Wk5waVFDN2JiVDFBUG4rVmhvZG8KdOUFUgJa9W/PoOTIG0G4u2NTvb+0WXzd\\nSt5onTZrfwQIZDp+Yv2OeJ5"
    "D6MfQuavelD3i+o7lazY3CHcb2FU3Cg==\\n-----END AGE ENCRYPTED FILE-----\\n\n"
    "lastmodified               = 2026-11-29T04:10:28Z\n"
    "mac                        = ENC[AES256_GCM,data:M/xQJ2nvhgcafBYOM7rROmBGvX7fwYuN8T9250V"
    "92xBZ5KOdchrUrN7d7x2gVKIV8zPo2IAg1xrzDKkbrSnWejm409OXb05RH6rRoHqxqDNbJS3fiFLF1rJZ1ETLpM4"
    "XubGVMA73SLMNE+X4I7bbqRTVeFkkWi1STrFUYgWISQs=,iv:Jz1NJMYrkGOPv+cKrYvclsSiJtyucgJN65TxfzU"
    "t0XA=,tag:jkTtUfWQWy3Chrb9TVLFuw==,type:str]\n"
    "unencrypted_suffix         = _unencrypted\n"
    "version                    = 3.11.0\n"
)


STORE = make_store()


def load(text: str) -> Branch:
    (branch,) = STORE.load_plain(text.encode())
    return branch


def sections(text: str) -> dict[str, list[tuple[object, object]]]:
    """Section name -> items, for the tests that have unique section names."""
    return {str(k): list(v) for k, v in load(text) if isinstance(v, Branch)}


def C(text: str) -> tuple[Comment, None]:  # noqa: N802
    return (Comment(text), None)


def test_default_section_is_always_first() -> None:
    assert load("") == Branch([("DEFAULT", Branch())])
    assert load("[s]\nk = v\n") == Branch([("DEFAULT", Branch()), ("s", Branch([("k", "v")]))])
    assert load("top = 1\n[s]\n") == Branch([("DEFAULT", Branch([("top", "1")])), ("s", Branch())])


def test_trimming_quotes_and_delimiters() -> None:
    got = sections(
        "[s]\nk1 =   v1  \nlongkey=  \"quoted\"  \nk2: colon\nq = 'single'\ne =\n"
        'x = "a"b"\nk ==v\nk3\t=\tv v\t\n\tk4 = v\n'
    )
    assert got["s"] == [
        ("k1", "v1"),
        ("longkey", "quoted"),
        ("k2", "colon"),
        ("q", "single"),
        ("e", ""),
        ("x", '"a"b"'),
        ("k", "=v"),
        ("k3", "v v"),
        ("k4", "v"),
    ]


def test_inline_and_line_comments() -> None:
    got = sections(
        '; c1\n# c2\n[s1] ; sc\nk1 = v1 ; inline\n; before b\nb = x#y\nq = "a" ; c\n'
        "; trailing comments are dropped\n"
    )
    assert got["s1"] == [
        C("c1\n# c2\n; sc"),
        ("k1", "v1"),
        C("inline"),
        ("b", "x"),
        C("before b\n#y"),
        ("q", "a"),
        C("c"),
    ]


def test_comment_markers_are_stripped() -> None:
    got = sections("[s]\n;;; a\nk = 1\n## b\nl = 2\n;# c\nm = 3\n;\nn = 4\n")
    assert got["s"] == [
        ("k", "1"),
        C("a"),
        ("l", "2"),
        C("b"),
        ("m", "3"),
        C("# c"),
        ("n", "4"),
        C(""),
    ]


def test_section_names_are_not_trimmed() -> None:
    names = [k for k, _ in load("[ s2 ]\n[s]]\n[[s]\n  [t] x\n[a] ; b]\n")]
    assert names == ["DEFAULT", " s2 ", "s]", "[s", "t", "a] ; b"]


def test_duplicate_sections_and_keys() -> None:
    branch = load("[a]\nk = 1\n; c for k2\nk2 = 2\nk = 3\n[a]\nz = 9\n[DEFAULT]\nd = 1\n")
    assert branch == Branch(
        [
            ("DEFAULT", Branch()),
            ("a", Branch([("k", "3"), ("k2", "2"), C("c for k2")])),
            ("a", Branch([("z", "9")])),
            ("DEFAULT", Branch([("d", "1")])),
        ]
    )


def test_a_repeated_key_takes_the_last_comment() -> None:
    assert sections("[s]\n; one\nk = 1\nk = 2\n")["s"] == [("k", "2")]
    assert sections("[s]\nk = 1\n; two\nk = 2\n")["s"] == [("k", "2"), C("two")]


def test_backslash_after_closing_quote_continues_the_value() -> None:
    # The go-ini in sops 3.11 (v1.67.1) does not close a quoted value on a line
    # that ends with a backslash.
    assert sections("[s]\nk=`\nx`\\\t\n`\n")["s"] == [("k", "\nx`\\\t\n")]
    with pytest.raises(FormatError, match="missing closing `"):
        STORE.load_plain(b"[s]\nk=`\nx`\\\n")


def test_continuation_and_multiline_values() -> None:
    got = sections(
        '[c]\ncont = a\\\n  b\\\n c\nml = """line1\nline2"""\nbt = `x;y`\n'
        "bt2 = `abc\ndef` ; after\nsp = a \\ \nnext = 1\nend = a\\\n\nz = 1\n"
    )
    assert got["c"] == [
        ("cont", "abc"),
        ("ml", "line1\nline2"),
        ("bt", "x;y"),
        ("bt2", "abc\ndef"),
        C("after"),
        ("sp", "a next = 1"),
        ("end", "a"),
        ("z", "1"),
    ]


def test_quoted_keys() -> None:
    got = sections('[c]\n"q k" = v\n`b=k` = v2\n"""k""" = v3\n" t " = v4\n')
    assert got["c"] == [("q k", "v"), ("b=k", "v2"), ("k", "v3"), ("t", "v4")]


def test_bom_crlf_and_unicode_spaces() -> None:
    got = sections("\ufeff[s]\r\nk = v\r\nu\u00a0= \u3000x\u00a0\r\n")
    assert got["s"] == [("k", "v"), ("u", "x")]


def test_auto_increment_keys() -> None:
    # go-ini turns "-" keys into "#1", "#2", ... (which sops then cannot read back).
    assert sections("[b]\n- = a\n- = b\n")["b"] == [("#1", "a"), ("#2", "b")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue\n", "key-value delimiter not found (line 1)"),
        ("[s]\nk = 1\n[unclosed\nk=v\n", "unclosed section header (line 3)"),
        ("[]\nk=v\n", "empty section name (line 1)"),
        ('[s]\n"k = v\n', "missing closing key quote (line 2)"),
        ("[s]\n`k` v\n", "key-value delimiter not found (line 2)"),
        ("[s]\n= v\n", "empty key name (line 2)"),
        ('[s]\nk = """abc\n', 'missing closing """ of the value starting on line 2'),
        ("[s]\nk = `abc", "missing closing ` of the value starting on line 2"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(text.encode())
    assert str(info.value) == "could not unmarshal input data: " + message


def test_errors_do_not_show_the_line() -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(b"[s]\nhunter2\n")
    assert "hunter2" not in str(info.value)


def test_non_utf8_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8"):
        STORE.load_plain(b"[s]\nk = \xff\n")


# -- writing -------------------------------------------------------------------


def emit(branch: Branch) -> str:
    out: bytes = STORE.emit_plain([branch])
    return out.decode()


def test_emit_layout() -> None:
    text = (
        "top = 1\n\n; c1\n# c2\n; sc\n[s1]\n; inline\nk1      = v1\nlongkey = quoted\n"
        "k2      = colon\n\n; before sec\n[ s2 ]\n; c\na = b\ne = \n"
    )
    assert emit(load(text)) == text


def test_alignment_counts_bytes_and_quotes() -> None:
    items = Branch([("cont", "1"), ("ék", "2"), ("x", "3")])
    branch = Branch([("DEFAULT", Branch()), ("c", items)])
    assert emit(branch) == "[c]\ncont = 1\nék  = 2\nx    = 3\n"
    branch = Branch([("s", Branch([("k=eq", "1"), ("k`bt", "4"), ("k", "5")]))])
    assert emit(branch) == '[s]\n`k=eq`     = 1\n"""k`bt""" = 4\nk          = 5\n'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a\nb", '"""a\nb"""'),
        ("a`b", '"""a`b"""'),
        ("a#b", "`a#b`"),
        ("a;b", "`a;b`"),
        (" x", '" x"'),
        ("x ", '"x "'),
        ("\tlead", '"\tlead"'),
        ("\u00a0x", '"\u00a0x"'),
        ("`x#", '"""`x#"""'),
        ('"quoted"', '"quoted"'),
        ('a"b', 'a"b'),
        ("x\u2028y", "x\u2028y"),
        ("a\rb", "a\rb"),
        ("", ""),
        (5.0, "5.0"),
        (1.5, "1.5"),
        (1e6, "1E+06"),
        (True, "true"),
        (None, "<nil>"),
        (Timestamp("2024-01-01T00:00:00.5Z"), "2024-01-01T00:00:00Z"),
        (
            [1.0, "a b", None, True, 1e6, Branch([("x", [2.0])]), []],
            "[1 a b <nil> true 1e+06 [{x [2]}] []]",
        ),
        (Branch(), "[]"),
        (
            [
                Timestamp("2001-12-14T21:59:43.1-05:00"),
                Timestamp("2024-01-01T10:00:00Z"),
                Comment("c"),
            ],
            "[2001-12-14 21:59:43.1 -0500 -0500 2024-01-01 10:00:00 +0000 UTC {c}]",
        ),
    ],
)
def test_value_quoting_and_rendering(value: object, written: str) -> None:
    assert emit(Branch([("s", Branch([("k", value)]))])) == f"[s]\nk = {written}\n"


def test_default_section_header_rules() -> None:
    assert emit(Branch([("DEFAULT", Branch([("d", "1")])), ("s", Branch([("x", "1")]))])) == (
        "d = 1\n\n[s]\nx = 1\n"
    )
    assert emit(Branch([("default", Branch([("d", "1")]))])) == "d = 1\n"
    assert emit(Branch([("DEFAULT", Branch()), ("s", Branch([("a", "1")]))])) == "[s]\na = 1\n"
    assert emit(Branch([("s", Branch([("k", "v")])), ("DEFAULT", Branch([("d", "1")]))])) == (
        "[s]\nk = v\n\n[DEFAULT]\nd = 1\n"
    )
    assert emit(Branch([("a", Branch()), ("b", Branch()), ("c", Branch([("k", "v")]))])) == (
        "[a]\n\n[b]\n\n[c]\nk = v\n"
    )
    assert emit(Branch()) == ""


def test_comment_placement_from_other_formats() -> None:
    # The tree a YAML file with comments gives: section comment first, key comments after.
    branch = Branch(
        [
            C(" top comment"),
            (
                "s",
                Branch(
                    [
                        C(" first in s"),
                        C(" second in s"),
                        ("a", 1),
                        C(" after a"),
                        C(" after a 2"),
                        ("b", 2),
                        C(" end of s"),
                    ]
                ),
            ),
            ("t", Branch([("x", "y"), C(" only after")])),
            C(" before w"),
            ("w", Branch([C(" inline"), ("k", "v")])),
        ]
    )
    assert emit(branch) == (
        ";  first in s\n[s]\n; after a 2\na = 1\n; end of s\nb = 2\n\n"
        "[t]\n; only after\nx = y\n\n;  inline\n[w]\nk = v\n"
    )


def test_multiline_comments_are_written_line_by_line() -> None:
    branch = Branch([("s", Branch([C("a\n;\n#  b"), ("k", "v"), C(" x\n y")]))])
    assert emit(branch) == "; a\n; \n# b\n[s]\n; x\n; y\nk = v\n"


def test_comment_with_an_empty_line_cannot_be_written() -> None:
    # go-ini panics on it (sops crashes on the plaintext ";\n;\n[s]"); we refuse.
    (branch,) = STORE.load_plain(b";\n;\n[s]\n")
    with pytest.raises(FormatError, match="empty line"):
        STORE.emit_plain([branch])


def test_duplicate_keys_in_a_tree_are_merged() -> None:
    branch = Branch([("s", Branch([("k", "1"), ("j", "2"), ("k", "3"), C("c")]))])
    assert emit(branch) == "[s]\n; c\nk = 3\nj = 2\n"


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        (Branch([("", Branch())]), "empty section name"),
        (Branch([("s", Branch([("", "1")]))]), "empty key name"),
        (Branch([("s", "str")]), "section values should always be mappings"),
        (Branch([("s", ["a"])]), "section values should always be mappings"),
    ],
)
def test_emit_errors(branch: Branch, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        emit(branch)


def test_deeply_nested_value_is_a_limit_error() -> None:
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(LimitError):
        emit(Branch([("s", Branch([("k", deep)]))]))


def test_emit_value_is_compact_go_json() -> None:
    assert STORE.emit_value(5.0) == b"5"
    assert STORE.emit_value(1.5e300) == b"1.5e+300"
    assert STORE.emit_value(None) == b"null"
    assert STORE.emit_value([]) == b"null"
    assert STORE.emit_value([1.0, "a<", Branch([("k", [True])]), []]) == (
        b'[1,"a\\u003c",[{"Key":"k","Value":[true]}],null]'
    )


def test_has_metadata() -> None:
    assert STORE.has_metadata(STORE.load_plain(b"k = v\n[sops]\nx = y\n"))
    assert not STORE.has_metadata(STORE.load_plain(b"[SOPS]\nx = y\n[s]\nsops = 1\n"))


# -- metadata -------------------------------------------------------------------


def _sops_lines(data: bytes) -> tuple[bytes, set[bytes]]:
    head, sep, tail = data.partition(b"[sops]\n")
    assert sep
    return head, set(tail.splitlines())


def test_vector_round_trips() -> None:
    data = VECTOR_INI.encode()
    branches, meta = STORE.load_encrypted(data)
    assert branches[0].keys() == ["DEFAULT", "main"]
    main = branches[0].get("main")
    assert isinstance(main, Branch) and main.keys() == ["user", "pass"]
    out = STORE.emit_encrypted(branches, meta)
    # sops 3.11 writes the [sops] keys in random order; we write them sorted.
    assert _sops_lines(out) == _sops_lines(data)
    sops_keys = [line.split(b" ")[0] for line in out.partition(b"[sops]\n")[2].splitlines()]
    assert sops_keys == sorted(sops_keys)
    md = Metadata.from_branch(meta)
    assert STORE.emit_encrypted(branches, md.to_branch()) == out


def test_metadata_with_real_newlines_as_written_by_sops_3_13() -> None:
    enc = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"
    text = (
        '[s]\nk = v\n\n[sops]\nage__list_0__map_enc = """' + enc + '"""\n'
        "age__list_0__map_recipient = age1x\nlastmodified = 2026-11-29T04:10:28Z\n"
        "mac = ENC[x]\nversion = 3.13.0\n"
    )
    branches, meta = STORE.load_encrypted(text.encode())
    md = Metadata.from_branch(meta)
    key = md.key_groups[0][0]
    assert isinstance(key, AgeKey) and key.enc == enc
    assert branches[0].keys() == ["DEFAULT", "s"]


def test_every_sops_section_is_removed_and_the_first_is_used() -> None:
    text = b"[sops]\nversion = 1.0.0\n[s]\nk = v\n[sops]\nversion = 2.0.0\n"
    branches, meta = STORE.load_encrypted(text)
    assert branches[0].keys() == ["DEFAULT", "s"]
    assert meta == Branch([("version", "1.0.0")])


def test_missing_metadata() -> None:
    with pytest.raises(FormatError, match="sops metadata not found"):
        STORE.load_encrypted(b"[s]\nk = v\n")

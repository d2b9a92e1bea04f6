"""Hypothesis properties of the JSON, dotenv and INI stores.

Round trips: ``load_plain(emit_plain(t)) == t`` for every tree the format can
hold (JSON turns every number into a float; dotenv and INI only hold the
values their quoting can carry, see the strategies).

Differential tests against the real sops (marked ``interop``): random *texts*,
including malformed ones, are encrypted by sops with a selection rule that
matches nothing, so the ciphertext file shows sops's own parse-and-print of
the text in one call. Our ``emit_encrypted(load_plain(X), metadata)`` must give
the same bytes, and where sops refuses the text we must refuse it too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets.errors import FormatError
from macula_secrets.sops.stores import get_store
from macula_secrets.sops.stores.json import _parse_exact, _parse_fast
from macula_secrets.sops.tree import Branch, Comment
from tests.conftest import TEST_AGE_PUBLIC, run_sops

JSON = get_store("json")
DOTENV = get_store("dotenv")
INI = get_store("ini")

# Go's unicode.IsSpace; go-ini trims with it.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Any character but a lone surrogate (Go has no such strings).
chars = st.characters(exclude_categories=["Cs"])
text = st.text(chars, max_size=12)
multiline = st.lists(st.text(chars, max_size=6), min_size=2, max_size=3).map("\n".join)
strings = st.one_of(text, multiline, st.just(""))

# -- JSON round trip ------------------------------------------------------------

json_scalars = st.one_of(
    strings,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.none(),
)


def _as_json_reads(value: object) -> object:
    """What the JSON store reads back: every number a float."""
    if isinstance(value, Branch):
        return Branch((k, _as_json_reads(v)) for k, v in value)
    if isinstance(value, list):
        return [_as_json_reads(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(text, inner), max_size=4).map(Branch),
    ),
    max_leaves=25,
)
json_docs = st.lists(st.tuples(text, json_values), max_size=6).map(Branch)


@settings(max_examples=200, deadline=None)
@given(json_docs, st.sampled_from([None, 0, 2]))
def test_json_round_trip(doc: Branch, indent: int | None) -> None:
    store = get_store("json", indent=indent)
    out = store.emit_plain([doc])
    assert store.load_plain(out) == [_as_json_reads(doc)]
    assert store.emit_plain(store.load_plain(out)) == out


@settings(max_examples=100, deadline=None)
@given(json_docs)
def test_json_encrypted_round_trip(doc: Branch) -> None:
    meta = Branch([("lastmodified", "2026-01-01T00:00:00Z"), ("version", "3.11.0")])
    out = JSON.emit_encrypted([doc], meta)
    branches, raw = JSON.load_encrypted(out)
    assert branches == [_as_json_reads(Branch(i for i in doc if i[0] != "sops"))]
    assert raw == meta
    if all(k != "sops" for k, _ in doc):
        assert JSON.emit_encrypted(branches, raw) == out


# -- dotenv round trip ----------------------------------------------------------

dotenv_keys = st.text(chars, min_size=1, max_size=10).filter(
    lambda k: "\n" not in k and "=" not in k and not k.startswith("#")
)
# A value holding a literal backslash-n cannot be told from an escaped newline.
dotenv_values = strings.filter(lambda v: "\\n" not in v)
dotenv_comments = st.text(chars, max_size=10).filter(lambda c: "\n" not in c)
dotenv_docs = st.lists(
    st.one_of(
        st.tuples(dotenv_keys, dotenv_values),
        dotenv_comments.map(lambda c: (Comment(c), None)),
    ),
    max_size=8,
).map(Branch)


@settings(max_examples=200, deadline=None)
@given(dotenv_docs)
def test_dotenv_round_trip(doc: Branch) -> None:
    out = DOTENV.emit_plain([doc])
    assert DOTENV.load_plain(out) == [doc]


@settings(max_examples=100, deadline=None)
@given(dotenv_docs)
def test_dotenv_metadata_round_trip(doc: Branch) -> None:
    doc = Branch(i for i in doc if not (isinstance(i[0], str) and i[0].startswith("sops_")))
    meta = Branch(
        [
            ("age", [Branch([("enc", "a\nb\n"), ("recipient", "age1x")])]),  # sorted, as written
            ("lastmodified", "2026-01-01T00:00:00Z"),
            ("version", "3.11.0"),
        ]
    )
    out = DOTENV.emit_encrypted([doc], meta)
    branches, raw = DOTENV.load_encrypted(out)
    assert branches == [doc]
    assert raw == meta


# -- INI round trip -------------------------------------------------------------


def _ini_value_survives(v: str) -> bool:
    """Values that go-ini's writer and reader carry unchanged (see ini.py)."""
    if '"""' in v:
        return False
    if "\n" in v or "`" in v or "#" in v or ";" in v:
        return True
    if v.strip(GO_SPACE) != v:
        return '"' not in v
    if v.endswith("\\"):
        return False  # a continuation line
    return not (len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" and v.count(v[0]) == 2)


ini_key_chars = st.characters(
    exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters="`\n"
)
ini_keys = st.text(st.one_of(ini_key_chars, st.just(" ")), min_size=1, max_size=8).filter(
    lambda k: k.strip(GO_SPACE) == k and k[0] not in "#;[" and k != "-"
)
ini_values = strings.filter(_ini_value_survives)
ini_comments = st.text(chars, min_size=1, max_size=10).filter(
    lambda c: "\n" not in c and c.strip(GO_SPACE) == c and c[0] not in ";#"
)
ini_section_names = st.text(chars, min_size=1, max_size=8).filter(
    lambda n: "\n" not in n and n.upper() != "DEFAULT"
)


@st.composite
def ini_sections(draw: st.DrawFn, name: str | None = None) -> tuple[str, Branch]:
    keys = draw(st.lists(ini_keys, unique=True, max_size=5))
    items = Branch()
    if name is None and draw(st.booleans()):
        items.append((Comment(draw(ini_comments)), None))
    for key in keys:
        items.append((key, draw(ini_values)))
        if draw(st.integers(0, 3)) == 0:
            items.append((Comment(draw(ini_comments)), None))
    return (name if name is not None else draw(ini_section_names)), items


@st.composite
def ini_docs(draw: st.DrawFn) -> Branch:
    default = draw(ini_sections("DEFAULT"))
    others = draw(st.lists(ini_sections(), max_size=4))
    return Branch([default, *others])


@settings(max_examples=200, deadline=None)
@given(ini_docs())
def test_ini_round_trip(doc: Branch) -> None:
    out = INI.emit_plain([doc])
    assert INI.load_plain(out) == [doc]
    assert INI.emit_plain(INI.load_plain(out)) == out


# -- differential tests against sops ----------------------------------------------

NOTHING = "a^"  # an RE2 pattern that matches no key: sops leaves every value clear


def _compare_with_sops(
    sops_bin: str, env: dict[str, str], work: Path, fmt: str, data: bytes
) -> None:
    path = work / "input"
    path.write_bytes(data)
    r: subprocess.CompletedProcess[bytes] = run_sops(
        sops_bin,
        "encrypt",
        "--age",
        TEST_AGE_PUBLIC,
        "--encrypted-regex",
        NOTHING,
        "--input-type",
        fmt,
        "--output-type",
        fmt,
        str(path),
        env=env,
        cwd=work,
    )
    store = get_store(fmt)
    if r.returncode == 2:
        # A parse error, or go-ini panicking while writing (a comment with an empty line).
        with pytest.raises(FormatError):
            tree = store.load_plain(data)
            store.emit_encrypted(tree, Branch([("version", "3.11.0")]))
        return
    tree = store.load_plain(data)
    if r.returncode == 203:
        assert store.has_metadata(tree)
        return
    assert r.returncode == 0, r.stderr.decode()
    assert not store.has_metadata(tree)
    ours = store.emit_encrypted(tree, _metadata_of(fmt, r.stdout))
    if fmt == "ini":
        # sops 3.11 writes the [sops] keys in random order.
        head, _, tail = ours.partition(b"[sops]\n")
        their_head, _, their_tail = r.stdout.partition(b"[sops]\n")
        assert head == their_head
        assert sorted(tail.split(b"\n")) == sorted(their_tail.split(b"\n"))
    else:
        assert ours == r.stdout


def _metadata_of(fmt: str, encrypted: bytes) -> Branch:
    """The raw metadata of sops's output, read without parsing the data part.

    sops can write INI it cannot read back (a key "[" is written unquoted), so
    only the metadata lines are parsed here.
    """
    if fmt == "ini":
        encrypted = b"[sops]\n" + encrypted.partition(b"[sops]\n")[2]
    elif fmt == "dotenv":
        lines = encrypted.split(b"\n")  # dotenv lines end at \n only
        encrypted = b"\n".join(line for line in lines if line.startswith(b"sops_"))
    return get_store(fmt).load_encrypted(encrypted)[1]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


DIFF_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON texts: random layout, escapes and number spellings around a random tree.

json_number_text = st.integers(0, 19).flatmap(
    lambda n: (
        st.sampled_from(
            ["1e400", "-1e-400", "1e308", "4.9e-324", "-0", "0.0e0", "NaN", "-Infinity"]
        )
        if n == 0
        else st.from_regex(
            r"-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,2})?", fullmatch=True
        )
    )
)


@st.composite
def json_string_text(draw: st.DrawFn) -> str:
    out = ['"']
    for ch in draw(st.text(chars, max_size=8)):
        how = draw(st.integers(0, 4)) if ch >= " " and ch not in '"\\' else 1
        if how == 1 or ch < " " or ch in '"\\':
            short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "/": "\\/"}.get(ch)
            if short and draw(st.booleans()):
                out.append(short)
            elif ord(ch) > 0xFFFF:
                c = ord(ch) - 0x10000
                out.append(f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04X}")
            else:
                out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    if draw(st.integers(0, 9)) == 0:
        out.append(draw(st.sampled_from(["\\ud800", "\\udc00x", "\\ud83d\\u0041"])))
    out.append('"')
    return "".join(out)


json_ws = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])
json_key_text = st.one_of(json_string_text(), st.sampled_from(['"a"', '"b"', '"sops_x"']))
json_scalar_text = st.one_of(
    json_string_text(), json_number_text, st.sampled_from(["true", "false", "null"])
)


def _json_container(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def obj(members: list[tuple[str, str, str]]) -> str:
        return "{" + ",".join(f"{w}{k}{w}:{w}{v}{w}" for k, v, w in members) + "}"

    def arr(items: list[tuple[str, str]]) -> str:
        return "[" + ",".join(f"{w}{v}{w}" for v, w in items) + "]"

    return st.one_of(
        st.lists(st.tuples(json_key_text, inner, json_ws), max_size=4).map(obj),
        st.lists(st.tuples(inner, json_ws), max_size=4).map(arr),
    )


json_value_text = st.recursive(json_scalar_text, _json_container, max_leaves=15)
json_doc_text = st.tuples(
    json_ws,
    st.lists(st.tuples(json_key_text, json_value_text, json_ws), max_size=6),
    st.sampled_from(["", "\n", " trailing junk ]]", "{}"]),
).map(lambda t: t[0] + "{" + ",".join(f"{w}{k}{w}:{w}{v}" for k, v, w in t[1]) + "}" + t[2])


@settings(max_examples=150, deadline=None)
@given(json_doc_text, st.booleans())
def test_json_fast_path_agrees_with_the_exact_parser(doc: str, strict: bool) -> None:
    fast = _parse_fast(doc, strict)
    try:
        exact = _parse_exact(doc, strict)
    except FormatError:
        assert fast is None
        return
    if fast is not None:
        assert fast == exact
        assert JSON.emit_plain([fast]) == JSON.emit_plain([exact])  # -0.0 too


@pytest.mark.interop
@DIFF_SETTINGS
@given(json_doc_text)
def test_json_texts_match_sops(
    sops_bin: str, sops_env: dict[str, str], work: Path, doc: str
) -> None:
    _compare_with_sops(sops_bin, sops_env, work, "json", doc.encode())


# dotenv texts: keys and values with the characters that matter to the format.

flat_tricky = st.sampled_from(["\\n", "\\", "=", "#", " ", "\t", "\r", '"', "'", "sops_", "é"])
flat_fragment = st.lists(st.one_of(st.text(chars, max_size=4), flat_tricky), max_size=5).map(
    lambda parts: "".join(parts).replace("\n", "")
)
dotenv_pair = st.tuples(flat_fragment.map(lambda k: k.replace("=", "")), flat_fragment).map(
    lambda kv: f"{kv[0]}={kv[1]}"
)
dotenv_line = st.one_of(
    dotenv_pair,
    dotenv_pair,
    dotenv_pair,
    flat_fragment.map(lambda c: "#" + c),
    st.just(""),
    st.integers(0, 9).flatmap(  # now and then a line without "=": an error
        lambda n: flat_fragment.map(lambda s: s.replace("=", "") + "x") if n == 0 else dotenv_pair
    ),
)
dotenv_text = st.tuples(
    st.lists(dotenv_line, max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans()
).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))


@pytest.mark.interop
@DIFF_SETTINGS
@given(dotenv_text)
def test_dotenv_texts_match_sops(
    sops_bin: str, sops_env: dict[str, str], work: Path, doc: str
) -> None:
    _compare_with_sops(sops_bin, sops_env, work, "dotenv", doc.encode())


# INI texts: headers, comments, keys and values built from go-ini's special characters.

ini_tricky = st.sampled_from(
    ['"', "'", "`", '"""', ";", "#", "=", ":", "\\", "[", "]", " ", "\t", "\r", "\u00a0", "-"]
)
ini_fragment = st.lists(st.one_of(st.text(chars, max_size=4), ini_tricky), max_size=6).map(
    lambda parts: "".join(parts).replace("\n", "")
)
ini_ws = st.sampled_from(["", " ", "\t", "  "])
ini_word = st.text(st.sampled_from("abcXYZ_.é 1"), min_size=1, max_size=6)
ini_pair = st.tuples(
    ini_ws,
    st.one_of(ini_word, ini_fragment.map(lambda k: k.replace("=", "").replace(":", "") + "k")),
    st.sampled_from(["=", " = ", ":", "\t=\t"]),
    st.one_of(ini_word, ini_fragment),
).map("".join)
ini_quote = st.sampled_from(['"""', "`", '"', "'"])
# A quoted value, possibly over several lines, possibly followed by a comment.
ini_quoted = st.tuples(
    ini_ws,
    ini_word,
    ini_quote,
    st.lists(ini_fragment, min_size=1, max_size=3).map("\n".join),
    st.sampled_from(["", " ; c", "#x", " \\", "\\"]),
).map(lambda t: f"{t[0]}{t[1]} = {t[2]}{t[3]}{t[2]}{t[4]}")
ini_line = st.one_of(
    st.tuples(ini_ws, st.one_of(ini_word, ini_fragment), ini_fragment).map(
        lambda t: f"{t[0]}[{t[1]}]{t[2] if t[2][:1] in ' ;#' else ''}"
    ),
    st.tuples(ini_ws, st.sampled_from([";", "#"]), ini_fragment).map("".join),
    ini_pair,
    ini_pair,
    ini_quoted,
    ini_ws,
    st.integers(0, 9).flatmap(lambda n: ini_fragment if n == 0 else ini_pair),
)
ini_text = st.tuples(
    st.lists(ini_line, max_size=10), st.sampled_from(["\n", "\r\n"]), st.booleans()
).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))


@pytest.mark.interop
@DIFF_SETTINGS
@given(ini_text)
def test_ini_texts_match_sops(
    sops_bin: str, sops_env: dict[str, str], work: Path, doc: str
) -> None:
    _compare_with_sops(sops_bin, sops_env, work, "ini", doc.encode())

"""Unit tests for the JSON store (SOPS_FORMAT.md 5.2).

Expected texts and layouts come from the real sops 3.11 (see
tests/interop/test_stores_vs_sops.py, which re-checks them against the binary).
"""

from __future__ import annotations

import math

import pytest

from macula_secrets.errors import ConfigError, FormatError, LimitError
from macula_secrets.sops.metadata import Metadata
from macula_secrets.sops.stores import get_store
from macula_secrets.sops.stores.json import (
    MAX_DEPTH,
    _parse_fast,
    format_json_float,
    make_store,
    marshal_go_value,
    parse_json,
    quote_json_string,
)
from macula_secrets.sops.tree import Branch, Comment, Timestamp

# SOPS_FORMAT.md 10.2: real sops output for
# {"api_key": "k-123", "retries": 3, "nested": {"list": [true, "x"]}}.
VECTOR_JSON = (
    "{\n"
    '\t"api_key": "ENC[AES256_GCM,data:jLQt8+I=,iv:XuCuqmCNqZK536q+mcweKIeAc887z20HEqh9ogwg7xc'
    '=,tag:zocqnomgF9HuKOOIWeo/FA==,type:str]",\n'
    '\t"retries": "ENC[AES256_GCM,data:Ew==,iv:2UKEfCBhxn/Jhh+IafRMgmsy1wPwPgyMCGd3leAfp+o=,ta'
    'g:08pKnfoGjh7RQ7GRN+M+lQ==,type:float]",\n'
    '\t"nested": {\n'
    '\t\t"list": [\n'
    '\t\t\t"ENC[AES256_GCM,data:G4poCg==,iv:GoIrHi5w5WFl05ABBukX8HEeQw6rIw6tcSioSlXPEVE=,tag:mwh'
    '25B8X4rAcE+4/jGljAA==,type:bool]",\n'
    '\t\t\t"ENC[AES256_GCM,data:0g==,iv:XXhZ0bBb+UO182dj3C60s7l7XbM9V/QPYIfiDdDENT8=,tag:VUQJTQt'
    'z7o4i2ElLpjVjkQ==,type:str]"\n'
    "\t\t]\n"
    "\t},\n"
    '\t"sops": {\n'
    '\t\t"age": [\n'
    "\t\t\t{\n"
    '\t\t\t\t"recipient": "age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2ala06",\n'
    '\t\t\t\t"enc": "-----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUx'
    "OSBiMWF1VS9zcWM4SXNvcUt4\\nUGhrT3N1cWQ0QnZoa1p5UUZWcVdVZnZrUXh3ClRFUWJlbUhEOW51SjJkQTJGSU"
    "Rm\\nVTlHcVNFcFpmd0pSWFl3MVBpWWloWkEKLS0tIFJIMHVERGV3NVUrYi9pVmJMc0ZG\\nclNSWHJ5VWR4TUtid1"
    "oxWnBNd3J2SFEK12EgMigMJnq7WkkyZybVgGA68nxmE7u2\\nC54FmMtjYkEdYUJ8sbwowzz5pR3praqkvC30KooE"
    'c0IPxs2/aHRvtQ==\\n-----END AGE ENCRYPTED FILE-----\\n"\n'
    "\t\t\t}\n"
    "\t\t],\n"
    '\t\t"lastmodified": "2026-11-29T04:10:28Z",\n'
    '\t\t"mac": "ENC[AES256_GCM,data:ZCehRT3hlq2NFQlJyAT1keV92X1Kj7EgDFesOHYA0gLIuaqCEg37tZ0Zp5'
    "C/04ynzxWT5SFoMp2fVL8DMTAeYn7PlkAHzI4cNWQ5SMEFf751GX9MOPtIrR85L4q7f69FGp3hpKNl3T0D9sILBX"
    "kLrqYImHXxsVRT0xLVABRcjP8=,iv:hmItu72gaDilh67pR4jNj1N0hG2mcRh5zv7AEgSQpg0=,tag:le6t0Sp8H"
    'uuF1CeJ02e/pQ==,type:str]",\n'
    '\t\t"unencrypted_suffix": "_unencrypted",\n'
    '\t\t"version": "3.11.0"\n'
    "\t}\n"
    "}\n"
)


STORE = make_store()


def load(text: str) -> Branch:
    (branch,) = STORE.load_plain(text.encode())
    return branch


# -- reading -------------------------------------------------------------------


def test_get_store_returns_json_store() -> None:
    store = get_store("json")
    assert store.name == "json"
    assert store.emit_plain(store.load_plain(b'{"a":1}')) == b'{\n\t"a": 1\n}\n'


def test_order_and_duplicate_keys_are_kept() -> None:
    branch = load('{"b": "1", "a": "2", "b": "3"}')
    assert list(branch) == [("b", "1"), ("a", "2"), ("b", "3")]


def test_every_number_is_a_float() -> None:
    branch = load('{"i": 3, "n": -0, "f": 1.5, "e": 1E2, "big": 12345678901234567890}')
    values = [v for _, v in branch]
    assert all(type(v) is float for v in values)
    assert values[:4] == [3.0, 0.0, 1.5, 100.0]
    assert math.copysign(1.0, values[1]) == -1.0  # type: ignore[arg-type]
    assert values[4] == 12345678901234567000.0


def test_scalars_and_containers() -> None:
    branch = load('{"t": true, "f": false, "z": null, "o": {}, "l": [], "n": [[{"k": "v"}]]}')
    assert branch == Branch(
        [
            ("t", True),
            ("f", False),
            ("z", None),
            ("o", Branch()),
            ("l", []),
            ("n", [[Branch([("k", "v")])]]),
        ]
    )
    assert isinstance(branch.get("o"), Branch)


def test_string_escapes_decode_like_go() -> None:
    branch = load(r'{"s": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "lone": "x\ud800y\udc00z"}')
    assert branch.get("s") == 'a"\\/\b\f\n\r\té\U0001f600'
    # Go replaces unpaired surrogate escapes with U+FFFD.
    assert branch.get("lone") == "x\ufffdy\ufffdz"


def test_high_surrogate_followed_by_non_low_escape() -> None:
    assert load(r'{"s": "\ud800\u0041"}').get("s") == "\ufffdA"


def test_content_after_the_object_is_ignored() -> None:
    assert load('{"a": "1"} trailing [garbage').get("a") == "1"
    assert load('\n\t {"a": "1"}}').get("a") == "1"


def test_unicode_keys_and_values() -> None:
    assert load('{"ключ": "值 😀"}') == Branch([("ключ", "值 😀")])


# Messages are sops's own (after "Could not unmarshal input data: "), lower-cased,
# except where sops would print the offending value, and truncation (see below).
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "expected JSON object start, got delimiter [ instead"),
        ("", "EOF"),
        ("  \n", "EOF"),
        ('"x"', "expected JSON object start, got string instead"),
        ("5", "expected JSON object start, got float64 instead"),
        ("true", "expected JSON object start, got bool instead"),
        ("null", "expected JSON object start, got <nil> instead"),
        ("]", "invalid character ']' looking for beginning of value"),
        ("{1:2}", "invalid character '1'"),
        ("{,}", "invalid character ','"),
        ('{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        ('{"a":"\\x"}', "invalid character 'x' in string escape code"),
        ('{"a":01}', "invalid character '1' after object key:value pair"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a"}', "invalid character '}' after object key"),
        ('{"a":}', "invalid character '}' looking for beginning of value"),
        ('{"a"::1}', "invalid character ':' looking for beginning of value"),
        ('{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
        ('{"a":nul}', "invalid character '}' in literal null (expecting 'l')"),
        ('{"a":fals}', "invalid character '}' in literal false (expecting 'e')"),
        ('{"a":-}', "invalid character '}' in numeric literal"),
        ('{"a":-x}', "invalid character 'x' in numeric literal"),
        ('{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        ('{"a":1e}', "invalid character '}' in exponent of numeric literal"),
        ('{"a":1e+}', "invalid character '}' in exponent of numeric literal"),
        ('{"a":1.5.3}', "invalid character '.' after object key:value pair"),
        ('{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        ('{"a":"x\ny"}', "invalid character '\\n' in string literal"),
        ('{"a":"\x01"}', "invalid character '\\x01' in string literal"),
        ('{"a":"\\ug"}', "invalid character 'g' in \\u hexadecimal character escape"),
        ('{"a":"\\u12"}', "invalid character '\"' in \\u hexadecimal character escape"),
        ('{"a":[1,]}', "invalid character ']' looking for beginning of value"),
        ('{"a":[1 2]}', "invalid character '2' after array element"),
        ('{"a":[1:2]}', "invalid character ':' after array element"),
        ('{"a":{]}', "invalid character ']'"),
        ('{"a":[}', "invalid character '}' looking for beginning of value"),
        ('{"a":x}', "invalid character 'x' looking for beginning of value"),
        ("\ufeff{}", "invalid character 'ï' looking for beginning of value"),
        ('{"a":"abc', "unexpected EOF"),
        ('{"a":tr', "unexpected EOF"),
        ('{"a":"\\', "unexpected EOF"),
    ],
)
def test_syntax_errors_match_sops(text: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(text.encode())
    assert str(info.value) == "could not unmarshal input data: " + message


@pytest.mark.parametrize("text", ['{"a":', '{"a": [1', '{"a": 1', '{"a": {"b":', "{"])
def test_truncated_input_is_an_error(text: str) -> None:
    # sops 3.11 silently drops the unfinished member for some of these; we refuse.
    with pytest.raises(FormatError, match="unexpected EOF"):
        STORE.load_plain(text.encode())


def test_number_out_of_range_does_not_show_the_value() -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(b'{"pin": 1e999}')
    assert "999" not in str(info.value)


def test_top_level_array_error_has_a_hint() -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(b"[1, 2]")
    assert info.value.hint is not None and '{"data": [...]}' in info.value.hint


def test_non_utf8_input_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8"):
        STORE.load_plain(b'{"a": "\xff"}')


def test_nesting_limit() -> None:
    ok = "[" * (MAX_DEPTH - 1)
    assert load('{"a": ' + ok + "]" * (MAX_DEPTH - 1) + "}")
    with pytest.raises(LimitError, match="deeper than 100"):
        STORE.load_plain(b'{"a": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}")


def test_hostile_nesting_is_a_limit_error_not_recursion() -> None:
    with pytest.raises(LimitError):
        STORE.load_plain(b'{"a":' + b'{"a":' * 200_000)
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(LimitError):
        STORE.emit_plain([Branch([("a", deep)])])
    with pytest.raises(LimitError):
        marshal_go_value(deep)


# -- writing -------------------------------------------------------------------


def test_emit_layout_tab_indent() -> None:
    branch = load('{"a": {"b": [1, {"c": null}], "e": {}, "l": []}, "t": true}')
    assert STORE.emit_plain([branch]) == (
        b'{\n\t"a": {\n\t\t"b": [\n\t\t\t1,\n\t\t\t{\n\t\t\t\t"c": null\n\t\t\t}\n\t\t],\n'
        b'\t\t"e": {},\n\t\t"l": []\n\t},\n\t"t": true\n}\n'
    )


@pytest.mark.parametrize(("indent", "unit"), [(None, "\t"), (-1, "\t"), (0, ""), (2, "  ")])
def test_indent_option(indent: int | None, unit: str) -> None:
    out = make_store(indent).emit_plain([Branch([("a", [1.0])])])
    assert out == f'{{\n{unit}"a": [\n{unit * 2}1\n{unit}]\n}}\n'.encode()


def test_indent_below_minus_one_is_rejected() -> None:
    with pytest.raises(ConfigError):
        make_store(-2).emit_plain([Branch([("a", "b")])])


def test_empty_document() -> None:
    assert STORE.emit_plain([Branch()]) == b"{}\n"


def test_go_string_escaping() -> None:
    value = 'a<b>&c\u2028\u2029\x00\x01\b\f\n\r\t\x7f"\\/é😀'
    assert quote_json_string(value) == (
        '"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\u0000\\u0001\\b\\f\\n\\r\\t\x7f\\"\\\\/é😀"'
    )


def test_invalid_utf8_bytes_become_replacement_escapes() -> None:
    assert quote_json_string(b"a\xff\xe2\x82b") == '"a\\ufffd\\ufffd\\ufffdb"'
    assert quote_json_string("x\ud800") == '"x\\ufffd"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (1.5, "1.5"),
        (-0.0, "-0"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.2345678901234569e23, "1.2345678901234569e+23"),
        (0.1, "0.1"),
        (-1.5e-10, "-1.5e-10"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (12345678901234567890.0, "12345678901234567000"),
    ],
)
def test_go_json_float_format(value: float, text: str) -> None:
    assert format_json_float(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_cannot_be_written(value: float) -> None:
    with pytest.raises(FormatError, match="unsupported value"):
        STORE.emit_plain([Branch([("a", value)])])


def test_other_scalar_types() -> None:
    branch = Branch([("i", 5), ("t", Timestamp("2024-01-01T00:00:00Z")), ("b", b"\xff")])
    assert STORE.emit_plain([branch]) == (
        b'{\n\t"i": 5,\n\t"t": "2024-01-01T00:00:00Z",\n\t"b": "\\ufffd"\n}\n'
    )


def test_plain_output_drops_every_comment() -> None:
    branch = Branch(
        [(Comment(" top"), None), ("l", [Comment("ENC[AES256_GCM,x,type:comment]"), "a"])]
    )
    assert STORE.emit_plain([branch]) == b'{\n\t"l": [\n\t\t"a"\n\t]\n}\n'


def test_encrypted_output_keeps_encrypted_list_comments_as_strings() -> None:
    enc = "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:comment]"
    branch = Branch(
        [(Comment(enc), None), ("l", [Comment(enc), "x", Comment(" clear")]), ("m", Branch())]
    )
    meta = Branch([("lastmodified", "t"), ("version", "3.11.0")])
    out = STORE.emit_encrypted([branch], meta)
    assert (
        out
        == (
            '{\n\t"l": [\n\t\t"' + enc + '",\n\t\t"x"\n\t],\n\t"m": {},\n'
            '\t"sops": {\n\t\t"lastmodified": "t",\n\t\t"version": "3.11.0"\n\t}\n}\n'
        ).encode()
    )


def test_empty_key_lists_in_metadata_are_null() -> None:
    meta = Branch(
        [
            ("shamir_threshold", 2),
            ("key_groups", [Branch([("hc_vault", []), ("age", [])])]),
            ("version", "3.11.0"),
        ]
    )
    out = STORE.emit_encrypted([Branch([("a", [])])], meta).decode()
    assert '"a": [],' in out
    assert '"hc_vault": null,\n\t\t\t\t"age": null' in out
    assert '"shamir_threshold": 2,' in out


def test_metadata_only_document() -> None:
    out = STORE.emit_encrypted([Branch()], Branch([("version", "3.11.0")]))
    assert out == b'{\n\t"sops": {\n\t\t"version": "3.11.0"\n\t}\n}\n'


def test_emit_value() -> None:
    assert STORE.emit_value(5.0) == b"5"
    assert STORE.emit_value(True) == b"true"
    assert STORE.emit_value(None) == b"null"
    assert STORE.emit_value("a<") == b'"a\\u003c"'
    assert STORE.emit_value([1.0, "a"]) == b'[\n\t1,\n\t"a"\n]'
    assert STORE.emit_value([]) == b"[]"
    assert STORE.emit_value(Branch([("k", [True])])) == b'{\n\t"k": [\n\t\ttrue\n\t]\n}'


def test_marshal_go_value_is_compact_go_json() -> None:
    value = [1.0, "a b", None, True, 1e6, Branch([("x", [2.0])]), []]
    assert marshal_go_value(value) == '[1,"a b",null,true,1000000,[{"Key":"x","Value":[2]}],null]'
    assert marshal_go_value(Branch([(Comment("c"), None)])) == (
        '[{"Key":{"Value":"c"},"Value":null}]'
    )


def test_emit_with_no_branch_is_an_error() -> None:
    with pytest.raises(FormatError):
        STORE.emit_plain([])


# -- encrypted files ------------------------------------------------------------


def test_vector_round_trips_byte_for_byte() -> None:
    data = VECTOR_JSON.encode()
    branches, meta = STORE.load_encrypted(data)
    assert branches[0].keys() == ["api_key", "retries", "nested"]
    assert meta.keys() == ["age", "lastmodified", "mac", "unencrypted_suffix", "version"]
    assert STORE.emit_encrypted(branches, meta) == data
    md = Metadata.from_branch(meta)
    assert STORE.emit_encrypted(branches, md.to_branch()) == data


def test_encrypted_numbers_and_unencrypted_values() -> None:
    branches, meta = STORE.load_encrypted(
        b'{"n_unencrypted": 5, "x": "ENC[...]", '
        b'"sops": {"version": "3.11.0", "shamir_threshold": 2}}'
    )
    assert branches[0].get("n_unencrypted") == 5.0
    assert meta.get("shamir_threshold") == 2.0


def test_every_sops_member_is_removed() -> None:
    branches, meta = STORE.load_encrypted(
        b'{"sops": {"version": "1"}, "a": "x", "sops": {"version": "2"}}'
    )
    assert branches[0] == Branch([("a", "x")])
    assert meta.get("version") == "2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a": 1}', "sops metadata not found"),
        (b'{"sops": null}', "sops metadata not found"),
        (
            b'{"sops": "x"}',
            "error unmarshalling input json: json: cannot unmarshal string into "
            "Go struct field SopsFile.sops of type stores.Metadata",
        ),
        (
            b"[1]",
            "error unmarshalling input json: json: cannot unmarshal array into "
            "Go value of type stores.SopsFile",
        ),
        (
            b'"x"',
            "error unmarshalling input json: json: cannot unmarshal string into "
            "Go value of type stores.SopsFile",
        ),
        (
            b'{"a":1}x',
            "error unmarshalling input json: invalid character 'x' after top-level value",
        ),
        (b'{"a":1', "error unmarshalling input json: unexpected end of JSON input"),
        (b"", "error unmarshalling input json: unexpected end of JSON input"),
        (
            b"{1:2}",
            "error unmarshalling input json: "
            "invalid character '1' looking for beginning of object key string",
        ),
    ],
)
def test_encrypted_loader_errors(text: bytes, message: str) -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_encrypted(text)
    assert str(info.value) == message


def test_has_metadata() -> None:
    assert STORE.has_metadata([Branch([("a", 1), ("sops", Branch())])])
    assert not STORE.has_metadata([Branch([("a", 1), (Comment("sops"), None)])])
    assert not STORE.has_metadata([Branch([("sops_x", 1)])])


@pytest.mark.parametrize(
    "text",
    [
        '{"s": "\\ud800"}',  # unpaired surrogate escape: Go gives U+FFFD
        '{"n": NaN}',
        '{"n": 1e400}',
        '{"a": [' + "[" * 150 + "]" * 150 + "]}",
        '{"a": 1} junk',
    ],
)
def test_inputs_the_fast_path_hands_to_the_exact_parser(text: str) -> None:
    assert _parse_fast(text, True) is None


def test_fast_path_result() -> None:
    assert _parse_fast(' {"a": [1, {"b": "\\u00e9"}], "a": -0}', False) == Branch(
        [("a", [1.0, Branch([("b", "é")])]), ("a", -0.0)]
    )


def test_parse_json_strict_rejects_trailing_content_only_in_strict_mode() -> None:
    assert parse_json(b'{"a": "b"} x') == Branch([("a", "b")])
    with pytest.raises(FormatError):
        parse_json(b'{"a": "b"} x', strict=True)

"""Unit tests for the dotenv store and metadata flattening (SOPS_FORMAT.md 5.3)."""

from __future__ import annotations

import math

import pytest

from macula_secrets.errors import FormatError, LimitError
from macula_secrets.sops.metadata import AgeKey, Metadata
from macula_secrets.sops.stores._flat import (
    flatten_metadata,
    unflatten_metadata,
    value_to_string,
)
from macula_secrets.sops.stores.dotenv import make_store
from macula_secrets.sops.tree import Branch, Comment, Timestamp

# SOPS_FORMAT.md 10.3: real sops output for "# comment", "TOKEN=abc", "PUBLIC_unencrypted=yes".
VECTOR_DOTENV = (
    "#ENC[AES256_GCM,data:0twNLVQ8co4=,iv:61xYy+oRcuTJG91Tr4Z36kzzvRHQGGUbQxDWLhHu9Fo=,tag:lv"
    "iRWKvWUDbqtExKe5ZAxQ==,type:comment]\n"
    "TOKEN=ENC[AES256_GCM,data:mgDL,iv:ndlAtfd4PAPrJiuLctwo4UiOTnzoG1PZW6nXx4+aJ9o=,tag:KaJuj"
    "5B1fekKyBZa7pshvg==,type:str]\n"
    "PUBLIC_unencrypted=yes\n"
    "sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3"
    "YxCi0+IFgyNTUxOSB2VW1jczJLK3MvVkZhK2gy\\nMWJsY0YxSmRNSlRMZHlQdmUxODlDZVNjVlhnClQ1cDdKcTUx"
    "TDRxMWFFajBMU1Mr\\nVzZMWFNKeTJ2T2lUMk9sbWFOTU9UOXMKLS0tIE53QUV3Sk9rWTVIc0k4WnFqT1BN\\nU1hP"
    "NXJrZnVwMUo0eHBWREpvNENmTkkK9mUMPcItnPnNnGxniP9OkcT37Ag3r6bK\\npykFIoJwbGCUqo+O60NDWCO9a3"
    "1bAMyLIByh8KS7oAvNdj0/JIRSXg==\\n-----END AGE ENCRYPTED FILE-----\\n\n"
    "sops_age__list_0__map_recipient=age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq"
    "2ala06\n"
    "sops_lastmodified=2026-11-29T04:10:28Z\n"
    "sops_mac=ENC[AES256_GCM,data:O9uYzM4h9tWubkYHZIW0SAx271UArwYW6/bDKHtWfa7lXA7C0kOiCRoUglS"
    "HidhcTfdBiInZLjsIoVZtq53wsOgvz260mDQfUqHt15axpsEQ7ecchSYY962uCVCXF1gy/4Vv6x3Q5CjXG7wfVFt"
    "VsSRwJ7KXssf7d5DcPHNhw1Q=,iv:H6Rlpyeh6D57Az008yo90Fp8Obk3ULUFnj2aUvOa+7c=,tag:JQP/H7Hjjp"
    "0v9Xndewm5ng==,type:str]\n"
    "sops_unencrypted_suffix=_unencrypted\n"
    "sops_version=3.11.0\n"
)


STORE = make_store()


def load(text: bytes) -> Branch:
    (branch,) = STORE.load_plain(text)
    return branch


def test_lines_comments_and_blank_lines() -> None:
    branch = load(b"# comment\nA=1\n\n#\nB=x=y\n")
    assert branch == Branch(
        [(Comment(" comment"), None), ("A", "1"), (Comment(""), None), ("B", "x=y")]
    )


def test_no_trimming_no_quotes_no_export() -> None:
    branch = load(b'  SPACED =x y \nQ="a b"\nexport X=1\nE=\n')
    assert list(branch) == [("  SPACED ", "x y "), ("Q", '"a b"'), ("export X", "1"), ("E", "")]


def test_escaped_newlines_and_carriage_returns() -> None:
    branch = load(b"ML=line1\\nline2\r\nLAST=x")
    assert list(branch) == [("ML", "line1\nline2\r"), ("LAST", "x")]


def test_bom_and_duplicates_are_kept() -> None:
    branch = load(b"\xef\xbb\xbfK=1\nK=2\n")
    assert list(branch) == [("\ufeffK", "1"), ("K", "2")]


def test_line_without_equals_is_an_error_without_its_content() -> None:
    with pytest.raises(FormatError) as info:
        STORE.load_plain(b"A=1\n#c\nhunter2\n")
    assert "line 3" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_crlf_blank_line_is_not_blank() -> None:
    # sops splits on \n only, so "\r" alone is a line without "=".
    with pytest.raises(FormatError, match="line 2"):
        STORE.load_plain(b"A=1\r\n\r\n")


def test_non_utf8_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8"):
        STORE.load_plain(b"A=\xff\n")


def test_emit_plain_round_trip() -> None:
    text = b"# comment\nA=1\n  SPACED =x y \nML=a\\nb\n#\nCR=x\r\n"
    assert STORE.emit_plain(STORE.load_plain(text)) == text


def test_empty_document() -> None:
    assert STORE.load_plain(b"") == [Branch()]
    assert STORE.emit_plain([Branch()]) == b""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5.0, "5.0"),
        (0.5, "0.5"),
        (1e6, "1E+06"),
        (1234567.0, "1.234567E+06"),
        (123456.0, "123456.0"),
        (1e-5, "1E-05"),
        (0.0001, "0.0001"),
        (-0.0, "-0.0"),
        (1e21, "1E+21"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (5, "5"),
        (True, "true"),
        (False, "false"),
        (None, "<nil>"),
        (Timestamp("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
        (Timestamp("2001-12-14T21:59:43.1-05:00"), "2001-12-14T21:59:43-05:00"),
        ("text", "text"),
    ],
)
def test_value_to_string(value: object, text: str) -> None:
    assert value_to_string(value) == text


def test_non_string_values_are_rendered_and_newlines_escaped_only_in_strings() -> None:
    branch = Branch([("F", 5.0), ("N", None), ("S", "a\nb"), ("B", b"x\ny\xff")])
    assert STORE.emit_plain([branch]) == b"F=5.0\nN=<nil>\nS=a\\nb\nB=x\\ny\xff\n"


@pytest.mark.parametrize("value", [Branch([("x", "1")]), ["a"], []])
def test_complex_values_cannot_be_written(value: object) -> None:
    message = "cannot use complex value in dotenv file; offending key K"
    with pytest.raises(FormatError, match=message):
        STORE.emit_plain([Branch([("A", "1"), ("K", value)])])


def test_comment_text_is_written_verbatim() -> None:
    assert STORE.emit_plain([Branch([(Comment(" a"), None), (Comment("x\ny"), None)])]) == (
        b"# a\n#x\ny\n"
    )


def test_emit_value_only_strings() -> None:
    assert STORE.emit_value("a\nb") == b"a\nb"
    assert STORE.emit_value(b"\xff") == b"\xff"
    for value, name in [(5.0, "float64"), (True, "bool"), (None, "<nil>"), ([1], "[]interface {}")]:
        with pytest.raises(FormatError) as info:
            STORE.emit_value(value)
        assert str(info.value) == f"the dotenv store only supports emitting strings, got {name}"


def test_has_metadata() -> None:
    assert STORE.has_metadata([Branch([("A", "1"), ("sops_x", "y")])])
    assert not STORE.has_metadata([Branch([("A", "sops_x"), (Comment("sops_x"), None)])])
    assert not STORE.has_metadata([Branch([("SOPS_X", "1")])])


# -- metadata -------------------------------------------------------------------


def test_vector_round_trips_byte_for_byte() -> None:
    data = VECTOR_DOTENV.encode()
    branches, meta = STORE.load_encrypted(data)
    assert branches[0].keys() == ["TOKEN", "PUBLIC_unencrypted"]
    assert isinstance(branches[0][0][0], Comment)
    assert STORE.emit_encrypted(branches, meta) == data
    md = Metadata.from_branch(meta)
    assert md.recipients() == ["age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2ala06"]
    key = md.key_groups[0][0]
    assert isinstance(key, AgeKey)
    assert key.enc.startswith("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl")
    assert STORE.emit_encrypted(branches, md.to_branch()) == data


def test_metadata_may_be_anywhere_in_any_order() -> None:
    lines = VECTOR_DOTENV.splitlines(keepends=True)
    data_lines = [ln for ln in lines if not ln.startswith("sops_")]
    meta_lines = [ln for ln in lines if ln.startswith("sops_")]
    shuffled = meta_lines[3:] + data_lines[:2] + meta_lines[:3][::-1] + data_lines[2:]
    branches, meta = STORE.load_encrypted("".join(shuffled).encode())
    assert STORE.emit_encrypted(branches, meta) == VECTOR_DOTENV.encode()


def test_missing_metadata() -> None:
    with pytest.raises(FormatError, match="sops metadata not found"):
        STORE.load_encrypted(b"A=1\n")


def _key_group_metadata(n_groups: int, keys_per_group: int) -> Branch:
    groups: list[object] = []
    for g in range(n_groups):
        age = [
            Branch([("recipient", f"age1r{g}{k}"), ("enc", f"-----BEGIN-----\nE{g}{k}\n")])
            for k in range(keys_per_group)
        ]
        groups.append(Branch([("hc_vault", []), ("age", age)]))
    return Branch(
        [
            ("shamir_threshold", 2),
            ("key_groups", groups),
            ("lastmodified", "2026-11-29T04:10:28Z"),
            ("mac", "ENC[x]"),
            ("unencrypted_suffix", "_unencrypted"),
            ("mac_only_encrypted", True),
            ("version", "3.11.0"),
        ]
    )


def test_flatten_sorts_bytewise_and_drops_empty_and_null() -> None:
    flat = flatten_metadata(_key_group_metadata(11, 1))
    keys = [k for k, _ in flat]
    assert keys == sorted(keys)
    assert keys.index("key_groups__list_10__map_age__list_0__map_enc") < keys.index(
        "key_groups__list_2__map_age__list_0__map_enc"
    )
    assert not any("hc_vault" in k for k in keys)
    values = dict(flat)
    assert values["shamir_threshold"] == "2"
    assert values["mac_only_encrypted"] == "true"
    assert values["key_groups__list_3__map_age__list_0__map_enc"] == "-----BEGIN-----\\nE30\\n"


def test_key_groups_round_trip_through_dotenv() -> None:
    meta = _key_group_metadata(3, 2)
    out = STORE.emit_encrypted([Branch([("A", "x")])], meta)
    branches, raw = STORE.load_encrypted(out)
    assert branches == [Branch([("A", "x")])]
    md = Metadata.from_branch(raw)
    assert md.shamir_threshold == 2 and md.mac_only_encrypted
    assert [len(g) for g in md.key_groups] == [2, 2, 2]
    assert STORE.emit_encrypted(branches, md.to_branch()) == out
    assert raw.get("shamir_threshold") == 2
    assert raw.get("mac_only_encrypted") is True


@pytest.mark.parametrize(("text", "value"), [("2", 2), ("2.0", 2), ("+3", 3)])
def test_shamir_threshold_forms(text: str, value: int) -> None:
    assert unflatten_metadata([("shamir_threshold", text)]).get("shamir_threshold") == value


@pytest.mark.parametrize("text", ["2.5", "two", ""])
def test_shamir_threshold_must_be_an_integer(text: str) -> None:
    with pytest.raises(FormatError, match="shamir_threshold"):
        unflatten_metadata([("shamir_threshold", text)])


def test_mac_only_encrypted_is_true_only_for_exact_true() -> None:
    assert unflatten_metadata([("mac_only_encrypted", "true")]).get("mac_only_encrypted") is True
    assert unflatten_metadata([("mac_only_encrypted", "True")]).get("mac_only_encrypted") is False


def test_unflatten_builds_nested_lists_and_maps() -> None:
    raw = unflatten_metadata(
        [
            ("age__list_1__map_enc", "b\\nc"),
            ("age__list_0__map_recipient", "r0"),
            ("age__list_1__map_recipient", "r1"),
            ("kms__list_0__map_context__map_k", "v"),
            ("version", "3.11.0"),
        ]
    )
    assert raw == Branch(
        [
            (
                "age",
                [Branch([("recipient", "r0")]), Branch([("enc", "b\nc"), ("recipient", "r1")])],
            ),
            ("kms", [Branch([("context", Branch([("k", "v")]))])]),
            ("version", "3.11.0"),
        ]
    )


def test_unflatten_last_duplicate_wins() -> None:
    assert unflatten_metadata([("version", "1"), ("version", "2")]).get("version") == "2"


@pytest.mark.parametrize(
    "items",
    [
        [("age", "x"), ("age__list_0__map_enc", "y")],
        [("age__list_0__map_enc", "y"), ("age", "x")],
        [("age__map_x", "1"), ("age__list_0", "2")],
        [("age__list_0", "1"), ("age__list_0__map_x", "2")],
    ],
)
def test_unflatten_shape_conflicts_are_errors(items: list[tuple[str, str]]) -> None:
    with pytest.raises(FormatError, match="conflicts"):
        unflatten_metadata(items)


def test_unflatten_limits() -> None:
    with pytest.raises(LimitError):
        unflatten_metadata([("age__list_999999999__map_enc", "x")])
    with pytest.raises(LimitError):
        unflatten_metadata([("a" + "__map_a" * 500, "x")])
    with pytest.raises(FormatError, match="list index"):
        unflatten_metadata([("age__list_x__map_enc", "x")])

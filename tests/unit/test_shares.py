"""The recovery share format (keys/shares.py): layout, checksum, forgiving reading,
the messages for each mistake, and age identities as 32-byte secrets."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable

import pytest

from macula_secrets.errors import KeySourceError, ThresholdError
from macula_secrets.keys import shamir
from macula_secrets.keys.age import generate_identity
from macula_secrets.keys.shares import (
    TAG,
    Share,
    ShareSet,
    combine_shares,
    identity_from_secret,
    identity_to_secret,
    parse_share,
    split_secret,
)
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

KEY = bytes(range(32))


def counting(start: int = 7) -> Callable[[int], bytes]:
    """Predictable "randomness": 7, 8, 9, ... on every call."""
    return lambda n: bytes(range(start, start + n))


# The format, pinned: changing any of these breaks shares people have printed.
GOLDEN = [
    "macula-share-1-0W40-J2GB-0410-61R6-0M20-60G1-007G-W38C-1C50-J20Q-2RAH-84RJ-2481-Y7GX"
    "-3GDH-M68R-042X-JV8J",
    "macula-share-1-0W40-J2GB-0410-63GF-1G6G-M2R8-1430-E105-081G-008Y-3WE1-T6GV-30CH-C5RM"
    "-2M91-640H-0ANH-R06D",
    "macula-share-1-0W40-J2GB-0410-6288-1C50-T30F-1R0G-00R2-0M20-E1GS-30DH-M78W-3WF1-240K"
    "-28AH-85RP-0DW7-09J7",
]


def _body(text: str) -> bytes:
    """Decode a share with the standard library's base32 (an independent reading)."""
    data = text.removeprefix(TAG + "-").replace("-", "")
    rfc = data.translate(str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ",
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    return base64.b32decode(rfc + "=" * (-len(rfc) % 8))[: len(data) * 5 // 8]


def test_golden_shares() -> None:
    assert split_secret(KEY, "master-key", 3, 2, randbytes=counting()) == GOLDEN
    assert combine_shares(GOLDEN[1:]) == ("master-key", KEY)


def test_layout_read_with_the_standard_base32() -> None:
    shares = split_secret(KEY, "master-key", 3, 2, randbytes=counting())
    payloads = shamir.split(KEY, 3, 2, randbytes=counting())
    for text, payload in zip(shares, payloads, strict=True):
        body = _body(text)
        assert body[:5] == bytes([7, 8, 9, 10, 11])  # split id
        assert body[5:8] == bytes([1, 2, 3])  # kind 1 (master key), M, N
        assert body[8:-4] == payload  # the shamir share: y values, then x
        assert body[-4:] == zlib.crc32(TAG.encode() + body[:-4]).to_bytes(4, "big")


def test_text_shape() -> None:
    shares = split_secret(KEY, "master-key", 5, 3)
    for text in shares:
        assert text.startswith(TAG + "-")
        groups = text.removeprefix(TAG + "-").split("-")
        assert len(groups) == 18 and all(len(g) == 4 for g in groups)  # 72 characters
        assert text == text.strip() and "\n" not in text
    # The first two groups are the split id; kind, M and N follow: shares of one
    # split look alike at the start.
    share = parse_share(shares[0])
    assert all(s.startswith(f"{TAG}-{share.split_id}-") for s in shares)
    assert len({s[: len(TAG) + 15] for s in shares}) == 1


def test_parse_share_fields_and_repr() -> None:
    shares = split_secret(b"\x01\x02", "age-identity", 4, 3)
    share = parse_share(shares[2])
    assert (share.kind, share.threshold, share.total, share.index) == ("age-identity", 3, 4, 3)
    assert share.to_text() == shares[2]
    assert "payload" not in repr(share) and share.payload.hex() not in repr(share)
    collected = ShareSet()
    collected.add(shares[0])
    assert share.split_id in repr(collected) and "needed=3" in repr(collected)


def test_forgiving_reading() -> None:
    text = GOLDEN[0]
    data = text.removeprefix(TAG + "-")
    variants = [
        text.lower(),
        "  " + text + "\n",
        "MACULA SHARE 1 " + data.replace("-", " "),
        "macula-share-1" + data.replace("-", ""),
        "macula-share-1-\n" + data[:40] + "\n" + data[40:],
        text.replace("0", "O").replace("1", "l"),  # look-alikes (the tag's 1 stays)
    ]
    variants[-1] = variants[-1].replace("macula-share-l", TAG)
    for variant in variants:
        assert parse_share(variant) == parse_share(text), variant


def _change(text: str, position: int, char: str) -> str:
    return text[:position] + char + text[position + 1:]


def test_changed_character_is_caught_and_located() -> None:
    position = len(TAG) + 1 + 5 * 6 + 2  # group 7
    old = GOLDEN[1][position]
    bad = _change(GOLDEN[1], position, "Z" if old != "Z" else "Y")
    with pytest.raises(KeySourceError) as info:
        combine_shares([GOLDEN[0], bad], sources=["alice.txt", "bob.txt"])
    assert str(info.value) == "bob.txt: checksum does not match (a character is mistyped)"
    assert info.value.hint is not None
    assert info.value.hint.startswith("the mistake is probably in group 7 (characters 25-28)")
    # Nothing of either share is quoted.
    for group in bad.split("-")[3:]:
        assert group not in str(info.value) + info.value.hint


def test_swapped_neighbours_missing_and_extra_characters_are_caught() -> None:
    text = GOLDEN[0]
    at = len(TAG) + 1 + 5 * 3  # the first character of group 4
    assert text[at] != text[at + 1]
    swapped = text[:at] + text[at + 1] + text[at] + text[at + 2:]
    missing = text[:at] + text[at + 1:]
    extra = text[:at] + "7" + text[at:]
    for bad in (swapped, missing, extra):
        with pytest.raises(KeySourceError, match=r"^share 2: "):
            combine_shares([GOLDEN[1], bad])


def test_padding_bits_are_checked() -> None:
    # A one-byte secret makes 14 bytes, 23 characters: the last one carries 3
    # bits of padding, and changing only those must not go unnoticed.
    text = split_secret(b"\x01", "master-key", 2, 2)[0]
    last = "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(text[-1])
    bad = text[:-1] + "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[last ^ 1]
    with pytest.raises(KeySourceError, match="a character is mistyped"):
        parse_share(bad)


@pytest.mark.parametrize(("text", "message"), [
    ("", "share: not a recovery share (it should start with macula-share-1)"),
    ("hello world", "share: not a recovery share"),
    ("see: " + GOLDEN[0], "share: not a recovery share"),
    ("macula-share-2-0W40-J2GB", "share: macula-share-2 is a share format this version "
                                 "cannot read"),
    (GOLDEN[0] + " " + GOLDEN[1], "share: holds more than one share"),
    (GOLDEN[0][:30] + "U" + GOLDEN[0][31:], "share: character 13 (group 4) is 'U', which "
                                            "shares do not use"),
    ("macula-share-1-0W40", "share: has 4 characters after macula-share-1, which is not the "
                            "length of a share"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(KeySourceError) as info:
        parse_share(text)
    assert str(info.value).startswith(message)


def test_fewer_than_m_shares() -> None:
    shares = split_secret(KEY, "master-key", 5, 3)
    with pytest.raises(ThresholdError) as info:
        combine_shares(shares[3:])
    assert str(info.value).startswith("2 of the 3 shares needed to restore a master key were "
                                      "given")
    assert (info.value.threshold, info.value.recovered) == (3, 2)
    with pytest.raises(KeySourceError, match="no recovery shares were given"):
        combine_shares([])


def test_more_than_m_shares_and_any_order() -> None:
    shares = split_secret(KEY, "age-identity", 5, 3)
    assert combine_shares(reversed(shares)) == ("age-identity", KEY)


def test_duplicates_and_conflicts_are_refused() -> None:
    shares = split_secret(KEY, "master-key", 5, 3)
    with pytest.raises(KeySourceError, match=r"^share 3: is share 2 of 5 again \(as share 1\)"):
        combine_shares([shares[1], shares[0], shares[1].lower()])
    first = parse_share(shares[0])
    forged = Share(first.kind, first.split_id, 3, 5, 1, bytes(33) + b"\x01")
    with pytest.raises(KeySourceError, match=r"has the index of share 1 .* but different content"):
        combine_shares([shares[0], forged.to_text()])
    other_threshold = Share(first.kind, first.split_id, 2, 5, 2, parse_share(shares[1]).payload)
    with pytest.raises(KeySourceError, match="does not match share 1"):
        combine_shares([shares[0], other_threshold.to_text()])


def test_kind_is_checked() -> None:
    shares = split_secret(KEY, "master-key", 3, 2)
    with pytest.raises(KeySourceError, match="share 1: restores a master key, not an age identity"):
        combine_shares(shares, kind="age-identity")
    assert combine_shares(shares, kind="master-key") == ("master-key", KEY)


def test_share_set_is_unchanged_by_a_bad_share() -> None:
    shares = split_secret(KEY, "master-key", 3, 2)
    collected = ShareSet()
    collected.add(shares[0])
    with pytest.raises(KeySourceError):
        collected.add(_change(shares[1], 30, "U"))
    assert collected.count == 1 and not collected.is_complete()
    collected.add(shares[1])
    assert collected.is_complete()
    assert collected.combine() == ("master-key", KEY)


@pytest.mark.parametrize(("args", "message"), [
    ((KEY, "password", 3, 2), "unknown kind"),
    ((KEY, "master-key", 3, 1), "threshold must be at least 2"),
    ((KEY, "master-key", 2, 3), "fewer than the threshold"),
    ((KEY, "master-key", 256, 2), "cannot exceed 255"),
    ((b"", "master-key", 3, 2), "empty"),
])
def test_split_arguments(args: tuple[bytes, str, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_secret(*args)  # type: ignore[arg-type]


def test_extremes() -> None:
    for total, threshold in ((255, 2), (255, 255)):
        shares = split_secret(bytes(range(16)), "master-key", total, threshold)
        assert len(shares) == total
        assert combine_shares(shares[-threshold:]) == ("master-key", bytes(range(16)))
        with pytest.raises(ThresholdError):
            combine_shares(shares[: threshold - 1])


def test_age_identity_as_32_bytes() -> None:
    text = f"# created: 2024-01-01T00:00:00Z\n# public key: {TEST_AGE_PUBLIC}\n{TEST_AGE_SECRET}\n"
    secret = identity_to_secret(text, source="keys.txt")
    assert len(secret) == 32
    identity = identity_from_secret(secret)
    assert identity.recipient == TEST_AGE_PUBLIC
    for _ in range(20):
        fresh = generate_identity()
        line = str(fresh._pyrage)
        assert identity_from_secret(identity_to_secret(line, source="x")).recipient == \
            fresh.recipient


def test_identity_files_that_cannot_be_split() -> None:
    two = f"{TEST_AGE_SECRET}\n{generate_identity()._pyrage}\n"
    with pytest.raises(KeySourceError, match=r"keys\.txt holds 2 identities; split one at a time"):
        identity_to_secret(two, source="keys.txt")
    with pytest.raises(KeySourceError, match=r"keys\.txt holds no age identity"):
        identity_to_secret("# nothing\n", source="keys.txt")
    with pytest.raises(KeySourceError, match="not an age identity"):
        identity_from_secret(b"short")

"""Recovery shares: any M of N restore the secret, M-1 never give a wrong one, a
changed character is caught and its share named, two splits never mix.

Secrets of 1 to 64 bytes, N up to 255 and every M from 2 to N. Example counts
are kept small: a split of 64 bytes into 255 shares of threshold 255 takes
most of a second.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets.errors import KeySourceError, ThresholdError
from macula_secrets.keys.shares import KINDS, TAG, Kind, combine_shares, parse_share, split_secret

_SETTINGS = settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SAME = {"O": "0", "I": "1", "L": "1"}


@st.composite
def splits(draw: st.DrawFn) -> tuple[bytes, Kind, int, int, list[str]]:
    secret = draw(st.binary(min_size=1, max_size=64))
    kind = draw(st.sampled_from(KINDS))
    total = draw(st.one_of(st.integers(2, 8), st.integers(2, 255)))
    threshold = draw(st.integers(2, total))
    # Randomness from the draw, so that every run makes the same shares.
    randbytes = random.Random(draw(st.integers(0, 2**32))).randbytes
    shares = split_secret(secret, kind, total, threshold, randbytes=randbytes)
    return secret, kind, total, threshold, shares


def _pick(draw: st.DrawFn, shares: list[str], count: int) -> list[str]:
    indices = draw(st.lists(st.integers(0, len(shares) - 1), min_size=count, max_size=count,
                            unique=True))
    return [shares[i] for i in indices]


@_SETTINGS
@given(splits(), st.data())
def test_any_m_shares_restore_the_secret(split: tuple[bytes, Kind, int, int, list[str]],
                                         data: st.DataObject) -> None:
    secret, kind, total, threshold, shares = split
    assert len(shares) == total
    subset = _pick(data.draw, shares, data.draw(st.integers(threshold, min(total, threshold + 2))))
    assert combine_shares(subset) == (kind, secret)


@_SETTINGS
@given(splits(), st.data())
def test_m_minus_one_shares_are_refused(split: tuple[bytes, Kind, int, int, list[str]],
                                        data: st.DataObject) -> None:
    _secret, _kind, _total, threshold, shares = split
    subset = _pick(data.draw, shares, threshold - 1)
    with pytest.raises(ThresholdError) as info:
        combine_shares(subset)
    assert info.value.threshold == threshold
    assert info.value.recovered == threshold - 1


@_SETTINGS
@given(splits(), st.data())
def test_a_changed_character_is_caught_and_its_share_named(
        split: tuple[bytes, Kind, int, int, list[str]], data: st.DataObject) -> None:
    secret, _kind, _total, threshold, shares = split
    subset = _pick(data.draw, shares, threshold)
    victim = data.draw(st.integers(0, threshold - 1))
    text = subset[victim]
    # A position in the groups after the tag (not a dash), and a character
    # that reads differently there (not the same letter in another case, nor
    # a look-alike such as O for 0).
    positions = [i for i in range(len(TAG), len(text)) if text[i] != "-"]
    position = data.draw(st.sampled_from(positions))
    old = _ALPHABET.index(_SAME.get(text[position], text[position]))
    new = _ALPHABET[(old + data.draw(st.integers(1, 31))) % 32]
    if data.draw(st.booleans()):
        new = {"0": "O", "1": "I"}.get(new, new)
    if data.draw(st.booleans()):
        new = new.lower()
    subset[victim] = text[:position] + new + text[position + 1:]
    with pytest.raises(KeySourceError) as info:
        combine_shares(subset)
    assert str(info.value).startswith(f"share {victim + 1}: ")
    assert "checksum does not match" in str(info.value)
    assert secret.hex() not in str(info.value) + str(info.value.hint)


@_SETTINGS
@given(splits(), st.data())
def test_shares_of_two_splits_are_refused(split: tuple[bytes, Kind, int, int, list[str]],
                                          data: st.DataObject) -> None:
    secret, kind, total, threshold, shares = split
    # Even a second split of the same secret with the same M and N.
    other = split_secret(secret, kind, total, threshold)
    mixed = _pick(data.draw, shares, threshold - 1) + _pick(data.draw, other, 1)
    stranger = data.draw(st.integers(0, threshold - 1))
    mixed.insert(stranger, mixed.pop())
    with pytest.raises(KeySourceError, match="belongs to another split"):
        combine_shares(mixed)


@_SETTINGS
@given(splits(), st.data())
def test_case_spaces_and_dashes_do_not_matter(split: tuple[bytes, Kind, int, int, list[str]],
                                              data: st.DataObject) -> None:
    _secret, _kind, _total, _threshold, shares = split
    text = data.draw(st.sampled_from(shares))
    chars = [c.lower() if data.draw(st.booleans()) else c for c in text]
    mangled = "".join(
        c.replace("-", data.draw(st.sampled_from(["-", "", " ", "\n", " - "]))) for c in chars)
    assert parse_share(mangled) == parse_share(text)

"""The join protocol's messages and seals, as properties (hypothesis).

A message survives its JSON and parse unchanged; any change of any field
changes its digest and (all but never) its code; parse refuses anything
that is not exactly a message; a seal opens only with its recipient's key
and a changed seal is an error, never other bytes.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macula_secrets.errors import FormatError, IntegrityError, MaculaError, NoMatchingKeyError
from macula_secrets.keys import age
from macula_secrets.mesh.protocol import (
    JoinMessage,
    human_code,
    normalize_fingerprint,
    open_sealed,
    seal,
)

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
HEX64 = st.text("0123456789ABCDEF", min_size=64, max_size=64)
NONCES = st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode())
RECIPIENT = age.generate_identity().to_recipient().text
BAD = {
    "name": [None, "", 7, "x y", "-lead", "a" * 64, []],
    "recipient": [None, "", 7, "ssh-rsa AAAA", "AGE-SECRET-KEY-1X", "age1" + "x" * 2000],
    "nonce": [None, "", 7, "x y", base64.b64encode(b"\0" * 15).decode()],
    "created": [None, "", -1, True, 1.5, "7"],
    "bootstrap": [None, "", 7, "ab" * 32, "AB" * 31],
    "version": [None, 2, 0, True, "1"],
}
MESSAGES = st.builds(JoinMessage, name=NAMES, recipient=st.just(RECIPIENT), nonce=NONCES,
                     created=st.integers(0, 2**40), bootstrap=HEX64)


@settings(max_examples=150, deadline=None)
@given(MESSAGES)
def test_a_message_survives_json(message: JoinMessage) -> None:
    again = JoinMessage.parse(json.loads(json.dumps(message.to_json())))
    assert again == message and again.canonical() == message.canonical()
    assert again.code == message.code
    assert len(message.code) == 14 and message.code[4] == message.code[9] == "-"


@settings(max_examples=150, deadline=None)
@given(MESSAGES, MESSAGES)
def test_different_messages_have_different_digests(a: JoinMessage, b: JoinMessage) -> None:
    if a != b:
        assert a.digest() != b.digest()


@settings(max_examples=100, deadline=None)
@given(MESSAGES, st.sampled_from(["name", "recipient", "nonce", "created", "bootstrap",
                                  "version", "extra"]), st.data())
def test_parse_refuses_a_broken_field(message: JoinMessage, field: str,
                                     data: st.DataObject) -> None:
    doc = message.to_json()
    if field == "extra":
        doc["admin"] = True
    else:
        doc[field] = data.draw(st.sampled_from(BAD[field]))
    with pytest.raises(FormatError):
        JoinMessage.parse(doc)
    doc = message.to_json()
    del doc["name"]
    with pytest.raises(FormatError):
        JoinMessage.parse(doc)


@given(st.binary(min_size=32, max_size=32))
def test_fingerprints_in_every_spelling(raw: bytes) -> None:
    hexed = raw.hex()
    colons = ":".join(hexed[i:i + 2] for i in range(0, 64, 2))
    for spelling in (hexed, hexed.upper(), colons, f"sha256:{colons.lower()}", f" {colons} "):
        assert normalize_fingerprint(spelling) == hexed.upper()
    with pytest.raises(FormatError):
        normalize_fingerprint(hexed[:-2])


def test_codes_are_twelve_digits() -> None:
    assert human_code(b"\x00" * 32) == "0000-0000-0000"
    assert human_code(b"\xff" * 32) == f"{(2**64 - 1) % 10**12:012d}"[:4] + "-" + \
        f"{(2**64 - 1) % 10**12:012d}"[4:8] + "-" + f"{(2**64 - 1) % 10**12:012d}"[8:]


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=2048), st.integers(0, 10_000))
def test_a_seal_opens_only_for_its_key_and_never_changed(data: bytes, flip: int) -> None:
    mine, other = age.generate_identity(), age.generate_identity()
    sealed = seal(data, mine.to_recipient().text)
    assert open_sealed(sealed, [mine], "test") == data
    with pytest.raises(NoMatchingKeyError):
        open_sealed(sealed, [other], "test")
    lines = sealed.splitlines()
    body = base64.b64decode("".join(lines[1:-1]))
    at = flip % len(body)
    changed = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]
    encoded = base64.b64encode(changed).decode()
    tampered = "\n".join([lines[0], *[encoded[i:i + 64] for i in range(0, len(encoded), 64)],
                          lines[-1]]) + "\n"
    with pytest.raises(MaculaError) as caught:
        open_sealed(tampered, [mine], "test")
    assert isinstance(caught.value, IntegrityError | FormatError | NoMatchingKeyError)

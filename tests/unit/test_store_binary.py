"""Unit tests for the binary store (SOPS_FORMAT.md 5.5)."""

from __future__ import annotations

import pytest

from macula_secrets.errors import FormatError
from macula_secrets.sops.metadata import Metadata
from macula_secrets.sops.stores import get_store
from macula_secrets.sops.stores.binary import make_store
from macula_secrets.sops.tree import Branch, Comment

# SOPS_FORMAT.md 10.5: real sops output for the 4 bytes "raw\n".
VECTOR_BINARY = (
    "{\n"
    '\t"data": "ENC[AES256_GCM,data:x24IkQ==,iv:ypayjrjbu1s7Jlr8H42hnX1b5yHt7BXmmXLVzF2STso=,t'
    'ag:xYf2leOaJy1YBgn5G5oskw==,type:str]",\n'
    '\t"sops": {\n'
    '\t\t"age": [\n'
    "\t\t\t{\n"
    '\t\t\t\t"recipient": "age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2ala06",\n'
    '\t\t\t\t"enc": "-----BEGIN AGE ENCRYPTED FILE-----\\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUx'
    "OSAzWk4zb3V0dTJZU293d0Fq\\nUXhYZVJJTTl2aWtLbXNZUXR0VmFsaGRUVEVzCkNtc3VxbmZPc1lsR000U2owaU"
    "9O\\nQll6Zm9mWGtjM1lyYmVVQnZhMnExeFEKLS0tIDZzYk94TjZOSlI3RmM3aWpNUUVl\\nbXNSRFRFZ1hxUkgzY2"
    "xjUzROaDJNZm8K5HatZXtCtm98qh7VmcqUHFtG2xhDBw0t\\ncRplNuG5bPYLRf8tfiOT4xvLPALd0Qcv9YAUapg9"
    'hO30cDV4jXJ2wg==\\n-----END AGE ENCRYPTED FILE-----\\n"\n'
    "\t\t\t}\n"
    "\t\t],\n"
    '\t\t"lastmodified": "2026-11-29T04:10:28Z",\n'
    '\t\t"mac": "ENC[AES256_GCM,data:DA+v2YE1hLb8eXBF10wwce1uVKh/Vi6l6weOrYJjm07Cp0xtxyIhQCQDBN'
    "5fnquyygPdDS9IfPQMSqEucsN7DxFhJ6SCavrsuAnPnZEBeX2AnqKzitXH/WizYdaEnQRgSZFFwyQ5uxJ567VcVf"
    "e592Vt6gYauCGa2s+AiEYXEgo=,iv:Y2Hs3RqSUD/BOsCEeKo2cSDm73p9hmYQpohPY3akp0w=,tag:3Z7z2WICn"
    'YyaUIEoRMinLg==,type:str]",\n'
    '\t\t"version": "3.11.0"\n'
    "\t}\n"
    "}\n"
)


STORE = make_store()


@pytest.mark.parametrize("data", [b"", b"raw\n", b"\x00\xff\xfe binary \r\n", bytes(range(256))])
def test_plaintext_is_one_bytes_item_and_comes_back_exactly(data: bytes) -> None:
    branches = STORE.load_plain(data)
    assert branches == [Branch([("data", data)])]
    assert type(branches[0][0][1]) is bytes
    assert STORE.emit_plain(branches) == data


def test_string_data_is_written_as_utf8() -> None:
    assert STORE.emit_plain([Branch([("other", 1), ("data", "é\n")])]) == "é\n".encode()


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        ([Branch([("a", "x")])], "no binary data found in tree"),
        ([Branch([(Comment("data"), None)])], "no binary data found in tree"),
        ([Branch([("data", 5.0)])], "'data' key in tree does not have a string value"),
        ([Branch([("data", Branch())])], "'data' key in tree does not have a string value"),
        ([], "there must be exactly one tree branch"),
        ([Branch(), Branch()], "there must be exactly one tree branch"),
    ],
)
def test_emit_plain_errors(branches: list[Branch], message: str) -> None:
    with pytest.raises(FormatError) as info:
        STORE.emit_plain(branches)
    assert str(info.value) == "error emitting binary store: " + message
    assert info.value.hint is not None and "--output-type" in info.value.hint


def test_emit_value_is_refused() -> None:
    with pytest.raises(FormatError, match="not structured"):
        STORE.emit_value(5.0)


def test_vector_round_trips_byte_for_byte() -> None:
    data = VECTOR_BINARY.encode()
    branches, meta = STORE.load_encrypted(data)
    assert branches[0].keys() == ["data"]
    assert "unencrypted_suffix" not in meta.keys()  # noqa: SIM118 - Branch is a list
    assert STORE.emit_encrypted(branches, meta) == data
    md = Metadata.from_branch(meta)
    assert md.recipients() == ["age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2ala06"]


def test_encrypted_envelope_uses_the_indent_option() -> None:
    out = get_store("binary", indent=2).emit_encrypted(
        [Branch([("data", "")])], Branch([("version", "3.11.0")])
    )
    assert out == b'{\n  "data": "",\n  "sops": {\n    "version": "3.11.0"\n  }\n}\n'


def test_has_metadata() -> None:
    assert STORE.has_metadata([Branch([("data", "x"), ("sops", Branch())])])
    assert not STORE.has_metadata(STORE.load_plain(b'{"sops": {}}'))

"""Hypothesis round trip of env files: format, encrypt, read back through the backend.

``EnvFileBackend.load_all(app) == values`` for every dict of env names to
text, where the text may hold double and single quotes, ``=``, ``#``,
backslashes, spaces, newlines, carriage returns, ``$`` and any Unicode.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from macula_secrets.backends.envfile import (
    EnvFileBackend,
    encrypt_file,
    format_dotenv,
    parse_dotenv,
)
from macula_secrets.keys import age
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

IDENTITY = age.parse_identities(TEST_AGE_SECRET, source="test")

env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
awkward = st.sampled_from(['"', "'", "=", "#", " ", "\n", "\r", "\t", "\\", "$", "${X}",
                           "\\n", '\\"', "export ", "é", "☃", "\U0001f510", "\u2028"])
values = st.lists(st.one_of(awkward, st.characters(exclude_categories=["Cs"])),
                  max_size=24).map("".join)
env_dicts = st.dictionaries(env_names, values, max_size=8)


@settings(max_examples=60, deadline=None)
@given(env_dicts, st.booleans())
def test_round_trip_through_the_backend(env: dict[str, str], armored: bool) -> None:
    text = format_dotenv(env)
    assert parse_dotenv(text, source="text") == env
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.env.age"
        path.write_bytes(encrypt_file(text.encode(), [TEST_AGE_PUBLIC], armored=armored))
        backend = EnvFileBackend(folder, identities=IDENTITY)
        assert backend.load_all("app") == env
        assert backend.list("app") == sorted(env)

"""Random JSON documents through the real sops and through us, both directions.

Same check as test_yaml_vs_sops.py for the JSON store: for a plaintext X,
our decrypt of ``sops -e X`` prints what ``sops -d`` prints, and ``sops -d``
of our encryption of X prints the same bytes.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets.keys import age
from macula_secrets.sops import document
from macula_secrets.sops.keygroups import IdentityList
from macula_secrets.sops.stores import get_store
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

pytestmark = pytest.mark.interop

STORE = get_store("json")
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_SCALARS = st.one_of(
    _TEXT,
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False).filter(math.isfinite),
    st.booleans(),
    st.none(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_TEXT.filter(lambda k: k != "sops"), inner, max_size=4),
    ),
    max_leaves=20,
)
_DOCS = st.dictionaries(_TEXT.filter(lambda k: k != "sops"), _VALUES, min_size=1, max_size=6)


def _sops(sops: str, env: dict[str, str], *args: str, data: bytes) -> bytes:
    p = subprocess.run([sops, *args, "--input-type", "json", "--output-type", "json",
                        "/dev/stdin"], input=data, capture_output=True, env=env, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(_DOCS)
def test_random_json_both_ways(
    sops_bin: str, sops_env: dict[str, str], doc: dict[str, object]
) -> None:
    plain = json.dumps(doc).encode()
    theirs = _sops(sops_bin, sops_env, "-e", "--age", TEST_AGE_PUBLIC, data=plain)
    expected = _sops(sops_bin, sops_env, "-d", data=theirs)
    ids = IdentityList(age.parse_identities(TEST_AGE_SECRET, source="test"))
    ours_plain = document.decrypt_bytes(theirs, format="json", unwrapper=ids).plaintext(STORE)
    assert ours_plain == expected
    ours = document.encrypt_new(STORE.load_plain(plain), format="json",
                                groups=[[TEST_AGE_PUBLIC]]).encrypt(STORE)
    assert _sops(sops_bin, sops_env, "-d", data=ours) == expected

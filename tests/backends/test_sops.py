"""SOPS app files pass the backend conformance checks, in every format that holds keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from macula_secrets import sops
from macula_secrets.backends.sops import SopsBackend
from macula_secrets.errors import ConfigError
from macula_secrets.keys import age
from macula_secrets.sops.keygroups import IdentityList
from macula_secrets.testing import exercise_backend
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET


@pytest.mark.parametrize(("ext", "fmt"), [("yaml", "yaml"), ("json", "json"),
                                          ("env", "dotenv")])
def test_sops_backend(tmp_path: Path, ext: str, fmt: str) -> None:
    (tmp_path / f"conformance.enc.{ext}").write_bytes(
        sops.encrypt({"seed": "x"}, recipients=[TEST_AGE_PUBLIC], format=fmt))

    def factory() -> SopsBackend:
        return SopsBackend(tmp_path, identities=_identities())

    exercise_backend(factory, versioned=False)


def test_ini_app_files_take_section_dot_key_names(tmp_path: Path) -> None:
    (tmp_path / "app.enc.ini").write_bytes(
        sops.encrypt({"db": {"user": "u"}}, recipients=[TEST_AGE_PUBLIC], format="ini"))
    backend = SopsBackend(tmp_path, identities=_identities())
    assert backend.get("app", "db.user") == "u"
    backend.put("app", "db.password", "pw")
    backend.put("app", "cache.url", "redis://x")
    assert backend.load_all("app") == {"db.user": "u", "db.password": "pw",
                                       "cache.url": "redis://x"}
    with pytest.raises(ConfigError, match=r"section\.key"):
        backend.put("app", "flat", "x")


def _identities() -> IdentityList:
    return IdentityList(age.parse_identities(TEST_AGE_SECRET, source="test"))

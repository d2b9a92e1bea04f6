"""``macula_secrets.config.secret``: settings-module reads through the shared ``Secrets``."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from macula_secrets import SecretRef, Secrets, sops
from macula_secrets.config import parse_bool, secret, secret_ref
from macula_secrets.errors import ConfigError, NotFoundError
from tests.cli._support import CANARY
from tests.conftest import TEST_AGE_PUBLIC


def _formatted(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` would print, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


def test_reads_through_the_shared_default(shared: Secrets) -> None:
    shared.put("console", "django_secret_key", CANARY)
    assert secret("console", "django_secret_key") == CANARY


def test_reads_the_secrets_folder(shared: Secrets, tmp_path: Path) -> None:
    (tmp_path / "secrets" / "console.enc.yaml").write_bytes(
        sops.encrypt({"database_url": "postgres://db/app"}, recipients=[TEST_AGE_PUBLIC]))
    assert secret("console", "database_url") == "postgres://db/app"


def test_missing_secret_names_app_key_and_where_it_looked(shared: Secrets,
                                                          tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        secret("console", "db_password")
    message = str(info.value)
    assert "console/db_password" in message
    assert "looked in" in message and str(tmp_path / "secrets") in message
    assert info.value.hint is not None and "macula-secrets put console db_password" in (
        info.value.hint)
    assert not isinstance(info.value, KeyError)   # a LookupError, never a bare KeyError


def test_a_default_is_returned_as_given_and_not_cast(shared: Secrets) -> None:
    assert secret("console", "db_port", default=5432, cast=int) == 5432
    assert secret("console", "nothing", default=None) is None
    assert secret("console", "nothing", default="x") == "x"
    shared.put("console", "db_port", "6543")
    assert secret("console", "db_port", default=5432, cast=int) == 6543


def test_an_explicit_secrets_instance(secrets: Secrets) -> None:
    secrets.put("console", "k", "v")
    assert secret("console", "k", secrets=secrets) == "v"
    assert secret("console", "k", secrets=secrets.with_tenant("acme"), default="none") == "none"


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("True", True), (" YES ", True), ("1", True), ("on", True),
    ("false", False), ("FALSE", False), ("no", False), ("0", False), ("off", False), ("", False),
])
def test_cast_bool_parses_words(secrets: Secrets, text: str, expected: bool) -> None:
    secrets.put("console", "debug", text)
    assert secret("console", "debug", cast=bool, secrets=secrets) is expected
    assert parse_bool(text) is expected


@pytest.mark.parametrize(("cast", "name"), [
    (int, "int"), (bool, "bool"), (json.loads, "json.loads"), (float, "float"),
])
def test_a_failed_cast_names_app_key_and_cast_but_not_the_value(
        secrets: Secrets, cast: object, name: str) -> None:
    secrets.put("console", "setting", CANARY)
    with pytest.raises(ConfigError) as info:
        secret("console", "setting", cast=cast, secrets=secrets)  # type: ignore[call-overload]
    err = info.value
    assert "console/setting" in str(err) and name in str(err)
    assert CANARY not in _formatted(err) and CANARY not in repr(err)
    # int's own message quotes the input: it must not ride along as context.
    assert err.__cause__ is None and err.__context__ is None


def test_cast_with_own_callables(secrets: Secrets) -> None:
    secrets.put("console", "hosts", "a,b")
    assert secret("console", "hosts", cast=lambda s: s.split(","), secrets=secrets) == ["a", "b"]

    def port(text: str) -> int:
        value = int(text)
        if not 0 < value < 65536:
            raise ValueError(f"port out of range: {text}")
        return value

    secrets.put("console", "port", "70000")
    with pytest.raises(ConfigError, match=r"console/port .*test_config\..*port \(ValueError\)"):
        secret("console", "port", cast=port, secrets=secrets)
    secrets.put("console", "config", '{"a": [1, 2]}')
    assert secret("console", "config", cast=json.loads, secrets=secrets) == {"a": [1, 2]}


def test_invalid_names_are_config_errors(secrets: Secrets) -> None:
    with pytest.raises(ConfigError):
        secret("../etc", "passwd", secrets=secrets)


def test_secret_ref_is_live(shared: Secrets) -> None:
    shared.put("console", "db_password", "one")
    ref = secret_ref("console", "db_password")
    assert isinstance(ref, SecretRef) and ref.get() == "one"
    shared.put("console", "db_password", "two")
    assert ref.get() == "two"
    assert secret_ref("console", "absent", default="d").get() == "d"


def test_importing_config_is_cheap() -> None:
    """Settings modules import it first thing: no store, no frameworks until the first read."""
    code = ("import sys, macula_secrets.config\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'pydantic_settings', 'django', 'sqlite3') "
            "or m == 'macula_secrets.client'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""

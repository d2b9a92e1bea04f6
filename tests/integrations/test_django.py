"""The Django app: settings that read secrets, the system check and the command.

Django settings are process-global, so each test runs ``python -m django``
in a child process with ``DJANGO_SETTINGS_MODULE`` naming a settings module
written to a temporary folder.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.errors import IntegrityError, NotFoundError
from macula_secrets.integrations.django import Finding, check_required
from tests.cli._support import CANARY
from tests.integrations.conftest import cli

SETTINGS = """\
from macula_secrets.config import secret

SECRET_KEY = secret("console", "django_secret_key")
DEBUG = secret("console", "debug", default=False, cast=bool)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "PASSWORD": secret("console", "db_password"),
    },
}
INSTALLED_APPS = ["macula_secrets.integrations.django"]
USE_TZ = True
MACULA_SECRETS_REQUIRED = [
    "console/django_secret_key",
    "console/db_password",
    "console/stripe_key",
    "billing/api_token",
]
"""


def django(env: dict[str, str], tmp_path: Path, settings: str, *args: str
           ) -> subprocess.CompletedProcess[str]:
    """``python -m django ARGS`` with ``settings`` as the settings module."""
    (tmp_path / "proj_settings.py").write_text(textwrap.dedent(settings))
    child = dict(env, DJANGO_SETTINGS_MODULE="proj_settings", PYTHONPATH=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "django", *args], env=child, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def project(env: dict[str, str], secrets: Secrets) -> dict[str, str]:
    secrets.put("console", "django_secret_key", CANARY)
    secrets.put("console", "db_password", CANARY + "-db")
    return env


def test_check_reports_every_missing_secret(project: dict[str, str], tmp_path: Path) -> None:
    done = django(project, tmp_path, SETTINGS, "check")
    assert done.returncode == 1, done.stderr
    out = done.stdout + done.stderr
    assert out.count("macula_secrets.E003") == 2
    for name in ("console/stripe_key", "billing/api_token"):
        assert f"secret {name} not found (looked in" in out
    assert "macula-secrets put billing api_token" in out   # the hint
    assert "console/db_password" not in out and CANARY not in out
    assert "Traceback" not in out

    cli(project, "put", "console", "stripe_key", "sk")
    cli(project, "put", "billing", "api_token", "tok")
    done = django(project, tmp_path, SETTINGS, "check")
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout and CANARY not in done.stdout + done.stderr


def test_check_can_run_alone_by_tag(project: dict[str, str], tmp_path: Path) -> None:
    done = django(project, tmp_path, SETTINGS, "check", "--tag", "macula_secrets")
    assert done.returncode == 1 and "macula_secrets.E003" in done.stderr


def test_the_command_lists_each_secret_by_name(project: dict[str, str], tmp_path: Path) -> None:
    done = django(project, tmp_path, SETTINGS, "macula_secrets_check")
    assert done.returncode == 1
    assert "ok: console/django_secret_key" in done.stdout
    assert "ok: console/db_password" in done.stdout
    assert "missing: secret console/stripe_key not found" in done.stderr
    assert "missing: secret billing/api_token not found" in done.stderr
    assert "2 of 4 secrets are missing or unreadable" in done.stderr
    assert CANARY not in done.stdout + done.stderr

    done = django(project, tmp_path, SETTINGS, "macula_secrets_check", "console/db_password")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ok: console/db_password", "1 secrets present"]


def test_settings_values_come_from_the_store(project: dict[str, str], tmp_path: Path) -> None:
    probe = SETTINGS + textwrap.dedent("""
        import hashlib
        print("key", hashlib.sha256(SECRET_KEY.encode()).hexdigest(), "debug", DEBUG)
    """)
    done = django(project, tmp_path, probe, "macula_secrets_check", "console/db_password")
    import hashlib

    assert f"key {hashlib.sha256(CANARY.encode()).hexdigest()} debug False" in done.stdout


def test_a_missing_secret_read_in_settings_stops_startup_by_name(
        env: dict[str, str], tmp_path: Path) -> None:
    done = django(env, tmp_path, SETTINGS, "check")
    assert done.returncode == 1
    assert "NotFoundError: secret console/django_secret_key not found (looked in" in done.stderr


def test_entries_that_are_not_names_are_reported_by_position(
        project: dict[str, str], tmp_path: Path) -> None:
    settings = SETTINGS.replace('    "console/stripe_key",\n',
                                f'    "console",\n    "{CANARY}",\n    ("console", "nope"),\n')
    done = django(project, tmp_path, settings, "check")
    assert done.returncode == 1
    assert "MACULA_SECRETS_REQUIRED[2] is not an \"app/key\" name" in done.stderr
    assert "MACULA_SECRETS_REQUIRED[3] is not an \"app/key\" name" in done.stderr
    assert "secret console/nope not found" in done.stderr
    assert done.stderr.count("macula_secrets.E001") == 2
    assert CANARY not in done.stdout + done.stderr


def test_a_store_that_does_not_open_is_one_error(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("this is not = = toml\n")
    settings = """\
        SECRET_KEY = "x"
        INSTALLED_APPS = ["macula_secrets.integrations.django"]
        MACULA_SECRETS_REQUIRED = ["console/a", "console/b"]
    """
    done = django(dict(env, MACULA_SECRETS_CONFIG=str(tmp_path / "bad.toml")), tmp_path,
                  settings, "check")
    assert done.returncode == 1
    assert done.stderr.count("macula_secrets.E002") == 1
    assert "cannot open the secrets store" in done.stderr and "bad.toml" in done.stderr


def test_a_string_instead_of_a_list(env: dict[str, str], tmp_path: Path) -> None:
    settings = """\
        SECRET_KEY = "x"
        INSTALLED_APPS = ["macula_secrets.integrations.django"]
        MACULA_SECRETS_REQUIRED = "console/a"
    """
    done = django(env, tmp_path, settings, "check")
    assert done.returncode == 1 and "must be a list of \"app/key\" names, not str" in done.stderr
    done = django(env, tmp_path, settings, "macula_secrets_check")
    assert done.returncode == 1 and "not str" in done.stderr


# -- check_required without Django ----------------------------------------------------

class _Stub:
    """A ``Secrets`` stand-in whose reads fail in chosen ways."""

    def require(self, app: str, key: str) -> str:
        if key == "tampered":
            raise IntegrityError(f"the value of {app}/{key} failed its integrity check")
        if key == "io":
            raise PermissionError(13, "Permission denied", "/srv/secrets/console.enc.yaml")
        if key == "absent":
            raise NotFoundError(f"secret {app}/{key} not found (looked in the store)")
        return CANARY


def test_check_required_sorts_findings() -> None:
    findings = check_required(["console/ok", "console/tampered", "console/io",
                               ("console", "absent"), 42],
                              secrets=_Stub())  # type: ignore[arg-type]
    assert [(f.secret, f.status, f.id) for f in findings] == [
        ("MACULA_SECRETS_REQUIRED[4]", "invalid", "macula_secrets.E001"),
        ("console/ok", "ok", "macula_secrets.I000"),
        ("console/tampered", "unreadable", "macula_secrets.E004"),
        ("console/io", "unreadable", "macula_secrets.E004"),
        ("console/absent", "missing", "macula_secrets.E003"),
    ]
    assert "console.enc.yaml" in findings[3].message
    assert all(CANARY not in str(f) for f in findings)
    assert isinstance(findings[0], Finding) and findings[1].ok and not findings[2].ok

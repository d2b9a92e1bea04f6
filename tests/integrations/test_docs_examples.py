"""The first Python example of each integration page runs as written, and the
public names of the new modules are pinned (changing them is an API decision)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from macula_secrets import Secrets

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("doc", ["docs/settings.md", "docs/pydantic-settings.md",
                                 "docs/django.md"])
def test_the_short_version_runs(doc: str, shared: Secrets) -> None:
    for app, key, value in [("console", "django_secret_key", "k" * 50),
                            ("console", "db_port", "6543"), ("console", "debug", "no"),
                            ("console", "api_token", "tok"), ("console", "db_password", "pw"),
                            ("console", "database__password", "pw")]:
        shared.put(app, key, value)
    code = _BLOCK.findall((ROOT / doc).read_text())[0]
    scope: dict[str, object] = {}
    # dont_inherit: this module's `from __future__ import annotations` must not leak in.
    exec(compile(code, doc, "exec", dont_inherit=True), scope)  # noqa: S102 - our own docs
    if doc == "docs/settings.md":
        assert scope["DB_PORT"] == 6543 and scope["DEBUG"] is False and scope["FEATURES"] == {}
    if doc == "docs/pydantic-settings.md":
        settings = scope["settings"]
        assert settings.db_port == 6543  # type: ignore[attr-defined]
        assert settings.database.password.get_secret_value() == "pw"  # type: ignore[attr-defined]


def test_public_names() -> None:
    from macula_secrets import config
    from macula_secrets.integrations import django, pydantic

    assert config.__all__ == ["lease", "parse_bool", "secret", "secret_ref"]
    assert sorted(pydantic.__all__) == [
        "DEFAULT_NESTED_DELIMITER", "Problem", "SecretValidationError", "SecretsConfigDict",
        "SecretsSettingsSource", "SettingsWatch", "watch_settings"]
    assert django.__all__ == ["Finding", "check_required"]
    for module in (config, pydantic, django):
        for name in module.__all__:
            assert hasattr(module, name), name

"""The pydantic-settings source and ``watch_settings``."""

from __future__ import annotations

import logging
import queue
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from macula_secrets import Secrets
from macula_secrets.errors import ConfigError, MaculaError
from macula_secrets.integrations.pydantic import (
    SecretsConfigDict,
    SecretsSettingsSource,
    SecretValidationError,
    watch_settings,
)
from tests.cli._support import CANARY
from tests.integrations.conftest import cli

WAIT = 20.0   # generous: a loaded CI machine; the tests never assert speed

Sources = tuple[PydanticBaseSettingsSource, ...]


def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def settings_class(secrets: Secrets, *, env_first: bool = True, **source_args: Any
                   ) -> type[BaseSettings]:
    """A ``BaseSettings`` base whose sources are init, env (optional) and ours on ``secrets``."""

    class Base(BaseSettings):
        @classmethod
        def settings_customise_sources(
                cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource) -> Sources:
            ours = SecretsSettingsSource(settings_cls, secrets=secrets, **source_args)
            return (init_settings, env_settings, ours) if env_first else (init_settings, ours)

    return Base


class Database(BaseModel):
    host: str = "localhost"
    port: int = 5432
    password: SecretStr


@pytest.fixture
def console(secrets: Secrets) -> Secrets:
    for key, value in {
        "db_port": "6543", "database__password": CANARY, "database__host": "db.internal",
        "API_TOKEN": "tok_0123456789", "debug": "yes", "feature_flags": '["a", "b"]',
        "smtp": '{"host": "mail", "port": 25}', "Region": "eu-west",
    }.items():
        secrets.put("console", key, value)
    return secrets


# -- mapping fields to keys -----------------------------------------------------------

def test_fields_nesting_aliases_and_secretstr(console: Secrets) -> None:
    class Smtp(BaseModel):
        host: str
        port: int

    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        db_port: int
        database: Database
        token: SecretStr = Field(alias="api_token")
        debug: bool
        feature_flags: list[str]
        smtp: Smtp
        region: str = Field(validation_alias=AliasChoices("zone", "region"))
        absent: str = "default"

    s = Settings()
    assert s.db_port == 6543
    assert s.database.host == "db.internal" and s.database.port == 5432
    assert s.database.password.get_secret_value() == CANARY
    assert s.token.get_secret_value() == "tok_0123456789"   # key API_TOKEN: case ignored
    assert s.debug is True and s.feature_flags == ["a", "b"]
    assert s.smtp.port == 25 and s.region == "eu-west" and s.absent == "default"
    assert CANARY not in repr(s) and CANARY not in str(s)


def test_delimiter_and_case_from_constructor_or_config(console: Secrets) -> None:
    console.put("console", "database.password", "dotted")

    class Dotted(settings_class(console, nested_delimiter=".")):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        database: Database

    assert Dotted().database.password.get_secret_value() == "dotted"

    class DottedByConfig(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console", macula_nested_delimiter=".")
        database: Database

    assert DottedByConfig().database.password.get_secret_value() == "dotted"

    class Exact(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console", macula_case_sensitive=True)
        region: str = "unset"
        Region: str = "unset"

    exact = Exact()
    assert (exact.region, exact.Region) == ("unset", "eu-west")


def test_env_options_of_model_config_do_not_apply(console: Secrets,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_PORT", raising=False)

    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console", env_prefix="APP_",
                                         env_nested_delimiter="--")
        db_port: int
        database: Database

    s = Settings()
    assert s.db_port == 6543 and s.database.host == "db.internal"
    monkeypatch.setenv("APP_DB_PORT", "1111")   # the environment source, earlier: wins
    assert Settings().db_port == 1111
    assert Settings(db_port=2222).db_port == 2222


def test_the_environment_and_init_take_priority_when_first(console: Secrets,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        db_port: int
        database: Database

    monkeypatch.setenv("DATABASE__HOST", "from-env")   # no env_nested_delimiter: ignored
    monkeypatch.setenv("DB_PORT", "7777")
    s = Settings()
    assert s.db_port == 7777 and s.database.host == "db.internal"


def test_app_from_constructor_and_a_missing_app(console: Secrets) -> None:
    class Named(settings_class(console, app="console")):  # type: ignore[misc]
        db_port: int

    assert Named().db_port == 6543

    class Nameless(settings_class(console)):  # type: ignore[misc]
        db_port: int = 0

    with pytest.raises(ConfigError, match="Nameless name no app"):
        Nameless()


def test_keys_that_differ_only_in_case_are_refused(console: Secrets) -> None:
    console.put("console", "region", "us-east")

    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        region: str

    with pytest.raises(ConfigError, match=r"console/\w+ and console/\w+ differ only in case"):
        Settings()


# -- errors never carry values ---------------------------------------------------------

def test_pydantic_itself_would_echo_the_value() -> None:
    """Why the source checks values first: pydantic's error quotes the input."""
    class Plain(BaseModel):
        db_port: int

    with pytest.raises(ValidationError) as info:
        Plain(db_port=CANARY)  # type: ignore[arg-type]
    assert CANARY in str(info.value)


def _bad(secrets: Secrets, model: type[BaseSettings]) -> SecretValidationError:
    with pytest.raises(SecretValidationError) as info:
        model()
    err = info.value
    for text in (str(err), repr(err), _formatted(err), str(err.problems), err.hint or ""):
        assert CANARY not in text
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)
    assert err.__cause__ is None and err.__context__ is None
    return err


def test_a_bad_value_names_the_field_and_the_secret(secrets: Secrets) -> None:
    secrets.put("console", "db_port", CANARY)

    class Settings(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        db_port: int

    err = _bad(secrets, Settings)
    assert "field db_port (secret console/db_port)" in str(err)
    (problem,) = err.problems
    assert (problem.field, problem.secret, problem.type) == (
        "db_port", "console/db_port", "int_parsing")


def test_a_frozen_model_is_checked_too(secrets: Secrets) -> None:
    secrets.put("console", "db_port", CANARY)

    class Frozen(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console", frozen=True)
        db_port: int

    assert [p.secret for p in _bad(secrets, Frozen).problems] == ["console/db_port"]
    secrets.put("console", "db_port", "5")
    assert Frozen().db_port == 5


def test_secretstr_constraints_and_nested_fields(secrets: Secrets) -> None:
    secrets.put("console", "API_TOKEN", CANARY)
    secrets.put("console", "database__port", CANARY)
    secrets.put("console", "database__password", "pw")

    class Settings(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        api_token: SecretStr = Field(min_length=40)
        database: Database

    err = _bad(secrets, Settings)
    got = {(p.field, p.secret, p.type) for p in err.problems}
    assert got == {("api_token", "console/API_TOKEN", "too_short"),
                   ("database.port", "console/database__port", "int_parsing")}


def test_a_validator_that_quotes_the_value_is_scrubbed(secrets: Secrets) -> None:
    secrets.put("console", "stripe_key", CANARY)

    class Settings(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        stripe_key: str

        @field_validator("stripe_key")
        @classmethod
        def _live(cls, value: str) -> str:
            if not value.startswith("sk_live_"):
                raise ValueError(f"{value} is not a live key")
            return value

    err = _bad(secrets, Settings)
    assert "*** is not a live key" in str(err) and "console/stripe_key" in str(err)


def test_bad_json_names_the_secret_without_the_document(secrets: Secrets) -> None:
    secrets.put("console", "feature_flags", f'["{CANARY}"')

    class Settings(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        feature_flags: list[str]

    err = _bad(secrets, Settings)
    assert [(p.field, p.secret, p.type) for p in err.problems] == [
        ("feature_flags", "console/feature_flags", "json_invalid")]

    secrets.delete("console", "feature_flags")
    secrets.put("console", "nested__flags", f'["{CANARY}"')
    secrets.put("console", "aliased", "{")

    class Flags(BaseModel):
        flags: list[str]

    class Nested(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        nested: Flags

    assert [p.secret for p in _bad(secrets, Nested).problems] == ["console/nested__*"]

    class Aliased(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        other: dict[str, str] = Field(alias="ALIASED")

    assert [p.secret for p in _bad(secrets, Aliased).problems] == ["console/aliased"]


def test_errors_pydantic_raises_itself_show_no_secret_value(console: Secrets) -> None:
    """A missing field's error prints every input; a model validator's too."""
    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        database: Database
        feature_flags: list[str]
        smtp: dict[str, Any]
        not_a_secret_anywhere: str

    with pytest.raises(ValidationError) as info:
        Settings()
    assert "not_a_secret_anywhere" in str(info.value) and "database" in str(info.value)
    assert CANARY not in str(info.value) and CANARY not in repr(info.value.errors())

    class Checked(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        database: Database

        @model_validator(mode="after")
        def _never(self) -> Checked:
            raise ValueError("rejected")

    with pytest.raises(ValidationError) as info:
        Checked()
    assert "rejected" in str(info.value) and CANARY not in str(info.value)


def test_validated_values_are_plain_strings(console: Secrets) -> None:
    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        region: str
        database: Database
        feature_flags: list[str]

    s = Settings()
    assert type(s.region) is str and s.region == "eu-west"
    assert type(s.database.password.get_secret_value()) is str
    assert [type(f) for f in s.feature_flags] == [str, str]


def test_values_stay_out_of_the_pydantic_settings_debug_log(
        console: Secrets, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Settings(settings_class(console)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        database: Database

    monkeypatch.setenv("PYDANTIC_SETTINGS_DEBUG", "1")
    with caplog.at_level(logging.DEBUG, logger="pydantic_settings"):
        Settings()
    assert "SecretsSettingsSource" in caplog.text and "database" in caplog.text
    assert CANARY not in caplog.text


# -- refresh ---------------------------------------------------------------------------

@pytest.fixture
def live(secrets: Secrets) -> Iterator[type[BaseSettings]]:
    secrets.put("console", "db_port", "1000")
    secrets.put("console", "database__password", "first")

    class Settings(settings_class(secrets)):  # type: ignore[misc]
        model_config = SecretsConfigDict(macula_app="console")
        db_port: int
        database: Database
        name: str = "svc"

    yield Settings


def test_watch_updates_a_live_object_after_a_put_in_another_process(
        env: dict[str, str], secrets: Secrets, live: type[Any],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = live(name="custom")
    held = settings   # code elsewhere holds the object, not a copy
    refreshed: queue.Queue[int] = queue.Queue()
    errors: queue.Queue[MaculaError] = queue.Queue()
    with watch_settings(settings, secrets=secrets, factory=lambda: live(name="custom"),
                        on_refresh=lambda s: refreshed.put(s.db_port),
                        on_error=errors.put) as watch:
        assert "console" in repr(watch)
        done = cli(env, "put", "console", "db_port", "2000")
        assert done.returncode == 0, done.stderr
        assert refreshed.get(timeout=WAIT) == 2000
        assert held.db_port == 2000 and held.name == "custom"
        cli(env, "put", "console", "database__password", stdin="second")
        refreshed.get(timeout=WAIT)
        assert held.database.password.get_secret_value() == "second"

        # A value that does not validate: the old values stay, the error has no value.
        with caplog.at_level(logging.WARNING, logger="macula_secrets.integrations.pydantic"):
            cli(env, "put", "console", "db_port", CANARY)
            err = errors.get(timeout=WAIT)
        assert isinstance(err, SecretValidationError)
        assert "console/db_port" in str(err) and CANARY not in str(err)
        assert held.db_port == 2000
        assert "kept their values" in caplog.text and CANARY not in caplog.text
        assert refreshed.empty()

        cli(env, "put", "console", "db_port", "3000")   # fixed: refreshes again
        assert refreshed.get(timeout=WAIT) == 3000
    cli(env, "put", "console", "db_port", "4000")     # cancelled by leaving the block
    with pytest.raises(queue.Empty):
        refreshed.get(timeout=0.5)
    assert held.db_port == 3000


def test_a_rebuild_that_fails_in_pydantic_reports_no_value(secrets: Secrets, live: type[Any]
                                                          ) -> None:
    settings = live()
    errors: list[MaculaError] = []

    class Strict(BaseModel):
        db_port: int

    def factory() -> Any:
        Strict(db_port=CANARY)  # type: ignore[arg-type]  # pydantic's error quotes it

    watch = watch_settings(settings, secrets=secrets, factory=factory, on_error=errors.append)
    try:
        assert watch.refresh() is False
    finally:
        watch.cancel()
    (err,) = errors
    assert "db_port" in str(err) and CANARY not in str(err) and CANARY not in repr(err)


def test_watch_needs_an_app_and_a_mutable_model(secrets: Secrets) -> None:
    class Nameless(BaseSettings):
        x: int = 1

    with pytest.raises(ConfigError, match="name no app"):
        watch_settings(Nameless(), secrets=secrets)

    class Frozen(BaseSettings):
        model_config = SecretsConfigDict(macula_app="console", frozen=True)
        x: int = 1

    with pytest.raises(ConfigError, match="frozen"):
        watch_settings(Frozen(), secrets=secrets)

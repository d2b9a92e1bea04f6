"""Example: a FastAPI service whose database URL and API key rotate without a restart.

    MACULA_SECRETS_HOME=... uvicorn --app-dir examples/fastapi_service service:app

The service's configuration is a pydantic-settings model, :class:`Settings`,
filled from the secrets of the macula-secrets app ``orders`` by
:class:`~macula_secrets.integrations.pydantic.SecretsSettingsSource`:

- ``api_key``: ``GET /fingerprint`` answers with the first 16 hex digits of
  its SHA-256, and ``GET /sign?message=...`` with an HMAC-SHA256 of the
  message under it. Neither ever answers with the key itself.
- ``database_url``: ``GET /site`` reads one row from that database.

Rotation: at startup :func:`~macula_secrets.integrations.pydantic.watch_settings`
subscribes the settings object to changes of the app, so a new value (a
``macula-secrets put``, a sync, ``macula-secrets watch``) is copied into it
within milliseconds, and the next request reads it: nothing to restart.
When the database URL changes, the next request makes an engine for the new
URL and disposes of the old one.

This is an example, not part of the ``macula_secrets`` package; the tests in
tests/examples/ run it under uvicorn against the embedded store and against
a SOPS folder.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import Engine, create_engine, text

from macula_secrets.integrations.pydantic import (
    SecretsConfigDict,
    SecretsSettingsSource,
    watch_settings,
)

APP = "orders"
"""The macula-secrets app this service reads its secrets from."""


class Settings(BaseSettings):
    """The service's configuration: the secrets of app ``orders``.

    ``SecretStr`` keeps the values out of ``repr`` and logs; read them with
    ``.get_secret_value()`` where they are used.
    """

    # The source hands values to pydantic masked ('***' in any error it prints);
    # hide_input_in_errors also keeps even the masked inputs out of the messages.
    model_config = SecretsConfigDict(macula_app=APP, hide_input_in_errors=True)

    api_key: SecretStr
    database_url: SecretStr   # may hold a password

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first (for tests), then the secrets. The environment is left
        # out on purpose: a stray DATABASE_URL variable must not win over the store.
        return (init_settings, SecretsSettingsSource(settings_cls))


class Database:
    """An engine for the current value of a database URL. Thread-safe.

    ``url()`` is read at each :meth:`engine` call. When it has changed, a new
    engine is made and the old one disposed of: its idle connections close
    now, and a connection still in use by another request finishes its work
    and is closed when it is returned. (When only the password rotates and
    the pool must never be replaced, use examples/sqlalchemy_rotation.py.)
    """

    def __init__(self, url: Callable[[], str]) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._current: tuple[str, Engine] | None = None

    def engine(self) -> Engine:
        url = self._url()
        with self._lock:
            if self._current is None or self._current[0] != url:
                old, self._current = self._current, (url, create_engine(url))
                if old is not None:
                    old[1].dispose()
            return self._current[1]

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current[1].dispose()
                self._current = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The secrets are read through the shared Secrets of the process, configured
    # from the environment (MACULA_SECRETS_HOME, MACULA_SECRETS_DIR,
    # SOPS_AGE_KEY_FILE) or macula-secrets.toml. A missing secret stops the
    # startup here, with the field named.
    # (mypy without pydantic's plugin takes the fields for required arguments;
    # here the sources fill them.)
    settings = Settings()  # type: ignore[call-arg]

    def database_url() -> str:
        # The field is read at each call: a refresh replaces its value object.
        return settings.database_url.get_secret_value()

    with watch_settings(settings):
        app.state.settings = settings
        app.state.database = Database(database_url)
        try:
            yield
        finally:
            app.state.database.close()


app = FastAPI(title="macula-secrets example: orders", lifespan=lifespan)


def settings(request: Request) -> Settings:
    """The live settings object (updated in place when a secret changes)."""
    current: Settings = request.app.state.settings
    return current


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


SettingsDep = Annotated[Settings, Depends(settings)]


def fingerprint(key: str) -> str:
    """A short public fingerprint of a key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@app.get("/fingerprint")
def get_fingerprint(settings: SettingsDep) -> dict[str, str]:
    """Which API key is in use, without showing it (compare with ``sha256sum``)."""
    return {"api_key_sha256": fingerprint(settings.api_key.get_secret_value())}


@app.get("/sign")
def sign(message: str, settings: SettingsDep) -> dict[str, str]:
    """An HMAC-SHA256 of ``message`` under the current API key."""
    key = settings.api_key.get_secret_value().encode()
    return {"message": message,
            "hmac_sha256": hmac.new(key, message.encode(), hashlib.sha256).hexdigest()}


@app.get("/site")
def site(db: Annotated[Database, Depends(database)]) -> dict[str, str]:
    """The ``site`` row of the database the URL secret currently points at."""
    with db.engine().connect() as conn:
        name = conn.execute(text("SELECT value FROM meta WHERE name = 'site'")).scalar_one()
    return {"site": str(name)}

"""Configuration: a TOML file, environment variables over it, embedded defaults under it.

The file is the first found of ``$MACULA_SECRETS_CONFIG``,
``./macula-secrets.toml`` and ``<home>/config.toml``; none at all is fine.
Every setting has a default, so ``Secrets.open()`` works on a bare machine::

    home = "/var/lib/macula-secrets"   # master.key, store.db
    secrets_dir = "/srv/gitops/secrets" # <app>.enc.yaml files (the sops source)
    source = "sops"                     # or "none": the store alone
    tenant = "default"
    max_versions = 10                   # versions kept per key
    max_value_size = 1048576            # bytes
    age_key_file = "/etc/macula/age.key" # identity for the sops files (else as sops finds one)

    [apps.console]
    max_versions = 20

Unknown settings are an error (a typo must not silently fall back to a
default), named with the file they came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from . import _env
from .errors import ConfigError

__all__ = ["Config", "load_config"]

_KNOWN: Final = frozenset({"home", "secrets_dir", "source", "tenant", "max_versions",
                           "max_value_size", "age_key_file", "apps"})
_APP_KNOWN: Final = frozenset({"max_versions"})
SOURCES: Final = ("sops", "none")


@dataclass(frozen=True, slots=True)
class Config:
    """Settings after the file, the environment and the defaults were combined."""

    home: str
    secrets_dir: str | None
    source: str
    tenant: str = "default"
    max_versions: int = 10
    max_value_size: int = 1024 * 1024
    age_key_file: str | None = None
    app_max_versions: dict[str, int] = field(default_factory=dict)
    config_file: str | None = None

    @property
    def store_path(self) -> str:
        return os.path.join(self.home, "store.db")

    @property
    def audit_path(self) -> str:
        return os.path.join(self.home, "audit.log")

    @property
    def master_key_path(self) -> str:
        return os.path.join(self.home, "master.key")


def default_home(env: Mapping[str, str]) -> str:
    """``$XDG_DATA_HOME/macula-secrets``, else ``~/.local/share/macula-secrets``."""
    base = env.get(_env.XDG_DATA_HOME, "")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "macula-secrets")


def _read_toml(path: str) -> dict[str, object]:
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    return data


def _find_file(env: Mapping[str, str], home: str | None) -> str | None:
    explicit = env.get(_env.MACULA_SECRETS_CONFIG, "")
    if explicit:
        if not os.path.exists(explicit):
            raise ConfigError(f"configuration file {explicit} does not exist "
                              f"(from {_env.MACULA_SECRETS_CONFIG})")
        return explicit
    if os.path.exists("macula-secrets.toml"):
        return os.path.abspath("macula-secrets.toml")
    if home is not None:
        candidate = os.path.join(home, "config.toml")
        if os.path.exists(candidate):
            return candidate
    return None


def _int(value: object, name: str, where: str, *, minimum: int = 1) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
        assert isinstance(number, int)  # noqa: S101 - for mypy: int() of Any
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be a whole number") from None
    if isinstance(value, bool) or number < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}")
    return number


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    home: str | None = None,
    secrets_dir: str | None = None,
    source: str | None = None,
    tenant: str | None = None,
) -> Config:
    """Combine arguments (strongest), environment, the TOML file and defaults.

    Raises:
        ConfigError: the file is unreadable or has unknown or malformed settings.
    """
    env = os.environ if env is None else env
    env_home = env.get(_env.MACULA_SECRETS_HOME) or None
    path = _find_file(env, home or env_home)
    data = _read_toml(path) if path else {}
    where = path or "configuration"
    unknown = set(data) - _KNOWN
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}",
                          hint="known settings: " + ", ".join(sorted(_KNOWN)))

    def pick(arg: str | None, var: str, key: str) -> str | None:
        if arg is not None:
            return arg
        if env.get(var):
            return env[var]
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string")
        return value

    home_value = pick(home, _env.MACULA_SECRETS_HOME, "home") or default_home(env)
    sdir = pick(secrets_dir, _env.MACULA_SECRETS_DIR, "secrets_dir")
    if sdir is None and os.path.isdir("secrets"):
        sdir = os.path.abspath("secrets")
    if sdir is not None:
        sdir = os.path.abspath(sdir)  # messages and reports name it in full
    src = pick(source, _env.MACULA_SECRETS_SOURCE, "source")
    if src is None:
        src = "sops" if sdir else "none"
    if src not in SOURCES:
        raise ConfigError(f"{where}: source must be one of {', '.join(SOURCES)}, not {src!r}")
    if src == "sops" and sdir is None:
        raise ConfigError("source is sops but no secrets folder is configured",
                          hint=f"set secrets_dir, or {_env.MACULA_SECRETS_DIR}")
    if tenant is not None:
        from ._names import check_name

        check_name("tenant", tenant)  # an explicit "" is an error, not the default
    ten = pick(tenant, _env.MACULA_SECRETS_TENANT, "tenant") or "default"
    max_versions = _int(data.get("max_versions", 10), "max_versions", where)
    size_text = env.get(_env.MACULA_SECRETS_MAX_VALUE_SIZE) or data.get("max_value_size",
                                                                        1024 * 1024)
    max_value_size = _int(size_text, "max_value_size", where)
    age_key_file = data.get("age_key_file")
    if age_key_file is not None and not isinstance(age_key_file, str):
        raise ConfigError(f"{where}: age_key_file must be a string")
    apps = data.get("apps", {})
    if not isinstance(apps, dict):
        raise ConfigError(f"{where}: [apps] must be a table")
    app_max: dict[str, int] = {}
    for app, settings in apps.items():
        if not isinstance(settings, dict) or set(settings) - _APP_KNOWN:
            raise ConfigError(f"{where}: [apps.{app}] accepts only "
                              + ", ".join(sorted(_APP_KNOWN)))
        if "max_versions" in settings:
            app_max[app] = _int(settings["max_versions"], f"apps.{app}.max_versions", where)
    return Config(home=os.path.abspath(home_value), secrets_dir=sdir, source=src, tenant=ten,
                  max_versions=max_versions, max_value_size=max_value_size,
                  age_key_file=age_key_file, app_max_versions=app_max, config_file=path)

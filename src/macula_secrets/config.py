"""Secrets for plain settings modules: ``secret("console", "db_password")``.

A shell over the shared default :class:`~macula_secrets.Secrets` (the one
``macula_secrets.get`` uses, opened on first use from the environment and
the configuration files). Settings modules read a handful of values once, at
import time, and want an exception rather than ``None`` when one is
missing, so :func:`secret` raises the store's own "not found" error, which
names the app, the key and where it looked. ::

    from macula_secrets.config import secret

    SECRET_KEY = secret("console", "django_secret_key")
    DB_PORT = secret("console", "db_port", default=5432, cast=int)
    DEBUG = secret("console", "debug", default=False, cast=bool)

Values read this way are strings frozen at import: code that holds a
credential for a long time and must follow rotation wants
:func:`secret_ref` (or ``Secrets.ref``) instead. Importing this module loads
nothing but the standard library; the store opens on the first call. It is
not :mod:`macula_secrets._config`, the loader of ``macula-secrets.toml``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

if TYPE_CHECKING:
    from collections.abc import Callable

    from .client import SecretRef, Secrets
    from .leases import LeaseKeeper

__all__ = ["lease", "parse_bool", "secret", "secret_ref"]

T = TypeVar("T")
D = TypeVar("D")

_TRUE: Final = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE: Final = frozenset({"0", "false", "no", "off", "n", "f", ""})


class _Missing:
    """Type of :data:`_MISSING`: "no default given", distinct from ``default=None``."""

    def __repr__(self) -> str:
        return "<required>"


_MISSING: Final = _Missing()


def parse_bool(text: str) -> bool:
    """Read a boolean setting: ``true/false``, ``1/0``, ``yes/no``, ``on/off``, ``y/n``, ``t/f``.

    Case and surrounding blanks are ignored, and an empty value is false (as
    an empty environment variable is). ``bool(text)`` would call every
    non-empty string true, ``"false"`` included, which is why ``cast=bool``
    uses this function instead.

    Raises:
        ValueError: anything else; the message does not repeat the text.
    """
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("not a boolean (expected true/false, 1/0, yes/no or on/off)")


def _cast_name(cast: Callable[[str], object]) -> str:
    """How an error names the cast: ``int``, ``json.loads``, ``my_settings.parse_port``."""
    name = getattr(cast, "__qualname__", None) or type(cast).__name__
    module = getattr(cast, "__module__", None)
    if module and module != "builtins":
        return f"{module}.{name}"
    return str(name)


@overload
def secret(app: str, key: str, *, secrets: Secrets | None = None) -> str: ...
@overload
def secret(app: str, key: str, *, default: D, secrets: Secrets | None = None) -> str | D: ...
@overload
def secret(app: str, key: str, *, cast: Callable[[str], T],
           secrets: Secrets | None = None) -> T: ...
@overload
def secret(app: str, key: str, *, default: D, cast: Callable[[str], T],
           secrets: Secrets | None = None) -> T | D: ...


def secret(app: str, key: str, *, default: Any = _MISSING,
           cast: Callable[[str], Any] | None = None, secrets: Secrets | None = None) -> Any:
    """Return the current value of ``app``/``key``, optionally converted by ``cast``.

    Reads through ``secrets`` (default: the shared ``Secrets.open()``), so
    the store, the secrets folder and Vault are tried as for any read.

    Args:
        default: returned as given (not passed to ``cast``) when the secret
            does not exist; without it a missing secret is an error.
        cast: a callable from the text to the value: ``int``, ``float``,
            ``json.loads``, your own parser. ``bool`` means
            :func:`parse_bool`, since ``bool("false")`` is true.
        secrets: read from this instance instead of the shared one (tests,
            a tenant view).

    Raises:
        NotFoundError: the secret does not exist and there is no default;
            the message names the app, the key and the places searched.
        ConfigError: ``cast`` rejected the value (the message names the app,
            the key and the cast, never the value), or ``app``/``key`` is
            not a valid name.
    """
    if secrets is None:
        from ._default import default as shared

        secrets = shared()
    if default is _MISSING:
        from .errors import NotFoundError

        try:
            value = secrets.require(app, key)
        except NotFoundError as exc:
            if exc.hint is None:
                exc.hint = (f"add {key} to the {app} secrets file or run "
                            f"`macula-secrets put {app} {key}`, or give secret() a default")
            raise
    else:
        found = secrets.get(app, key)
        if found is None:
            return default
        value = found
    if cast is None:
        return value
    return _apply_cast(app, key, value, parse_bool if cast is bool else cast)


def _apply_cast(app: str, key: str, value: str, cast: Callable[[str], T]) -> T:
    """``cast(value)``, with a failure reported by app, key, cast and exception type only.

    The cast's own message often quotes its input (``invalid literal for
    int() with base 10: 'hunter2'``), so it is dropped, and the error is
    raised outside the ``except`` block so that it has no ``__context__``
    through which a traceback or an error reporter could show the value.
    """
    try:
        return cast(value)
    except Exception as exc:  # any failure of a user callable means a bad value
        failure = type(exc).__name__
    from .errors import ConfigError

    name = "bool" if cast is parse_bool else _cast_name(cast)
    raise ConfigError(f"secret {app}/{key} cannot be converted by {name} ({failure})",
                      hint=f"check the value with `macula-secrets get {app} {key}`")


def secret_ref(app: str, key: str, *, default: str | None = None,
               secrets: Secrets | None = None) -> SecretRef:
    """Return a live handle on ``app``/``key``: ``.get()`` reads the current value each time.

    For settings that feed long-lived objects (a connection pool, an API
    client) and must follow rotation without a restart; see
    ``Secrets.ref`` and docs/rotation.md. Nothing is read until ``.get()``.
    """
    if secrets is None:
        from ._default import default as shared

        secrets = shared()
    return secrets.ref(app, key, default=default)


def lease(path: str, *, secrets: Secrets | None = None) -> LeaseKeeper:
    """A dynamic credential from Vault (``database/creds/readonly``), kept valid in the
    background; ``.get()`` returns its current fields (``username``, ``password``).

    The settings-module face of ``Secrets.lease`` (docs/leases.md): the lease is
    read on this call (an error if Vault cannot give one), renewed until the
    shared ``Secrets`` closes, and revoked then. Read ``.get()`` when connecting
    rather than copying the fields at import: a re-issued credential replaces
    them, and ``.on_change(fn)`` says when.
    """
    if secrets is None:
        from ._default import default as shared

        secrets = shared()
    return secrets.lease(path)

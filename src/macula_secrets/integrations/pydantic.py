"""A pydantic-settings source that fills a settings model from the secrets of one app.

Shell layer (extra ``pydantic``): it reads through ``Secrets.load_all`` and
turns what pydantic-settings needs into calls of the API. Use it when the
application already describes its configuration as a ``BaseSettings``
model; a plain settings module wants :func:`macula_secrets.config.secret`.

Fields map to keys the way pydantic-settings' own environment source maps
them to variables, because this source *is* that source with the app's
secrets in place of ``os.environ``:

- the field name (or its ``alias``/``validation_alias``) is the key,
  matched without regard to case unless ``macula_case_sensitive`` is set;
- a nested model field is filled from ``<field><delimiter><subfield>``
  keys (delimiter ``__`` unless ``macula_nested_delimiter`` says otherwise),
  or from one key holding JSON; list, dict and model fields take JSON;
- ``SecretStr`` fields work as they do with the environment.

The one difference is errors: pydantic repeats inputs in its
``ValidationError`` (``input_value='hunter2'``). So every value this source
supplies is checked before pydantic sees it, and a bad one is reported as
:class:`SecretValidationError`, which names the field and the secret
(``console/db_port``) but not the value; and the values are handed over as
``str`` subclasses whose ``repr`` is ``'***'``, which is what pydantic
prints for the inputs of other errors (a missing field shows every input).

:func:`watch_settings` keeps a live settings object in step with the store
(pydantic-settings itself has no refresh).

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

try:
    from pydantic import AliasChoices, ValidationError
    from pydantic.fields import FieldInfo
    from pydantic_settings import (
        BaseSettings,
        EnvSettingsSource,
        SettingsConfigDict,
        SettingsError,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("macula_secrets.integrations.pydantic needs pydantic-settings: "
                      "pip install 'macula-secrets[pydantic]'") from exc

from ..errors import ConfigError, MaculaError

if TYPE_CHECKING:
    from types import TracebackType

    from pydantic_core import ErrorDetails

    from ..client import Secrets, Subscription

__all__ = [
    "DEFAULT_NESTED_DELIMITER",
    "Problem",
    "SecretValidationError",
    "SecretsConfigDict",
    "SecretsSettingsSource",
    "SettingsWatch",
    "watch_settings",
]

DEFAULT_NESTED_DELIMITER: Final = "__"
"""Separates a nested model's field from its parent's in a key: ``database__password``."""

_log = logging.getLogger("macula_secrets.integrations.pydantic")

# Errors of a partial value (a nested model of which the secrets hold only some
# fields; the environment may give the rest) or of the probe instance itself:
# not a problem with what the secrets hold.
_NOT_OURS: Final = frozenset({"missing", "frozen_instance", "frozen_field"})
# Error types whose message comes from user code and may quote the input.
_USER_MESSAGE: Final = frozenset({"value_error", "assertion_error"})
_MIN_SCRUB: Final = 4  # shorter values would garble messages when replaced; see _scrub


class SecretsConfigDict(SettingsConfigDict, total=False):
    """``model_config`` with the keys this source reads (plain ``dict`` keys work too).

    - ``macula_app``: the app whose secrets fill the model (required unless
      the source is given ``app=``).
    - ``macula_nested_delimiter``: between a field and a nested model's
      field in a key; default ``"__"``; ``""`` turns nesting off.
    - ``macula_case_sensitive``: match field names to keys exactly; default
      false (``DB_PASSWORD`` and ``db_password`` are the same field).
    """

    macula_app: str
    macula_nested_delimiter: str
    macula_case_sensitive: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid value: which field, from which secret, and what is wrong (no value)."""

    field: str
    """Dotted path of the field, ``database.password``."""
    secret: str | None
    """``app/key`` of the secret that held the value (``None``: not known)."""
    message: str
    """pydantic's message, with anything quoting the value removed."""
    type: str
    """pydantic's error type, ``int_parsing``; stable, for code to act on."""

    def __str__(self) -> str:
        where = f" (secret {self.secret})" if self.secret else ""
        return f"field {self.field}{where}: {self.message} [{self.type}]"


class SecretValidationError(ConfigError):
    """Secrets do not validate as the settings model's fields; ``problems`` lists each one.

    Raised instead of pydantic's ``ValidationError`` for values that come
    from secrets, because that one carries the input. Subclasses
    ``ConfigError`` (a ``ValueError``). The message and ``problems`` never
    contain a value.
    """

    def __init__(self, message: str, *, app: str, problems: list[Problem],
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.app = app
        self.problems = problems


class _HiddenStr(str):
    """A secret's text as handed to pydantic: a ``str`` whose ``repr`` is ``'***'``.

    pydantic shows inputs with ``repr``: a missing field's error prints the
    whole input dict (``input_value={'password': 'hunter2', ...}``), and
    pydantic-settings' debug log prints each source's values. Validation
    turns these back into plain ``str`` (``str``, ``SecretStr``, ``int``
    fields ...); only ``Any``-typed parts keep this class.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


class _HiddenDict(dict[str, Any]):
    """A dict of secret values (a nested model's keys, a JSON object): keys shown, values not."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {_masked(v)}" for k, v in self.items()) + "}"


class _HiddenList(list[Any]):
    """A JSON array from a secret: its ``repr`` shows the length only."""

    def __repr__(self) -> str:
        return f"[*** {len(self)} items]"


def _masked(value: object) -> str:
    if isinstance(value, _HiddenStr | _HiddenDict | _HiddenList):
        return repr(value)
    return "'***'"


def _hide(value: Any) -> Any:
    """``value`` with every string, dict and list in it swapped for its hidden twin.

    Other scalars (numbers and booleans of a JSON document, or values a
    strict model had coerced) stay as they are: inside a hidden container
    their ``repr`` is masked, and at the top level they are not text a
    secret would be.
    """
    if isinstance(value, str):
        return _HiddenStr(value)
    if isinstance(value, dict):
        return _HiddenDict({k: _hide(v) for k, v in value.items()})
    if isinstance(value, list):
        return _HiddenList(_hide(v) for v in value)
    return value


class SecretsSettingsSource(EnvSettingsSource):
    """Fill a ``BaseSettings`` model from the secrets of one app.

    Return it from ``settings_customise_sources``; its place in the tuple
    is its priority (earlier wins)::

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                       dotenv_settings, file_secret_settings):
            return (init_settings, env_settings, SecretsSettingsSource(settings_cls))

    Arguments override ``model_config`` (see :class:`SecretsConfigDict`);
    ``secrets`` defaults to the shared ``Secrets.open()``. The app's
    secrets are read when the source is made, which pydantic-settings does
    for each new settings object. The ``env_*`` options of ``model_config``
    (prefix, delimiter, case) belong to the environment source and do not
    apply here.

    Raises (when the settings object is built):
        SecretValidationError: a secret's value does not fit its field.
        ConfigError: no app is named, or two keys differ only in case.
    """

    def __init__(self, settings_cls: type[BaseSettings], app: str | None = None, *,
                 secrets: Secrets | None = None, nested_delimiter: str | None = None,
                 case_sensitive: bool | None = None) -> None:
        from .._names import check_name

        config: Mapping[str, Any] = settings_cls.model_config
        app = app if app is not None else config.get("macula_app")
        if not app:
            raise ConfigError(f"settings {settings_cls.__name__} name no app to read secrets of",
                              hint="set macula_app in model_config or pass app= to "
                                   "SecretsSettingsSource")
        self.app = check_name("app", app)
        self._secrets = secrets
        self._keys: dict[str, str] = {}      # name as matched -> key as stored
        self._values: list[str] = []         # to scrub from messages, longest first
        if nested_delimiter is None:
            nested_delimiter = config.get("macula_nested_delimiter", DEFAULT_NESTED_DELIMITER)
        if case_sensitive is None:
            case_sensitive = bool(config.get("macula_case_sensitive", False))
        # Explicit values, so that the environment source's options in
        # model_config (env_prefix, env_nested_delimiter, ...) do not leak in.
        super().__init__(settings_cls, case_sensitive=case_sensitive, env_prefix="",
                         env_prefix_target="variable", env_nested_delimiter=nested_delimiter,
                         env_nested_max_split=0, env_ignore_empty=False)

    def __repr__(self) -> str:
        return (f"SecretsSettingsSource(app={self.app!r}, "
                f"nested_delimiter={self.env_nested_delimiter!r})")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """The app's secrets in place of ``os.environ`` (EnvSettingsSource's loading hook)."""
        secrets = self._secrets
        if secrets is None:
            from .._default import default

            secrets = default()
        values = secrets.load_all(self.app)
        found: dict[str, str | None] = {}
        for key, value in values.items():
            name = key if self.case_sensitive else key.lower()
            if name in self._keys:
                raise ConfigError(
                    f"secrets {self.app}/{self._keys[name]} and {self.app}/{key} differ only "
                    f"in case, so settings {self.settings_cls.__name__} cannot tell them apart",
                    hint="rename one, or set macula_case_sensitive=True in model_config")
            self._keys[name] = key
            found[name] = value
        self._values = sorted(values.values(), key=len, reverse=True)
        return found

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any,
                            value_is_complex: bool) -> Any:
        """Decode JSON as the environment source does; a bad document names field and key.

        ``json.JSONDecodeError`` keeps the whole document in ``.doc``, so it
        is not chained to the error raised here.
        """
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            failure = type(exc).__name__
        problem = Problem(field_name, f"{self.app}/{self._key_of(field_name, field)}",
                          f"not valid JSON ({failure})", "json_invalid")
        raise self._error([problem])

    def _key_of(self, field_name: str, field: FieldInfo) -> str:
        """The key that holds a field's value; ``<field>__*`` when its nested keys do."""
        alias = field.validation_alias
        names = [n for n in (alias if isinstance(alias, str) else None, field.alias, field_name)
                 if n]
        if isinstance(alias, AliasChoices):
            names[:0] = [c for c in alias.choices if isinstance(c, str)]
        for name in names:
            key = self._keys.get(name if self.case_sensitive else name.lower())
            if key is not None:
                return key
        return f"{field_name}{self.env_nested_delimiter or ''}*"

    def __call__(self) -> dict[str, Any]:
        try:
            data = super().__call__()
        except SettingsError as exc:
            # The parent wraps what prepare_field_value raised; unwrap ours.
            if not isinstance(exc.__cause__, SecretValidationError):
                raise
            error = exc.__cause__
        else:
            self._check(data)
            return _HiddenDict({k: _hide(v) for k, v in data.items()})
        raise error

    def _check(self, data: Mapping[str, Any]) -> None:
        """Validate each value as its field would, and report bad ones without the value.

        Each field is validated on its own (``validate_assignment`` on an
        unvalidated instance), so the field's constraints and its
        validators run, but not the model's: those need every field, which
        other sources may give.
        """
        cls = self.settings_cls
        try:
            probe = cls.model_construct()
        except Exception:  # a default factory failed: pydantic will say so
            return
        problems: list[Problem] = []
        for data_key, value in data.items():
            field_name = _field_for(cls, data_key)
            if field_name is None:
                continue
            errors: list[ErrorDetails] = []
            try:
                cls.__pydantic_validator__.validate_assignment(probe, field_name, value)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_input=False,
                                    include_context=False)
            except Exception:  # noqa: S112 - a validator that needs the whole model
                continue
            for err in errors:
                loc = err["loc"]
                if err["type"] in _NOT_OURS or not loc or loc[0] != field_name:
                    continue
                secret = self._secret_for((data_key, *loc[1:]))
                problems.append(Problem(".".join(str(p) for p in loc), f"{self.app}/{secret}",
                                        self._scrub(err["msg"], err["type"]), err["type"]))
        if problems:
            raise self._error(problems)

    def _error(self, problems: list[Problem]) -> SecretValidationError:
        what = "; ".join(str(p) for p in problems)
        return SecretValidationError(
            f"settings {self.settings_cls.__name__} cannot use the secrets of app {self.app}: "
            f"{what}", app=self.app, problems=problems,
            hint=f"fix the value with `macula-secrets put {self.app} KEY`")

    def _secret_for(self, path: tuple[str | int, ...]) -> str:
        """The key that held the value at ``path``: the longest prefix that is a key."""
        parts = [str(p) for p in path]
        delimiter = self.env_nested_delimiter or ""
        for n in range(len(parts), 0, -1):
            name = delimiter.join(parts[:n]) if delimiter else parts[0]
            key = self._keys.get(name if self.case_sensitive else name.lower())
            if key is not None:
                return key
        return parts[0]

    def _scrub(self, message: str, kind: str) -> str:
        return _scrub(message, kind, self._values)


def _scrub(message: str, kind: str, values: list[str]) -> str:
    """``message`` with every secret value in it replaced by ``***``.

    pydantic's own messages do not quote the input, but a validator's
    ``ValueError`` text does whatever its author wrote. A value too short
    to replace safely (``"1"`` would hit every digit) withholds a
    user-written message that contains it.
    """
    for value in values:
        if len(value) >= _MIN_SCRUB:
            message = message.replace(value, "***")
        elif value and value in message and kind in _USER_MESSAGE:
            return "rejected by a validator (message withheld: it may quote the value)"
    return message


def _field_for(cls: type[BaseSettings], data_key: str) -> str | None:
    """The field that ``data_key`` (a name or an alias, as the source emitted it) fills."""
    fields = cls.model_fields
    if data_key in fields:
        return data_key
    for name, field in fields.items():
        alias = field.validation_alias
        names: list[object] = [field.alias, alias]
        if isinstance(alias, AliasChoices):
            names.extend(c if isinstance(c, str) else c.path[0] for c in alias.choices)
        if data_key in names:
            return name
    return None


S = TypeVar("S", bound=BaseSettings)


class SettingsWatch(Generic[S]):
    """Keeps one settings object up to date (from :func:`watch_settings`). Thread-safe.

    ``cancel()`` (or leaving a ``with`` block) stops it.
    """

    def __init__(self, settings: S, *, app: str, secrets: Secrets, factory: Callable[[], S],
                 on_refresh: Callable[[S], None] | None,
                 on_error: Callable[[MaculaError], None] | None, interval: float) -> None:
        self.settings = settings
        self.app = app
        self._secrets = secrets
        self._factory = factory
        self._on_refresh = on_refresh
        self._on_error = on_error
        self._lock = threading.Lock()
        self._sub: Subscription = secrets.subscribe(app, self._changed, interval=interval)

    def __repr__(self) -> str:
        return f"SettingsWatch({type(self.settings).__name__}, app={self.app!r})"

    def __enter__(self) -> SettingsWatch[S]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cancel()

    def _changed(self, app: str, key: str, version: int) -> None:
        self.refresh()

    def refresh(self) -> bool:
        """Build the settings anew and copy the fields over; ``False`` if that failed.

        On failure the object keeps its values, and the error (its message
        has no values) goes to ``on_error`` and to the
        ``macula_secrets.integrations.pydantic`` logger as a warning.
        """
        with self._lock:
            try:
                new = self._factory()
            except Exception as exc:  # anything: keep the last good settings
                error = _describe(exc, type(self.settings).__name__, self.app,
                                  self._secret_values())
            else:
                _copy_fields(new, self.settings)
                if self._on_refresh is not None:
                    self._on_refresh(self.settings)
                return True
            _log.warning("settings %s kept their values after a change of app %s: %s",
                         type(self.settings).__name__, self.app, error)
            if self._on_error is not None:
                self._on_error(error)
            return False

    def _secret_values(self) -> list[str]:
        try:
            values = self._secrets.load_all(self.app).values()
        except MaculaError:
            return []
        return sorted(values, key=len, reverse=True)

    def cancel(self) -> None:
        """Stop following changes; the settings object keeps its current values."""
        self._sub.cancel()


def _copy_fields(new: BaseSettings, target: BaseSettings) -> None:
    """Replace ``target``'s field values with ``new``'s.

    One ``dict.update``: each attribute read sees the old or the new value
    of that field, never a torn one, though a reader between two fields may
    see old and new values side by side for the length of the update.
    """
    fields = type(new).model_fields
    target.__dict__.update({k: v for k, v in new.__dict__.items() if k in fields})
    object.__setattr__(target, "__pydantic_fields_set__", set(new.model_fields_set))


def _describe(exc: Exception, model: str, app: str, values: list[str]) -> MaculaError:
    """A value-free error for a failed rebuild of settings ``model``."""
    if isinstance(exc, MaculaError):
        return exc   # ours: messages never carry values
    if isinstance(exc, ValidationError):
        problems = [Problem(".".join(str(p) for p in e["loc"]) or "(model)", None,
                            _scrub(e["msg"], e["type"], values), e["type"])
                    for e in exc.errors(include_url=False, include_input=False,
                                        include_context=False)]
        what = "; ".join(str(p) for p in problems)
        return SecretValidationError(f"settings {model} do not validate: {what}", app=app,
                                     problems=problems)
    return ConfigError(f"settings {model} could not be built ({type(exc).__name__})")


def watch_settings(settings: S, *, app: str | None = None, secrets: Secrets | None = None,
                   factory: Callable[[], S] | None = None,
                   on_refresh: Callable[[S], None] | None = None,
                   on_error: Callable[[MaculaError], None] | None = None,
                   interval: float | None = None) -> SettingsWatch[S]:
    """Rebuild ``settings`` whenever a secret of its app changes, updating it in place.

    A change by any process on the node (``put``, ``sync``, the folder
    watcher) calls ``factory()`` (default: the settings class with no
    arguments, so every source is read again) and copies the new field
    values into ``settings``, so code holding the object sees them. Then
    ``on_refresh(settings)`` runs, to reconnect a client, for example.
    A rebuild that fails keeps the old values and reports a value-free
    error to ``on_error`` and the log. Callbacks run on the store's
    change-feed thread.

    Args:
        app: default ``model_config["macula_app"]``.
        secrets: what to subscribe to; default the shared ``Secrets.open()``
            (pass the one given to the source, if any).
        factory: how to build a fresh object, when the original took
            arguments (``lambda: Settings(debug=True)``).
        interval: seconds between looks at the store's change token
            (default 0.02; see ``Secrets.subscribe``).

    Raises:
        ConfigError: no app is named, or the model is frozen.
    """
    from .._feed import DEFAULT_INTERVAL
    from .._names import check_name

    cls = type(settings)
    config: Mapping[str, Any] = cls.model_config
    app = app if app is not None else config.get("macula_app")
    if not app:
        raise ConfigError(f"settings {cls.__name__} name no app to watch",
                          hint="set macula_app in model_config or pass app= to watch_settings")
    if config.get("frozen"):
        raise ConfigError(f"settings {cls.__name__} are frozen and cannot change in place",
                          hint="build a new object in a Secrets.subscribe callback instead")
    if secrets is None:
        from .._default import default

        secrets = default()
    return SettingsWatch(settings, app=check_name("app", app), secrets=secrets,
                         factory=factory if factory is not None else cls,
                         on_refresh=on_refresh, on_error=on_error,
                         interval=DEFAULT_INTERVAL if interval is None else interval)

"""The secrets check: do the secrets a project declares exist, and can they be read?

:func:`check_required` is plain Python (no Django import), so that other
frameworks can run it from their own start-up hook; :func:`check_secrets`
wraps it as a Django system check, and the ``macula_secrets_check``
command prints it. Neither ever reads a value out: a secret is "ok" when
``Secrets.require`` returns, and that value is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from ...client import Secrets

__all__ = ["SETTING", "TAG", "Finding", "Status", "check_required", "check_secrets",
           "is_entry_list"]

SETTING: Final = "MACULA_SECRETS_REQUIRED"
"""The Django setting that lists the secrets a project needs, as ``"app/key"`` strings."""

TAG: Final = "macula_secrets"
"""Tag of the system check: ``manage.py check --tag macula_secrets`` runs it alone."""

Status = Literal["ok", "missing", "unreadable", "invalid", "store"]
"""``invalid``: the entry is not ``"app/key"``; ``store``: the store did not open."""

_IDS: Final[dict[Status, str]] = {
    "ok": "macula_secrets.I000",
    "invalid": "macula_secrets.E001",
    "store": "macula_secrets.E002",
    "missing": "macula_secrets.E003",
    "unreadable": "macula_secrets.E004",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """What the check found for one declared secret, or for the store as a whole."""

    secret: str
    """``app/key``; for an invalid entry its place (``MACULA_SECRETS_REQUIRED[2]``),
    since the entry itself might be a value pasted by mistake; ``""`` for the store."""
    status: Status
    message: str
    """One line, never a value: says what is wrong and where the store looked."""
    hint: str | None = None

    @property
    def ok(self) -> bool:
        """The secret exists and decrypts."""
        return self.status == "ok"

    @property
    def id(self) -> str:
        """The Django check id: ``macula_secrets.E003`` for a missing secret."""
        return _IDS[self.status]


def _parse(entry: object) -> tuple[str, str]:
    """``"app/key"`` or ``("app", "key")`` -> (app, key); ``ValueError`` otherwise."""
    from ..._names import check_name

    if isinstance(entry, str):
        app, sep, key = entry.partition("/")
        if not sep:
            raise ValueError("no '/'")
    elif isinstance(entry, tuple | list) and len(entry) == 2:
        app, key = entry
    else:
        raise ValueError("not a string")
    return check_name("app", app), check_name("key", key)


def is_entry_list(entries: object) -> bool:
    """Whether ``entries`` is a list, tuple or set (a lone string is a common slip)."""
    return isinstance(entries, list | tuple | set | frozenset)


def check_required(entries: Iterable[object], *, secrets: Secrets | None = None
                   ) -> list[Finding]:
    """Check that each declared secret exists and can be read; one finding per entry.

    ``entries`` are ``"app/key"`` strings (or ``(app, key)`` pairs).
    ``secrets`` defaults to the shared ``Secrets.open()``, the instance
    :func:`macula_secrets.config.secret` reads through. When the store does
    not open, the result is the invalid entries plus one ``store`` finding.
    """
    from ...errors import MaculaError, NotFoundError

    findings: list[Finding] = []
    wanted: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        try:
            wanted.append(_parse(entry))
        except ValueError:
            # The entry is not echoed: a value pasted by mistake would be shown.
            where = f"{SETTING}[{i}]"
            findings.append(Finding(where, "invalid", f"{where} is not an \"app/key\" name",
                                    hint='write each entry as "app/key", e.g. '
                                         '"console/db_password"'))
    if not wanted:
        return findings
    if secrets is None:
        from ..._default import default

        try:
            secrets = default()
        except (MaculaError, OSError) as exc:
            return [*findings, Finding("", "store", f"cannot open the secrets store: {exc}",
                                       getattr(exc, "hint", None))]
    for app, key in wanted:
        name = f"{app}/{key}"
        try:
            secrets.require(app, key)
        except NotFoundError as exc:
            findings.append(Finding(name, "missing", str(exc),
                                    f"add it to the {app} secrets file and sync, or run "
                                    f"`macula-secrets put {app} {key}`"))
        except (MaculaError, OSError) as exc:
            findings.append(Finding(name, "unreadable", f"secret {name} cannot be read: {exc}",
                                    getattr(exc, "hint", None)))
        else:
            findings.append(Finding(name, "ok", f"secret {name} is present"))
    return findings


def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Django system check: an ``Error`` for each declared secret that is missing or unreadable.

    Registered by the app's ``ready()`` under the tag :data:`TAG`. Runs
    with ``manage.py check``, ``runserver`` and ``migrate``; a WSGI/ASGI
    server does not run system checks, so deploy scripts run
    ``manage.py check`` or ``macula_secrets_check`` first.
    """
    from django.conf import settings
    from django.core import checks

    entries = getattr(settings, SETTING, ())
    if not is_entry_list(entries):
        return [checks.Error(f"{SETTING} must be a list of \"app/key\" names, "
                             f"not {type(entries).__name__}",
                             hint=f'{SETTING} = ["console/db_password"]', id=_IDS["invalid"])]
    return [checks.Error(f.message, hint=f.hint, id=f.id)
            for f in check_required(entries) if not f.ok]

"""Exceptions to HTTP statuses: the server's one table, and Vault's error body.

A Vault client reads ``{"errors": [...]}``; 404 carries an empty list, as
Vault sends it. Messages are the exceptions' own, which never contain a
value or a token (see :mod:`macula_secrets.errors`); anything unexpected
becomes a 500 with a fixed text.
"""

from __future__ import annotations

import json
from typing import Final

from ..errors import (
    ConfigError,
    ConflictError,
    FormatError,
    IntegrityError,
    LimitError,
    LockedError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)

__all__ = ["HTTPError", "error_body", "status_for"]

_STATUS: Final[tuple[tuple[type[BaseException], int], ...]] = (
    # Order matters: a subclass comes before its base.
    (LimitError, 413),
    (ConfigError, 400),          # bad names, bad settings in the request
    (FormatError, 400),
    (ConflictError, 400),        # Vault answers a failed check-and-set with 400
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (UnavailableError, 503),
    (LockedError, 503),
    (IntegrityError, 500),
)


class HTTPError(Exception):
    """An answer other than success, raised inside a handler (``message`` is shown)."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message or "")
        self.status = status
        self.message = message


def status_for(exc: BaseException) -> tuple[int, str | None]:
    """The status and the message to show for ``exc`` (``None``: show none)."""
    if isinstance(exc, HTTPError):
        return exc.status, exc.message
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            if status == 404:
                return 404, None
            if kind is IntegrityError:
                return 500, "stored data failed its integrity check"
            return status, str(exc)
    return 500, "internal error"


def error_body(message: str | None) -> bytes:
    """Vault's error body: ``{"errors": [message]}`` (empty for none)."""
    return json.dumps({"errors": [] if message is None else [message]}).encode()

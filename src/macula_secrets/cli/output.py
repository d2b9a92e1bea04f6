"""How the command line reports errors: one line, an optional hint, an exit status.

Messages go to stderr as ``macula: error: ...`` and ``macula: hint: ...``
(age's style). Nothing a command prints on failure comes from a secret:
library errors are written to be shown, and anything unexpected is reported
by its type only (set ``MACULA_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import os
import sys

from ..errors import (
    AlreadyEncryptedError,
    ConfigError,
    FormatError,
    IntegrityError,
    LimitError,
    MaculaError,
    NoMatchingKeyError,
    PathError,
    ThresholdError,
)
from . import exitcodes as X


class CommandError(MaculaError):
    """An error raised by a command itself, with its sops exit code."""

    def __init__(self, message: str, *, sops_code: int = X.SOPS_GENERIC, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.sops_code = sops_code


def sops_code_for(exc: BaseException) -> int:
    """The exit status sops would use for an error of this kind."""
    if isinstance(exc, CommandError):
        return exc.sops_code
    if isinstance(exc, AlreadyEncryptedError):
        return X.SOPS_ALREADY_ENCRYPTED
    if isinstance(exc, IntegrityError):
        return X.SOPS_MAC_MISMATCH if "MAC" in str(exc) else X.SOPS_ERROR_DECRYPTING_TREE
    if isinstance(exc, (NoMatchingKeyError, ThresholdError)):
        return X.SOPS_COULD_NOT_RETRIEVE_KEY
    if isinstance(exc, PathError):
        return X.SOPS_INVALID_TREE_PATH if "invalid tree path" in str(exc) else X.SOPS_GENERIC
    if isinstance(exc, ConfigError):
        return X.SOPS_CONFLICTING_PARAMETERS if "more than one" in str(exc) else X.SOPS_GENERIC
    if isinstance(exc, LimitError):
        return X.SOPS_COULD_NOT_READ_INPUT
    if isinstance(exc, FormatError):
        if "metadata not found" in str(exc):
            return X.SOPS_GENERIC
        return X.SOPS_COULD_NOT_READ_INPUT
    return X.SOPS_GENERIC


_SOPS_CODES_FLAG = False


def set_sops_codes(on: bool) -> None:
    """Use sops's exit statuses for this process (``--sops-exit-codes``)."""
    global _SOPS_CODES_FLAG
    _SOPS_CODES_FLAG = on


def use_sops_codes() -> bool:
    return _SOPS_CODES_FLAG or os.environ.get("MACULA_SOPS_EXIT_CODES", "") not in ("", "0")


def report(exc: BaseException) -> int:
    """Print ``exc`` for a person and return the exit status."""
    if isinstance(exc, MaculaError):
        message = str(exc) or exc.__class__.__name__
        _line("error", message)
        if exc.hint:
            _line("hint", exc.hint)
        return sops_code_for(exc) if use_sops_codes() else X.ERROR
    if isinstance(exc, OSError):
        what = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or exc.__class__.__name__
        _line("error", f"{what}: {reason}" if what else reason)
        code = X.SOPS_NO_FILE if isinstance(exc, FileNotFoundError) else X.SOPS_GENERIC
        return code if use_sops_codes() else X.ERROR
    _line("error", f"internal error ({exc.__class__.__name__})")
    _line("hint", "run again with MACULA_DEBUG=1 for details, and report it")
    return X.ERROR


def _line(kind: str, text: str) -> None:
    text = " ".join(text.split("\n"))
    sys.stderr.write(f"macula: {kind}: {text}\n")


def note(text: str) -> None:
    """A one-line notice on stderr (not an error)."""
    sys.stderr.write(f"macula: {text}\n")

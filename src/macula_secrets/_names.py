"""Validation of tenant, app and key names, shared by every backend and shell.

Names become file names (``<secrets_dir>/<app>.enc.yaml``), Vault paths
(``macula/<app>/<key>``) and environment variable names, so a name that could
climb out of a folder (``..``, ``/``), hide in a terminal (control
characters) or exceed what file systems accept (255 bytes) is refused here,
once, with an error that names the kind of name and the rule it broke.
"""

from __future__ import annotations

from typing import Final, Literal

from .errors import ConfigError

__all__ = ["MAX_NAME_BYTES", "InvalidNameError", "NameKind", "check_name"]

MAX_NAME_BYTES: Final = 255
"""Longest name in UTF-8 bytes: the usual file-name limit."""

NameKind = Literal["tenant", "app", "key"]

_CONTROL: Final = frozenset(chr(c) for c in (*range(0x20), 0x7F))


class InvalidNameError(ConfigError):
    """A tenant, app or key name breaks a naming rule."""


def check_name(kind: NameKind, name: object) -> str:
    """Return ``name`` when it is a valid ``kind`` name, else raise ``ConfigError``.

    The message shows the name only when it is safe to print (no control
    characters) and never shows a value: names are not secret, values are.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"{kind} name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidNameError(f"{kind} name is empty")
    if any(ch in _CONTROL for ch in name):
        raise InvalidNameError(f"{kind} name contains a control character")
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"{kind} name {name!r} contains a path separator")
    if ".." in name or name == ".":
        raise InvalidNameError(f"{kind} name {name!r} contains '..' or is '.'")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidNameError(f"{kind} name is not valid Unicode text") from None
    if size > MAX_NAME_BYTES:
        raise InvalidNameError(
            f"{kind} name is {size} bytes long, over the limit of {MAX_NAME_BYTES}")
    return name

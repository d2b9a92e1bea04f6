"""Module-level ``get``/``put``/... over one shared ``Secrets.open()``.

For scripts and settings modules that want a secret without managing an
object. The default instance is opened on first use (configuration from the
environment and files, as ``Secrets.open()`` reads it) and shared by all
threads; :func:`reset` closes it, for tests and for processes that change
their configuration.
"""

from __future__ import annotations

import builtins
import threading

from .client import Secrets

__all__ = ["default", "delete", "get", "list", "load_all", "put", "require", "reset"]

_lock = threading.Lock()
_default: Secrets | None = None


def default() -> Secrets:
    """The shared instance, opened on first use."""
    global _default
    inst = _default
    if inst is None:
        with _lock:
            if _default is None:
                _default = Secrets.open()
            inst = _default
    return inst


def reset() -> None:
    """Close the shared instance; the next call opens a fresh one."""
    global _default
    with _lock:
        if _default is not None:
            _default.close()
            _default = None


def get(app: str, key: str, default_value: str | None = None, *,
        version: int | None = None) -> str | None:
    """``Secrets.open().get(app, key, default_value)``; see :meth:`Secrets.get`."""
    return default().get(app, key, default_value, version=version)


def require(app: str, key: str, *, version: int | None = None) -> str:
    """``Secrets.open().require(app, key)``; see :meth:`Secrets.require`."""
    return default().require(app, key, version=version)


def put(app: str, key: str, value: str, *, cas: int | None = None) -> int:
    """``Secrets.open().put(app, key, value)``; see :meth:`Secrets.put`."""
    return default().put(app, key, value, cas=cas)


def delete(app: str, key: str) -> None:
    """``Secrets.open().delete(app, key)``; see :meth:`Secrets.delete`."""
    default().delete(app, key)


def list(app: str) -> builtins.list[str]:
    """``Secrets.open().list(app)``; see :meth:`Secrets.list`."""
    return default().list(app)


def load_all(app: str) -> dict[str, str]:
    """``Secrets.open().load_all(app)``; see :meth:`Secrets.load_all`."""
    return default().load_all(app)

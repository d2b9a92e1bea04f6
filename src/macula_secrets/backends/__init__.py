"""Backends: where secrets come from behind the runtime store, one module each.

A backend is one module, ``backends/<name>.py``, with a class that has the
methods of :class:`Backend`. ``local`` is the runtime store itself; ``sops``
reads and writes ``<secrets_dir>/<app>.enc.yaml`` (and ``.json``, ``.env``,
``.ini``) files. :class:`macula_secrets.Secrets` reads the store first, then
its source backend, and writes to the source first, then the store.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..records import VersionInfo

__all__ = ["Backend"]


class Backend(Protocol):
    """Secrets addressed by (app, key) within one tenant. Implementations are thread-safe."""

    name: str
    """Short name, recorded as the origin of values read from it (``sops``, ``local``)."""

    def get(self, app: str, key: str, *, version: int | None = None) -> str | None:
        """The value (latest, or ``version``), or ``None`` when absent or deleted."""
        ...

    def put(self, app: str, key: str, value: str, *, cas: int | None = None) -> int:
        """Write a value; return its version (0 for backends without versions)."""
        ...

    def delete(self, app: str, key: str) -> None:
        """Delete a key's latest value; ``NotFoundError`` when it has none."""
        ...

    def list(self, app: str) -> builtins.list[str]:
        """Sorted names of an app's live keys."""
        ...

    def load_all(self, app: str) -> dict[str, str]:
        """Every live key of an app with its latest value."""
        ...

    def versions(self, app: str, key: str) -> builtins.list[VersionInfo]:
        """Kept versions, oldest first (empty for backends without versions)."""
        ...

    def apps(self) -> builtins.list[str]:
        """Sorted names of the apps this backend holds."""
        ...

    def close(self) -> None:
        """Release files, connections and cached plaintext."""
        ...

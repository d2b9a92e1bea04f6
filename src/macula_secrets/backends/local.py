"""The runtime store as a backend: one tenant of a :class:`LocalStore`.

``Secrets`` talks to the store directly (its hot path cannot afford an
adapter); this module is the store seen through the :class:`Backend`
protocol, for code that treats every backend alike.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..localstore.store import LocalStore

if TYPE_CHECKING:
    from ..records import VersionInfo
    from . import Backend

__all__ = ["LocalBackend"]


class LocalBackend:
    """One tenant of the store; thread-safe; ``close()`` closes the store."""

    name = "local"

    def __init__(self, store: LocalStore, tenant: str = "default") -> None:
        self.store = store
        self.tenant = tenant

    def __repr__(self) -> str:
        return f"LocalBackend({self.store.path!r}, tenant={self.tenant!r})"

    def get(self, app: str, key: str, *, version: int | None = None) -> str | None:
        if version is None:
            hit = self.store.lookup(self.tenant, app, key)
            return hit if isinstance(hit, str) else None
        try:
            return self.store.read_version(self.tenant, app, key, version)[1]
        except NotFoundError:
            return None

    def put(self, app: str, key: str, value: str, *, cas: int | None = None) -> int:
        return self.store.put(self.tenant, app, key, value, cas=cas)

    def delete(self, app: str, key: str) -> None:
        if not self.store.delete(self.tenant, app, key):
            raise NotFoundError(f"{app}/{key} is already deleted")

    def list(self, app: str) -> builtins.list[str]:
        return self.store.list_keys(self.tenant, app)

    def load_all(self, app: str) -> dict[str, str]:
        return self.store.load_all(self.tenant, app)

    def versions(self, app: str, key: str) -> builtins.list[VersionInfo]:
        return self.store.history(self.tenant, app, key)

    def apps(self) -> builtins.list[str]:
        return self.store.list_apps(self.tenant)

    def close(self) -> None:
        self.store.close()


_: Callable[..., Backend] = LocalBackend

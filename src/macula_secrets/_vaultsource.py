"""Vault as the source of ``Secrets``: the store as a cache with refresh and max_stale.

A value Vault confirmed less than ``refresh`` seconds ago is served from
the store without asking (``Secrets.get`` checks :attr:`VaultSource.confirmed`
itself: that is its hot path). Otherwise Vault is read; a changed value
becomes a new store version (origin ``vault``), an absent one soft-deletes
the store's vault-origin copy. When Vault cannot be reached, the store's
copy is served while its age (since this process last confirmed it, or for
a process that never did, since the store last wrote it) is at most
``max_stale`` seconds, and the stale read is recorded in the audit log;
after that, :class:`UnavailableError`. Vault is then left alone for
``refresh`` seconds, so an outage does not cost every read a timeout.

Writes do not come here: ``Secrets`` sends them to the backend and then
the store, and calls :meth:`VaultSource.confirm`.

:meth:`VaultSource.sync` (``Secrets.sync`` on a vault source) reads every
app Vault has and brings the store in line; it always asks Vault and, when
Vault cannot be reached, raises before the store is touched.

A tenant is a Vault namespace: :func:`tenant_namespace` maps a tenant to
the namespace its ``VaultBackend`` sends.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import MaculaError, NotFoundError, UnavailableError

if TYPE_CHECKING:
    from .backends.vault import VaultBackend
    from .localstore.store import LocalStore
    from .records import AppSync, SyncReport

__all__ = ["VaultSource", "tenant_namespace"]

DEFAULT_TENANT = "default"


def tenant_namespace(configured: str | None, tenant: str) -> str | None:
    """The Vault namespace of ``tenant``: the configured one for ``default``, else
    ``<configured>/<tenant>`` (just ``<tenant>`` when none is configured)."""
    if tenant == DEFAULT_TENANT:
        return configured
    base = (configured or "").strip("/")
    return f"{base}/{tenant}" if base else tenant


class VaultSource:
    """A :class:`VaultBackend` with the freshness state of one ``Secrets`` (one tenant)."""

    def __init__(self, backend: VaultBackend, *, refresh: float = 30.0,
                 max_stale: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.refresh = refresh
        self.max_stale = max_stale
        self._clock = clock
        self._wall = wall
        self.confirmed: dict[tuple[str, str], tuple[float, str | None, float]] = {}
        """``(app, key) -> (fresh until, value or None for absent, confirmed at)``, monotonic."""
        self._down_until = 0.0
        self._down_reason = ""
        self._stale_logged: set[tuple[str, str]] = set()

    @property
    def address(self) -> str:
        return self.backend.address

    # -- reads -----------------------------------------------------------------------

    def latest(self, store: LocalStore, tenant: str, app: str, key: str, cur: str | None
               ) -> tuple[str | None, bool]:
        """``(value or None, stale)``: ``cur`` while Vault confirmed it within ``refresh``.

        The hot path of ``Secrets.get`` on a vault source: one dict lookup and
        a clock read when the confirmation still holds.
        """
        seen = self.confirmed.get((app, key))
        if seen is not None and seen[1] == cur and self._clock() < seen[0]:
            return cur, False
        return self.read(store, tenant, app, key, cur)

    def read(self, store: LocalStore, tenant: str, app: str, key: str, cur: str | None
             ) -> tuple[str | None, bool]:
        """``(value or None, stale)`` for a key whose confirmation ran out.

        ``cur`` is the store's latest live value (``None``: absent or deleted).
        """
        if self._clock() >= self._down_until:
            try:
                value = self.backend.get(app, key)
            except UnavailableError as exc:
                self._went_down(exc)
            else:
                return self.confirm(store, tenant, app, key, value, cur=cur), False
        return self._stale(store, tenant, app, key, cur), True

    def load_all(self, store: LocalStore, tenant: str, app: str) -> tuple[dict[str, str], bool]:
        """``(every live key with its value, stale)``: from Vault, else from the store."""
        if self._clock() >= self._down_until:
            try:
                values = self.backend.load_all(app)
            except UnavailableError as exc:
                self._went_down(exc)
            else:
                store.apply(tenant, app, values, origin="vault")
                now = self._clock()
                for key, value in values.items():
                    self.confirmed[(app, key)] = (now + self.refresh, value, now)
                return values, False
        values = store.load_all(tenant, app)
        for key, value in values.items():
            self._stale(store, tenant, app, key, value)
        return values, True

    def sync(self, store: LocalStore, tenant: str, *,
             progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Bring the store in line with every app Vault has; one ``AppSync`` per app.

        Vault is read first (``apps()``, then ``load_all`` per app) and the
        store changed only after every read succeeded: when Vault is
        unreachable or sealed, :class:`UnavailableError` is raised and the
        store is left as it was. An app Vault refuses (a policy, a bad key)
        is reported with its error and the others still sync. Vault-origin
        keys Vault no longer has are soft-deleted, also for apps Vault no
        longer lists; keys put into the store otherwise are left alone.
        """
        from .records import AppSync, SyncReport

        backend = self.backend
        try:
            apps = backend.apps()
            total = len(apps)
            if progress:
                progress(0, total)
            read: list[tuple[str, dict[str, str] | str]] = []
            for done, app in enumerate(apps, 1):
                try:
                    read.append((app, backend.load_all(app)))
                except UnavailableError:
                    raise
                except MaculaError as exc:
                    read.append((app, str(exc) or exc.__class__.__name__))
                if progress:
                    progress(done, total)
        except UnavailableError as exc:
            self._went_down(exc)
            raise
        results: list[AppSync] = []
        for app, got in read:
            if isinstance(got, str):
                results.append(AppSync(app=app, source=self.location(app), error=got))
            else:
                results.append(self._apply(store, tenant, app, got))
        results += self._drop_unlisted(store, tenant, set(apps))
        self._down_until = 0.0
        return SyncReport(apps=tuple(results))

    def check(self, store: LocalStore, tenant: str, seen: dict[str, dict[str, int]]
              ) -> list[AppSync]:
        """One periodic look for changes: KV metadata versions, values only where they moved.

        ``seen`` maps each app to its keys' versions at the last check (empty
        the first time, so everything is read once) and is updated in place.
        Per app: one LIST and the metadata reads, pipelined; an app whose
        versions differ from ``seen`` is read in full and applied as
        :meth:`sync` does. An app Vault no longer lists loses its
        vault-origin keys. Raises :class:`UnavailableError` when Vault cannot
        be reached (apps applied before that stay applied; the rest keep
        their cached values).
        """
        from .records import AppSync

        backend = self.backend
        results: list[AppSync] = []
        try:
            apps = backend.apps()
            for app in apps:
                try:
                    versions = backend.current_versions(app)
                    if seen.get(app) == versions:
                        continue
                    values = backend.load_all(app)
                except UnavailableError:
                    raise
                except MaculaError as exc:
                    results.append(AppSync(app=app, source=self.location(app),
                                           error=str(exc) or exc.__class__.__name__))
                    continue
                result = self._apply(store, tenant, app, values)
                if result.error is None:
                    seen[app] = versions
                results.append(result)
        except UnavailableError as exc:
            self._went_down(exc)
            raise
        listed = set(apps)
        for app in [a for a in seen if a not in listed]:
            del seen[app]
        results += self._drop_unlisted(store, tenant, listed)
        self._down_until = 0.0
        return results

    def _apply(self, store: LocalStore, tenant: str, app: str, values: dict[str, str]
               ) -> AppSync:
        """Bring one app of the store in line with what Vault had; confirmed as of now."""
        from .records import AppSync

        where = self.location(app)
        try:
            added, changed, deleted, unchanged = store.apply(tenant, app, values,
                                                              origin="vault")
        except MaculaError as exc:
            return AppSync(app=app, source=where, error=str(exc) or exc.__class__.__name__)
        now = self._clock()
        for key, value in values.items():
            self.confirmed[(app, key)] = (now + self.refresh, value, now)
        return AppSync(app=app, source=where, added=tuple(added), changed=tuple(changed),
                       deleted=tuple(deleted), unchanged=unchanged)

    def _drop_unlisted(self, store: LocalStore, tenant: str, listed: set[str]
                       ) -> list[AppSync]:
        """Apps Vault no longer lists: their vault-origin keys leave the store too."""
        from .records import AppSync

        results = []
        gone = sorted({a for (a, _k), origin in store.origins(tenant).items()
                       if origin == "vault" and a not in listed})
        for app in gone:
            deleted = store.apply(tenant, app, {}, origin="vault")[2]
            now = self._clock()
            for key in deleted:
                self.confirmed[(app, key)] = (now + self.refresh, None, now)
            if deleted:
                results.append(AppSync(app=app, source="(removed from vault)",
                                       deleted=tuple(deleted)))
        return results

    def location(self, app: str) -> str:
        """Where the app's keys live, for reports: ``[namespace/]mount/macula/APP/``."""
        backend = self.backend
        folder = backend.path_of(app, "k").rsplit("/", 1)[0] + "/"
        ns = (backend.namespace or "").strip("/")
        return f"{ns + '/' if ns else ''}{backend.mount}/{folder}"

    def confirm(self, store: LocalStore, tenant: str, app: str, key: str, value: str | None,
                *, cur: str | None, stored: bool = False) -> str | None:
        """Bring the store in line with Vault's ``value`` and note it as confirmed now.

        ``cur`` is the store's latest live value (``None``: absent or
        deleted); ``stored`` says the caller already wrote ``value`` there.
        """
        if not stored:
            if value is None:
                if cur is not None and store.origins(tenant, app).get((app, key)) == "vault":
                    with contextlib.suppress(NotFoundError):
                        store.delete(tenant, app, key)
            elif value != cur:
                store.put(tenant, app, key, value, origin="vault")
        now = self._clock()
        self.confirmed[(app, key)] = (now + self.refresh, value, now)
        self._down_until = 0.0
        return value

    def _went_down(self, exc: UnavailableError) -> None:
        self._down_until = self._clock() + self.refresh
        self._down_reason = str(exc)
        self._stale_logged.clear()

    def _stale(self, store: LocalStore, tenant: str, app: str, key: str, cur: str | None
               ) -> str | None:
        """The cached answer while Vault is unreachable, if young enough; else raise."""
        seen = self.confirmed.get((app, key))
        if seen is not None and seen[1] == cur:
            age = self._clock() - seen[2]
        elif cur is not None:
            updated = store.updated_at(tenant, app, key)
            age = math.inf if updated is None else max(0.0, self._wall() - updated)
        else:
            raise UnavailableError(
                f"vault at {self.address} is unreachable and there is no cached copy of "
                f"{app}/{key}", hint=self._down_reason or None)
        if self.max_stale <= 0 or age > self.max_stale:
            raise UnavailableError(
                f"vault at {self.address} is unreachable and the cached copy of {app}/{key} "
                f"is older than max_stale ({_seconds(self.max_stale)} s)",
                hint=self._down_reason or None)
        if (app, key) not in self._stale_logged:
            store.audit_read(tenant, app, key, result="stale", via="vault")
            self._stale_logged.add((app, key))
        return cur


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"

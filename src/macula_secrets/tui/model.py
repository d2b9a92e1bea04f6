"""What the TUI shows and changes, as plain calls on :class:`~macula_secrets.Secrets`.

No Textual here: the screens call this module, so every store operation the
UI offers is one small, testable function, and the UI never touches the
store directly. Reads that put a value on screen (reveal, edit) are written
to the audit log first, as ``macula-secrets get`` does (fail closed: a read
the log cannot record is not shown). Listing, versions and sources read no
value into the UI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .._feed import Subscription
    from ..backends.vault import VaultBackend
    from ..client import Secrets
    from ..leaseview import LeaseInfo
    from ..records import SyncReport, VersionInfo

__all__ = ["Browser", "KeyInfo", "KeyRow", "audit_line", "sync_lines"]

SOURCE_NAMES: Final = {"local": "store", "sops": "sops file", "envfile": "env file",
                       "vault": "vault"}
"""The store's ``origin`` of a key, as the detail pane names it."""


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One key of an app in the tree: its name and whether its latest version is deleted."""

    name: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the detail pane says about a key, without its value."""

    version: int
    source: str
    stale: bool
    deleted: bool = False


class Browser:
    """The store as the TUI sees it: tenants, their apps and keys, and the actions on them.

    Holds one :class:`Secrets` per tenant (views over one store, made with
    :meth:`Secrets.with_tenant`); :meth:`close` closes them and the root.
    """

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._views: dict[str, Secrets] = {secrets.tenant: secrets}

    def view(self, tenant: str) -> Secrets:
        """The ``Secrets`` of ``tenant`` (made on first use)."""
        found = self._views.get(tenant)
        if found is None:
            found = self._views[tenant] = self.secrets.with_tenant(tenant)
        return found

    # -- listing ---------------------------------------------------------------------

    def tenants(self) -> list[str]:
        """Tenants with data in the store, and the configured one (even when empty)."""
        return sorted(set(self.secrets.store.list_tenants()) | {self.secrets.tenant})

    def apps(self, tenant: str) -> list[str]:
        """Apps of ``tenant``: in the store, and those with a file in the secrets folder."""
        view = self.view(tenant)
        names = set(view.store.list_apps(tenant))
        if view.source is not None:
            names.update(view.source.apps())
        return sorted(names)

    def keys(self, tenant: str, app: str) -> list[KeyRow]:
        """Keys of an app, live ones and soft-deleted ones (which can be undeleted)."""
        view = self.view(tenant)
        live = set(view.list(app))
        every = set(view.store.list_keys(tenant, app, include_deleted=True)) | live
        return [KeyRow(name, deleted=name not in live) for name in sorted(every)]

    def info(self, tenant: str, app: str, key: str) -> KeyInfo | None:
        """Version, source and staleness of a key; ``None`` when it does not exist."""
        view = self.view(tenant)
        entry = view.get_entry(app, key)
        if entry is None:
            version = view.store.current_version(tenant, app, key)
            if not version:
                return None
            origin = view.store.origins(tenant, app).get((app, key), "local")
            return KeyInfo(version, SOURCE_NAMES.get(origin, origin), stale=False,
                           deleted=True)
        if entry.source == "vault":
            source = "vault"
        else:
            origin = view.store.origins(tenant, app).get((app, key), "local")
            source = SOURCE_NAMES.get(origin, origin)
            if view.vault is not None:
                source = "store (cache of vault)"
        return KeyInfo(entry.version, source, stale=entry.stale)

    # -- values ----------------------------------------------------------------------

    def reveal(self, tenant: str, app: str, key: str) -> str:
        """The latest value, after its read is in the audit log (as ``get`` records it).

        Raises:
            NotFoundError: the key has no live value.
            UnavailableError: the audit log cannot be written: the value is not shown.
        """
        view = self.view(tenant)
        value = view.require(app, key)
        version = view.store.current_version(tenant, app, key)
        view.store.audit_read(tenant, app, key, version=version, via="tui")
        return value

    def put(self, tenant: str, app: str, key: str, value: str) -> int:
        """Store a new version; its number."""
        return self.view(tenant).put(app, key, value)

    def delete(self, tenant: str, app: str, key: str) -> None:
        """Soft-delete the latest version."""
        self.view(tenant).delete(app, key)

    def undelete(self, tenant: str, app: str, key: str) -> None:
        """Undo the soft delete of the latest version."""
        self.view(tenant).undelete(app, key)

    def history(self, tenant: str, app: str, key: str) -> list[VersionInfo]:
        """Every kept version, oldest first."""
        return self.view(tenant).history(app, key)

    def rollback(self, tenant: str, app: str, key: str, version: int) -> int:
        """Make ``version`` current again as a new version; its number."""
        return self.view(tenant).rollback(app, key, version)

    # -- the store as a whole --------------------------------------------------------

    def rotate(self, *, reencrypt: bool, progress: Callable[[int, int], None]) -> None:
        """Replace the master key (all tenants); with ``reencrypt`` the data keys too."""
        self.secrets.rotate_master_key(reencrypt=reencrypt, progress=progress)

    def sync(self, tenant: str, *, progress: Callable[[int, int], None] | None = None
             ) -> SyncReport:
        """Sync ``tenant`` from its source (secrets folder or Vault)."""
        return self.view(tenant).sync(progress=progress)

    def subscribe(self, tenant: str, app: str, callback: Callable[[str, str, int], None]
                  ) -> Subscription:
        """``callback(app, key, version)`` after each change of the app, by any process."""
        return self.view(tenant).subscribe(app, callback)

    @property
    def audit_path(self) -> str | None:
        """The audit log's path (``None`` when the store keeps none)."""
        audit = self.secrets.store.audit
        return None if audit is None else audit.path

    def audit_lines(self, count: int) -> list[str]:
        """The last ``count`` audit entries, one line each (the log holds no values)."""
        from ..audit import tail

        path = self.audit_path
        if path is None or not os.path.exists(path):
            return []
        return [audit_line(e) for e in tail(path, count)]

    # -- leases ----------------------------------------------------------------------

    def leases(self, prefix: str = "") -> list[LeaseInfo]:
        """The leases Vault holds under ``prefix``, with TTLs (``leases list --long``).

        Raises:
            ConfigError: the node has no vault source.
        """
        from ..leaseview import lookup_leases

        return lookup_leases(self._vault(), prefix)

    def revoke_lease(self, lease_id: str) -> None:
        """Revoke one lease now (its credential stops working)."""
        from ..leaseview import revoke_lease

        revoke_lease(self._vault(), lease_id)

    def _vault(self) -> VaultBackend:
        if self.secrets.vault is None:
            from ..errors import ConfigError

            raise ConfigError("leases need a vault source",
                              hint='set source = "vault" and [vault] in the config file')
        return self.secrets.vault.backend

    def close(self) -> None:
        """Close every tenant view, then the root ``Secrets``."""
        for tenant, view in self._views.items():
            if tenant != self.secrets.tenant:
                view.close()
        self._views = {}
        self.secrets.close()


def audit_line(entry: dict[str, object]) -> str:
    """One audit entry as a short line: time, operation, path, version, result, program.

    Only named fields are shown, so nothing else in an entry (an HMAC of a
    value) reaches the screen.
    """
    from ..audit import describe_entry

    where, version = describe_entry(entry)
    actor = entry.get("actor")
    program = str(actor.get("program", "?")) if isinstance(actor, dict) else "?"
    time = str(entry.get("time", ""))[11:19]
    via = f" via {entry['via']}" if entry.get("via") else ""
    return " ".join(str(p) for p in (time, f"{entry.get('op', '?')!s:<8}", where, version,
                                     entry.get("result", "?"), program + via) if p)


def sync_lines(report: SyncReport) -> list[str]:
    """What a sync did, one line per app (key names and counts, never values)."""
    if not report.apps:
        return ["nothing to sync: no app files"]
    out = []
    for a in report.apps:
        source = os.path.basename(a.source) or a.source  # the file's name fits the dialog
        if a.error is not None:
            out.append(f"{a.app} ({source}): error: {a.error}")
            continue
        out.append(f"{a.app} ({source}): {a.counts}")
    return out

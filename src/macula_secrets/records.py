"""Plain records the API returns: a version's metadata, a sync's outcome, an entry.

Values, not behaviour: frozen and slotted, safe to log (only
:class:`SecretEntry` holds a secret value, and its repr leaves it out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["AppSync", "SecretEntry", "SyncReport", "SyncedCommit", "VersionInfo"]

VersionState = Literal["live", "deleted", "destroyed"]


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version of one secret, as Vault's KV v2 metadata describes it.

    ``commit`` is the full id of the git commit the value was read from when
    the version was made by ``sync --git`` (:func:`macula_secrets.sync.sync_git`),
    and ``None`` for every other version (a ``put``, a folder sync, a rollback).
    """

    version: int
    created: datetime
    deleted: datetime | None = None
    destroyed: bool = False
    current: bool = False
    commit: str | None = None

    @property
    def state(self) -> VersionState:
        """``live``, ``deleted`` (soft, can be undeleted) or ``destroyed`` (gone for good)."""
        if self.destroyed:
            return "destroyed"
        return "deleted" if self.deleted is not None else "live"

    def to_json(self) -> dict[str, object]:
        """The record as JSON-ready data (RFC 3339 times, as Vault prints them)."""
        return {
            "version": self.version,
            "created_time": _rfc3339(self.created),
            "deletion_time": _rfc3339(self.deleted) if self.deleted else "",
            "destroyed": self.destroyed,
            "current": self.current,
            "state": self.state,
            "commit": self.commit,
        }


@dataclass(frozen=True, slots=True, repr=False)
class SecretEntry:
    """A value with where it came from: what ``Secrets.get_entry`` returns.

    ``stale`` is true when the source (Vault) could not be reached and the
    node's cached copy was served instead. ``source`` is ``"vault"`` for a
    value Vault confirmed within ``refresh`` seconds, else ``"store"``.
    ``version`` is the store's version number (not Vault's KV version).
    The repr leaves the value out.
    """

    value: str
    version: int
    stale: bool = False
    source: str = "store"

    def __repr__(self) -> str:
        return (f"SecretEntry(value=***, version={self.version}, stale={self.stale}, "
                f"source={self.source!r})")


def from_timestamp(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AppSync:
    """What a sync did to one app: key names only, never values."""

    app: str
    source: str
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    error: str | None = None

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.deleted)

    @property
    def counts(self) -> str:
        """``2 added, 1 changed, 0 deleted, 5 unchanged``: what sync, watch and the TUI print."""
        return (f"{len(self.added)} added, {len(self.changed)} changed, "
                f"{len(self.deleted)} deleted, {self.unchanged} unchanged")

    def to_json(self) -> dict[str, object]:
        """The ``--json`` form of ``sync`` and ``watch`` (key names, never values)."""
        return {"app": self.app, "source": self.source, "added": list(self.added),
                "changed": list(self.changed), "deleted": list(self.deleted),
                "unchanged": self.unchanged, "error": self.error}


@dataclass(frozen=True, slots=True)
class SyncReport:
    """The outcome of one ``sync``: one entry per app file (and per app whose file left).

    ``commit`` is the full id of the commit a ``sync --git`` read (``None``
    for a folder or Vault sync). A git sync is all or nothing: when
    :attr:`errors` is not empty, ``apps`` holds only the failures and the
    store was not changed.
    """

    apps: tuple[AppSync, ...] = field(default_factory=tuple)
    commit: str | None = None

    @property
    def errors(self) -> list[AppSync]:
        return [a for a in self.apps if a.error is not None]

    @property
    def changed_anything(self) -> bool:
        return any(a.changed_anything for a in self.apps)


@dataclass(frozen=True, slots=True)
class SyncedCommit:
    """The commit ``sync --git`` applied last to a tenant: what rollback protection checks.

    ``repo`` and ``path`` are where it was read from, for messages only: the
    check is against the commit, so another clone of the same repository is
    just as good, and a repository without that commit is refused.
    """

    commit: str
    repo: str
    path: str
    synced: datetime

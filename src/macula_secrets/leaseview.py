"""The operator's side of leases: what Vault / OpenBao holds under a prefix, and revoking it.

:mod:`macula_secrets.leases` keeps one process's own credentials alive;
this module looks at every lease from outside, as ``leases list`` and the
TUI's lease view show it: after a process was killed before it could
revoke its leases, or to see how long the credentials handed out under a
role still live. It needs a token allowed on ``sys/leases/lookup`` (LIST
and PUT), ``sys/leases/revoke`` and, for a prefix, the ``sudo`` path
``sys/leases/revoke-prefix``.

Nothing here reads a credential: a lease's lookup has its times and
whether it is renewable, never the secret it was issued with. Lease ids
are returned whole (a caller shows :attr:`LeaseInfo.short_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import BackendError, NotFoundError
from .leases import short_lease_id

if TYPE_CHECKING:
    from .backends.vault import VaultBackend

__all__ = ["LeaseInfo", "lease_ids", "lookup_lease", "lookup_leases", "revoke_lease",
           "revoke_prefix", "ttl_text"]


@dataclass(frozen=True, slots=True, repr=False)
class LeaseInfo:
    """One lease as Vault's ``sys/leases/lookup`` describes it (times in UTC).

    ``ttl`` is the seconds left when it was looked up; ``expires_at`` is
    ``None`` for a lease without an end.
    """

    lease_id: str
    ttl: int
    renewable: bool
    issued_at: datetime | None
    expires_at: datetime | None
    last_renewal: datetime | None

    @property
    def short_id(self) -> str:
        """The id as it may be shown (``database/creds/ro/Ab12…``): see :func:`short_lease_id`."""
        return short_lease_id(self.lease_id)

    @property
    def path(self) -> str:
        """The path the credential was read from (``database/creds/ro``)."""
        return self.lease_id.rpartition("/")[0]

    def __repr__(self) -> str:
        return f"LeaseInfo({self.short_id!r}, ttl={self.ttl}, renewable={self.renewable})"

    def to_json(self, *, full_id: bool = False) -> dict[str, Any]:
        """The fields as JSON values (RFC 3339 times); the id shortened unless ``full_id``."""
        def stamp(when: datetime | None) -> str | None:
            return None if when is None else when.isoformat().replace("+00:00", "Z")

        return {"lease_id": self.lease_id if full_id else self.short_id, "path": self.path,
                "ttl": self.ttl, "renewable": self.renewable,
                "issued_at": stamp(self.issued_at), "expires_at": stamp(self.expires_at),
                "last_renewal": stamp(self.last_renewal)}


def lease_ids(backend: VaultBackend, prefix: str = "") -> list[str]:
    """Every lease id under ``prefix``, sorted, walking the sub-prefixes LIST returns."""
    found: list[str] = []
    pending = [prefix.strip("/")]
    while pending:
        at = pending.pop()
        path = f"sys/leases/lookup/{at}/" if at else "sys/leases/lookup/"
        try:
            resp = backend.request("LIST", path)
        except NotFoundError:
            continue  # nothing under it (Vault answers LIST with no keys by 404)
        for key in (resp.get("data") or {}).get("keys") or []:
            name = f"{at}/{key}" if at else str(key)
            if name.endswith("/"):
                pending.append(name.rstrip("/"))
            else:
                found.append(name)
    return sorted(found)


def lookup_lease(backend: VaultBackend, lease_id: str) -> LeaseInfo | None:
    """The lease ``lease_id`` as Vault has it now; ``None`` when it is gone (revoked, expired)."""
    try:
        resp = backend.request("PUT", "sys/leases/lookup", {"lease_id": lease_id})
    except BackendError as exc:
        if "invalid lease" in str(exc) or isinstance(exc, NotFoundError):
            return None  # it ended between the LIST and the lookup
        raise
    data = resp.get("data") or {}
    return LeaseInfo(lease_id, int(data.get("ttl") or 0), bool(data.get("renewable")),
                     _time(data.get("issue_time")), _time(data.get("expire_time")),
                     _time(data.get("last_renewal")))


def lookup_leases(backend: VaultBackend, prefix: str = "") -> list[LeaseInfo]:
    """Every lease under ``prefix`` with its times, sorted by id (gone ones left out)."""
    infos = (lookup_lease(backend, lease_id) for lease_id in lease_ids(backend, prefix))
    return [info for info in infos if info is not None]


def revoke_lease(backend: VaultBackend, lease_id: str) -> None:
    """Revoke one lease now: the credential stops working (the database drops the role)."""
    backend.request("PUT", "sys/leases/revoke", {"lease_id": lease_id})


def revoke_prefix(backend: VaultBackend, prefix: str) -> None:
    """Revoke every lease under ``prefix`` (``sys/leases/revoke-prefix``, a sudo path)."""
    backend.request("PUT", f"sys/leases/revoke-prefix/{prefix.strip('/')}")


def ttl_text(seconds: int) -> str:
    """``45s``, ``12m05s``, ``3h02m``: a TTL left, short enough for a table column."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _time(raw: object) -> datetime | None:
    """Vault's RFC 3339 time (nanoseconds, a zone) as an aware UTC datetime; ``None`` if unset."""
    if not isinstance(raw, str) or not raw or raw.startswith("0001-01-01"):
        return None
    text = raw.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most microseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None

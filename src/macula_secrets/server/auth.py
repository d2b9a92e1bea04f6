"""Who is calling and what they may do: the contract between the token store and the app.

The app (``server/app.py``) turns a request's token (``X-Vault-Token`` or
``Authorization: Bearer``), or the uid of a Unix-socket peer, into an
:class:`Identity` through an :class:`Authenticator`, and asks
:meth:`Identity.allows` before every operation. Deny by default: an
identity may do only what one of its rules grants.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = ["CAPABILITIES", "Authenticator", "Identity", "Rule"]

CAPABILITIES: Final = frozenset({"read", "create", "update", "delete", "list", "destroy",
                                 "metadata"})
"""What a rule can grant. ``read``: get a value (and its versions); ``list``: names of
apps and keys; ``create``/``update``: write a first / a further version; ``delete`` and
``undelete``: soft delete; ``destroy``: erase versions for good; ``metadata``: read and
delete a key's metadata (``metadata/`` DELETE erases every version, so it also needs
``destroy``)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Capabilities on the keys whose tenant, app and key match the globs (``fnmatch``)."""

    capabilities: frozenset[str]
    app: str = "*"
    key: str = "*"
    tenant: str = "default"

    def matches(self, tenant: str, app: str, key: str | None) -> bool:
        """Whether the rule covers ``tenant/app/key`` (``key`` ``None``: the app itself,
        for listing its keys)."""
        if not fnmatch.fnmatchcase(tenant, self.tenant):
            return False
        if not fnmatch.fnmatchcase(app, self.app):
            return False
        return key is None or fnmatch.fnmatchcase(key, self.key)


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller: its public accessor (for the audit log; never the token) and its rules."""

    accessor: str
    display_name: str
    rules: tuple[Rule, ...] = ()
    expires_at: float | None = None
    """Unix time after which the token is refused (``None``: never)."""
    meta: dict[str, str] = field(default_factory=dict)

    def allows(self, capability: str, tenant: str, app: str, key: str | None = None) -> bool:
        """Deny by default: true only when a rule grants ``capability`` on that path."""
        return any(capability in r.capabilities and r.matches(tenant, app, key)
                   for r in self.rules)


class Authenticator(Protocol):
    """Maps a presented token to an identity (``None``: unknown, revoked or expired)."""

    def lookup(self, token: str) -> Identity | None: ...

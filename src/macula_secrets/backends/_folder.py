"""What the file backends (sops, envfile) share: a tenant's folder, the keys that open it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._names import check_name

if TYPE_CHECKING:
    from ..keys._discovery import IdentitySources

__all__ = ["default_identities", "tenant_folder"]


def tenant_folder(root: str | os.PathLike[str], tenant: str) -> str:
    """``root`` for the default tenant, ``root/<tenant>`` for any other."""
    base = os.fspath(root)
    return base if tenant == "default" else os.path.join(base, check_name("tenant", tenant))


def default_identities(env: Mapping[str, str] | None) -> IdentitySources:
    """Identities found as sops finds them, never asking for a passphrase (no terminal here)."""
    from ..keys._discovery import IdentitySources

    return IdentitySources.from_environment(os.environ if env is None else env,
                                            os.path.expanduser("~"), read_passphrase=None)

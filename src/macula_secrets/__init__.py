"""macula-secrets: secrets for machines that run without Kubernetes.

One API over the node's encrypted runtime store and the SOPS files of a
GitOps folder::

    from macula_secrets import Secrets

    secrets = Secrets.open()
    secrets.get("console", "database_url")

    import macula_secrets
    macula_secrets.get("console", "database_url")   # a shared Secrets.open()

The file format alone lives in :mod:`macula_secrets.sops`. Names are
imported on first use, so ``import macula_secrets`` stays cheap for the
command line.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "SecretRef",
    "Secrets",
    "Subscription",
    "SyncReport",
    "VersionInfo",
    "__version__",
    "delete",
    "get",
    "list",
    "load_all",
    "put",
    "require",
]

if TYPE_CHECKING:
    from ._default import delete, get, list, load_all, put, require
    from .client import SecretRef, Secrets, Subscription
    from .records import SyncReport, VersionInfo

_LAZY = {
    "SecretRef": "client",
    "Secrets": "client",
    "Subscription": "client",
    "SyncReport": "records",
    "VersionInfo": "records",
    "delete": "_default",
    "get": "_default",
    "list": "_default",
    "load_all": "_default",
    "put": "_default",
    "require": "_default",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'macula_secrets' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> builtins.list[str]:
    return sorted(set(globals()) | set(__all__))

"""The ``leases`` commands: the leases OpenBao / Vault holds under a prefix, and revoking them.

A thin shell over the vault source's ``VaultBackend`` (its token upkeep,
retries and error translation), calling ``sys/leases/lookup`` (LIST),
``sys/leases/revoke`` and ``sys/leases/revoke-prefix``. The leases a
``run --lease`` or ``Secrets.lease`` holds are revoked by their own
process; these commands are for an operator cleaning up after one that
was killed. Lease ids are shown shortened (``database/creds/ro/Ab12…``,
as in ``leases.py``) unless ``--full-ids`` asks for them: a whole id lets
a suitable token renew or revoke the lease. See docs/leases.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from . import exitcodes as X
from .output import CommandError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..backends.vault import VaultBackend

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """``leases list`` and ``leases revoke``."""
    from ..client import Secrets

    with Secrets.open(home=args.home, tenant=args.tenant) as secrets:
        if secrets.vault is None:
            raise CommandError("leases need a vault source",
                               hint="set source = \"vault\" and [vault] in the config file")
        backend = secrets.vault.backend
        if args.run == "leases list":
            return _list(backend, args)
        return _revoke(backend, args)


def _list(backend: VaultBackend, args: argparse.Namespace) -> int:
    prefix = args.prefix.strip("/")
    ids = sorted(_lease_ids(backend, prefix))
    if not args.full_ids:
        from ..leases import short_lease_id

        ids = [short_lease_id(lease_id) for lease_id in ids]
    if args.json:
        sys.stdout.write(json.dumps(ids, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{lease_id}\n" for lease_id in ids))
    return X.OK


def _lease_ids(backend: VaultBackend, prefix: str) -> list[str]:
    """Every lease id under ``prefix``, walking the sub-prefixes LIST returns."""
    from ..errors import NotFoundError

    found: list[str] = []
    pending = [prefix]
    while pending:
        at = pending.pop()
        path = f"sys/leases/lookup/{at}/" if at else "sys/leases/lookup/"
        try:
            resp = backend._call(_lister(path), path)
        except NotFoundError:
            continue  # nothing under it (Vault answers LIST with no keys by 404)
        keys = resp.get("data", {}).get("keys", []) if isinstance(resp, dict) else []
        for key in keys:
            name = f"{at}/{key}" if at else str(key)
            if name.endswith("/"):
                pending.append(name.rstrip("/"))
            else:
                found.append(name)
    return found


def _lister(path: str) -> Callable[[Any], Any]:
    return lambda client: client.adapter.list(f"/v1/{path}")


def _revoke(backend: VaultBackend, args: argparse.Namespace) -> int:
    from ..leases import short_lease_id

    if (args.lease_id is None) == (args.prefix is None):
        sys.stderr.write("macula: error: give a LEASE_ID or --prefix PREFIX\n"
                         "macula: hint: e.g. leases revoke --prefix database/creds/readonly\n")
        return X.USAGE
    if args.prefix is not None:
        prefix = args.prefix.strip("/")
        if not prefix:
            raise CommandError("the prefix is empty",
                               hint="name a mount or role, e.g. database/creds/readonly")
        what = f"sys/leases/revoke-prefix/{prefix}"
        backend._call(lambda c: c.adapter.put(f"/v1/{what}"), what)
        sys.stderr.write(f"macula: revoked the leases under {prefix}\n")
        return X.OK
    lease_id = args.lease_id.strip()
    backend._call(lambda c: c.adapter.put("/v1/sys/leases/revoke",
                                          json={"lease_id": lease_id}),
                  "sys/leases/revoke")
    sys.stderr.write(f"macula: revoked {short_lease_id(lease_id)}\n")
    return X.OK

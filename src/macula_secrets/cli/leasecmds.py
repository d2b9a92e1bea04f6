"""The ``leases`` commands: the leases OpenBao / Vault holds under a prefix, and revoking them.

A thin shell over :mod:`macula_secrets.leaseview` and the vault source's
``VaultBackend`` (its token upkeep, retries and error translation).
On a terminal (or with ``--long``) each lease is looked up for its TTL,
expiry and last renewal; piped, the list is one id a line. The leases a
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
from typing import TYPE_CHECKING

from ..leases import short_lease_id
from . import exitcodes as X
from .output import CommandError
from .storecmds import format_table, is_terminal, use_colour

if TYPE_CHECKING:
    from datetime import datetime

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
    from ..leaseview import lease_ids, lookup_leases, ttl_text

    prefix = args.prefix.strip("/")
    long = args.long or (is_terminal(sys.stdout) and not args.json)
    if not long:
        ids = lease_ids(backend, prefix)
        shown = ids if args.full_ids else [short_lease_id(lease_id) for lease_id in ids]
        if args.json:
            sys.stdout.write(json.dumps(shown, indent=2) + "\n")
        else:
            sys.stdout.write("".join(f"{lease_id}\n" for lease_id in shown))
        return X.OK
    infos = lookup_leases(backend, prefix)
    if args.json:
        sys.stdout.write(json.dumps([i.to_json(full_id=args.full_ids) for i in infos],
                                    indent=2) + "\n")
        return X.OK
    if not infos:
        return X.OK
    rows: list[tuple[str, ...]] = [("LEASE", "TTL", "EXPIRES", "RENEWABLE", "LAST RENEWAL")]
    rows += [(info.lease_id if args.full_ids else info.short_id, ttl_text(info.ttl),
              _when(info.expires_at), "yes" if info.renewable else "no",
              _when(info.last_renewal)) for info in infos]
    sys.stdout.write(format_table(rows, bold_header=use_colour(sys.stdout)))
    return X.OK


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%SZ")


def _revoke(backend: VaultBackend, args: argparse.Namespace) -> int:
    from ..leaseview import revoke_lease, revoke_prefix

    if (args.lease_id is None) == (args.prefix is None):
        sys.stderr.write("macula: error: give a LEASE_ID or --prefix PREFIX\n"
                         "macula: hint: e.g. leases revoke --prefix database/creds/readonly\n")
        return X.USAGE
    if args.prefix is not None:
        prefix = args.prefix.strip("/")
        if not prefix:
            raise CommandError("the prefix is empty",
                               hint="name a mount or role, e.g. database/creds/readonly")
        revoke_prefix(backend, prefix)
        sys.stderr.write(f"macula: revoked the leases under {prefix}\n")
        return X.OK
    lease_id = args.lease_id.strip()
    revoke_lease(backend, lease_id)
    sys.stderr.write(f"macula: revoked {short_lease_id(lease_id)}\n")
    return X.OK

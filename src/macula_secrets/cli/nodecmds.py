"""The ``node`` commands: enroll, remove and list the nodes of a secrets folder.

Thin shells over :mod:`macula_secrets.nodes`: find the folder and the
identities, draw a progress bar on a terminal, print the outcome. Notices go
to stderr; ``node list`` prints to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import CommandError, note
from .progress import progress_bar

if TYPE_CHECKING:
    from .._config import Config
    from ..keys.age import AgeIdentity
    from ..mesh.desk import JoinDesk


def run(args: argparse.Namespace) -> int:
    handler = _HANDLERS[args.run]
    return handler(args)


def _folder(args: argparse.Namespace) -> str:
    """``--dir``, else the configured secrets folder (``MACULA_SECRETS_DIR``, ./secrets)."""
    if args.dir:
        return str(args.dir)
    from .._config import load_config

    folder = load_config().secrets_dir
    if folder is None:
        raise CommandError("no secrets folder",
                           hint="pass --dir SECRETS_DIR or set MACULA_SECRETS_DIR")
    return folder


def _identities() -> object:
    from ..keys._discovery import IdentitySources

    return IdentitySources.from_environment(os.environ, os.path.expanduser("~"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def cmd_add(args: argparse.Namespace) -> int:
    from ..nodes import add_node

    with progress_bar("node add") as update:
        change = add_node(_folder(args), args.name, args.pubkey,
                          identities=_identities(),  # type: ignore[arg-type]
                          config_path=args.config, progress=update)
    note(f"node {change.name} added to {_plural(len(change.rules), 'creation rule')} of "
         f"{change.config}; {_plural(len(change.files), 'file')} re-wrapped"
         + (f", {len(change.unchanged)} already up to date" if change.unchanged else ""))
    return X.OK


def cmd_remove(args: argparse.Namespace) -> int:
    from ..nodes import remove_node

    with progress_bar("node remove") as update:
        change = remove_node(_folder(args), args.name,
                             identities=_identities(),  # type: ignore[arg-type]
                             config_path=args.config, progress=update)
    note(f"node {change.name} removed from {_plural(len(change.rules), 'creation rule')} of "
         f"{change.config}; {_plural(len(change.files), 'file')} rotated to a new data key")
    revoked = _revoke_node_tokens(*_desk(args), change.name)
    if revoked:
        note(f"{_plural(revoked, 'server token')} of {change.name} revoked")
    return X.OK


def _revoke_node_tokens(cfg: Config, desk: JoinDesk, name: str) -> int:
    """Revoke the tokens a join gave ``name`` (recorded, and any named ``node-NAME``)."""
    from ..server.tokens import TokenStore

    accessors = set(desk.removed(name))
    count = 0
    with TokenStore.from_home(cfg.home, audit=desk.audit) as tokens:
        for info in tokens.list():
            if info.revoked:
                continue
            if info.accessor in accessors or info.display_name == f"node-{name}":
                count += tokens.revoke(info.accessor)
    return count


def _desk(args: argparse.Namespace) -> tuple[Config, JoinDesk]:
    """The home's config and its join desk (for the operator's commands)."""
    from .._config import load_config
    from ..audit import AuditLog
    from ..mesh.desk import JoinDesk

    cfg = load_config(home=args.home)
    return cfg, JoinDesk(cfg.home, fingerprint=None, config=cfg.mesh,
                         audit=AuditLog(cfg.audit_path))


def cmd_pending(args: argparse.Namespace) -> int:
    import time

    _, desk = _desk(args)
    records = desk.requests()
    now = time.time()
    if args.json:
        import json

        doc = [{"name": r.name, "code": r.code, "recipient": r.message.recipient,
                "approvals": [a.get("approver") for a in r.approvals],
                "required": r.required, "approvers": sorted(r.approvers),
                "received": int(r.received), "expires_in": max(0, int(r.expires - now))}
               for r in records]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return X.OK
    if not records:
        note("no join requests are waiting")
        return X.OK
    from .storecmds import format_table, use_colour

    rows: list[tuple[str, ...]] = [("NAME", "CODE", "KEY", "APPROVALS", "EXPIRES IN")]
    for r in records:
        key = r.message.recipient
        shown = key if len(key) <= 24 else f"{key[:20]}…{key[-3:]}"
        rows.append((r.name, r.code, shown, f"{len(r.approvals)}/{r.required}",
                     f"{max(0, int(r.expires - now))}s"))
    sys.stdout.write(format_table(rows, bold_header=use_colour(sys.stdout)))
    return X.OK


def cmd_approve(args: argparse.Namespace) -> int:
    from ..client import Secrets
    from ..mesh.desk import Scope
    from ..mesh.grant import grant_maker

    cfg, desk = _desk(args)
    identities = _approver_identities(args.identity) if args.identity else []
    scope = None
    if args.app is not None or args.master_key:
        scope = Scope(tuple(args.app or ()), bool(args.master_key))
    folder = args.dir or cfg.secrets_dir
    with Secrets.open(home=args.home) as secrets, progress_bar("node approve") as update:
        make = grant_maker(secrets, folder=folder, identities=_identities(),  # type: ignore[arg-type]
                           certificate=os.path.join(cfg.home, "server-tls", "cert.pem"),
                           progress=update)
        record = desk.approve(args.name, make_grant=make, code=args.code,
                              approver=args.approver, identities=identities, scope=scope)
    if record.status == "approved":
        apps = ", ".join(record.scope.apps) if record.scope and record.scope.apps else "none"
        note(f"join of {record.name} approved (code {record.code}); apps granted: {apps}; "
             "the node picks up its grant on its next ask")
    else:
        note(f"approval {len(record.approvals)} of {record.required} recorded for "
             f"{record.name}")
    return X.OK


def _approver_identities(path: str) -> list[AgeIdentity]:
    from ..keys.age import parse_identity_data
    from ..keys.master import read_private

    return parse_identity_data(read_private(path, "approver identity").encode("ascii"),
                               source=path)


def cmd_reject(args: argparse.Namespace) -> int:
    _, desk = _desk(args)
    record = desk.reject(args.name)
    note(f"join request of {record.name} rejected (code {record.code})")
    return X.OK


def cmd_list(args: argparse.Namespace) -> int:
    from ..nodes import list_nodes

    listing = list_nodes(_folder(args), config_path=args.config)
    if args.json:
        import json

        doc = {
            "config": listing.config,
            "files": list(listing.files),
            "nodes": [{"name": n.name, "recipient": n.recipient, "rules": list(n.rules),
                       "files": list(n.files)} for n in listing.nodes],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return X.OK
    if not listing.nodes:
        note(f"no nodes enrolled in {listing.config}")
        return X.OK
    out = []
    for n in listing.nodes:
        files = ", ".join(n.files) if n.files else "(none)"
        rules = ", ".join(str(r) for r in n.rules) if n.rules else "(none)"
        out.append(f"{n.name}\n  recipient: {n.recipient}\n  rules: {rules}\n"
                   f"  files: {len(n.files)} of {len(listing.files)}: {files}\n")
    sys.stdout.write("".join(out))
    return X.OK


_HANDLERS = {
    "node add": cmd_add,
    "node remove": cmd_remove,
    "node list": cmd_list,
    "node pending": cmd_pending,
    "node approve": cmd_approve,
    "node reject": cmd_reject,
}

"""The ``node`` commands: enroll, remove and list the nodes of a secrets folder.

Thin shells over :mod:`macula_secrets.nodes`: find the folder and the
identities, draw a progress bar on a terminal, print the outcome. Notices go
to stderr; ``node list`` prints to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import exitcodes as X
from .output import CommandError, note
from .progress import progress_bar


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
}

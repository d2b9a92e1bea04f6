"""``join``: this node asks a bootstrap to let it in (a thin shell over :mod:`..mesh.joiner`).

Prints the join code at once (the operator compares it with ``node
pending`` on the bootstrap), a line while it waits, and what the grant
brought when approved: app names and key counts, never values.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import note

if TYPE_CHECKING:
    from .._config import Config


def run(args: argparse.Namespace) -> int:
    from .._config import load_config
    from ..client import Secrets
    from ..mesh.joiner import join

    cfg = load_config(home=args.home, tenant=args.tenant)
    waiting = [False]

    def show_code(code: str) -> None:
        sys.stderr.write(
            f"macula: join code {code}\n"
            "macula: on the bootstrap, check it with: macula-secrets node pending\n")
        sys.stderr.flush()

    def show_wait(answer: dict[str, object]) -> None:
        if not waiting[0]:
            waiting[0] = True
            note(f"waiting for approval ({answer.get('approvals', 0)} of "
                 f"{answer.get('required', 1)} so far)")

    outcome = join(args.url, name=args.name, fingerprint=args.fingerprint, home=cfg.home,
                   open_secrets=lambda: Secrets.open(home=cfg.home, tenant=args.tenant),
                   ssh_key=args.ssh_key, timeout=args.timeout, poll=max(0.05, args.poll),
                   on_code=show_code, on_wait=show_wait)
    applied = outcome.applied
    note(f"node {outcome.name} joined ({outcome.recipient.split(' ')[0][:16]}…)")
    if applied.folder:
        note("enrolled in the bootstrap's secrets folder: sync it (git pull) to decrypt it")
    for app, count in applied.values.items():
        note(f"{app}: {count} value{'s' if count != 1 else ''} written to this node's store")
    if applied.token_file:
        note(f"read token for the bootstrap in {applied.token_file}")
    if applied.master_key_file:
        note(f"the bootstrap store's master key is in {applied.master_key_file} (0600)")
    if args.configure:
        _configure(cfg, args.url, applied.token_file, applied.certificate_file)
    return X.OK


def _configure(cfg: Config, url: str, token_file: str | None, ca_file: str | None) -> None:
    """Point this node's vault source at the bootstrap, unless a config file exists."""
    from .output import CommandError

    if token_file is None or ca_file is None:
        raise CommandError("the grant holds no token for the bootstrap: nothing to configure",
                           hint="approve with --app APP to grant apps to read live")
    import json  # a JSON string is a TOML basic string

    lines = ('source = "vault"\n[vault]\n'
             f"address = {json.dumps(url.rstrip('/'))}\nca_cert = {json.dumps(ca_file)}\n"
             f"token_file = {json.dumps(token_file)}\n")
    if cfg.config_file is not None:
        sys.stderr.write(f"macula: {cfg.config_file} exists: not changed; to read the "
                         "granted apps live from the bootstrap, set:\n" + lines)
        return
    from .._fs import atomic_write

    path = os.path.join(cfg.home, "config.toml")
    atomic_write(path, ("# written by macula-secrets join --configure (docs/mesh.md)\n"
                        + lines).encode("utf-8"), mode=0o644)
    note(f"{path}: this node now reads its secrets from the bootstrap (source = vault)")

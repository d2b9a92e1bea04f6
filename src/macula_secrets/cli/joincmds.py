"""``join``: this node asks a bootstrap to let it in (a thin shell over :mod:`..mesh.joiner`).

Prints the join code at once (the operator compares it with ``node
pending`` on the bootstrap), a line while it waits, and what the grant
brought when approved: app names and key counts, never values.
"""

from __future__ import annotations

import argparse
import sys

from . import exitcodes as X
from .output import note


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
    return X.OK

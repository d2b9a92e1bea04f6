"""``macula-secrets serve``: the Vault KV v2 compatible server (server/run.py does the work)."""

from __future__ import annotations

import argparse
import sys

from . import exitcodes as X


def run(args: argparse.Namespace) -> int:
    from ..client import Secrets
    from ..server.run import ServeOptions, prepare

    options = ServeOptions(
        address=args.address, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca, tls_disable=args.tls_disable,
        unix_socket=args.unix_socket, unix_socket_mode=int(args.unix_socket_mode, 8),
        grace=args.grace, audit_sync=args.audit_sync)
    secrets = Secrets.open(home=args.home)
    serving = prepare(options, secrets=secrets)

    def started() -> None:
        audit = serving.audit
        synced = (f"fsynced every {audit.interval:g} s" if audit.sync == "interval"
                  else "fsynced before each answer")
        sys.stderr.write(f"macula: serving {serving.url} (audit log {audit.path}, {synced}); "
                         "stop with SIGTERM or Ctrl-C\n")
        sys.stderr.flush()

    serving.app.on_startup = started
    serving.run()
    sys.stderr.write("macula: server stopped\n")
    return X.OK

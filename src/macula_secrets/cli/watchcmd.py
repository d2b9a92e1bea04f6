"""``macula-secrets watch``: keep the store in line with the secrets folder (or Vault).

One line per app that a sync changed (or JSON lines with ``--json``) on
stdout; a file that fails is named on stderr and its last good values stay
in service; the watch goes on. SIGTERM or Ctrl-C ends it with status 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import note

if TYPE_CHECKING:
    from ..records import AppSync


def run(args: argparse.Namespace) -> int:
    from ..client import Secrets

    secrets = Secrets.open(home=args.home, tenant=args.tenant, secrets_dir=args.dir)
    stop = threading.Event()
    stoppers: list[Callable[[], None]] = [stop.set]

    def on_signal(_sig: int, _frame: object) -> None:
        for fn in stoppers:
            fn()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    report = _reporter(json_lines=args.json)
    with secrets:
        if secrets.vault is not None:
            from .._vaultwatch import VaultRefresher

            refresher = VaultRefresher(secrets, on_sync=report, on_state=note)
            note(f"watching vault at {secrets.vault.address} every "
                 f"{refresher.interval:g} s (+-{refresher.jitter:.0%}); stop with Ctrl-C")
            refresher.run(stop)
        else:
            from ..watch import FolderWatcher

            watcher = FolderWatcher(secrets, debounce=args.debounce / 1000, on_sync=report)
            stoppers.append(watcher.stop)
            watcher.sync_all()
            note(f"watching {watcher.folder}; stop with Ctrl-C")
            if not stop.is_set():
                watcher.run(initial_sync=False)
    note("watch stopped")
    return X.OK


def _reporter(*, json_lines: bool) -> Callable[[AppSync], None]:
    """What a sync prints: one line per app it changed; failures on stderr."""
    def report(result: AppSync) -> None:
        if result.error is not None:
            sys.stderr.write(f"macula: error: {result.source}: {result.error} "
                             "(keeping the last good values)\n")
            sys.stderr.flush()
        if json_lines:
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
        elif result.changed_anything:
            sys.stdout.write(f"{result.app}: {result.counts}\n")
        sys.stdout.flush()

    return report

"""Periodic refresh for a vault source: Vault's changes reach subscribers without a restart.

Vault has no push, so :class:`VaultRefresher` asks: every ``interval``
seconds (the source's ``refresh``, default 30, each wait moved by up to
``jitter`` of it at random so that many nodes do not ask in step) it reads
the KV metadata versions of every app (:meth:`VaultSource.check`: a LIST
and pipelined metadata reads, no values) and reads the values only of apps
whose versions moved. What changed is applied to the store, so every
subscriber on the node hears of it through the store's change feed.

When Vault cannot be reached the store keeps its cache and the reads keep
being served from it (up to ``max_stale``, as for any read of a vault
source); the refresher says so once (``on_state``), keeps asking at the
same pace, and says so again when Vault is back.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigError, UnavailableError
from .watch import Background

if TYPE_CHECKING:
    from .client import Secrets
    from .records import AppSync

__all__ = ["VaultRefresher"]


class VaultRefresher(Background):
    """Check a vault source for changes every ``interval`` seconds (+- ``jitter``)."""

    def __init__(self, secrets: Secrets, *, interval: float | None = None,
                 jitter: float = 0.1, on_sync: Callable[[AppSync], None] | None = None,
                 on_state: Callable[[str], None] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        source = secrets.vault
        if source is None:
            raise ConfigError("the vault refresher needs a vault source",
                              hint="set source = \"vault\" and a [vault] table")
        if not 0 <= jitter < 1:
            raise ConfigError("jitter must be at least 0 and below 1")
        self.secrets = secrets
        self.interval = float(interval if interval is not None else source.refresh) or 30.0
        self.jitter = jitter
        self.on_sync = on_sync
        self.on_state = on_state
        self.online: bool | None = None
        """``None`` before the first check, then whether the last one reached Vault."""
        self.checks = 0
        self._seen: dict[str, dict[str, int]] = {}
        self._rng = rng
        self._stop = threading.Event()

    def __repr__(self) -> str:
        source = self.secrets.vault
        return f"VaultRefresher({source.address if source else '?'}, every {self.interval:g} s)"

    def next_wait(self) -> float:
        """The next wait: ``interval`` moved by up to ``jitter`` of it, either way."""
        return self.interval * (1 + self.jitter * (2 * self._rng() - 1))

    def check(self) -> list[AppSync]:
        """Look once now; what changed per app (``[]`` when Vault is unreachable)."""
        source = self.secrets.vault
        assert source is not None  # noqa: S101 - checked in __init__
        self.checks += 1
        try:
            results = source.check(self.secrets.store, self.secrets.tenant, self._seen)
        except UnavailableError as exc:
            if self.online is not False and self.on_state is not None:
                self.on_state(f"vault at {source.address} is unreachable ({exc}); serving the "
                              "cached values (offline) and asking again later")
            self.online = False
            return []
        if self.online is False and self.on_state is not None:
            self.on_state(f"vault at {source.address} is reachable again")
        self.online = True
        if self.on_sync is not None:
            for result in results:
                if result.changed_anything or result.error is not None:
                    self.on_sync(result)
        return results

    def run(self, stop: threading.Event | None = None) -> None:
        """Check, wait, check... until ``stop`` (or :meth:`stop`) is set."""
        stop = stop or self._stop
        while not stop.is_set():
            self.check()
            stop.wait(self.next_wait())

    def start(self) -> VaultRefresher:
        """Run in a daemon thread (the first check happens right away)."""
        if self._thread is None:
            self._spawn("macula-vault-refresh", self.run)
        return self

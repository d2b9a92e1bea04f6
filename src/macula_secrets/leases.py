"""Dynamic credentials with leases: read one from Vault / OpenBao and keep it valid.

A *dynamic* secret engine (``database``, ``aws``, ``rabbitmq``...) makes a
new credential for each read of ``<mount>/creds/<role>`` and hands it out
under a *lease*: a time to live, after which Vault revokes the credential
(for the database engine: it drops the database role). A process that
holds such a credential must renew the lease before it runs out, and must
get a new credential when renewal is refused or the role's ``max_ttl`` is
reached. :class:`LeaseKeeper` does that in a background thread::

    from macula_secrets import Secrets

    secrets = Secrets.open()                                  # source = "vault"
    db = secrets.lease("database/creds/readonly")             # a LeaseKeeper
    creds = db.get()                                          # {"username": ..., "password": ...}
    db.on_change(lambda lease: pool.dispose())                # a new credential was issued
    ...
    secrets.close()                                           # revokes the lease

It talks to Vault through a :class:`~macula_secrets.backends.vault.VaultBackend`
(its token upkeep, retries, HA fail-over, TLS and error translation), so it
sits beside the backends, not in the runtime store: a lease is never
written to disk, since a stored copy would outlive the credential it names.

When not to use it: for static secrets (KV), use ``Secrets.get`` or
``Secrets.ref``. A lease of an auth token (``auth/token/create``) is renewed
with ``auth/token/renew``, not here.

Neither the credential nor the whole lease id appears in a repr, a log line
or an error: the lease id lets whoever holds a suitable token renew or
revoke the lease, so only its path and the first characters of its random
part are shown (``database/creds/readonly/Ab12…``).

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import math
import random as _random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from .errors import BackendError, UnavailableError

if TYPE_CHECKING:
    from types import TracebackType

    from .backends.vault import VaultBackend

__all__ = ["Lease", "LeaseKeeper"]

RENEW_AT: Final = 2 / 3
"""Fraction of the TTL after which a lease is renewed: a third is left for retries."""
JITTER: Final = 0.1
"""Renewals move earlier at random by up to this fraction, so many leases spread out."""
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 30.0
"""Seconds between attempts while Vault cannot be reached (doubling, full jitter)."""
SHORT_ID: Final = 4
"""Characters of the lease id's random part shown in reprs and logs."""

_log = logging.getLogger("macula_secrets.leases")


def short_lease_id(lease_id: str) -> str:
    """``database/creds/readonly/Ab12…``: the path and the start of the random part.

    The random part is what makes a lease id a handle on the lease; a few
    characters tell leases apart in logs without handing one out.
    """
    path, _, tail = lease_id.rpartition("/")
    return f"{path}/{tail[:SHORT_ID]}…" if path else f"{tail[:SHORT_ID]}…"


@dataclass(frozen=True, slots=True, repr=False)
class Lease:
    """One credential Vault issued and the lease it is valid under (immutable).

    ``data`` is the credential (for the database engine ``username`` and
    ``password``); ``ttl`` is in seconds from ``renewed_at`` (the issue or
    the last renewal) to ``expires_at``. ``repr`` shows the path, the short
    lease id and the times, never ``data`` nor the whole ``lease_id``.
    """

    path: str
    lease_id: str
    ttl: float
    renewable: bool
    issued_at: datetime
    expires_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    renewed_at: datetime | None = None
    _deadline: float = field(default=0.0, compare=False)
    """``expires_at`` on the keeper's monotonic clock."""

    @property
    def short_id(self) -> str:
        """The lease id as it may be shown: ``database/creds/readonly/Ab12…``."""
        return short_lease_id(self.lease_id)

    def __repr__(self) -> str:
        return (f"Lease({self.path!r}, id={self.short_id!r}, ttl={self.ttl:g}, "
                f"renewable={self.renewable}, expires_at={self.expires_at.isoformat()!r})")

    __str__ = __repr__


LeaseCallback = Callable[[Lease], None]
"""``callback(lease)``: called after a new credential was issued (not after a renewal)."""


class LeaseKeeper:
    """Holds one dynamic credential of ``path`` and keeps it valid; thread-safe.

    The first credential is read in the constructor, so a keeper that exists
    has one (or the constructor raised). Then the backend's renewal thread
    (one daemon thread per ``VaultBackend``, shared by all its keepers)
    renews the lease (``sys/leases/renew``) after about 2/3 of each TTL,
    asking for the lease's original TTL again, and reads a new credential
    (*re-issues*) when:

    - the lease is not renewable;
    - Vault refuses the renewal (the lease was revoked, or is unknown);
    - renewal gives back less time than asked: the role's ``max_ttl`` is
      near, and the lease will end soon whatever we do.

    A re-issue calls every ``on_change`` callback with the new :class:`Lease`
    (from the renewal thread; a callback that raises is logged and the
    others still run). The previous lease is left to run out rather than
    revoked, so connections opened with it keep working while the
    application moves to the new credential.

    While Vault cannot be reached, the keeper keeps the credential it has
    and tries again with backoff (0.5 s doubling to 30 s, never past the
    expiry); once the lease has expired, :meth:`get` raises
    :class:`UnavailableError` until Vault answers again.

    :meth:`close` stops the upkeep and revokes the current lease
    (``sys/leases/revoke``), so the credential dies with the process.

    Args:
        backend: the Vault connection; its token must be allowed to read
            ``path`` and to use ``sys/leases/renew`` and ``sys/leases/revoke``.
        path: what to read, e.g. ``database/creds/readonly``.
        on_change: a first callback (see :meth:`on_change`).
        renew_at: fraction of the TTL after which to renew.
        start: hand the lease to the renewal thread (``False``: call
            :meth:`step` yourself when :attr:`next_step` says).
        clock, now, random: time and randomness, for tests.

    Raises:
        UnavailableError: Vault cannot be reached for the first credential.
        BackendError: Vault refused to issue it (its error says why).
    """

    def __init__(self, backend: VaultBackend, path: str, *,
                 on_change: LeaseCallback | None = None, renew_at: float = RENEW_AT,
                 start: bool = True, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 random: Callable[[], float] = _random.random) -> None:
        path = path.strip("/")
        if not path:
            from .errors import ConfigError

            raise ConfigError("the lease path is empty",
                              hint="give what to read, e.g. database/creds/readonly")
        if not 0.0 < renew_at < 1.0:
            from .errors import ConfigError

            raise ConfigError(f"renew_at must be between 0 and 1, not {renew_at}")
        self.backend = backend
        self.path = path
        self.renew_at = renew_at
        self._clock = clock
        self._now = now
        self._random = random
        self._lock = threading.Lock()
        self._callbacks: list[LeaseCallback] = [] if on_change is None else [on_change]
        self._stop = threading.Event()
        # close() waits for a step in progress; reentrant for a callback that closes.
        self._stepping = threading.RLock()
        self._failures = 0
        self.renewals = 0
        """Renewals Vault accepted (for tests and diagnostics)."""
        self.issues = 0
        """Credentials read, the first one included."""
        self._lease = self._issue()
        self._asked = self._lease.ttl
        self._next = self._renew_time(self._lease)
        self._renewer: _Renewer | None = None
        if start:
            self._renewer = _renewer_of(backend)
            self._renewer.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._stop.is_set() else f"id={self._lease.short_id!r}"
        return f"LeaseKeeper({self.path!r}, {state})"

    __str__ = __repr__

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- what applications call --------------------------------------------------

    @property
    def lease(self) -> Lease:
        """The current lease (it may have expired: see :meth:`get`)."""
        return self._lease

    def get(self) -> dict[str, Any]:
        """The current credential (a copy), e.g. ``{"username": ..., "password": ...}``.

        Read it each time a connection is opened: after a re-issue it is the
        new credential.

        Raises:
            UnavailableError: the lease expired and no new one could be had
                (Vault unreachable), or the keeper is closed.
        """
        lease = self._lease
        if self._stop.is_set():
            raise UnavailableError(f"the lease keeper of {self.path} is closed")
        if self._clock() >= lease._deadline:
            raise UnavailableError(
                f"the lease {lease.short_id} of {self.path} expired at "
                f"{lease.expires_at.isoformat(timespec='seconds')} and vault at "
                f"{self.backend.address} has not issued a new one",
                hint="check that vault runs and can be reached from here; the keeper "
                     "keeps trying")
        return dict(lease.data)

    def on_change(self, callback: LeaseCallback) -> Callable[[], None]:
        """Call ``callback(lease)`` after each new credential; returns a function that stops it.

        Renewals keep the credential and call nothing. Callbacks run on the
        renewal thread, which other leases share: hand slow work (closing a
        pool) to another one.
        """
        with self._lock:
            self._callbacks.append(callback)

        def cancel() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return cancel

    def close(self, *, revoke: bool = True) -> None:
        """Stop renewing and (with ``revoke``) revoke the current lease; idempotent.

        A failed revocation is logged, not raised: the lease then ends at its
        TTL, which is what would happen to a process that died.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.remove(self)
        with self._stepping:
            pass  # a step that had begun has ended: the lease below is the last one
        if revoke:
            lease = self._lease
            try:
                self._put("sys/leases/revoke", {"lease_id": lease.lease_id})
            except BackendError as exc:
                _log.warning("could not revoke lease %s of %s: %s", lease.short_id, self.path,
                             exc)
            else:
                _log.debug("revoked lease %s of %s", lease.short_id, self.path)

    # -- the renewal loop --------------------------------------------------------

    @property
    def next_step(self) -> float:
        """When the next renewal (or retry) is due, on the ``clock`` given (monotonic)."""
        return self._next

    def _due_in(self) -> float:
        """Seconds until the next step is due (0 or less: now)."""
        return self._next - self._clock()

    def _tick(self) -> None:
        """One step from the renewer's thread; an unexpected error only delays the next."""
        with self._stepping:
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception as exc:  # the thread must go on: other leases depend on it
                _log.warning("lease upkeep of %s failed: %s", self.path, exc.__class__.__name__)
                self._next = self._clock() + self._backoff()

    def step(self) -> None:
        """Renew or re-issue now, as the thread does when a renewal is due.

        Sets when the next step is due. Public for tests and for callers that
        run their own loop (``start=False``).
        """
        lease = self._lease
        if not lease.renewable or self._clock() >= lease._deadline:
            self._reissue("the lease is not renewable" if not lease.renewable
                          else "the lease expired")
            return
        try:
            resp = self._put("sys/leases/renew",
                             {"lease_id": lease.lease_id, "increment": int(self._asked)})
        except UnavailableError as exc:
            self._offline(exc)
            return
        except BackendError as exc:
            # 400 "lease not found" (revoked, or Vault lost it) or a policy that
            # says no: renewing again cannot help, a new credential may.
            self._reissue(f"renewal was refused ({exc})")
            return
        self._failures = 0
        ttl = float(resp.get("lease_duration") or 0)
        at = self._clock()
        renewed = self._now()
        self._lease = Lease(lease.path, lease.lease_id, ttl, bool(resp.get("renewable")),
                            lease.issued_at, renewed + timedelta(seconds=ttl), lease.data,
                            renewed, at + ttl)
        self.renewals += 1
        if ttl < self._asked:
            # Vault capped the TTL at the role's max_ttl: the lease ends soon
            # whatever we ask, so take a new credential now, while this one
            # still works for the application's move.
            _log.info("lease %s of %s reached its max TTL (%gs left): issuing a new one",
                      lease.short_id, self.path, ttl)
            self._reissue(None)
            return
        _log.debug("renewed lease %s of %s for %gs", lease.short_id, self.path, ttl)
        self._next = self._renew_time(self._lease)

    def _reissue(self, why: str | None) -> None:
        old = self._lease
        if why is not None:
            _log.info("lease %s of %s: %s; issuing a new one", old.short_id, self.path, why)
        try:
            lease = self._issue()
        except UnavailableError as exc:
            self._offline(exc)
            return
        except BackendError as exc:
            # Permission denied, a role that was deleted: keep what we have
            # until it expires and keep asking (an operator may fix it).
            _log.warning("vault refused a new credential for %s: %s", self.path, exc)
            self._next = self._clock() + self._backoff()
            return
        self._failures = 0
        self._lease = lease
        self._asked = lease.ttl
        self._next = self._renew_time(lease)
        _log.info("new lease %s of %s (ttl %gs)", lease.short_id, self.path, lease.ttl)
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(lease)
            except Exception as exc:  # one bad subscriber must not stop the others
                _log.warning("lease callback for %s raised %s", self.path,
                             exc.__class__.__name__)

    def _offline(self, exc: UnavailableError) -> None:
        lease = self._lease
        wait = self._backoff()
        left = lease._deadline - self._clock()
        if left > 0:
            # Never sleep past the expiry: one more try just before it.
            wait = min(wait, max(0.05, left * 0.9))
        _log.warning("cannot reach vault for lease %s of %s (%gs left): %s; next try in %.1fs",
                     lease.short_id, self.path, max(0.0, left), exc, wait)
        self._next = self._clock() + wait

    def _backoff(self) -> float:
        """Full-jitter exponential backoff: why many keepers do not retry in step."""
        self._failures += 1
        cap = min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (self._failures - 1))
        return max(0.05, self._random() * cap)

    def _renew_time(self, lease: Lease) -> float:
        """When to renew: at ``renew_at`` of the TTL, earlier by up to ``JITTER`` of it."""
        if lease.ttl <= 0:
            return math.inf  # a lease without a TTL never needs renewing
        fraction = self.renew_at * (1.0 - JITTER * self._random())
        return self._clock() + max(0.05, lease.ttl * fraction)

    # -- Vault calls ---------------------------------------------------------------

    def _issue(self) -> Lease:
        """Read ``path`` once: a new credential and its lease."""
        backend = self.backend
        # Not idempotent: every read makes a credential, so an ambiguous failure
        # is not sent again (an orphan would live until its TTL).
        resp = backend.request("GET", self.path, idempotent=False)
        if not resp.get("lease_id"):
            raise BackendError(
                f"{self.path} in vault at {backend.address} gave no lease",
                hint="read a dynamic secret, e.g. database/creds/ROLE (KV secrets have "
                     "no lease)")
        ttl = float(resp.get("lease_duration") or 0)
        issued = self._now()
        self.issues += 1
        return Lease(self.path, str(resp["lease_id"]), ttl, bool(resp.get("renewable")),
                     issued, issued + timedelta(seconds=ttl), dict(resp.get("data") or {}),
                     None, self._clock() + ttl if ttl > 0 else math.inf)

    def _put(self, what: str, body: dict[str, Any]) -> Mapping[str, Any]:
        """``PUT /v1/<what>`` (a renewal or revocation: safe to send twice)."""
        return self.backend.request("PUT", what, body)


class _Renewer:
    """The one thread that steps every started keeper of one backend when it is due.

    One thread per backend rather than per lease: a process holding a
    hundred leases has one sleeping thread and one kept-alive connection,
    not a hundred. Steps run one after another, so a slow one (Vault
    timing out) delays the others; renewing at 2/3 of the TTL leaves a
    third of it for that. The thread ends with the last keeper.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._keepers: list[LeaseKeeper] = []
        self._thread: threading.Thread | None = None

    def add(self, keeper: LeaseKeeper) -> None:
        with self._cond:
            self._keepers.append(keeper)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="macula-leases")
                self._thread.start()
            self._cond.notify()

    def remove(self, keeper: LeaseKeeper) -> None:
        with self._cond:
            if keeper in self._keepers:
                self._keepers.remove(keeper)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._keepers:
                    self._thread = None  # the next add() starts another
                    return
                waits = [(k._due_in(), k) for k in self._keepers]
                delay = min(w for w, _ in waits)
                if delay > 0:
                    self._cond.wait(min(delay, _LONGEST_WAIT))
                    continue
                due = [k for w, k in waits if w <= 0]
            for keeper in due:
                keeper._tick()


_LONGEST_WAIT: Final = 3600.0
"""A timed wait cannot be infinite (a lease without a TTL has nothing due)."""

_renewers: weakref.WeakKeyDictionary[VaultBackend, _Renewer] = weakref.WeakKeyDictionary()
_renewers_lock = threading.Lock()


def _renewer_of(backend: VaultBackend) -> _Renewer:
    with _renewers_lock:
        renewer = _renewers.get(backend)
        if renewer is None:
            renewer = _renewers[backend] = _Renewer()
        return renewer

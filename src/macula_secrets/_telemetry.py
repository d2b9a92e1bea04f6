"""OpenTelemetry spans and metrics for the library, in-process, when it is installed.

Nothing here imports ``opentelemetry`` (nor :mod:`._otel`, which does the
work) until :func:`enable` runs, and until then the library's methods are
the plain ones: a ``Secrets.get``
without telemetry is the same function, not one that checks a flag. This
is why :func:`enable` swaps instrumented wrappers onto :class:`Secrets`
(``get``, ``put``, ``sync``) and the sops and sync modules (``decrypt``,
``sync --git``), and :func:`disable` puts the originals back, rather than
each method asking "is tracing on?" on the hot path.

When it runs: :func:`opened` (called by ``Secrets.open``) enables it when
``MACULA_SECRETS_OTEL`` is ``on``, or when it is unset and the application
has set a global tracer provider (it set up tracing, so it wants the
spans; an application that has not pays nothing, not even the import);
``off`` never does. :func:`enable` may also be called directly,
with providers (tests pass the SDK's in-memory ones).

What is recorded: span names ``macula.get``, ``macula.put``,
``macula.sync``, ``macula.decrypt``, with the tenant, app, key name,
backend and cache hit as attributes, never a value; an exception sets the
span's status to its class name only (messages name paths, which are
fine, but a span is no place to find out). Metrics are listed in
docs/observability.md.

The plain counters in :data:`COUNTS` (sync runs and failures) are kept
whether or not OpenTelemetry is there: syncs are rare, and the server's
Prometheus endpoint reads them too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from . import _env
from .errors import ConfigError

if TYPE_CHECKING:
    from ._otel import Instrumentation
    from .client import Secrets

__all__ = ["COUNTS", "count_sync", "counted_sync", "disable", "enable", "is_enabled",
           "lease_renewals", "opened", "register_sinks", "store_size"]

COUNTS: Final[dict[str, int]] = {"sync_runs": 0, "sync_failures": 0}
"""Process-wide counters kept always (cheap: they move once per sync)."""
LAST_SYNC: Final[dict[str, float | bool]] = {}
"""This process's last sync: ``time`` (Unix) and ``ok``."""
SCOPE: Final = "macula_secrets"
"""The instrumentation scope name of the tracer and the meter."""

_OPEN: weakref.WeakSet[Secrets] = weakref.WeakSet()
"""Every ``Secrets`` opened in this process (root views): stores to measure, leases to count."""
_SINK_STATS: weakref.WeakSet[Any] = weakref.WeakSet()
"""The server's audit fan-outs (``server.sinks.Fanout``) whose failures are reported."""
_state: Instrumentation | None = None
_P = ParamSpec("_P")
_R = TypeVar("_R")


def count_sync(*, ok: bool) -> None:
    """Count one sync run (and a failure when ``ok`` is false)."""
    COUNTS["sync_runs"] += 1
    if not ok:
        COUNTS["sync_failures"] += 1
    LAST_SYNC.update(time=time.time(), ok=ok)


def counted_sync(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a sync entry point: each call counts a run, a raise or a report with
    failing apps a failure."""

    @functools.wraps(run)
    def counted(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            report = run(*args, **kwargs)
        except BaseException:
            count_sync(ok=False)
            raise
        count_sync(ok=not getattr(report, "errors", ()))
        return report

    return counted


def register_sinks(fanout: object) -> None:
    """Report ``fanout``'s sink failures as ``macula.audit.sink.failures`` (server)."""
    _SINK_STATS.add(fanout)


def opened(secrets: Secrets, env: Mapping[str, str]) -> None:
    """Note an opened ``Secrets``; enable telemetry as ``MACULA_SECRETS_OTEL`` says.

    Raises:
        ConfigError: ``MACULA_SECRETS_OTEL=on`` without ``opentelemetry-api`` installed,
            or another value than on/off.
    """
    _OPEN.add(secrets)
    if _state is not None:
        return
    wanted = env.get(_env.MACULA_SECRETS_OTEL, "").strip().lower()
    if wanted == "off":
        return
    if wanted == "on" or (wanted == "" and _app_has_tracing()):
        enable()
    elif wanted:
        raise ConfigError(f"{_env.MACULA_SECRETS_OTEL} must be on or off, not {wanted!r}")


def _app_has_tracing() -> bool:
    """Whether the application set a global tracer provider (without importing OpenTelemetry:
    an application that did has imported it already)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def is_enabled() -> bool:
    return _state is not None


def enable(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Instrument the library: spans and metrics through OpenTelemetry from now on.

    ``None`` providers mean the global ones (``opentelemetry.trace`` /
    ``opentelemetry.metrics``). Calling it again replaces the providers.

    Raises:
        ConfigError: ``opentelemetry-api`` is not installed.
    """
    global _state
    import importlib.util

    try:
        found = importlib.util.find_spec("opentelemetry") is not None
    except (ImportError, ValueError):   # a stub left in sys.modules
        found = False
    if not found:
        raise ConfigError("opentelemetry-api is not installed",
                          hint="pip install 'macula-secrets[otel]'")
    from ._otel import Instrumentation

    disable()
    _state = Instrumentation(tracer_provider, meter_provider)
    _state.install()


def disable() -> None:
    """Put the plain methods back (instruments already made stay, and stop moving)."""
    global _state
    if _state is not None:
        _state.uninstall()
        _state = None


def store_size(path: str) -> int:
    """Bytes of a store's database and its write-ahead log."""
    size = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            size += os.stat(path + suffix).st_size
    return size


def lease_renewals() -> int:
    """Renewals by the lease keepers of every ``Secrets`` open in this process."""
    return sum(getattr(k, "renewals", 0) for s in list(_OPEN) for k in list(s._leases))
